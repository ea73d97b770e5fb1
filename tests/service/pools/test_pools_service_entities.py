"""GET /api/v1/budget-pools/entities (the console picks pool members by name): the workspace's reported entities
with name, account, budget and the pool each belongs to; ?pool_id= narrows to a pool's members; other workspaces'
entities never show."""

from __future__ import annotations

import uuid
from typing import Any

from tests.service.pools.pools_support import BASE, PoolsCase, auth


async def test_reported_entities_name_their_budget_account_and_pool(settings: Any, unique: str) -> None:
    P = PoolsCase(settings, unique)
    async with P.service() as (client, ctx, _clock):
        await P.publish_history(settings.kafka_bootstrap, ctx, P.history(days=1))
        r = await client.get(f"{BASE}/entities", headers=auth(P.viewer))
        assert r.status_code == 200, r.text
        listed = {e["entityId"]: e for e in r.json()["entities"]}
        assert set(listed) == set(P.entity.values())
        m1 = listed[P.entity["m1"]]
        assert m1["entityName"] == "Campaign m1" and m1["entityType"] == "campaign"
        assert m1["dailyBudgetCents"] == 10_000 and m1["currency"] == "EUR" and m1["adAccountId"] == P.account
        assert m1["timezoneName"] == "UTC" and m1["poolId"] is None and m1["poolName"] is None

        pool = await P.create_pool(client, members=2)
        r = await client.get(f"{BASE}/entities", headers=auth(P.viewer))
        listed = {e["entityId"]: e for e in r.json()["entities"]}
        assert listed[P.entity["m1"]]["poolId"] == pool["id"] and listed[P.entity["m1"]]["poolName"] == pool["name"]
        assert listed[P.entity["m3"]]["poolId"] is None

        members = (await client.get(f"{BASE}/entities", params={"pool_id": pool["id"]},
                                    headers=auth(P.viewer))).json()["entities"]
        assert sorted(e["entityId"] for e in members) == sorted([P.entity["m1"], P.entity["m2"]])

        assert (await client.get(f"{BASE}/entities", headers=auth(P.other))).json() == {"entities": []}
        missing = await client.get(f"{BASE}/entities", params={"pool_id": str(uuid.uuid4())}, headers=auth(P.viewer))
        assert missing.status_code == 404
        assert (await client.get(f"{BASE}/entities", params={"pool_id": pool["id"]},
                                 headers=auth(P.other))).status_code == 404
        assert (await client.get(f"{BASE}/entities")).status_code == 401
