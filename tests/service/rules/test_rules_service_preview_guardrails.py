"""A rule preview shows what the guardrails would decide on each proposed action (their dry run, over real HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from allot.guardrails.service import SPEC as GUARDRAILS
from allot.rules.service import SPEC as RULES
from tests.service.rules.rules_support import days_before, report, wait_for_entities
from tests.support.kafka import publish
from tests.support.service import api_keys, auth, running_service, serve_on_loopback


async def test_preview_carries_the_guardrails_verdict_per_action(settings: Any, unique: str) -> None:
    ws, account = f"ws-{unique}", f"act-{unique}"
    (admin, viewer), keys_json = api_keys((ws, "admin"), (ws, "viewer"))
    shared = settings.model_copy(update={"api_keys": keys_json})
    big, small = f"big-{unique}", f"small-{unique}"
    await publish(settings.kafka_bootstrap, *[report(ws, account, e, d, spend=10_000, revenue=30_000)
                                              for e in (big, small) for d in days_before(datetime.now(UTC), 3)])
    scale = [{"type": "increase_budget_pct", "pct": 10}]
    async with (serve_on_loopback(GUARDRAILS, shared) as url,
                running_service(RULES, shared, guardrails_url=url) as (client, _)):
        fine = await wait_for_entities(client, viewer, account, "adset", 2, actions=scale)
        assert fine["guardrails"]["available"] is True and fine["guardrails"]["status"] == "approved", fine
        assert sorted(line["verdict"] for m in fine["matched"] for line in m["guardrails"]) == ["approved"] * 2

        # A daily cap below what the two +10 % changes expose: the preview shows each action blocked, with the
        # check and the numbers, before anything is activated.
        async with httpx.AsyncClient(base_url=url) as guardrails:
            r = await guardrails.patch("/api/v1/guardrails/limits", json={"daily_cap_eur_cents": 2_000},
                                       headers=auth(admin))
            assert r.status_code == 200, r.text
        capped = await wait_for_entities(client, viewer, account, "adset", 2, actions=scale)
        verdict = capped["guardrails"]
        assert verdict["status"] == "blocked" and verdict["check"] == "daily_cap", verdict
        assert verdict["details"]["cap_eur_cents"] == 2_000 and verdict["details"]["over_by_eur_cents"] > 0
        for m in capped["matched"]:
            (line,) = m["guardrails"]
            assert line["verdict"] == "blocked" and "2000" in line["note"], line
            assert (line["from_cents"], line["to_cents"]) == (10_000, 11_000)

    # Without a guardrails service the preview still answers, and says the verdict is unavailable.
    async with running_service(RULES, shared, guardrails_url="http://127.0.0.1:9") as (client, _):
        out = await wait_for_entities(client, viewer, account, "adset", 2, actions=scale)
        assert out["guardrails"]["available"] is False and "unreachable" in out["guardrails"]["error"]
        assert all(m["guardrails"] == [] for m in out["matched"]) and len(out["proposed_actions"]) == 2
