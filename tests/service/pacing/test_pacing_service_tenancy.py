"""Flight plans name only ad accounts their workspace owns (issue #14, point 2): real broker and Postgres."""

from __future__ import annotations

from typing import Any

from tests.support.accounts import connect_account
from tests.support.service import auth

PLANS = "/api/v1/pacing/plans"


def fields(res: Any) -> list[str]:
    return [e["field"] for e in res.json()["errors"]]


async def test_a_plan_may_not_name_another_workspaces_ad_account(pacing: Any) -> None:
    account = f"act-{pacing.unique}"
    async with pacing.service() as (client, ctx):
        await connect_account(pacing.bootstrap, ctx, pacing.ws, account)

        # the other workspace names it in channels, budget entities and deals: each field is named
        res = await client.post(PLANS, json=pacing.plan_body(), headers=auth(pacing.stranger))
        assert res.status_code == 422, res.text
        assert fields(res) == ["channels.0.entities.0.ad_account_id", "channels.0.budget_entity.ad_account_id",
                               "channels.1.entities.0.ad_account_id", "channels.1.entities.1.ad_account_id",
                               "channels.1.budget_entity.ad_account_id", "deals.0.entities.0.ad_account_id"]
        assert "connected to another workspace" in res.json()["message"]

        # the owner creates it
        res = await client.post(PLANS, json=pacing.plan_body(), headers=auth(pacing.operator))
        assert res.status_code == 201, res.text


async def test_strict_mode_plans_only_accounts_connected_to_the_workspace(pacing: Any) -> None:
    account = f"act-{pacing.unique}"
    async with pacing.service(require_connected_accounts=True) as (client, ctx):
        op = auth(pacing.operator)
        res = await client.post(PLANS, json=pacing.plan_body(), headers=op)
        assert res.status_code == 422 and fields(res)[0] == "channels.0.entities.0.ad_account_id", res.text
        assert "not connected to this workspace" in res.json()["message"]

        await connect_account(pacing.bootstrap, ctx, pacing.ws, account)
        res = await client.post(PLANS, json=pacing.plan_body(), headers=op)
        assert res.status_code == 201, res.text
        plan_id = res.json()["plan_id"]

        # an edit adding an unconnected account is refused; one keeping the plan's accounts is not
        channels = pacing.plan_body()["channels"]
        channels[1]["entities"].append({**pacing.ent("x1"), "ad_account_id": f"act-loose-{pacing.unique}"})
        res = await client.patch(f"{PLANS}/{plan_id}", json={"channels": channels}, headers=op)
        assert res.status_code == 422 and fields(res) == ["channels.1.entities.2.ad_account_id"], res.text
        res = await client.patch(f"{PLANS}/{plan_id}", json={"name": "renamed"}, headers=op)
        assert res.status_code == 200, res.text
