"""Guardrails' account settings name only ad accounts the workspace owns (issue #14, point 2): real broker and
Postgres."""

from __future__ import annotations

from typing import Any

from allot.guardrails.service import SPEC
from tests.support.accounts import connect_account
from tests.support.service import api_keys, auth, running_service

LIMITS = "/api/v1/guardrails/limits"
KILL = "/api/v1/guardrails/kill-switch"


def fields(r: Any) -> list[str]:
    return [e["field"] for e in r.json()["errors"]]


async def test_limits_and_kill_switch_may_not_name_another_workspaces_ad_account(
        settings: Any, unique: str, kafka_bootstrap: str) -> None:
    ws_a, ws_b = f"a-{unique}", f"b-{unique}"
    account = f"act-{unique}"
    (admin_a, admin_b), keys_json = api_keys((ws_a, "admin"), (ws_b, "admin"))
    async with running_service(SPEC, settings.model_copy(update={"api_keys": keys_json})) as (client, ctx):
        await connect_account(kafka_bootstrap, ctx, ws_a, account, platform="meta")

        r = await client.post(KILL, json={"enabled": True, "ad_account_id": account}, headers=auth(admin_b))
        assert r.status_code == 422 and fields(r) == ["ad_account_id"], r.text
        assert "connected to another workspace" in r.json()["message"]
        r = await client.put(LIMITS, json={"account_whitelist": [account, f"act-free-{unique}"]}, headers=auth(admin_b))
        assert r.status_code == 422 and fields(r) == ["account_whitelist"], r.text
        r = await client.patch(LIMITS, json={"killed_ad_accounts": [account]}, headers=auth(admin_b))
        assert r.status_code == 422 and fields(r) == ["killed_ad_accounts"], r.text
        assert (await client.get(LIMITS, headers=auth(admin_b))).json()["defaults"] is True
        # an account nobody connected is fine outside strict mode
        r = await client.patch(LIMITS, json={"account_whitelist": [f"act-free-{unique}"]}, headers=auth(admin_b))
        assert r.status_code == 200, r.text

        # the owner may
        r = await client.post(KILL, json={"enabled": True, "ad_account_id": account}, headers=auth(admin_a))
        assert r.status_code == 200 and r.json()["killed_ad_accounts"] == [account], r.text
        r = await client.patch(LIMITS, json={"account_whitelist": [account]}, headers=auth(admin_a))
        assert r.status_code == 200, r.text


async def test_strict_mode_names_only_accounts_connected_to_the_workspace(
        settings: Any, unique: str, kafka_bootstrap: str) -> None:
    ws = f"a-{unique}"
    mine, loose = f"act-{unique}", f"act-loose-{unique}"
    (admin,), keys_json = api_keys((ws, "admin"))
    async with running_service(SPEC, settings.model_copy(update={"api_keys": keys_json}),
                               require_connected_accounts=True) as (client, ctx):
        r = await client.post(KILL, json={"enabled": True, "ad_account_id": loose}, headers=auth(admin))
        assert r.status_code == 422 and fields(r) == ["ad_account_id"], r.text
        assert "not connected to this workspace" in r.json()["message"]

        await connect_account(kafka_bootstrap, ctx, ws, mine, platform="meta")
        r = await client.put(LIMITS, json={"account_whitelist": [mine], "daily_cap_eur_cents": 1_000},
                             headers=auth(admin))
        assert r.status_code == 200, r.text
        r = await client.patch(LIMITS, json={"account_whitelist": [mine, loose]}, headers=auth(admin))
        assert r.status_code == 422 and fields(r) == ["account_whitelist"], r.text
        # the workspace kill switch names no account; lifting an account's switch is always allowed
        r = await client.post(KILL, json={"enabled": True}, headers=auth(admin))
        assert r.status_code == 200, r.text
        r = await client.post(KILL, json={"enabled": False, "ad_account_id": loose}, headers=auth(admin))
        assert r.status_code == 200, r.text
