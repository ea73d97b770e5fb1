"""Budget-pool CRUD over HTTP: camelCase/snake_case, 422s naming the field, roles, workspace isolation, 503."""

from __future__ import annotations

from typing import Any

from tests.service.pools.pools_support import BASE, PoolsCase, auth, field_of


async def test_pools_crud_validation_roles_and_isolation(settings: Any, unique: str) -> None:
    P = PoolsCase(settings, unique)
    async with P.service() as (client, ctx, _clock):
        op, viewer, other = auth(P.operator), auth(P.viewer), auth(P.other)

        pool = await P.create_pool(client)
        pid = pool["id"]
        assert pool["dailyBudgetCents"] == 44_000 and pool["currency"] == "EUR"
        assert pool["defaultMinBudgetCents"] == 2_000 and pool["minBudgetChange"] == 100
        assert pool["allocationFrequencyHours"] == 24 and pool["autonomy"] == "live" and "tier" not in pool
        assert pool["activeMemberCount"] == 4
        m0 = pool["members"][0]
        assert m0["entityType"] == "campaign" and m0["adAccountId"] == P.account and m0["platform"] == "sandbox"
        assert m0["isActive"] is True and m0["currency"] == "EUR" and m0["weight"] == 1.0

        # snake_case works too (and an autonomy default of observe: the observation phase comes first)
        r = await client.post(
            BASE,
            headers=op,
            json={
                "name": "snake",
                "daily_budget_cents": 5_000,
                "optimization_metric": "cpa",
                "allocation_frequency_hours": 8,
                "min_budget_change_cents": 50,
                "default_max_budget_cents": 4_000,
                "members": [
                    {
                        "entity_type": "adset",
                        "entity_id": f"as-{unique}",
                        "min_budget_cents": 100,
                        "max_budget_cents": 3_000,
                        "weight": 2.5,
                        "platform": "meta",
                    }
                ],
            },
        )
        assert r.status_code == 201, r.text
        snake = r.json()
        assert snake["optimizationMetric"] == "cpa" and snake["allocationFrequencyHours"] == 8
        assert (
            snake["minBudgetChange"] == 50
            and snake["autonomy"] == "observe"
            and snake["defaultMaxBudgetCents"] == 4_000
        )
        assert snake["members"][0]["minBudgetCents"] == 100 and snake["members"][0]["platform"] == "meta"

        # 422s naming the field
        floors_over = P.pool_body()
        floors_over["members"] = [P.member(k, minBudgetCents=12_000) for k in ("m1", "m2", "m3", "m4")]
        cases: list[tuple[dict[str, Any], str]] = [
            (P.pool_body(optimizationMetric="ctr"), "optimizationMetric"),
            (P.pool_body(allocationFrequencyHours=6), "allocationFrequencyHours"),
            (
                P.pool_body(members=0) | {"members": [P.member("m1", minBudgetCents=5_000, maxBudgetCents=3_000)]},
                "members.0.minBudgetCents",
            ),
            (P.pool_body(minBudgetCents=3_000, maxBudgetCents=1_000), "defaultMaxBudgetCents"),
            (floors_over, "dailyBudgetCents"),
            (P.pool_body(members=0, minBudgetCents=0) | {"members": [P.member(f"x{i}") for i in range(21)]}, "members"),
            (P.pool_body(members=0) | {"members": [P.member("m1", currency="USD")]}, "members.0.currency"),
            (P.pool_body(members=0) | {"members": [P.member("m1"), P.member("m1")]}, "members.1.entityId"),
            (P.pool_body(members=0) | {"members": [P.member("m1", entityType="ad")]}, "members.0.entityType"),
            (P.pool_body(dailyBudgetCents=0), "dailyBudgetCents"),
        ]
        for body, field in cases:
            r = await client.post(BASE, json=body, headers=op)
            assert r.status_code == 422, (field, r.text)
            assert field in field_of(r), (field, r.json())

        # a 21st active member through the members endpoint
        r = await client.post(
            BASE,
            headers=op,
            json=P.pool_body(members=0, minBudgetCents=0, dailyBudgetCents=100_000)
            | {"members": [P.member(f"y{i}") for i in range(20)]},
        )
        assert r.status_code == 201 and r.json()["activeMemberCount"] == 20
        full = r.json()["id"]
        r = await client.post(f"{BASE}/{full}/members", json=P.member("y20"), headers=op)
        assert r.status_code == 422 and "members" in field_of(r), r.text
        # ... but an inactive one may be added
        r = await client.post(f"{BASE}/{full}/members", json=P.member("y20", isActive=False), headers=op)
        assert r.status_code == 201, r.text

        # members: add (201), floor pushing the sum over the budget (422), reactivate/update (200), remove
        r = await client.post(f"{BASE}/{pid}/members", json=P.member("m5", minBudgetCents=40_000), headers=op)
        assert r.status_code == 422 and "minBudgetCents" in field_of(r), r.text
        r = await client.post(f"{BASE}/{pid}/members", json=P.member("m5", maxBudgetCents=1_000), headers=op)
        assert r.status_code == 422 and "maxBudgetCents" in field_of(r), r.text  # below the pool's default floor
        r = await client.post(f"{BASE}/{pid}/members", json=P.member("m5", entityType="adset"), headers=op)
        assert r.status_code == 201, r.text
        m5 = r.json()
        r = await client.delete(f"{BASE}/{pid}/members/{m5['id']}", headers=op)
        assert r.status_code == 200 and r.json()["isActive"] is False
        r = await client.post(f"{BASE}/{pid}/members", json=P.member("m5", entityType="adset", weight=0.5), headers=op)
        assert (
            r.status_code == 200 and r.json()["id"] == m5["id"] and r.json()["isActive"] and r.json()["weight"] == 0.5
        )
        r = await client.delete(f"{BASE}/{pid}/members/{full}", headers=op)
        assert r.status_code == 404

        # PATCH: validated as a whole, partial, camel or snake
        r = await client.patch(f"{BASE}/{pid}", json={"dailyBudgetCents": 9_000}, headers=op)
        assert r.status_code == 422 and "dailyBudgetCents" in field_of(r), r.text  # 5 floors of 2000 > 9000
        r = await client.patch(f"{BASE}/{pid}", json={"name": None}, headers=op)
        assert r.status_code == 422 and "name" in field_of(r)
        r = await client.patch(f"{BASE}/{pid}", json={"optimizationMetric": "ctr"}, headers=op)
        assert r.status_code == 422 and "optimizationMetric" in field_of(r)
        r = await client.patch(f"{BASE}/{pid}", json={"allocation_frequency_hours": 5}, headers=op)
        assert r.status_code == 422 and "allocation_frequency_hours" in field_of(r)
        r = await client.patch(f"{BASE}/{pid}", json={"status": "paused", "min_budget_change": 250}, headers=op)
        assert r.status_code == 200, r.text
        patched = r.json()
        assert patched["status"] == "paused" and patched["minBudgetChange"] == 250
        assert patched["version"] == pool["version"] + 1 and patched["dailyBudgetCents"] == 44_000
        r = await client.post(f"{BASE}/{pid}/allocate", headers=op)
        assert r.status_code == 409 and field_of(r) == ["status"]  # a paused pool is not allocated

        # roles: the viewer reads, never writes or allocates
        assert (await client.get(f"{BASE}/{pid}", headers=viewer)).status_code == 200
        assert (await client.post(BASE, json=P.pool_body(), headers=viewer)).status_code == 403
        assert (await client.post(f"{BASE}/{pid}/allocate", headers=viewer)).status_code == 403
        assert (await client.post(f"{BASE}/{pid}/simulate", headers=viewer)).status_code == 403
        assert (await client.patch(f"{BASE}/{pid}", json={"name": "x"}, headers=viewer)).status_code == 403
        assert (await client.get(BASE)).status_code == 401

        # another workspace: every id is 404, its list is empty
        for method, path, body in [
            ("GET", "", None),
            ("PATCH", "", {"name": "x"}),
            ("DELETE", "", None),
            ("POST", "/allocate", None),
            ("POST", "/simulate", None),
            ("POST", "/members", P.member("z")),
            ("GET", "/allocations", None),
            ("GET", "/diminishing-returns", None),
            ("GET", "/backtest", None),
            ("DELETE", f"/members/{m5['id']}", None),
        ]:
            r = await client.request(method, f"{BASE}/{pid}{path}", json=body, headers=other)
            assert r.status_code == 404, (method, path, r.text)
        assert (await client.get(BASE, headers=other)).json()["pools"] == []
        mine = (await client.get(BASE, headers=viewer)).json()["pools"]
        assert {p["id"] for p in mine} == {pid, snake["id"], full}

        # DELETE soft-deletes: gone from reads, kept (with inactive members) for the record
        r = await client.delete(f"{BASE}/{pid}", headers=op)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "deleted" and r.json()["deletedAt"] and r.json()["activeMemberCount"] == 0
        assert (await client.get(f"{BASE}/{pid}", headers=viewer)).status_code == 404
        assert (await client.post(f"{BASE}/{pid}/allocate", headers=op)).status_code == 404
        assert pid not in {p["id"] for p in (await client.get(BASE, headers=viewer)).json()["pools"]}
        listed = (await client.get(BASE, params={"include_deleted": "true"}, headers=viewer)).json()["pools"]
        assert [p["status"] for p in listed if p["id"] == pid] == ["deleted"]
        async with ctx.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT deleted_at, (SELECT count(*) FROM pool_members m WHERE m.pool_id = "
                "p.pool_id AND m.is_active) AS active FROM pools p WHERE pool_id = $1::uuid",
                pid,
            )
        assert row["deleted_at"] is not None and row["active"] == 0


async def test_pools_every_route_503_when_ai_native_disabled(settings: Any, unique: str) -> None:
    P = PoolsCase(settings, unique)
    async with P.service(ai_native_enabled=False) as (client, _ctx, _clock):
        op = auth(P.operator)
        pid = "00000000-0000-0000-0000-000000000001"
        for method, path, body in [
            ("GET", "", None),
            ("POST", "", P.pool_body()),
            ("GET", f"/{pid}", None),
            ("PATCH", f"/{pid}", {"name": "x"}),
            ("DELETE", f"/{pid}", None),
            ("POST", f"/{pid}/members", P.member("m1")),
            ("DELETE", f"/{pid}/members/{pid}", None),
            ("POST", f"/{pid}/simulate", None),
            ("POST", f"/{pid}/allocate", {"async": False}),
            ("GET", f"/{pid}/allocations", None),
            ("GET", f"/{pid}/diminishing-returns", None),
            ("GET", f"/{pid}/backtest", None),
        ]:
            r = await client.request(method, f"{BASE}{path}", json=body, headers=op)
            assert r.status_code == 503, (method, path, r.text)
            assert r.json()["error"] == "ai_native_disabled" and "AI-native" in r.json()["message"]
        assert (await client.get("/healthz")).status_code == 200
