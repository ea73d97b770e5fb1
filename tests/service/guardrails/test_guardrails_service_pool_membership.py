"""POST /api/v1/guardrails/pool-membership (which entities a pool owns, as the arbiter sees them), and the arbiter's
times: every time in its notes and details is the service clock's (simulated in the demo), never the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from allot.guardrails.service import SPEC
from allot.runtime.clock import ManualClock
from tests.service.guardrails.guardrails_support import action, decision_of, envelope, request
from tests.support.kafka import publish
from tests.support.service import api_keys, auth, running_service

MEMBERSHIP = "/api/v1/guardrails/pool-membership"
DRY_RUN = "/api/v1/guardrails/dry-run"
#: Far from any wall clock the test could run at: a time read from the wall clock cannot pass for it.
SIM = datetime(2031, 12, 5, 8, 33, tzinfo=UTC)


async def test_pool_membership_answers_which_entities_a_pool_owns_per_workspace(
        settings: Any, unique: str, kafka_bootstrap: str) -> None:
    ws, other_ws = f"ws-{unique}", f"other-{unique}"
    (viewer, stranger), keys_json = api_keys((ws, "viewer"), (other_ws, "viewer"))
    m1, m2, loose = f"m1-{unique}", f"m2-{unique}", f"loose-{unique}"
    clock = ManualClock(SIM)
    async with running_service(SPEC, settings.model_copy(update={"api_keys": keys_json}), clock=clock) as (client, _):
        r = await client.post(MEMBERSHIP, json={"entity_ids": [m1, m2, loose]}, headers=auth(viewer))
        assert r.status_code == 200, r.text
        assert r.json() == {"workspace_id": ws, "checked": 3, "members": []}, "no pool has allocated yet"

        pool = request(action(m1, 10_000, 11_000), action(m2, 10_000, 9_000), source="pool",
                       source_id=f"pool-{unique}", pool_daily_budget_cents=20_000, currency="EUR")
        await publish(kafka_bootstrap, envelope(ws, pool))
        assert (await decision_of(client, viewer, pool.request_id))["status"] == "approved"

        r = await client.post(MEMBERSHIP, json={"entity_ids": [loose, m2, m1, m1]}, headers=auth(viewer))
        body = r.json()
        assert body["checked"] == 3, "each id once"
        assert [(m["entity_id"], m["pool_id"]) for m in body["members"]] == [(m1, f"pool-{unique}"),
                                                                             (m2, f"pool-{unique}")], body
        assert {datetime.fromisoformat(m["seen_at"]) for m in body["members"]} == {SIM}, "on the service clock"

        # another workspace's pools are not this one's
        r = await client.post(MEMBERSHIP, json={"entity_ids": [m1, m2]}, headers=auth(stranger))
        assert r.status_code == 200 and r.json()["members"] == []

        # bad input names the field; no key is 401
        for bad, field in (({"entity_ids": []}, "entity_ids"), ({"entity_ids": [""]}, "entity_ids.0"),
                           ({}, "entity_ids"), ({"entity_ids": "m1"}, "entity_ids"),
                           ({"entity_ids": [m1], "pool_id": "x"}, "pool_id"),
                           ({"entity_ids": [f"e{i}" for i in range(5001)]}, "entity_ids")):
            r = await client.post(MEMBERSHIP, json=bad, headers=auth(viewer))
            assert r.status_code == 422 and field in [e["field"] for e in r.json()["errors"]], (bad, r.text)
        assert (await client.post(MEMBERSHIP, json={"entity_ids": [m1]})).status_code == 401


async def test_the_arbiters_times_are_the_service_clocks_not_the_wall_clocks(
        settings: Any, unique: str, kafka_bootstrap: str) -> None:
    """A pool change recorded at simulated SIM is named at SIM in an opted-in rule's drop, and the priority window
    runs on the same clock: 72 simulated hours later the rule's change passes (wall time did not move)."""
    ws = f"ws-{unique}"
    (viewer,), keys_json = api_keys((ws, "viewer"))
    member, pool_id = f"m-{unique}", f"pool-{unique}"
    clock = ManualClock(SIM)
    async with running_service(SPEC, settings.model_copy(update={"api_keys": keys_json}), clock=clock) as (client, _):
        pool = request(action(member, 10_000, 11_000), source="pool", source_id=pool_id,
                       pool_daily_budget_cents=11_000, currency="EUR")
        # the request's own occurred_at is the wall clock's (tests/service/guardrails_support.envelope)
        await publish(kafka_bootstrap, envelope(ws, pool))
        decided = await decision_of(client, viewer, pool.request_id)
        assert datetime.fromisoformat(decided["decided_at"]) == SIM

        clock.advance(2 * 86_400)  # two simulated days later, an opted-in rule asks
        rule = {"source": "rule", "source_id": f"rule-{unique}", "change_pool_member_budgets": True,
                "actions": [action(member, 11_000, 12_000).model_dump(mode="json")]}
        r = await client.post(DRY_RUN, json=rule, headers=auth(viewer))
        out = r.json()
        assert out["status"] == "blocked" and out["check"] == "arbitration", out
        assert datetime.fromisoformat(out["decided_at"]) == SIM + timedelta(days=2)
        assert datetime.fromisoformat(out["details"]["winner_at"]) == SIM, out["details"]
        assert f"which (higher priority) changed it at {SIM.isoformat()}, within the last 72 h" in out["reason"]
        assert f"priority holds until {(SIM + timedelta(hours=72)).isoformat()}" in out["reason"]
        assert out["reason"].count(pool_id) == 1, "the winner is named once"

        clock.advance(86_400)  # 72 simulated hours after the pool's change: outside the window
        r = await client.post(DRY_RUN, json=rule, headers=auth(viewer))
        assert r.json()["status"] == "approved", r.json()
