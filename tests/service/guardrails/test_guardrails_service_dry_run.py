"""POST /api/v1/guardrails/dry-run: the whole check chain on a proposed change set, recording nothing."""

from __future__ import annotations

from typing import Any

from allot.guardrails.service import SPEC
from tests.service.guardrails.guardrails_support import action, decision_of, envelope, request
from tests.support.kafka import publish
from tests.support.service import api_keys, auth, running_service

DRY_RUN = "/api/v1/guardrails/dry-run"


def body(*actions: Any, source: str = "rule", source_id: str = "r-1", **extra: Any) -> dict[str, Any]:
    return {"source": source, "source_id": source_id, "actions": [a.model_dump(mode="json") for a in actions], **extra}


async def test_dry_run_shows_each_actions_verdict_and_records_nothing(
        settings: Any, unique: str, kafka_bootstrap: str) -> None:
    ws = f"ws-{unique}"
    (viewer,), keys_json = api_keys((ws, "viewer"))
    async with running_service(SPEC, settings.model_copy(update={"api_keys": keys_json})) as (client, _ctx):
        # A -50 % cut is blocked by the step limit, with the numbers.
        r = await client.post(DRY_RUN, json=body(action(f"a-{unique}", 10_000, 5_000)), headers=auth(viewer))
        assert r.status_code == 200, r.text
        cut = r.json()
        assert cut["dry_run"] is True and cut["status"] == "blocked" and cut["check"] == "max_change"
        (line,) = cut["actions"]
        assert line["verdict"] == "blocked" and line["approved_to_cents"] is None and "20" in line["note"]

        # A pool allocation is decided for real: its entities become the pool's members.
        pool = request(action(f"m1-{unique}", 10_000, 11_000), action(f"m2-{unique}", 10_000, 9_000),
                       source="pool", source_id=f"pool-{unique}", pool_daily_budget_cents=20_000, currency="EUR")
        await publish(kafka_bootstrap, envelope(ws, pool))
        assert (await decision_of(client, viewer, pool.request_id))["status"] == "approved"

        # A rule's change set touching that member and another entity: the member's change is dropped (the pool
        # owns its budget), the other is approved.
        other = action(f"o-{unique}", 10_000, 11_000)
        member = action(f"m1-{unique}", 11_000, 12_000)
        r = await client.post(DRY_RUN, json=body(member, other), headers=auth(viewer))
        mixed = r.json()
        assert mixed["status"] == "approved", mixed
        verdicts = {a["entity_id"]: a for a in mixed["actions"]}
        assert verdicts[f"m1-{unique}"]["verdict"] == "dropped"
        assert f"member of pool pool-{unique}, which owns its budget" in verdicts[f"m1-{unique}"]["note"]
        # opted in, the same change still loses to the pool that just changed it; the note names the pool once
        r = await client.post(DRY_RUN, json=body(member, change_pool_member_budgets=True), headers=auth(viewer))
        (line,) = r.json()["actions"]
        assert line["verdict"] == "blocked" and "which (higher priority) changed it" in line["note"]
        assert verdicts[f"o-{unique}"]["verdict"] == "approved"
        assert verdicts[f"o-{unique}"]["approved_to_cents"] == 11_000

        # Nothing was recorded: no decision for the rule, the ledger counts the pool's approval only.
        r = await client.get("/api/v1/guardrails/decisions", params={"source_id": "r-1"}, headers=auth(viewer))
        assert r.json()["decisions"] == []
        ledger = (await client.get("/api/v1/guardrails/ledger", headers=auth(viewer))).json()
        assert ledger["approvals_counted"] == 1 and ledger["decisions"]["approved"] == 1

        # Bad input names the field.
        r = await client.post(DRY_RUN, json={"source": "rule", "source_id": "r-1", "actions": []},
                              headers=auth(viewer))
        assert r.status_code == 422 and "actions" in r.text
        r = await client.post(DRY_RUN, json=body(other, source="robot"), headers=auth(viewer))
        assert r.status_code == 422 and "source" in r.text
