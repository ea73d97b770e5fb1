"""A pool simulation shows what the guardrails would decide on each proposed move (their dry run, over real HTTP)."""

from __future__ import annotations

from typing import Any

import httpx

from allot.guardrails.service import SPEC as GUARDRAILS
from tests.service.pools.pools_support import BASE, PoolsCase, auth
from tests.support.service import serve_on_loopback


async def test_simulate_carries_the_guardrails_verdict_per_move(settings: Any, unique: str,
                                                                kafka_bootstrap: str) -> None:
    P = PoolsCase(settings, unique)
    shared = settings.model_copy(update={"api_keys": P.keys_json})
    async with serve_on_loopback(GUARDRAILS, shared) as url, P.service(guardrails_url=url) as (client, ctx, _clock):
        op = auth(P.operator)
        await P.publish_history(kafka_bootstrap, ctx, P.history(16))
        pool = (await P.create_pool(client))["id"]

        r = await client.post(f"{BASE}/{pool}/simulate", headers=op)
        assert r.status_code == 201, r.text
        sim = r.json()
        assert sim["actions"], sim  # the engine moves budget toward the best member
        assert sim["guardrails"]["available"] is True and sim["guardrails"]["status"] == "approved", sim["guardrails"]
        assert {a["guardrails"]["verdict"] for a in sim["actions"]} == {"approved"}
        assert all(a["guardrails"]["approved_to_cents"] == a["toCents"] for a in sim["actions"])

        # The kill switch on: the same simulation shows every move blocked, and why.
        async with httpx.AsyncClient(base_url=url) as guardrails:
            r = await guardrails.post("/api/v1/guardrails/kill-switch", json={"enabled": True}, headers=op)
            assert r.status_code == 200, r.text
        sim = (await client.post(f"{BASE}/{pool}/simulate", headers=op)).json()
        assert sim["guardrails"]["check"] == "kill_switch"
        assert {a["guardrails"]["verdict"] for a in sim["actions"]} == {"blocked"}
        assert all("kill switch" in a["guardrails"]["note"].lower() for a in sim["actions"])
