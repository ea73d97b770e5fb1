"""Pools tell the guardrails their membership: every change (created with members, member removed, pool deleted)
publishes pool.members_changed through the outbox, and the guardrails (running beside pools, on the same broker)
hold it — before any allocation."""

from __future__ import annotations

from typing import Any

import orjson

from allot.guardrails.service import SPEC as GUARDRAILS
from tests.service.pools.pools_support import BASE, PoolsCase
from tests.support.kafka import eventually, read_topic
from tests.support.service import auth, running_service

MEMBERSHIP = "/api/v1/guardrails/pool-membership"


async def test_pool_membership_reaches_the_guardrails_on_create_remove_and_delete(
        settings: Any, unique: str, kafka_bootstrap: str) -> None:
    case = PoolsCase(settings, unique)
    m1, m2 = case.entity["m1"], case.entity["m2"]
    guardrails_settings = settings.model_copy(update={"api_keys": case.keys_json})
    async with (case.service() as (pools, _, _),
                running_service(GUARDRAILS, guardrails_settings,
                                database_schema=f"{settings.database_schema}_guardrails") as (guardrails, _)):
        async def owned(*, until: Any) -> list[tuple[str, str]]:
            async def check() -> tuple[list[tuple[str, str]]] | None:  # a tuple: an empty list is an answer too
                r = await guardrails.post(MEMBERSHIP, json={"entity_ids": [m1, m2]}, headers=auth(case.viewer))
                assert r.status_code == 200, r.text
                got = [(m["entity_id"], m["pool_id"]) for m in r.json()["members"]]
                return (got,) if until(got) else None
            return (await eventually(check, timeout=30.0, what="the guardrails' pool membership"))[0]

        pool = await case.create_pool(pools, members=2)
        pid = pool["id"]
        assert await owned(until=bool) == [(m1, pid), (m2, pid)], "both members, and no allocation was made"
        r = await pools.get(f"{BASE}/{pid}/allocations", headers=auth(case.viewer))
        assert r.json()["allocations"] == []

        member2 = next(m for m in pool["members"] if m["entityId"] == m2)
        r = await pools.delete(f"{BASE}/{pid}/members/{member2['id']}", headers=auth(case.operator))
        assert r.status_code == 200, r.text
        assert await owned(until=lambda got: (m2, pid) not in got) == [(m1, pid)], "a removed member is released"

        r = await pools.delete(f"{BASE}/{pid}", headers=auth(case.operator))
        assert r.status_code == 200, r.text
        assert await owned(until=lambda got: not got) == [], "a deleted pool owns nothing"

    # on the bus: one full, versioned state per change, keyed by the pool
    records = await read_topic(kafka_bootstrap, "pool.members_changed", min_count=3,
                               predicate=lambda rec: rec.key == pid.encode())
    states = [orjson.loads(rec.value)["payload"] for rec in records]
    assert [(s["version"], [m["entity_id"] for m in s["members"]], s["deleted"]) for s in states] == [
        (1, sorted([m1, m2]), False), (2, [m1], False), (3, [], True)]
    assert {s["workspace_id"] for s in states} == {case.ws}
    assert states[0]["members"][0] == {"entity_id": min(m1, m2), "entity_type": "campaign", "platform": "sandbox",
                                       "ad_account_id": case.account}
