"""Pools reference only ad accounts their workspace owns (issue #14, point 2): real broker and Postgres."""

from __future__ import annotations

from typing import Any

from tests.service.pools.pools_support import BASE, PoolsCase, auth, field_of
from tests.support.accounts import connect_account


async def test_a_pool_may_not_name_another_workspaces_ad_account(
        settings: Any, unique: str, kafka_bootstrap: str) -> None:
    P = PoolsCase(settings, unique)
    async with P.service() as (client, ctx, _clock):
        await connect_account(kafka_bootstrap, ctx, P.ws, P.account)

        # workspace B names A's account: 422 naming the member's field, nothing created
        theirs = P.pool_body(group="b")
        r = await client.post(BASE, json=theirs, headers=auth(P.other))
        assert r.status_code == 422, r.text
        assert field_of(r)[0] == "members.0.adAccountId"
        assert "connected to another workspace" in r.json()["message"]
        r = await client.get(BASE, headers=auth(P.other))
        assert r.json()["pools"] == []

        # ... also when adding a member to a pool of its own (with an account nobody connected: allowed, not strict)
        own = P.pool_body(members=0, group="b")
        r = await client.post(BASE, json=own, headers=auth(P.other))
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        r = await client.post(f"{BASE}/{pid}/members", json=P.member("m1", "b"), headers=auth(P.other))
        assert r.status_code == 422 and field_of(r)[0] == "adAccountId", r.text
        r = await client.post(f"{BASE}/{pid}/members", json=P.member("m1", "b", adAccountId=f"act-free-{unique}"),
                              headers=auth(P.other))
        assert r.status_code == 201, r.text

        # workspace A, which connected the account, succeeds
        pool = await P.create_pool(client)
        assert pool["activeMemberCount"] == 4


async def test_strict_mode_requires_an_account_connected_to_the_workspace(
        settings: Any, unique: str, kafka_bootstrap: str) -> None:
    P = PoolsCase(settings, unique)
    async with P.service(require_connected_accounts=True) as (client, ctx, _clock):
        op = auth(P.operator)
        r = await client.post(BASE, json=P.pool_body(), headers=op)
        assert r.status_code == 422, r.text
        assert field_of(r)[0] == "members.0.adAccountId"
        assert "not connected to this workspace" in r.json()["message"]

        body = P.pool_body(members=2)
        del body["members"][1]["adAccountId"]
        await connect_account(kafka_bootstrap, ctx, P.ws, P.account)
        r = await client.post(BASE, json=body, headers=op)
        assert r.status_code == 422 and field_of(r)[0] == "members.1.adAccountId", r.text
        assert "required" in r.json()["message"]

        pool = await P.create_pool(client)
        assert pool["activeMemberCount"] == 4
        r = await client.post(f"{BASE}/{pool['id']}/members", json=P.member("m9", adAccountId=f"act-x-{unique}"),
                              headers=op)
        assert r.status_code == 422 and field_of(r)[0] == "adAccountId", r.text
