"""Rules scope only ad accounts their workspace owns (issue #14, point 2): real broker and Postgres."""

from __future__ import annotations

from typing import Any

from allot.rules.service import SPEC
from allot.runtime.clock import ManualClock
from tests.service.rules.rules_support import NOW, days_before, report, rule_body, wait_for_entities
from tests.support.accounts import connect_account
from tests.support.kafka import eventually, publish
from tests.support.service import api_keys, auth, running_service

RULES = "/api/v1/rules"


async def test_a_rule_may_not_scope_another_workspaces_ad_account(settings: Any, unique: str) -> None:
    ws_a, ws_b = f"a-{unique}", f"b-{unique}"
    account = f"act-{unique}"
    (op_a, op_b), keys = api_keys((ws_a, "operator"), (ws_b, "operator"))
    day = days_before(NOW, 1)[0]
    async with running_service(SPEC, settings, clock=ManualClock(NOW), api_keys=keys) as (client, ctx):
        # Metrics of the account reached both workspaces (e.g. it moved from B to A), so each knows it ...
        await publish(settings.kafka_bootstrap, report(ws_a, account, f"e-{unique}", day, spend=1, revenue=1),
                      report(ws_b, account, f"f-{unique}", day, spend=1, revenue=1))
        await wait_for_entities(client, op_a, account, "adset", 1)
        await wait_for_entities(client, op_b, account, "adset", 1)
        # ... but A has connected it: B's rule is refused naming the field, A's is created.
        await connect_account(settings.kafka_bootstrap, ctx, ws_a, account, platform="meta")
        r = await client.post(RULES, json=rule_body(account), headers=auth(op_b))
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "scope.ad_account_ids"
        assert "connected to another workspace" in r.json()["message"]
        r = await client.post(RULES, json=rule_body(account), headers=auth(op_a))
        assert r.status_code == 201, r.text


async def test_strict_mode_scopes_only_accounts_connected_to_the_workspace(settings: Any, unique: str) -> None:
    ws = f"a-{unique}"
    mine, loose = f"act-{unique}", f"act-loose-{unique}"
    (op,), keys = api_keys((ws, "operator"))
    day = days_before(NOW, 1)[0]
    async with running_service(SPEC, settings, clock=ManualClock(NOW), api_keys=keys,
                               require_connected_accounts=True) as (client, ctx):
        await publish(settings.kafka_bootstrap, report(ws, mine, f"e-{unique}", day, spend=1, revenue=1),
                      report(ws, loose, f"f-{unique}", day, spend=1, revenue=1))
        await connect_account(settings.kafka_bootstrap, ctx, ws, mine, platform="meta")
        await wait_for_entities(client, op, mine, "adset", 1)

        async def loose_known() -> Any:  # known to rules' projection, so only tenancy can refuse it
            async with ctx.pool.acquire() as conn:
                return await conn.fetchval("SELECT 1 FROM entities WHERE workspace_id = $1 AND ad_account_id = $2",
                                           ws, loose)

        await eventually(loose_known, what="the unconnected account projected")
        r = await client.post(RULES, json=rule_body(loose), headers=auth(op))
        assert r.status_code == 422 and r.json()["field"] == "scope.ad_account_ids", r.text
        assert "not connected to this workspace" in r.json()["message"]
        r = await client.post(RULES, json=rule_body(mine), headers=auth(op))
        assert r.status_code == 201, r.text
        rule_id = r.json()["id"]
        # a later edit that adds the unconnected account is refused too; one that keeps the scope is not
        r = await client.patch(f"{RULES}/{rule_id}", json={"scope": {"ad_account_ids": [mine, loose]}},
                               headers=auth(op))
        assert r.status_code == 422 and r.json()["field"] == "scope.ad_account_ids", r.text
        r = await client.patch(f"{RULES}/{rule_id}", json={"name": "renamed"}, headers=auth(op))
        assert r.status_code == 200, r.text
