"""POST /api/v1/guardrails/pool-membership (which entities a pool owns, as the arbiter sees them), and the arbiter's
times: every time in its notes and details is the service clock's (simulated in the demo), never the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.payloads import PoolMemberRef, PoolMembersChanged
from allot.contracts.registry import TOPICS
from allot.guardrails.service import SPEC
from allot.runtime.clock import ManualClock
from tests.service.guardrails.guardrails_support import action, decision_of, envelope, request
from tests.support.kafka import eventually, publish
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


def same_partition(key: str, prefix: str) -> str:
    """A key starting with ``prefix`` whose records land on ``key``'s partition (so they are consumed after it)."""
    partitions = list(range(TOPICS["pool.members_changed"].partitions))
    def part(k: str) -> int:
        return int(DefaultPartitioner()(k.encode(), partitions, partitions))
    return next(c for i in count() if part(c := f"{prefix}-{i}") == part(key))


def members_changed(ws: str, pool_id: str, *entities: str, version: int, at: datetime,
                    deleted: bool = False) -> Envelope[PoolMembersChanged]:
    payload = PoolMembersChanged(pool_id=pool_id, workspace_id=ws, version=version, changed_at=at, deleted=deleted,
                                 members=[PoolMemberRef(entity_id=e, entity_type="adset", platform="meta",
                                                        ad_account_id="act-1") for e in entities])
    return new_envelope(event_type="pool.members_changed", schema_version=1, payload=payload, producer="test",
                        workspace_id=ws, occurred_at=at)


async def test_pool_membership_follows_the_pools_announced_membership_before_any_allocation(
        settings: Any, unique: str, kafka_bootstrap: str) -> None:
    """pool.members_changed replaces the pool's membership: listed from creation on (no allocation ever), a removed
    member and a deleted pool's members are no longer listed, an older state replayed later changes nothing, an
    entity moves to the pool whose state is later, and the arbiter drops a rule's budget change on a member."""
    ws = f"ws-{unique}"
    (viewer,), keys_json = api_keys((ws, "viewer"))
    m1, m2, m3, m4 = (f"m{i}-{unique}" for i in range(1, 5))
    pool = f"pool-{unique}"
    other = same_partition(pool, f"other-{unique}")  # its records are consumed in order with the pool's
    clock = ManualClock(SIM)
    async with running_service(SPEC, settings.model_copy(update={"api_keys": keys_json}), clock=clock) as (client, _):
        async def listed(*, until: Any) -> list[tuple[str, str]]:
            async def check() -> list[tuple[str, str]] | None:
                r = await client.post(MEMBERSHIP, json={"entity_ids": [m1, m2, m3, m4]}, headers=auth(viewer))
                assert r.status_code == 200, r.text
                got = [(m["entity_id"], m["pool_id"]) for m in r.json()["members"]]
                return got if until(got) else None
            return await eventually(check, timeout=20.0, what="pool membership")

        created = members_changed(ws, pool, m1, m2, version=1, at=SIM)
        await publish(kafka_bootstrap, created)
        assert await listed(until=bool) == [(m1, pool), (m2, pool)], "members from creation, before any allocation"

        # the arbiter sees it: a rule's budget change on a member is dropped (ownership), no allocation needed
        rule = {"source": "rule", "source_id": f"rule-{unique}",
                "actions": [action(m1, 10_000, 12_000).model_dump(mode="json")]}
        out = (await client.post(DRY_RUN, json=rule, headers=auth(viewer))).json()
        assert out["status"] == "blocked" and pool in out["reason"], out

        removed = members_changed(ws, pool, m1, version=2, at=SIM + timedelta(minutes=1))
        await publish(kafka_bootstrap, removed)
        assert await listed(until=lambda got: (m2, pool) not in got) == [(m1, pool)], "m2 was removed"

        # the older state arrives again: the same record (replay) and as a new record (reordered on the way); then
        # a sentinel on the same partition (another pool's first state, listing m4). Once m4 shows, both were
        # consumed, and m2 did not come back
        await publish(kafka_bootstrap, created, members_changed(ws, pool, m1, m2, version=1, at=SIM),
                      members_changed(ws, other, m4, version=1, at=SIM + timedelta(minutes=2)))
        assert await listed(until=lambda got: (m4, other) in got) == [(m1, pool), (m4, other)], "older is ignored"

        # m3 joins the pool, then moves to the other pool (a later state): it belongs to the later one
        await publish(kafka_bootstrap, members_changed(ws, pool, m1, m3, version=3, at=SIM + timedelta(minutes=3)),
                      members_changed(ws, other, m3, m4, version=2, at=SIM + timedelta(minutes=4)))
        assert await listed(until=lambda got: (m3, other) in got) == [(m1, pool), (m3, other), (m4, other)]

        await publish(kafka_bootstrap, members_changed(ws, pool, version=4, at=SIM + timedelta(minutes=5),
                                                       deleted=True))
        assert await listed(until=lambda got: (m1, pool) not in got) == [(m3, other), (m4, other)], \
            "a deleted pool owns nothing, and only what it owned is released"
