"""Pools and rules through the real write path (guardrails → executor → sandbox), all as processes."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from allot.contracts import new_envelope
from allot.contracts.payloads import MetricsIngested
from tests.e2e.conftest import E2E
from tests.e2e.e2e_support import budgets, sandbox_entity, sentinel
from tests.support.kafka import eventually, publish

pytestmark = pytest.mark.e2e


def daily_report(ws: str, account: str, entity_id: str, day: date, *, spend: int, revenue: int, conversions: int,
                 budget: int) -> Any:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    payload = MetricsIngested(platform="sandbox", ad_account_id=account, entity_type="adset", entity_id=entity_id,
                              currency="EUR", daily_budget_cents=budget, interval_start=start,
                              interval_end=start + timedelta(days=1), reported_at=start + timedelta(days=1, hours=1),
                              spend_cents=spend, impressions=50_000, clicks=900, conversions=conversions,
                              revenue_cents=revenue, reach=20_000)
    return new_envelope(event_type="metrics.ingested", schema_version=1, payload=payload, producer="e2e",
                        workspace_id=ws, occurred_at=payload.reported_at)


def writes(e2e: E2E, entity_id: str) -> int:
    with e2e.sandbox() as sb:
        body = sb.get("/sandbox/calls", params={"entity_id": entity_id}).json()
    calls = body["calls"] if isinstance(body, dict) else body
    return len([c for c in calls if c.get("source") != "human"])


def days_back(n: int) -> list[date]:
    today = datetime.now(UTC).date()
    return [today - timedelta(days=k) for k in range(1, n + 1)]


async def test_a_pool_allocation_changes_sandbox_budgets_once_and_is_idempotent_per_day(full_stack: E2E) -> None:
    ws = full_stack.workspaces[0]
    account = f"act-{uuid.uuid4().hex[:6]}"
    ids = [f"{account}-m{i}" for i in range(3)]
    for eid in ids:
        sandbox_entity(full_stack, account, eid, 5_000)
    await publish(full_stack.stack.bootstrap, *(
        daily_report(ws, account, eid, d, spend=5_000, revenue=15_000 + 1_000 * i, conversions=10, budget=5_000)
        for i, eid in enumerate(ids) for d in days_back(5)))
    with full_stack.api("pools", ws) as api:
        r = api.post("/api/v1/budget-pools", json={
            "name": "e2e pool", "optimizationMetric": "roas", "dailyBudgetCents": 18_000, "currency": "EUR",
            "allocationFrequencyHours": 24, "autonomy": "live", "minBudgetChange": 100,
            "members": [{"entityType": "adset", "entityId": eid, "adAccountId": account} for eid in ids]})
        assert r.status_code == 201, r.text
        pool_id = r.json()["id"]

        async def projected() -> bool:
            conn = await asyncpg.connect(full_stack.stack.database_url)
            try:  # the test reads the pools service's own projection to know it has every report
                n = await conn.fetchval("SELECT count(*) FROM pools.member_metrics WHERE workspace_id = $1", ws)
                budgets_known = await conn.fetchval(
                    "SELECT count(*) FROM pools.entities WHERE workspace_id = $1 AND daily_budget_cents = 5000", ws)
            finally:
                await conn.close()
            return n == 15 and budgets_known == 3

        await eventually(projected, timeout=30, what="pool members' metrics and budgets projected")
        r = api.post(f"/api/v1/budget-pools/{pool_id}/allocate", json={"async": False})
        assert r.status_code == 200, r.text
        first = r.json()
        after = budgets(full_stack, ids)
        assert sum(after.values()) == 18_000, after
        assert all(v > 5_000 for v in after.values()), "the extra 3,000 is spread over the members"
        assert all(writes(full_stack, eid) == 1 for eid in ids), "each budget written exactly once"

        time.sleep(2.5)  # past the local manual rate limit (2 s in this stack)
        again = api.post(f"/api/v1/budget-pools/{pool_id}/allocate", json={"async": False})
        assert again.status_code in (200, 202), again.text
        request_key = "requestId" if "requestId" in first else "request_id"
        assert again.json()[request_key] == first[request_key], "same pool, same UTC day: same allocation"
        limited = api.post(f"/api/v1/budget-pools/{pool_id}/allocate", json={"async": False})
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    await sentinel(full_stack, ws, account, producer="pools", source_id=pool_id)
    assert budgets(full_stack, ids) == after and all(writes(full_stack, eid) == 1 for eid in ids)


async def test_a_blocked_pool_allocation_returns_423_with_the_guardrails_reason(full_stack: E2E) -> None:
    ws = full_stack.workspaces[1]
    account = f"act-{uuid.uuid4().hex[:6]}"
    ids = [f"{account}-m{i}" for i in range(2)]
    for eid in ids:
        sandbox_entity(full_stack, account, eid, 5_000)
    await publish(full_stack.stack.bootstrap, *(
        daily_report(ws, account, eid, d, spend=5_000, revenue=15_000, conversions=10, budget=5_000)
        for eid in ids for d in days_back(3)))
    with full_stack.api("guardrails", ws) as g:
        assert g.post("/api/v1/guardrails/kill-switch", json={"enabled": True}).status_code == 200
    with full_stack.api("pools", ws) as api:
        pool_id = api.post("/api/v1/budget-pools", json={
            "name": "blocked pool", "dailyBudgetCents": 11_000, "currency": "EUR", "autonomy": "live",
            "members": [{"entityType": "adset", "entityId": eid, "adAccountId": account} for eid in ids]}).json()["id"]

        async def blocked() -> Any:
            r = api.post(f"/api/v1/budget-pools/{pool_id}/allocate", json={"async": False})
            return r if r.status_code == 423 else None

        r = await eventually(blocked, timeout=40, interval=2.5, what="423 from a kill-switched workspace")
        assert "kill" in r.text.lower()
    with full_stack.api("guardrails", ws) as g:  # off again (after the decisions) so that the sentinel goes through
        assert g.post("/api/v1/guardrails/kill-switch", json={"enabled": False}).status_code == 200
    await sentinel(full_stack, ws, account, producer="pools", source_id=pool_id)
    assert budgets(full_stack, ids) == dict.fromkeys(ids, 5_000) and all(writes(full_stack, e) == 0 for e in ids)


async def test_scale_winners_raises_a_budget_once_then_holds_for_its_cooldown(full_stack: E2E) -> None:
    ws = full_stack.workspaces[2]
    account = f"act-{uuid.uuid4().hex[:6]}"
    winner, other = f"{account}-win", f"{account}-meh"
    for eid in (winner, other):
        sandbox_entity(full_stack, account, eid, 10_000)
    await publish(full_stack.stack.bootstrap,
                  *(daily_report(ws, account, winner, d, spend=9_000, revenue=40_000, conversions=20, budget=10_000)
                    for d in days_back(4)),
                  *(daily_report(ws, account, other, d, spend=9_000, revenue=9_000, conversions=5, budget=10_000)
                    for d in days_back(4)))
    with full_stack.api("rules", ws) as api:
        async def created() -> Any:
            r = api.post("/api/v1/rules/from-template", json={
                "template": "scale_winners", "name": "scale", "scope": {"ad_account_ids": [account],
                                                                       "entity_level": "adset"},
                "targets": {"target_roas": 2.0}})
            return r if r.status_code in (200, 201) else None

        rule_id = (await eventually(created, timeout=30, what="the account known to rules")).json()["id"]
        assert api.post(f"/api/v1/rules/{rule_id}/activate").status_code == 200

        async def fired() -> bool:
            api.post(f"/api/v1/rules/{rule_id}/evaluate-now")
            return budgets(full_stack, [winner])[winner] == 12_000

        await eventually(fired, timeout=60, interval=1.0, what="the winner's budget raised by 20 %")
        for _ in range(3):  # each evaluates the rule in the request; a fire would be in the rules' outbox
            assert api.post(f"/api/v1/rules/{rule_id}/evaluate-now").status_code == 200
        await sentinel(full_stack, ws, account, producer="rules", source_id=rule_id)
        executions = api.get(f"/api/v1/rules/{rule_id}/executions").json()
    assert budgets(full_stack, [winner, other]) == {winner: 12_000, other: 10_000}
    assert writes(full_stack, winner) == 1 and writes(full_stack, other) == 0
    assert executions, "the fire is in the execution history"


async def test_the_circuit_breaker_pauses_a_rule_whose_actions_keep_failing(full_stack: E2E) -> None:
    ws = full_stack.workspaces[3]
    account = f"act-{uuid.uuid4().hex[:6]}"
    ids = [f"{account}-e{i}" for i in range(20)]
    for eid in ids:
        sandbox_entity(full_stack, account, eid, 10_000)
    with full_stack.sandbox() as sb:
        for eid in ids:
            assert sb.post("/sandbox/faults", json={"kind": "server_error", "count": 1000, "entity_id": eid,
                                                    "on": "write"}).status_code in (200, 201)
    await publish(full_stack.stack.bootstrap, *(
        daily_report(ws, account, eid, d, spend=9_000, revenue=40_000, conversions=20, budget=10_000)
        for eid in ids for d in days_back(4)))
    with full_stack.api("rules", ws) as api:
        async def created() -> Any:
            r = api.post("/api/v1/rules/from-template", json={
                "template": "scale_winners", "name": "doomed", "scope": {"ad_account_ids": [account],
                                                                        "entity_level": "adset"},
                "targets": {"target_roas": 2.0}})
            return r if r.status_code in (200, 201) else None

        rule_id = (await eventually(created, timeout=30, what="the account known to rules")).json()["id"]
        assert api.post(f"/api/v1/rules/{rule_id}/activate").status_code == 200

        async def paused_by_breaker() -> Any:
            api.post(f"/api/v1/rules/{rule_id}/evaluate-now")
            rule = api.get(f"/api/v1/rules/{rule_id}").json()
            return rule if rule.get("status") == "paused" and rule.get("auto_pause_reason") else None

        rule = await eventually(paused_by_breaker, timeout=90, interval=2.0, what="the circuit breaker to trip")
    assert rule["last_error"]
    assert budgets(full_stack, ids) == dict.fromkeys(ids, 10_000)
