"""Limits & autonomy API against real Postgres: defaults, 422 naming the field, roles, tenancy, audit log."""

from __future__ import annotations

from typing import Any

from allot.guardrails.service import SPEC
from tests.service.guardrails.guardrails_support import action, decision_of, envelope, request
from tests.support.kafka import publish
from tests.support.service import api_keys, auth, running_service

LIMITS = "/api/v1/guardrails/limits"


async def test_limits_api_validation_roles_tenancy_and_audit(settings: Any, unique: str, kafka_bootstrap: str) -> None:
    ws, other = f"ws-{unique}", f"other-{unique}"
    (admin, viewer, operator, other_admin), keys_json = api_keys(
        (ws, "admin"), (ws, "viewer"), (ws, "operator"), (other, "admin"))
    async with running_service(SPEC, settings.model_copy(update={"api_keys": keys_json})) as (client, _ctx):
        # No stored limits: the defaults.
        r = await client.get(LIMITS, headers=auth(viewer))
        assert r.status_code == 200
        body = r.json()
        assert body["defaults"] is True and body["version"] == 0
        assert body["limits"]["max_change_pct"] == "20" and body["limits"]["kill_switch"] is False
        assert body["limits"]["daily_cap_eur_cents"] is None
        assert (await client.get(LIMITS)).status_code == 401

        # 422 names the field (PUT and PATCH, nested and unknown fields too); nothing is stored.
        r = await client.put(LIMITS, json={"daily_cap_eur_cents": -5}, headers=auth(admin))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "daily_cap_eur_cents"
        r = await client.patch(LIMITS, json={"max_change_pct": 0}, headers=auth(admin))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "max_change_pct"
        r = await client.patch(LIMITS, json={"fx_rates_to_eur": {"USD": 0.92}}, headers=auth(admin))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "fx_rates_to_eur.USD"
        assert "float" in r.json()["message"]
        r = await client.patch(LIMITS, json={"autonomy": {"rule": "sometimes"}}, headers=auth(admin))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "autonomy.rule"
        r = await client.patch(LIMITS, json={"daily_cap": 5}, headers=auth(admin))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "daily_cap"
        r = await client.post("/api/v1/guardrails/kill-switch", json={"enabled": "yes"}, headers=auth(operator))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "enabled"
        assert (await client.get(LIMITS, headers=auth(viewer))).json()["defaults"] is True

        # Viewer and operator cannot write limits; operator may flip the kill switch.
        assert (await client.put(LIMITS, json={}, headers=auth(viewer))).status_code == 403
        assert (await client.patch(LIMITS, json={"kill_switch": True}, headers=auth(operator))).status_code == 403
        r = await client.post("/api/v1/guardrails/kill-switch", json={"enabled": True}, headers=auth(viewer))
        assert r.status_code == 403

        # Admin writes: PUT replaces, PATCH merges (maps merge, null removes / resets).
        r = await client.put(LIMITS, headers=auth(admin), json={
            "daily_cap_eur_cents": 50_000, "fx_rates_to_eur": {"USD": "0.92"}, "protected_entities": ["as-x"],
            "account_whitelist": ["act-1", "act-2"], "platform_whitelist": ["meta"],
            "manual_rate_limit": {"count": 3, "window_s": 600}})
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 1 and r.json()["updated_by"] is not None
        r = await client.patch(LIMITS, headers=auth(admin), json={
            "fx_rates_to_eur": {"GBP": 1170000}, "autonomy": {"rule": "observe"}, "manual_rate_limit": {"count": 5},
            "account_whitelist": None, "max_change_pct": 15})
        assert r.status_code == 200, r.text
        limits = r.json()["limits"]
        assert limits["fx_rates_to_eur"] == {"EUR": "1", "USD": "0.92", "GBP": "1.17"}
        assert limits["autonomy"]["rule"] == "observe" and limits["autonomy"]["pool"] == "live"
        assert limits["manual_rate_limit"] == {"count": 5, "window_s": 600}
        assert limits["account_whitelist"] is None and limits["max_change_pct"] == "15"
        assert limits["daily_cap_eur_cents"] == 50_000
        assert sorted(r.json()["changed"]) == ["account_whitelist", "autonomy", "fx_rates_to_eur",
                                               "manual_rate_limit", "max_change_pct"]
        # A write that changes nothing is not audited.
        r = await client.patch(LIMITS, headers=auth(admin), json={"max_change_pct": "15"})
        assert r.status_code == 200 and r.json()["changed"] == [] and r.json()["version"] == 2

        # Kill switch by the operator, workspace-wide and per account.
        r = await client.post("/api/v1/guardrails/kill-switch", json={"enabled": True, "ad_account_id": "act-9"},
                              headers=auth(operator))
        assert r.status_code == 200 and r.json()["killed_ad_accounts"] == ["act-9"]
        assert r.json()["kill_switch"] is False

        # Audit log: who, when, before → after, newest first.
        r = await client.get("/api/v1/guardrails/audit-log", headers=auth(viewer))
        entries = r.json()["entries"]
        assert [e["action"] for e in entries] == ["kill_switch", "patch", "put"]
        assert entries[0]["changes"] == {"killed_ad_accounts": {"before": [], "after": ["act-9"]}}
        assert entries[0]["role"] == "operator"
        assert entries[1]["changes"]["max_change_pct"] == {"before": "20", "after": "15"}
        assert entries[1]["changes"]["account_whitelist"] == {"before": ["act-1", "act-2"], "after": None}
        assert entries[2]["changes"]["daily_cap_eur_cents"] == {"before": None, "after": 50_000}
        assert entries[0]["key_id"] != entries[1]["key_id"] and entries[1]["key_id"] == entries[2]["key_id"]
        assert all(e["at"] for e in entries)

        # Another workspace never sees this one's limits, audit log or decisions.
        r = await client.get(LIMITS, headers=auth(other_admin))
        assert r.json()["workspace_id"] == other and r.json()["defaults"] is True
        assert (await client.get("/api/v1/guardrails/audit-log", headers=auth(other_admin))).json()["entries"] == []
        req = request(action(f"as-{unique}"))
        await publish(kafka_bootstrap, envelope(ws, req))
        mine = await decision_of(client, viewer, req.request_id)
        assert mine["request_id"] == str(req.request_id)
        r = await client.get(f"/api/v1/guardrails/decisions/{req.request_id}", headers=auth(other_admin))
        assert r.status_code == 404
        r = await client.get("/api/v1/guardrails/decisions", headers=auth(other_admin))
        assert r.json()["decisions"] == []
        r = await client.get("/api/v1/guardrails/decisions", params={"limit": 0}, headers=auth(viewer))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "limit"
        r = await client.get("/api/v1/guardrails/ledger", params={"day": "yesterday"}, headers=auth(viewer))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "day"
