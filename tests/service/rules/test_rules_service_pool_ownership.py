"""A rule whose scope includes pool members is told so in its preview and on activation (the guardrails' view of
pool membership, over real HTTP with the caller's key), for every in-scope entity, matched or not."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from allot.contracts.envelope import new_envelope
from allot.contracts.payloads import AllocationRequested, BudgetAction
from allot.guardrails.service import SPEC as GUARDRAILS
from allot.rules.service import SPEC as RULES
from tests.service.rules.rules_support import days_before, report, wait_for_entities
from tests.support.kafka import eventually, publish
from tests.support.service import api_keys, auth, running_service, serve_on_loopback

OPT_IN = "protections.change_pool_member_budgets"


def pool_allocation(ws: str, account: str, pool_id: str, members: list[str]) -> Any:
    actions = [BudgetAction(action_id=uuid.uuid4(), platform="meta", ad_account_id=account, entity_type="adset",
                            entity_id=m, action_type="set_budget", currency="EUR", from_cents=10_000,
                            to_cents=10_500) for m in members]
    payload = AllocationRequested(request_id=uuid.uuid4(), source="pool", source_id=pool_id,
                                  idempotency_key=uuid.uuid4().hex, actions=actions,
                                  pool_daily_budget_cents=21_000, currency="EUR")
    return new_envelope(event_type="allocation.requested", schema_version=1, payload=payload, producer="test",
                        workspace_id=ws, occurred_at=datetime.now(UTC))


def rule_body(account: str, actions: list[dict[str, Any]], *, opt_in: bool = False) -> dict[str, Any]:
    # conditions no entity meets: the scope, not the matches, decides what the warning covers
    return {"name": "scale", "scope": {"ad_account_ids": [account], "entity_level": "adset"},
            "conditions": [{"metric": "spend", "operator": "gt", "value": 10**9, "time_range": "last_3d"}],
            "actions": actions, "protections": {"change_pool_member_budgets": opt_in}}


async def test_preview_and_activation_name_the_pool_members_in_scope(settings: Any, unique: str) -> None:
    ws, account, pool_id = f"ws-{unique}", f"act-{unique}", f"pool-{unique}"
    (op, viewer), keys_json = api_keys((ws, "operator"), (ws, "viewer"))
    shared = settings.model_copy(update={"api_keys": keys_json})
    m1, m2, free = f"m1-{unique}", f"m2-{unique}", f"free-{unique}"
    await publish(settings.kafka_bootstrap, *[report(ws, account, e, d, spend=10_000, revenue=30_000)
                                              for e in (m1, m2, free) for d in days_before(datetime.now(UTC), 3)])
    raise_budget = [{"type": "increase_budget_pct", "pct": 10}]
    async with (serve_on_loopback(GUARDRAILS, shared) as url,
                running_service(RULES, shared, guardrails_url=url) as (client, _)):
        before = await wait_for_entities(client, viewer, account, "adset", 3, actions=raise_budget)
        assert before["pool_members"] == [] and before["warnings"] == [], "no pool has allocated them yet"

        allocation = pool_allocation(ws, account, pool_id, [m1, m2])
        await publish(settings.kafka_bootstrap, allocation)
        async with httpx.AsyncClient(base_url=url) as guardrails:
            async def decided() -> bool:
                r = await guardrails.get(f"/api/v1/guardrails/decisions/{allocation.payload.request_id}",
                                         headers=auth(viewer))
                return r.status_code == 200 and r.json()["status"] == "approved"

            await eventually(decided, timeout=20, what="the pool's allocation approved")

        r = await client.post("/api/v1/rules/preview", json=rule_body(account, raise_budget), headers=auth(viewer))
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["matched_count"] == 0 and out["entities_evaluated"] == 3
        assert [(m["entity_id"], m["name"], m["pool_id"]) for m in out["pool_members"]] == [
            (m1, f"{m1} name", pool_id), (m2, f"{m2} name", pool_id)]
        assert out["warnings"] == [
            f"2 ad sets in scope ({m1} name, {m2} name) belong to budget pool {pool_id}: this rule's budget changes "
            f"on them will be skipped; pause/activate still apply; opt in with {OPT_IN}"]

        # opted in: told the pool keeps priority; a pause-only rule: the members listed, nothing to warn about
        r = await client.post("/api/v1/rules/preview", json=rule_body(account, raise_budget, opt_in=True),
                              headers=auth(viewer))
        (opted,) = r.json()["warnings"]
        assert f"opted in with {OPT_IN}" in opted and "priority" in opted and "skipped" not in opted
        r = await client.post("/api/v1/rules/preview", json=rule_body(account, [{"type": "pause"}]),
                              headers=auth(viewer))
        assert len(r.json()["pool_members"]) == 2 and r.json()["warnings"] == []

        # a scope filter that keeps only the free ad set: no member in scope
        narrowed = rule_body(account, raise_budget)
        narrowed["scope"]["entity_filter"] = {"name_contains": "free-"}
        r = await client.post("/api/v1/rules/preview", json=narrowed, headers=auth(viewer))
        assert r.json()["pool_members"] == [] and r.json()["warnings"] == []

        # activation tells the same, and activates
        r = await client.post("/api/v1/rules", json=rule_body(account, raise_budget), headers=auth(op))
        rule_id = r.json()["id"]
        r = await client.post(f"/api/v1/rules/{rule_id}/activate", headers=auth(op))
        assert r.status_code == 200, r.text
        activated = r.json()
        assert activated["status"] == "active" and activated["warnings"] == out["warnings"]
        assert [m["entity_id"] for m in activated["pool_members"]] == [m1, m2]
        r = await client.post("/api/v1/rules/preview", json={"rule_id": rule_id}, headers=auth(viewer))
        assert r.json()["warnings"] == out["warnings"]

        # a bulk activation tells it per rule, for the rules it activated
        await client.post(f"/api/v1/rules/{rule_id}/pause", headers=auth(op))
        r = await client.post("/api/v1/rules", json=rule_body(account, [{"type": "pause"}]), headers=auth(op))
        pause_only = r.json()["id"]
        r = await client.post("/api/v1/rules/bulk", json={"rule_ids": [rule_id, pause_only], "op": "activate"},
                              headers=auth(op))
        assert r.status_code == 200, r.text
        bulk = r.json()
        assert sorted(bulk["changed"]) == sorted([rule_id, pause_only]) and sorted(bulk["ownership"]) == sorted(
            [rule_id, pause_only])
        assert bulk["ownership"][rule_id]["warnings"] == out["warnings"]
        assert [m["entity_id"] for m in bulk["ownership"][rule_id]["pool_members"]] == [m1, m2]
        assert bulk["ownership"][pause_only]["warnings"] == [], "a pause-only rule: nothing to warn about"
        r = await client.post("/api/v1/rules/bulk", json={"rule_ids": [rule_id], "op": "pause"}, headers=auth(op))
        assert r.json()["changed"] == [rule_id] and r.json()["ownership"] == {}
        await client.post(f"/api/v1/rules/{rule_id}/activate", headers=auth(op))

    # Guardrails unreachable: preview and activation still answer, and say the check could not be made.
    async with running_service(RULES, shared, guardrails_url="http://127.0.0.1:9") as (client, _):
        r = await client.post("/api/v1/rules/preview", json=rule_body(account, raise_budget), headers=auth(viewer))
        assert r.status_code == 200, r.text
        (warning,) = r.json()["warnings"]
        assert r.json()["pool_members"] is None and "guardrails unreachable" in warning and OPT_IN in warning
        await client.post(f"/api/v1/rules/{rule_id}/pause", headers=auth(op))
        r = await client.post(f"/api/v1/rules/{rule_id}/activate", headers=auth(op))
        assert r.status_code == 200 and r.json()["status"] == "active", r.text
        assert r.json()["warnings"] == [warning]
