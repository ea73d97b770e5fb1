"""One pool per entity: an entity that is an active member of another pool of the workspace is refused with 409
naming that pool (id, name) and the field; the database's unique index holds it under concurrent requests too
(the loser gets the same 409, never a 500). Paused pools keep their members; deleted pools release them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from allot.pools.adapters import postgres as db
from allot.runtime.clock import ManualClock
from allot.runtime.service import ServiceContext
from tests.service.pools.pools_support import BASE, NOW, PoolsCase, auth, eventually, field_of


def _names(r: httpx.Response, pool: dict[str, Any], field: str) -> None:
    """A 409 that names the owning pool (id and name) and the request's field."""
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["error"] == "entity_in_another_pool" and field_of(r) == [field], body
    assert body["poolId"] == pool["id"] and body["poolName"] == pool["name"], body
    assert pool["id"] in body["message"] and pool["name"] in body["message"]


async def test_an_entity_is_an_active_member_of_one_pool_only(settings: Any, unique: str) -> None:
    P = PoolsCase(settings, unique)
    async with P.service() as (client, ctx, _clock):
        op = auth(P.operator)
        a = await P.create_pool(client, name=f"Retargeting {unique}")
        e = P.entity

        # creating a pool with an entity pool A holds: 409 on that member's field, nothing created
        r = await client.post(BASE, json=P.pool_body(members=0, name="B") | {
            "members": [P.member("x0"), P.member("m3")]}, headers=op)
        _names(r, a, "members.1.entityId")
        assert r.json()["entityId"] == e["m3"]
        assert [p["id"] for p in (await client.get(BASE, headers=op)).json()["pools"]] == [a["id"]]
        # ... a paused new pool too (a paused pool keeps its members, so it may not take another pool's)
        r = await client.post(BASE, json=P.pool_body(status="paused", name="B"), headers=op)
        _names(r, a, "members.0.entityId")
        assert len(r.json()["conflicts"]) == 4
        # ... an inactive member claims nothing
        r = await client.post(BASE, json=P.pool_body(members=0, name="B") | {
            "members": [P.member("x0"), P.member("m2", isActive=False)]}, headers=op)
        assert r.status_code == 201, r.text
        b = r.json()
        assert b["activeMemberCount"] == 1

        # adding a member / re-activating one
        r = await client.post(f"{BASE}/{b['id']}/members", json=P.member("m1"), headers=op)
        _names(r, a, "entityId")
        r = await client.post(f"{BASE}/{b['id']}/members", json=P.member("m2"), headers=op)  # re-activate
        _names(r, a, "entityId")
        r = await client.post(f"{BASE}/{b['id']}/members", json=P.member("m2", weight=2.0, isActive=False), headers=op)
        assert r.status_code == 200 and r.json()["isActive"] is False, r.text  # an inactive update is fine
        # re-adding a member to its own pool is an update, not a conflict
        r = await client.post(f"{BASE}/{a['id']}/members", json=P.member("m1", weight=1.5), headers=op)
        assert r.status_code == 200 and r.json()["weight"] == 1.5, r.text

        # a paused pool still owns its members; resuming it can therefore never conflict
        r = await client.patch(f"{BASE}/{a['id']}", json={"status": "paused"}, headers=op)
        assert r.status_code == 200, r.text
        r = await client.post(f"{BASE}/{b['id']}/members", json=P.member("m1"), headers=op)
        _names(r, a, "entityId")
        r = await client.patch(f"{BASE}/{a['id']}", json={"status": "active"}, headers=op)
        assert r.status_code == 200 and r.json()["activeMemberCount"] == 4, r.text

        # removing the member releases the entity: B takes it, and then A is the one refused, naming B
        m1 = next(m for m in a["members"] if m["entityId"] == e["m1"])
        assert (await client.delete(f"{BASE}/{a['id']}/members/{m1['id']}", headers=op)).status_code == 200
        r = await client.post(f"{BASE}/{b['id']}/members", json=P.member("m1"), headers=op)
        assert r.status_code == 201, r.text
        r = await client.post(f"{BASE}/{a['id']}/members", json=P.member("m1"), headers=op)
        _names(r, b, "entityId")

        # deleting a pool (the archive: still listed with include_deleted) releases its members
        assert (await client.delete(f"{BASE}/{a['id']}", headers=op)).status_code == 200
        r = await client.post(f"{BASE}/{b['id']}/members", json=P.member("m2"), headers=op)
        assert r.status_code == 200 and r.json()["isActive"] is True, r.text  # B's inactive m2 re-activated
        r = await client.post(BASE, json=P.pool_body(members=0, name="C") | {"members": [P.member("m3")]}, headers=op)
        assert r.status_code == 201, r.text

        # another workspace's pools are not this workspace's concern
        r = await client.post(BASE, json=P.pool_body(), headers=auth(P.other))
        assert r.status_code == 201, r.text

        # the database holds the rule without the API
        async with ctx.pool.acquire() as conn:
            with pytest.raises(asyncpg.UniqueViolationError) as err:
                await db.upsert_member(conn, uuid.UUID(a["id"]), P.ws, _row(e["m1"]), NOW)
        assert err.value.constraint_name == db.ONE_ACTIVE_POOL_INDEX


def _row(entity_id: str) -> dict[str, Any]:
    return {"entity_type": "campaign", "entity_id": entity_id, "ad_account_id": None, "entity_name": None,
            "platform": "sandbox", "currency": "EUR", "min_budget_cents": None, "max_budget_cents": None,
            "weight": 1.0, "is_active": True}


async def _blocked_on_the_index(ctx: ServiceContext) -> None:
    """Until a backend waits for a lock on its pool_members insert (the other transaction's uncommitted row)."""

    async def waiting() -> bool:
        async with ctx.pool.acquire() as conn:
            n = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE '%INSERT INTO pool_members%'"
            )
        return bool(n)

    await eventually(waiting, timeout=10, what="the API's insert waiting on the uncommitted member")


async def test_concurrent_adds_of_one_entity_one_wins_the_others_get_409(settings: Any, unique: str) -> None:
    P = PoolsCase(settings, unique)
    async with P.service(ManualClock(NOW)) as (client, ctx, _clock):
        op = auth(P.operator)
        pools = [(await P.create_pool(client, members=0, name=f"pool {i}")) for i in range(5)]
        by_id = {p["id"]: p for p in pools}

        # Deterministic race: another transaction has inserted the entity but not committed, so the API's check
        # sees nothing; the API's insert then waits on the unique index and fails when that commits → 409.
        for route, body, field in [
            ("members", P.member("m1"), "entityId"),
            ("create", P.pool_body(members=0, name="late") | {"members": [P.member("x9"), P.member("m1")]},
             "members.1.entityId"),
        ]:
            entity = P.entity["m1"]
            async with ctx.pool.acquire() as conn:
                tx = conn.transaction()
                await tx.start()
                await db.upsert_member(conn, uuid.UUID(pools[0]["id"]), P.ws, _row(entity), NOW)
                url = f"{BASE}/{pools[1]['id']}/members" if route == "members" else BASE
                task = asyncio.create_task(client.post(url, json=body, headers=op))
                await _blocked_on_the_index(ctx)
                assert not task.done()
                await tx.commit()
            r = await asyncio.wait_for(task, 15)
            _names(r, pools[0], field)
            async with ctx.pool.acquire() as conn:  # release it again for the next round
                await conn.execute("UPDATE pool_members SET is_active = false WHERE entity_id = $1", entity)
        assert len((await client.get(BASE, headers=op)).json()["pools"]) == 5  # "late" was not created

        # Free-for-all: the same entity into five pools at once, and into three new pools at once.
        for key in ("m2", "m3"):
            rs = await asyncio.gather(
                *(client.post(f"{BASE}/{p['id']}/members", json=P.member(key), headers=op) for p in pools)
            )
            assert sorted(r.status_code for r in rs) == [201, 409, 409, 409, 409], [r.text for r in rs]
            winner = next(p for p, r in zip(pools, rs, strict=True) if r.status_code == 201)
            for r in rs:
                if r.status_code == 409:
                    _names(r, by_id[winner["id"]], "entityId")
        rs = await asyncio.gather(
            *(client.post(BASE, json=P.pool_body(members=0, name=f"new {i}") | {"members": [P.member("m4")]},
                          headers=op) for i in range(3))
        )
        assert sorted(r.status_code for r in rs) == [201, 409, 409], [r.text for r in rs]
        async with ctx.pool.acquire() as conn:
            counts = await conn.fetch(
                "SELECT entity_id, count(*) AS n FROM pool_members WHERE workspace_id = $1 AND is_active "
                "GROUP BY entity_id",
                P.ws,
            )
        assert {r["entity_id"]: r["n"] for r in counts} == {P.entity[k]: 1 for k in ("m2", "m3", "m4")}
