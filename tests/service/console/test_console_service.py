"""The console app over real loopback HTTP against fake pools and guardrails (small FastAPI apps that check the
key like the real ones) and an executor that is down: sessions, cookies, CSRF, roles, field errors, outages."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from allot.console.app import create_app
from allot.console.settings import ConsoleSettings
from allot.rules.api import _validation_error
from allot.rules.domain import TEMPLATES, validate_rule
from allot.runtime.auth import ApiKeyStore, generate_key
from allot.sandbox.testing import serve_app

RAW: dict[str, str] = {}
ENTRIES = []
GRANTS = {"admin": ("ws-a", "admin"), "viewer": ("ws-a", "viewer"), "other": ("ws-b", "admin")}
for _name, (_ws, _role) in GRANTS.items():
    RAW[_name], _entry = generate_key(_ws, _role)  # type: ignore[arg-type]
    ENTRIES.append(_entry.model_dump())
KEYS_JSON = orjson.dumps(ENTRIES).decode()
STORE = ApiKeyStore.from_json(KEYS_JSON)
POOL = {"id": "7c1a0b7e-0000-4000-8000-000000000001", "name": "Spain", "dailyBudgetCents": 30_000, "currency": "EUR",
        "optimizationMetric": "roas", "allocationFrequencyHours": 24, "status": "active", "autonomy": "live",
        "activeMemberCount": 1, "defaultMinBudgetCents": 0, "defaultMaxBudgetCents": None,
        "members": [{"entityId": "as-1", "entityName": "Madrid", "entityType": "adset", "isActive": True,
                     "minBudgetCents": 1_000, "maxBudgetCents": None, "weight": 1.0},
                    {"entityId": "as-7", "entityName": "Valencia", "entityType": "adset", "isActive": True,
                     "minBudgetCents": None, "maxBudgetCents": None, "weight": 1.0}]}
ENTITY = {"entityId": "as-1", "entityName": "Madrid", "entityType": "adset", "platform": "sandbox",
          "adAccountId": "act-1", "adAccountName": None, "timezoneName": "Europe/Madrid", "status": "active",
          "dailyBudgetCents": 12_345, "currency": "EUR", "poolId": POOL["id"], "poolName": "Spain"}
seen: list[dict[str, Any]] = []


def _who(request: Request) -> Any:
    raw = request.headers.get("authorization", "")[7:]
    return STORE.authenticate(raw)


def fake_pools() -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/budget-pools")
    async def pools(request: Request) -> Any:
        who = _who(request)
        if who is None:
            return JSONResponse({"error": "http_error", "message": "invalid API key"}, 401)
        return {"pools": [POOL] if who.workspace_id == "ws-a" else []}

    @app.post("/api/v1/budget-pools")
    async def create(request: Request) -> Any:
        seen.append(await request.json())
        return JSONResponse({"error": "validation_failed", "message": "name: taken", "field": "name",
                             "errors": [{"field": "name", "message": "a pool with this name exists"},
                                        {"field": "members.0.entityId", "message": "entity as-1 is in pool Spain"}]},
                            422)

    @app.get("/api/v1/budget-pools/entities")
    async def entities(request: Request) -> Any:
        return {"entities": [ENTITY] if _who(request).workspace_id == "ws-a" else []}

    @app.get("/api/v1/budget-pools/{pool_id}")
    async def one(pool_id: str, request: Request) -> Any:
        if _who(request).workspace_id != "ws-a" or pool_id != POOL["id"]:
            return JSONResponse({"error": "not_found", "message": "no budget pool", "field": "id"}, 404)
        return POOL

    @app.patch("/api/v1/budget-pools/{pool_id}")
    async def patch(pool_id: str, request: Request) -> Any:
        body = await request.json()
        seen.append(body)
        if body["dailyBudgetCents"] < 1_000:
            return JSONResponse({"error": "validation_failed", "field": "dailyBudgetCents",
                                 "message": "active members' floors (minBudgetCents) sum to 1000 cents, above the "
                                            f"pool's daily budget of {body['dailyBudgetCents']} cents"}, 422)
        return POOL

    @app.get("/api/v1/budget-pools/{pool_id}/allocations")
    async def allocations(pool_id: str) -> Any:
        return {"allocations": ALLOCATIONS}

    @app.get("/api/v1/budget-pools/{pool_id}/diminishing-returns")
    async def diminishing_returns(pool_id: str, entity_type: str = "campaign") -> Any:
        assert entity_type == "all", "the console asks about every member, ad sets too"
        return {"poolId": pool_id, "asOf": "2026-12-06T10:00:00+00:00", "windowDays": 7.0, "minSpendGrowthPct": 10.0,
                "entityType": entity_type, "evaluatedMembers": 2, "findings": [
                    {"memberId": "m-7", "entityId": "as-7", "entityName": "Valencia", "entityType": "adset",
                     "spendBeforeCentsPerDay": 18_000, "spendAfterCentsPerDay": 22_000, "roasBefore": 2.2,
                     "roasAfter": 1.9, "spendGrowthPct": 22.2222,
                     "explanation": "spend/day 180.00 -> 220.00 EUR (+22%) while ROAS 2.20 -> 1.90: candidate to "
                                    "cap or trim"}],
                "curves": [_curve("m-1", "as-1", "Madrid", 12_345, 90_000, 20_000, prior_only=False),
                           _curve("m-7", "as-7", "Valencia", 17_655, 60_000, 15_000, prior_only=True)]}

    return app


def _curve(member_id: str, entity_id: str, name: str, budget: int, scale: float, half: float, *,
           prior_only: bool) -> dict[str, Any]:
    """A member's fitted curve as the pools API's diminishing-returns report gives it: ``scale x / (x + half)`` at
    24 spends from 0 to twice the larger of the budget and the equal share (15 000 cents here)."""
    top = 2 * max(budget, 15_000)
    return {"memberId": member_id, "entityId": entity_id, "entityName": name, "entityType": "adset",
            "budgetCents": budget, "equalShareCents": 15_000, "kind": "concave", "hillExponent": 0.9,
            "evidenceDays": 0.0 if prior_only else 14.0, "priorOnly": prior_only, "valueUnit": "revenue_cents",
            "points": [{"spendCentsPerDay": x, "valuePerDay": round(scale * x / (x + half), 4)}
                       for x in (round(top * i / 23) for i in range(24))]}


def _allocation(at: str, history_from: str, moves: dict[str, tuple[int, int, str, float]],
                inputs: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """An allocation as the pools API logs it: each member's before / after / why (and the engine's elasticity)
    and the engine's inputs (spend and revenue over the history window)."""
    return {"createdAt": at, "trigger": "schedule", "status": "executed", "decision": None, "outcomes": [],
            "plan": {"members": [{"entityId": k, "entityName": None, "beforeCents": b, "afterCents": a, "why": why,
                                  "elasticity": e} for k, (b, a, why, e) in moves.items()]},
            "inputs": {"historyFrom": history_from, "historyTo": at,
                       "members": [{"entityId": k, "spendCents": sp, "revenueCents": rv}
                                   for k, (sp, rv) in inputs.items()]}}


ALLOCATIONS = [  # newest first; 14-day history windows
    _allocation("2026-12-06T10:00:00+00:00", "2026-11-22T10:00:00+00:00",
                {"as-1": (10_000, 12_345, "raised 100.00 → 123.45 EUR/day", 0.8),
                 "as-7": (20_000, 17_655, "lowered 200.00 → 176.55 EUR/day", 0.5)},
                {"as-1": (140_000, 420_000), "as-7": (280_000, 560_000)}),
    _allocation("2026-12-05T10:00:00+00:00", "2026-11-21T10:00:00+00:00",
                {"as-1": (8_000, 10_000, "raised 80.00 → 100.00 EUR/day", 0.8),
                 "as-7": (22_000, 20_000, "lowered 220.00 → 200.00 EUR/day", 0.5)},
                {"as-1": (112_000, 350_000), "as-7": (308_000, 588_000)})]


def fake_guardrails() -> FastAPI:
    app = FastAPI()
    state = {"kill_switch": False}
    killed: set[str] = set()

    @app.get("/api/v1/guardrails/limits")
    async def limits() -> Any:
        return {"limits": {"kill_switch": state["kill_switch"], "killed_ad_accounts": sorted(killed),
                           "daily_cap_eur_cents": 50_000, "monthly_cap_eur_cents": None, "max_change_pct": 20,
                           "net_change_pct_window": 20, "net_change_window_h": 72,
                           "autonomy": {"pool": "live"}, "protected_entities": []}, "updated_at": None}

    @app.get("/api/v1/guardrails/ledger")
    async def ledger() -> Any:
        return {"day": "2026-12-06", "month": "2026-12", "timezone_name": "UTC", "exposure_eur_cents": 12_000,
                "month_exposure_eur_cents": 12_000, "daily_cap_eur_cents": 50_000, "daily_remaining_eur_cents": 38_000,
                "monthly_cap_eur_cents": None, "monthly_remaining_eur_cents": None}

    @app.post("/api/v1/guardrails/kill-switch")
    async def kill(request: Request) -> Any:
        if _who(request).role == "viewer":
            return JSONResponse({"error": "http_error", "message": "role 'viewer' may not do this"}, 403)
        body = await request.json()
        if body.get("ad_account_id"):
            killed.add(body["ad_account_id"])
        else:
            state["kill_switch"] = body["enabled"]
        return {"kill_switch": state["kill_switch"]}

    return app


RULE = {
    "id": "0b3c6a52-0000-4000-8000-000000000001", "workspace_id": "ws-a", "name": "Scale winners", "status": "active",
    "scope": {"ad_account_ids": ["act-1"], "entity_level": "adset",
              "entity_filter": {"name_contains": "Mad", "status_in": None}},
    "targets": {"target_roas": 2.0},
    "conditions": {"logic": "and", "conditions": [
        {"metric": "roas", "operator": "gt", "value": {"target": "target_roas", "multiplier": 1.5},
         "time_range": "last_7d"},
        {"logic": "or", "conditions": [
            {"metric": "spend", "operator": "gte", "value": 5_000.0, "time_range": "yesterday"},
            {"metric": "ctr", "operator": "between", "value": [1.0, 2.5], "time_range": "today"}]}]},
    "actions": [{"type": "increase_budget_pct", "pct": 20.0}],
    "schedule": {"interval_minutes": 60, "mode": "schedule",
                 "dayparts": [{"days": ["mon", "tue"], "start": "09:00", "end": "18:00"}]},
    "protections": {"cooldown_minutes": 360, "max_executions_per_day": 3, "budget_change_limit_pct": 20.0,
                    "budget_daily_cap_cents": 50_000, "change_pool_member_budgets": False},
    "template": "scale_winners", "version": 1, "created_by": "k", "created_at": "2026-12-01T09:00:00+00:00",
    "updated_at": "2026-12-01T09:00:00+00:00", "last_evaluated_at": "2026-12-06T10:00:02+00:00",
    "last_slot": "2026-12-06T10:00:00+00:00", "last_error": None, "auto_pause_reason": None, "auto_paused_at": None,
    "last_fired_at": "2026-12-06T09:45:01+00:00", "fires_today": 2}
TRIPPED = {**RULE, "id": "0b3c6a52-0000-4000-8000-000000000002", "name": "Doomed", "status": "paused",
           "last_error": "sandbox answered 500 on write",
           "auto_pause_reason": "circuit breaker: error rate 60.0% with 12 errors in 20 actions in the last 24 h",
           "auto_paused_at": "2026-12-06T11:00:00+00:00"}
EDITABLE = {**RULE, "id": "0b3c6a52-0000-4000-8000-000000000003", "name": "Trim losers", "status": "paused",
            "last_evaluated_at": None, "last_fired_at": None, "fires_today": 0}
#: Listed only: the other two schedule modes (an account the console knows no zone of shows times in UTC).
ON_METRICS = {**RULE, "id": "0b3c6a52-0000-4000-8000-000000000004", "name": "On arrival",
              "scope": {**RULE["scope"], "ad_account_ids": ["act-unknown"]},
              "schedule": {"mode": "trigger", "interval_minutes": 15, "dayparts": []},
              "last_fired_at": "2026-12-06T08:30:00+00:00", "fires_today": 5}
WEEKDAY_MORNINGS = {**RULE, "id": "0b3c6a52-0000-4000-8000-000000000005", "name": "Weekday mornings",
                    "schedule": {"mode": "cron", "cron": "0 9 * * 1-5", "interval_minutes": 15, "dayparts": []},
                    "last_fired_at": None, "fires_today": 0}
EXECUTION = {
    "execution_id": "5d1e0000-0000-4000-8000-000000000001", "rule_id": RULE["id"],
    "slot_start": "2026-12-06T10:00:00+00:00", "started_at": "2026-12-06T10:00:02+00:00", "trigger": "schedule",
    "result": "requested", "entities_evaluated": 3, "matched": 1, "skipped": 2,
    "skip_counts": {"conditions_not_met": 1, "cooldown": 1}, "actions_count": 1, "request_ids": ["r"],
    "auto_pause_reason": None, "outcome_counts": {"succeeded": 1},
    "entities": [{"entity_id": "as-1", "platform": "sandbox", "ad_account_id": "act-1", "entity_level": "adset",
                  "snapshot": {"roas@last_7d": 3.4, "spend@yesterday": 9_000.0, "ctr@today": None},
                  "planned": [{"type": "increase_budget_pct", "entity_id": "as-1", "from_cents": 10_000,
                               "to_cents": 12_000, "currency": "EUR", "requested_pct": 20.0, "applied_pct": 20.0,
                               "clamps": [], "from_status": None, "to_status": None, "creative_id": None}],
                  "skipped_actions": [], "outcome": "succeeded",
                  "actions": [{"action_id": "a", "request_id": "r", "action_type": "increase_budget_pct",
                               "from_cents": 10_000, "to_cents": 12_000, "from_status": None, "to_status": None,
                               "sent_at": "2026-12-06T10:00:02+00:00", "outcome": "succeeded",
                               "outcome_at": "2026-12-06T10:00:05+00:00", "error": None}]}],
    "skipped_entities": [{"entity_id": "as-2", "reason": "conditions_not_met", "detail": "roas@last_7d 1.2 not > 3"},
                         {"entity_id": "as-3", "reason": "cooldown", "detail": "changed 2 h ago"}]}
SANDBOX_AS1 = {"platform": "sandbox", "ad_account_id": "act-1", "entity_type": "adset", "entity_id": "as-1"}
PLAN = {"plan_id": "plan-1", "workspace_id": "ws-a", "campaign_id": "cmp-1", "name": "Q4 flight", "currency": "EUR",
        "total_budget_cents": 1_000_000, "flight_start": "2026-12-01T00:00:00+00:00",
        "flight_end": "2026-12-31T00:00:00+00:00",
        "channels": [{"name": "meta", "allocated_budget_cents": 600_000, "entities": [SANDBOX_AS1],
                      "budget_entity": SANDBOX_AS1},
                     {"name": "google", "allocated_budget_cents": 400_000, "entities": [], "budget_entity": None}],
        "deals": [{"deal_id": "deal-7", "allocated_budget_cents": 100_000, "entities": []}],
        "approval_config": {"PACING_ADJUSTMENT": True}, "curve": {"kind": "linear"},
        "thresholds": {"underpacing_warning_pct": 10.0, "underpacing_critical_pct": 25.0,
                       "overpacing_warning_pct": 10.0, "overpacing_critical_pct": 25.0},
        "snapshot_interval_s": 3600, "escalate_after_s": 86_400, "state": "PACING_HOLD",
        "held_since": "2026-12-10T00:00:00+00:00", "last_slot_at": None, "created_at": None, "updated_at": None}
SNAPSHOTS = [
    {"snapshot_id": "s-0", "plan_id": "plan-1", "taken_at": "2026-12-05T00:00:00+00:00", "total_spend_cents": 120_000,
     "expected_spend_cents": 129_032, "pacing_pct": 93.0, "deviation_pct": -7.0, "state": "ACTIVE", "alert": None,
     "channels": [{"channel": "meta", "spend_cents": 70_000, "expected_spend_cents": 77_419, "pacing_pct": 90.42},
                  {"channel": "google", "spend_cents": 50_000, "expected_spend_cents": 51_613, "pacing_pct": 96.87}],
     "deals": []},
    {"snapshot_id": "s-1", "plan_id": "plan-1", "taken_at": "2026-12-10T00:00:00+00:00", "total_spend_cents": 250_000,
     "expected_spend_cents": 290_323, "pacing_pct": 86.11, "deviation_pct": -13.89, "state": "PACING_HOLD",
     "alert": {"level": "warning", "direction": "underpacing", "deviation_pct": -13.89, "threshold_pct": -10.0,
               "message": "Campaign is underpacing by -13.9% (threshold -10.0%)"},
     "channels": [{"channel": "meta", "allocated_budget_cents": 600_000, "spend_cents": 100_000,
                   "expected_spend_cents": 174_194, "pacing_pct": 57.41, "deviation_pct": -42.59, "impressions": 1000,
                   "alert_level": "critical", "effective_cpm": 1.0, "fill_rate": None, "unplanned_spend_cents": 0},
                  {"channel": "google", "allocated_budget_cents": 400_000, "spend_cents": 150_000,
                   "expected_spend_cents": 116_129, "pacing_pct": 129.17, "deviation_pct": 29.17, "impressions": 900,
                   "alert_level": "critical", "effective_cpm": 1.67, "fill_rate": None, "unplanned_spend_cents": 0}],
     "deals": [{"deal_id": "deal-7", "allocated_budget_cents": 100_000, "spend_cents": 20_000,
                "expected_spend_cents": 29_032, "pacing_pct": 68.89, "deviation_pct": -31.11, "impressions": 10,
                "alert_level": "critical", "effective_cpm": None, "fill_rate": None, "win_rate": None}]}]


OWNED = (f"1 ad set in scope (Madrid) belongs to budget pool {POOL['id']}: this rule's budget changes on it will be "
         "skipped; pause/activate still apply; opt in with protections.change_pool_member_budgets")
PREVIEW = {
    "rule_id": None, "evaluated_at": "2026-12-06T10:00:00+00:00", "slot_start": "2026-12-06T10:00:00+00:00",
    "entities_evaluated": 2, "matched_count": 1, "skipped_count": 1, "skip_counts": {"conditions_not_met": 1},
    "would_auto_pause": None,
    "matched": [{"entity_id": "as-1", "name": "Madrid", "platform": "sandbox", "ad_account_id": "act-1",
                 "snapshot": {"roas@last_3d": 3.4, "spend@last_3d": 9_000.0},
                 "actions": [{"type": "increase_budget_pct", "entity_id": "as-1", "from_cents": 10_000,
                              "to_cents": 12_000, "currency": "EUR", "requested_pct": 20.0, "applied_pct": 20.0}],
                 "skipped_actions": [],
                 "guardrails": [{"action_id": "x", "entity_id": "as-1", "action_type": "set_daily_budget",
                                 "from_cents": 10_000, "to_cents": 12_000, "currency": "EUR", "verdict": "trimmed",
                                 "approved_to_cents": 11_000,
                                 "note": "adset as-1: trimmed to the 10 % change limit (11000 cents)"}]}],
    "skipped": [{"entity_id": "as-2", "name": "Sevilla", "reason": "conditions_not_met",
                 "detail": "roas@last_3d 1.1 not > 2.4", "snapshot": None}],
    "proposed_actions": [{"entity_id": "as-1"}],
    "guardrails": {"available": True, "dry_run": True, "status": "approved", "check": None, "reason": None,
                   "notes": ["adset as-1: trimmed to the 10 % change limit (11000 cents)"], "actions": [{}]},
    "pool_members": [{"entity_id": "as-1", "name": "Madrid", "pool_id": POOL["id"], "seen_at": None}],
    "warnings": [OWNED]}
wizard_seen: list[dict[str, Any]] = []
bulk_seen: list[dict[str, Any]] = []


def _proposal(pid: str, amount: int, status: str, **extra: Any) -> dict[str, Any]:
    return {"proposal_id": pid, "plan_id": "plan-1", "source_channel": "meta", "target_channel": "google",
            "amount_cents": amount, "moved_cents": None, "currency": "EUR", "reason": "google is ahead of plan",
            "status": status, "status_reason": "", "created_at": "2026-12-10T00:00:00+00:00", "decided_at": None,
            "decided_by": "", "actions": [], **extra}


def fake_rules_and_pacing() -> FastAPI:
    app = FastAPI()
    rules_by_id = {r["id"]: dict(r) for r in (RULE, TRIPPED, EDITABLE, ON_METRICS, WEEKDAY_MORNINGS)}
    proposals = [_proposal("p-1", 2_500, "pending_approval"),
                 _proposal("p-0", 20_000, "applied", moved_cents=2_000, decided_at="2026-12-05T00:00:00+00:00",
                           decided_by="key-admin", actions=[
                               {"role": "target", "entity_id": "as-9", "from_cents": 10_000, "to_cents": 12_000,
                                "outcome": "succeeded", "error": None},
                               {"role": "source", "entity_id": "as-1", "from_cents": 10_000, "to_cents": 8_000,
                                "outcome": "succeeded", "error": None}])]

    def refuse_viewer(request: Request) -> JSONResponse | None:
        if _who(request).role == "viewer":
            return JSONResponse({"error": "http_error", "message": "role 'viewer' may not do this"}, 403)
        return None

    @app.get("/api/v1/rules")
    async def rules(request: Request) -> Any:
        return {"rules": list(rules_by_id.values()) if _who(request).workspace_id == "ws-a" else []}

    @app.get("/api/v1/rules/templates")
    async def templates() -> Any:
        return {"templates": [
            {"name": t.name, "description": t.description, "conditions": [dict(c) for c in t.conditions],
             "actions": [dict(a) for a in t.actions], "required_targets": list(t.required_targets),
             "protections": dict(t.protections)} for t in TEMPLATES.values()]}

    def validated(body: Any, prefix: str = "") -> Any:
        """The real rules model's validation (act-1 is a sandbox account), its 422 shaped like the rules API's."""
        try:
            return validate_rule(body, account_platforms={"act-1": "sandbox"})
        except ValidationError as exc:
            err = _validation_error(exc, prefix)
            return JSONResponse({"error": err.code, "message": err.message, "field": err.field, **err.extra}, 422)

    @app.post("/api/v1/rules/preview")
    async def preview(request: Request) -> Any:
        body = await request.json()
        wizard_seen.append(body)
        definition = validated(body["definition"], "definition.")
        if isinstance(definition, JSONResponse):
            return definition
        return PREVIEW

    @app.post("/api/v1/rules")
    async def create_rule(request: Request) -> Any:
        if (refused := refuse_viewer(request)) is not None:
            return refused
        definition = validated(await request.json())
        if isinstance(definition, JSONResponse):
            return definition
        rule = {**RULE, **definition.model_dump(mode="json"), "id": "0b3c6a52-0000-4000-8000-0000000000aa",
                "status": "paused", "template": None, "last_evaluated_at": None}
        rules_by_id[rule["id"]] = rule
        return JSONResponse(rule, 201)

    @app.get("/api/v1/rules/{rule_id}")
    async def one_rule(rule_id: str, request: Request) -> Any:
        if _who(request).workspace_id != "ws-a" or rule_id not in rules_by_id:
            return JSONResponse({"error": "not_found", "message": f"rule {rule_id} not found"}, 404)
        return rules_by_id[rule_id]

    @app.post("/api/v1/rules/bulk")
    async def bulk(request: Request) -> Any:
        if (refused := refuse_viewer(request)) is not None:
            return refused
        body = await request.json()
        bulk_seen.append(body)
        changed = []
        for i in body["rule_ids"]:
            r = rules_by_id[i]
            if body["op"] in ("pause", "activate"):
                status = "paused" if body["op"] == "pause" else "active"
                if r["status"] == status:
                    continue
                r["status"] = status
            elif body["op"] == "set_cooldown":
                r["protections"] = {**r["protections"], "cooldown_minutes": body["cooldown_minutes"]}
            else:
                rules_by_id.pop(i)
            changed.append(i)
        owned = {"pool_members": [{"entity_id": "as-1", "name": "Madrid", "pool_id": POOL["id"], "seen_at": None}],
                 "warnings": [OWNED]}
        return {"op": body["op"], "batch_id": "b-1", "requested": len(body["rule_ids"]), "changed": changed,
                "unchanged": [i for i in body["rule_ids"] if i not in changed],
                "ownership": {i: owned for i in changed} if body["op"] == "activate" else {}}

    @app.put("/api/v1/rules/{rule_id}")
    async def replace_rule(rule_id: str, request: Request) -> Any:
        if (refused := refuse_viewer(request)) is not None:
            return refused
        if rule_id not in rules_by_id:
            return JSONResponse({"error": "not_found", "message": f"rule {rule_id} not found"}, 404)
        body = await request.json()
        wizard_seen.append({"put": rule_id, "definition": body})
        definition = validated(body)
        if isinstance(definition, JSONResponse):
            return definition
        rules_by_id[rule_id] = {**rules_by_id[rule_id], **definition.model_dump(mode="json"),
                                "version": rules_by_id[rule_id]["version"] + 1}
        return rules_by_id[rule_id]

    @app.get("/api/v1/rules/{rule_id}/executions")
    async def executions(rule_id: str, limit: int = 20) -> Any:
        return {"rule_id": rule_id, "executions": [EXECUTION][:limit] if rule_id == RULE["id"] else []}

    @app.post("/api/v1/rules/{rule_id}/evaluate-now")
    async def evaluate_now(rule_id: str, request: Request) -> Any:
        if rules_by_id[rule_id]["status"] != "active":
            return JSONResponse({"error": "rule_not_active", "field": "status",
                                 "message": "the rule is paused; activate it first (or use preview)"}, 409)
        return {"status": "evaluated", "slot_start": EXECUTION["slot_start"], "execution": EXECUTION}

    @app.post("/api/v1/rules/{rule_id}/{verb}")
    async def set_status(rule_id: str, verb: str, request: Request) -> Any:
        if (refused := refuse_viewer(request)) is not None:
            return refused
        rules_by_id[rule_id]["status"] = "active" if verb == "activate" else "paused"
        if verb == "activate" and rule_id.endswith("aa"):  # made by the wizard: the ownership answer too
            return {**rules_by_id[rule_id], "pool_members": [{"entity_id": "as-1", "name": "Madrid",
                                                              "pool_id": POOL["id"], "seen_at": None}],
                    "warnings": [OWNED]}
        return rules_by_id[rule_id]

    @app.get("/api/v1/pacing/plans")
    async def plans(request: Request) -> Any:
        return {"plans": [PLAN] if _who(request).workspace_id == "ws-a" else []}

    @app.get("/api/v1/pacing/plans/{plan_id}")
    async def plan(plan_id: str, request: Request) -> Any:
        if _who(request).workspace_id != "ws-a" or plan_id != "plan-1":
            return JSONResponse({"error": "not_found", "message": f"plan {plan_id} not found"}, 404)
        return PLAN

    @app.get("/api/v1/pacing/plans/{plan_id}/snapshots")
    async def snapshots(plan_id: str) -> Any:
        return {"snapshots": SNAPSHOTS}

    @app.get("/api/v1/pacing/plans/{plan_id}/snapshots/latest")
    async def latest(plan_id: str) -> Any:
        return SNAPSHOTS[-1]

    @app.get("/api/v1/pacing/plans/{plan_id}/transitions")
    async def transitions(plan_id: str) -> Any:
        return {"transitions": [{"from_state": "ACTIVE", "to_state": "PACING_HOLD", "actor": "pacing",
                                 "reason": "critical underpacing on meta", "snapshot_id": "s-1",
                                 "at": "2026-12-10T00:00:00+00:00"}]}

    @app.get("/api/v1/pacing/plans/{plan_id}/planned")
    async def planned(plan_id: str, points: int = 48) -> Any:
        start = datetime(2026, 12, 1, tzinfo=UTC)
        return {"plan_id": plan_id, "currency": "EUR", "timezone_name": "Europe/Madrid", "points": [
            {"at": (start + timedelta(days=30) * i / points).isoformat(),
             "expected_spend_cents": 1_000_000 * i // points,
             "channels": [{"channel": "meta", "expected_spend_cents": 600_000 * i // points},
                          {"channel": "google", "expected_spend_cents": 400_000 * i // points}]}
            for i in range(points + 1)]}

    @app.get("/api/v1/pacing/plans/{plan_id}/proposals")
    async def list_proposals(plan_id: str, status: str = "open") -> Any:
        return {"proposals": [p for p in proposals
                              if status == "all" or p["status"] in ("pending_approval", "needs_budget")]}

    @app.post("/api/v1/pacing/plans/{plan_id}/proposals/{proposal_id}/{verb}")
    async def decide(plan_id: str, proposal_id: str, verb: str, request: Request) -> Any:
        if (refused := refuse_viewer(request)) is not None:
            return refused
        p = next((p for p in proposals if p["proposal_id"] == proposal_id), None)
        if p is None:
            return JSONResponse({"error": "not_found", "message": f"proposal {proposal_id} not found"}, 404)
        if p["status"] not in ("pending_approval", "needs_budget"):
            return JSONResponse({"error": "proposal_closed", "field": "status", "message": (
                f"proposal is {p['status']}; only open proposals (pending_approval, needs_budget) can be decided")},
                409)
        if verb == "reject":
            raw = await request.body()
            p.update(status="rejected", status_reason=(orjson.loads(raw) if raw else {}).get("reason") or "rejected")
            return p
        if proposal_id == "p-1":  # a newer snapshot replaced it with a larger move meanwhile
            p["status"] = "superseded"
            current = _proposal("p-2", 4_000, "pending_approval")
            proposals.insert(0, current)
            return JSONResponse({"error": "proposal_superseded", "field": "status", "current": current,
                                 "message": "proposal was replaced by a newer snapshot; the situation changed: the "
                                            "current proposal moves 4000 EUR cents instead of 2500; review and "
                                            "approve it"}, 409)
        p.update(status="requested", moved_cents=p["amount_cents"], status_reason="(1 step)",
                 actions=[{"role": "target", "entity_id": "as-9", "from_cents": 12_000, "to_cents": 14_000,
                           "outcome": None, "error": None},
                          {"role": "source", "entity_id": "as-1", "from_cents": 8_000, "to_cents": 6_000,
                           "outcome": None, "error": None}])
        return p

    return app


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def console_url() -> Iterator[str]:
    with serve_app(fake_pools()) as pools, serve_app(fake_guardrails()) as guardrails, \
            serve_app(fake_rules_and_pacing()) as rules_pacing:
        settings = ConsoleSettings(service_name="console", api_keys=KEYS_JSON, pools_url=pools,
                                   guardrails_url=guardrails, executor_url=f"http://127.0.0.1:{_closed_port()}",
                                   rules_url=rules_pacing, pacing_url=rules_pacing)
        with serve_app(create_app(settings)) as url:
            yield url


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "every form carries the CSRF token"
    return m.group(1)


def signed_in(url: str, who: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=20)
    page = client.get("/sign-in")
    r = client.post("/sign-in", data={"api_key": RAW[who], "csrf_token": csrf_of(page.text), "next": "/"})
    assert r.status_code == 303 and r.headers["location"] == "/"
    return client


def test_sign_in_makes_a_server_side_session_with_a_strict_http_only_cookie(console_url: str) -> None:
    with httpx.Client(base_url=console_url, timeout=20) as client:
        assert client.get("/").headers["location"] == "/sign-in?next=/"
        page = client.get("/sign-in")
        bad = client.post("/sign-in", data={"api_key": "allot_nope", "csrf_token": csrf_of(page.text)})
        assert bad.status_code == 401 and "API key: not a valid key" in bad.text
        forged = client.post("/sign-in", data={"api_key": RAW["admin"], "csrf_token": "forged"})
        assert forged.status_code == 400 and "Allot console" in forged.text
        before = client.cookies.get("allot_console")
        r = client.post("/sign-in", data={"api_key": RAW["admin"], "csrf_token": csrf_of(page.text),
                                          "next": "//evil.example"})
        assert r.status_code == 303 and r.headers["location"] == "/", "only local redirects after sign-in"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie  # plain http here
        assert RAW["admin"] not in cookie and client.cookies.get("allot_console") != before, "a new session id"
        home = client.get("/")
        assert home.status_code == 200 and "ws-a" in home.text and "€120.00" in home.text
        with httpx.Client(base_url=console_url, timeout=20) as proxied:
            # behind a TLS-terminating proxy on loopback (uvicorn trusts X-Forwarded-Proto from 127.0.0.1): Secure
            tls = proxied.get("/sign-in", headers={"X-Forwarded-Proto": "https"})
            assert "Secure" in tls.headers["set-cookie"] and "HttpOnly" in tls.headers["set-cookie"]
        assert "default-src 'self'" in home.headers["content-security-policy"]
        assert client.post("/sign-out", data={"csrf_token": "wrong"}).status_code == 403
        assert client.post("/sign-out", data={"csrf_token": csrf_of(home.text)}).status_code == 303
        assert client.get("/").status_code == 303


def test_pool_pages_show_names_and_money_and_a_viewer_gets_no_buttons(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin, closing(signed_in(console_url, "viewer")) as viewer:
        listing = admin.get("/automation/budget-pools").text
        assert "Spain" in listing and "€300.00" in listing and "once a day" in listing and "New pool" in listing
        assert "executed, 6 Dec 2026, 11:00 CET" in listing, "the last allocation in the account's time zone"
        detail = admin.get(f"/automation/budget-pools/{POOL['id']}").text
        assert "Madrid" in detail and "€123.45" in detail and "€10.00" in detail and "Europe/Madrid" in detail
        assert "raised 100.00 → 123.45 EUR/day" in detail and "11:00 CET" in detail  # 10:00 UTC in Madrid
        assert 'data-testid="allocate"' in detail and "<svg" in detail
        v = viewer.get(f"/automation/budget-pools/{POOL['id']}").text
        assert "Madrid" in v and 'data-testid="allocate"' not in v and 'data-testid="simulate"' not in v
        assert "New pool" not in viewer.get("/automation/budget-pools").text
        assert 'data-testid="kill-switch"' not in viewer.get("/limits").text
        assert viewer.get("/automation/budget-pools/new").status_code == 403
        # a forged viewer POST reaches the API with the viewer's key, which refuses it
        r = viewer.post("/limits/kill-switch", data={"csrf_token": csrf_of(v), "enabled": "true", "confirm": "yes"},
                        follow_redirects=True)
        assert "Kill switch not changed: role &#39;viewer&#39; may not do this" in r.text
        with closing(signed_in(console_url, "other")) as other:
            assert "No budget pools yet" in other.get("/automation/budget-pools").text
            assert other.get(f"/automation/budget-pools/{POOL['id']}").status_code == 404


def test_pool_page_charts_the_members_share_over_time_and_their_diminishing_returns(console_url: str) -> None:
    with closing(signed_in(console_url, "viewer")) as viewer:
        text = viewer.get(f"/automation/budget-pools/{POOL['id']}").text
        share = text[text.index('data-testid="share-over-time"'):text.index('data-testid="diminishing-returns"')]
        assert 'data-testid="share-chart"' in share and 'aria-labelledby="share-title share-desc"' in share
        assert "<title id=\"share-title\">Each member's share" in share
        assert f"Madrid: 41{NB}% now; Valencia: 59{NB}% now" in share, "the description says the shares"
        assert share.count("<polygon") == 2 and 'fill="url(#share-0)"' in share and 'fill="url(#share-1)"' in share
        assert '<pattern id="share-1"' in share, "patterns tell the bands apart without colour"
        assert f">Madrid 41{NB}%</text>" in share and f">Valencia 59{NB}%</text>" in share, "labelled bands"
        table = share[share.index('data-testid="share-table"'):]
        assert "<th class=\"num\">Madrid</th><th class=\"num\">Valencia</th>" in table
        assert f"5 Dec 2026, 11:00 CET</td><td class=\"num\">€100.00 (33{NB}%)</td>" in table
        assert f"6 Dec 2026, 11:00 CET</td><td class=\"num\">€123.45 (41{NB}%)</td><td class=\"num\">€176.55 " \
               f"(59{NB}%)</td><td class=\"num\">€300.00</td>" in table
        assert "now (reported)" in table and "€123.45" in table
        dr = text[text.index('data-testid="diminishing-returns"'):]
        assert 'data-testid="returns-chart"' in dr and 'aria-labelledby="returns-title returns-desc"' in dr
        assert dr.count("<polyline") == 2 and 'stroke-dasharray="8 4"' in dr, "a dash per member's curve"
        assert 'data-curve="fitted"' in dr and 'data-curve="prior"' in dr, "Allot's curves from the pools API"
        assert "observed windows as markers, Allot's fitted curve as a line</title>" in dr
        assert "Madrid: 2 observed windows; Allot's fitted curve, concave, from 14 days of evidence" in dr
        assert "Valencia: 4 observed windows; Allot's fitted curve is the prior only: no evidence for this " \
               "member yet" in dr, "the description says when a curve is the prior only"
        assert "Madrid (circle windows, solid line: Allot's fitted curve)" in dr
        assert "Valencia (square windows, dashed line: Allot's fitted curve, prior only)" in dr
        assert "Valencia (prior)</text>" in dr, "the prior-only curve is labelled on the chart"
        rows = dr[dr.index('data-testid="returns-table"'):]
        assert "<td>Madrid</td><td class=\"num\">2</td><td class=\"num\">€100.00</td><td class=\"num\">€300.00" \
               "</td>" in rows, "the newest window per day, in the pool's currency"
        madrid = rows[rows.index('data-testid="curve-as-1"'):].split("</td>")[0]
        assert madrid.count(" → ") == 4 and "€300.00 → €540.00" in madrid, "points of the curve, the last at 2× share"
        assert "from 14 days of evidence" in madrid
        valencia = rows[rows.index('data-testid="curve-as-7"'):]
        assert "is the prior only: no evidence for this member yet" in valencia.split("</td>")[0]
        assert "<td>Valencia</td><td class=\"num\">4</td>" in rows, "two log windows and the report's two"
        assert "flagged</span> spend/day 180.00 -&gt; 220.00 EUR (+22%)" in rows and "not flagged" in rows
        assert "a · spend" not in dr and "b = " not in dr, "the console fits no curve of its own any more"
        assert "spend per day" in dr


def test_form_errors_name_the_field_and_keep_the_input(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin:
        token = csrf_of(admin.get("/automation/budget-pools/new").text)
        r = admin.post("/automation/budget-pools/new", data={"csrf_token": token, "name": "", "daily_budget": "abc",
                                                              "currency": "EUR", "cadence": "24", "member": "as-1"})
        assert r.status_code == 422 and "Name: give the pool a name" in r.text
        assert "Daily budget: “abc” is not an amount in EUR" in r.text and 'aria-invalid="true"' in r.text
        assert not seen, "nothing sent while the form itself is wrong"
        r = admin.post("/automation/budget-pools/new", data={"csrf_token": token, "name": "Spain",
                                                              "daily_budget": "250,50", "currency": "EUR",
                                                              "cadence": "24", "member": "as-1"})
        assert r.status_code == 422 and "Name: a pool with this name exists" in r.text
        assert "Members: entity as-1 is in pool Spain" in r.text and 'value="Spain"' in r.text
        assert seen[-1]["dailyBudgetCents"] == 25_050 and seen[-1]["members"][0]["entityName"] == "Madrid"
        assert "Traceback" not in r.text


def test_a_service_that_is_down_is_named_and_the_rest_keeps_working(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin:
        r = admin.get("/activity")
        assert r.status_code == 200 and "The <strong>Executor</strong> service is unavailable" in r.text
        assert "Blocked by the guardrails" in r.text
        home = admin.get("/")
        assert "Executor" in home.text and "€120.00" in home.text, "the overview shows what the others answered"
        limits = admin.get("/limits")
        assert "service is unavailable" not in limits.text and "€500.00" in limits.text
        confirm = admin.post("/limits/kill-switch", data={"csrf_token": csrf_of(limits.text), "enabled": "true"})
        assert "Stop every budget change" in confirm.text and 'name="confirm" value="yes"' in confirm.text
        done = admin.post("/limits/kill-switch", data={"csrf_token": csrf_of(limits.text), "enabled": "true",
                                                       "confirm": "yes"}, follow_redirects=True)
        assert "Kill switch is ON" in done.text and "ON</span> Every budget change" in done.text
        assert "act-1" in done.text and "Europe/Madrid" in done.text and "running" in done.text
        ask = admin.post("/limits/kill-switch", data={"csrf_token": csrf_of(limits.text), "enabled": "true",
                                                      "ad_account_id": "act-1"})
        assert "Stop every budget change in ad account act-1?" in ask.text
        assert 'name="ad_account_id" value="act-1"' in ask.text
        stopped = admin.post("/limits/kill-switch", data={"csrf_token": csrf_of(limits.text), "enabled": "true",
                                                          "ad_account_id": "act-1", "confirm": "yes"},
                             follow_redirects=True)
        assert "Ad account act-1 stopped." in stopped.text and ">stopped<" in stopped.text


NB = "\u00a0"  # money and percentages keep their unit on the line


def test_a_rule_page_says_what_the_rule_does_and_operators_pause_and_activate_it_there(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin, closing(signed_in(console_url, "viewer")) as viewer:
        listing = admin.get("/rules")
        assert f'href="/rules/{RULE["id"]}">Scale winners</a>' in listing.text and "every 60 min" in listing.text
        page = admin.get(f"/rules/{RULE['id']}")
        assert page.status_code == 200
        text = page.text
        assert "Ad sets in act-1 whose name contains “Mad”" in text
        assert "All of these (AND)" in text and "Any of these (OR)" in text
        assert "Return on ad spend (ROAS) over the last 7 days is above 1.5 × the target ROAS = 3" in text
        assert "Spend yesterday is at least €50.00" in text, "money thresholds in the account's currency"
        assert f"Click-through rate (CTR) today is between 1{NB}% and 2.5{NB}%" in text
        assert f"Raise its daily budget by 20{NB}%" in text and "Every hour" in text
        assert "Only Mon, Tue, 09:00–18:00 (each ad account&#39;s own time zone)" in text
        assert "Waits 6 hours before changing the same entity again" in text
        assert "Never raises a daily budget above €500.00" in text and "target ROAS: 2" in text
        assert "6 Dec 2026, 11:00 CET" in text and "times in Europe/Madrid" in text, "the account's zone"
        assert ">Pause rule<" in text and 'data-testid="evaluate-now"' in text
        v = viewer.get(f"/rules/{RULE['id']}").text
        assert "Ad sets in act-1" in v and "Pause rule" not in v and "evaluate-now" not in v and "csrf_token" in v
        paused = admin.post(f"/rules/{RULE['id']}/pause", data={"csrf_token": csrf_of(text), "back": "detail"})
        assert paused.status_code == 303 and paused.headers["location"] == f"/rules/{RULE['id']}"
        back = admin.get(paused.headers["location"]).text
        assert "Rule “Scale winners” is paused." in back and ">Activate rule<" in back and "evaluate-now" not in back
        refused = viewer.post(f"/rules/{RULE['id']}/activate", data={"csrf_token": csrf_of(v), "back": "detail"},
                              follow_redirects=True)
        assert "Rule not changed: role &#39;viewer&#39; may not do this" in refused.text
        assert admin.post(f"/rules/{RULE['id']}/activate", data={"csrf_token": "forged"}).status_code == 403
        again = admin.post(f"/rules/{RULE['id']}/activate", data={"csrf_token": csrf_of(text)}, follow_redirects=True)
        assert "Rule “Scale winners” is active." in again.text and again.url.path == "/rules"
        missing = admin.get("/rules/0b3c6a52-0000-4000-8000-00000000dead")
        assert missing.status_code == 404 and "No such rule in your workspace." in missing.text
        with closing(signed_in(console_url, "other")) as other:
            assert other.get(f"/rules/{RULE['id']}").status_code == 404


def test_the_rules_list_shows_the_schedule_of_each_mode_the_last_fire_and_fires_today(console_url: str) -> None:
    with closing(signed_in(console_url, "viewer")) as viewer:
        listing = viewer.get("/rules").text
    rows = {m.group(1): m.group(2) for m in re.finditer(r'<a href="/rules/([^"]+)">.*?</a>(.*?)</tr>', listing, re.S)}

    def cells(rule: dict[str, Any]) -> tuple[str, ...]:
        row = rows[rule["id"]]
        return tuple(re.search(rf'data-testid="{name}">([^<]*)', row).group(1)  # type: ignore[union-attr]
                     for name in ("schedule", "last-fire", "fires-today"))

    assert "<th>Last fire</th><th>Fires today</th>" in listing
    # act-1 is in Madrid: 09:45 UTC is 10:45 CET
    assert cells(RULE) == ("every 60 min", "6 Dec 2026, 10:45 CET", "2")
    assert cells(ON_METRICS) == ("on new metrics", "6 Dec 2026, 08:30 UTC", "5")
    assert cells(WEEKDAY_MORNINGS) == ("cron: 0 9 * * 1-5", "never", "0")


def test_the_executions_tab_shows_each_fire_with_counts_reasons_outcomes_and_metrics(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin:
        page = admin.get(f"/rules/{RULE['id']}")
        assert 'data-testid="latest-execution"' in page.text and "1 of 3 matched" in page.text
        tab = admin.get(f"/rules/{RULE['id']}/executions")
        text = tab.text
        assert tab.status_code == 200 and 'aria-current="page">Executions<' in text
        assert "6 Dec 2026, 11:00 CET" in text and "on schedule" in text and "Changes requested" in text
        assert "3 evaluated, 1 matched, 1 acted on, 2 skipped" in text
        assert "Skipped: 1 conditions not met; 1 in its cooldown" in text and "Outcomes: 1 applied" in text
        assert "<td>Madrid</td>" in text, "entities by name where the platform reported one"
        assert f"daily budget €100.00 → €120.00 (+20{NB}%) — Applied" in text
        assert "Return on ad spend (ROAS) over the last 7 days: 3.4" in text and "Spend yesterday: €90.00" in text
        assert "Click-through rate (CTR) today: not computable" in text
        assert "<td>as-2</td><td>conditions not met (roas@last_7d 1.2 not &gt; 3)</td>" in text
        done = admin.post(f"/rules/{RULE['id']}/evaluate-now", data={"csrf_token": csrf_of(text)},
                          follow_redirects=True)
        assert done.url.path == f"/rules/{RULE['id']}/executions"
        assert "Evaluated now: Changes requested (3 evaluated, 1 matched)." in done.text


def test_a_rule_that_paused_itself_shows_its_reason_and_last_error(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin:
        text = admin.get(f"/rules/{TRIPPED['id']}").text
        assert 'data-testid="auto-paused"' in text and "Paused itself</strong> on 6 Dec 2026, 12:00 CET" in text
        assert "circuit breaker: error rate 60.0% with 12 errors" in text
        assert "Last error: sandbox answered 500 on write" in text and ">Activate rule<" in text
        assert "This rule has not been evaluated yet." in admin.get(f"/rules/{TRIPPED['id']}/executions").text
        r = admin.post(f"/rules/{TRIPPED['id']}/evaluate-now", data={"csrf_token": csrf_of(text)},
                       follow_redirects=True)
        assert "Not evaluated: the rule is paused; activate it first" in r.text


def test_a_pacing_plan_page_shows_state_pacing_charts_channels_deals_alerts_and_transitions(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin:
        listing = admin.get("/pacing").text
        assert 'href="/pacing/plans/plan-1">Q4 flight</a>' in listing and "€10,000.00" in listing
        assert "1 waiting for approval" in listing and "€25.00 from meta to google" in listing
        assert "On hold (pacing)" in listing and "1 Dec 2026 – 31 Dec 2026" in listing
        page = admin.get("/pacing/plans/plan-1")
        text = page.text
        assert page.status_code == 200 and "<h1>Q4 flight</h1>" in text
        assert "On hold (pacing)" in text and f">86.1{NB}%</strong> of plan (−13.9{NB}%, behind plan)" in text
        assert "€10,000.00 from 1 Dec 2026 to 31 Dec 2026" in text and "times in Europe/Madrid" in text
        assert "Spent so far<strong>€2,500.00" in text and "Expected by now<strong>€2,903.23" in text
        assert "10 Dec 2026, 01:00 CET" in text, "snapshot times in the plan's account zone"
        assert text.count('data-testid="flight-chart"') == 3, "the whole flight and each channel"
        assert text.count("<polygon") == 6 and 'stroke-dasharray="7 5"' in text, "bands and the expected line"
        assert f"On pace: within −10{NB}% / +10{NB}% of expected" in text and "critical" in text
        channels = text[text.index('data-testid="channels"'):text.index("<h2>Deals</h2>")]
        assert "<td>Madrid</td>" in channels and "none (no budget moves)" in channels
        assert f"57.4{NB}%" in channels and "€1,741.94" in channels and ">Critical<" in channels
        assert "deal-7" in text and "unknown" in text
        assert "Campaign is underpacing by -13.9% (threshold -10.0%)" in text and "Spending too slowly" in text
        assert "critical underpacing on meta" in text and 'data-testid="transitions"' in text
        assert "Move €25.00 of flight budget from meta to google" in text and 'data-testid="approve"' in text
        assert 'for="reason-p-1"' in text, "the reject reason is a labelled field"
        assert "Madrid (gives): €100.00 → €80.00 — Applied" in text, "decided proposals with their budget moves"
        missing = admin.get("/pacing/plans/nope")
        assert missing.status_code == 404 and "No such flight plan in your workspace." in missing.text


def test_proposals_are_decided_on_the_plan_page_and_refusals_are_explained_there(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin, closing(signed_in(console_url, "viewer")) as viewer:
        v = viewer.get("/pacing/plans/plan-1").text
        assert "Move €25.00 of flight budget" in v and 'data-testid="approve"' not in v and "Reject" not in v
        forged = viewer.post("/pacing/plans/plan-1/proposals/p-1/approve", data={"csrf_token": csrf_of(v)})
        assert forged.status_code == 403 and "Your role may look at proposals but not approve" in forged.text
        page = admin.get("/pacing/plans/plan-1").text
        assert admin.post("/pacing/plans/plan-1/proposals/p-1/approve",
                          data={"csrf_token": "forged"}).status_code == 403
        stale = admin.post("/pacing/plans/plan-1/proposals/p-1/approve",
                           data={"csrf_token": csrf_of(page), "currency": "EUR"})
        assert stale.status_code == 409
        assert ("Not approved: a newer snapshot replaced this proposal and the amount changed by more than 10 %. "
                "The current proposal moves €40.00 from meta to google") in stale.text
        assert "Replaced by a newer proposal" in stale.text and "Move €40.00 of flight budget" in stale.text
        done = admin.post("/pacing/plans/plan-1/proposals/p-2/approve",
                          data={"csrf_token": csrf_of(page), "currency": "EUR"}, follow_redirects=True)
        assert done.url.path == "/pacing/plans/plan-1"
        assert "Proposal approved: the budget move goes through the guardrails now." in done.text
        assert "Approved: budgets being changed" in done.text
        assert "Madrid (gives): €80.00 → €60.00 — pending" in done.text
        assert 'data-testid="inbox-empty"' in done.text
        closed = admin.post("/pacing/plans/plan-1/proposals/p-2/reject",
                            data={"csrf_token": csrf_of(page), "reason": "too late"})
        assert closed.status_code == 409 and "This proposal was already decided" in closed.text
        assert admin.post("/pacing/plans/plan-1/proposals/p-2/undo",
                          data={"csrf_token": csrf_of(page)}).status_code == 404


def test_pool_settings_save_and_a_refusal_names_the_field_in_money(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin:
        detail = admin.get(f"/automation/budget-pools/{POOL['id']}")
        assert 'value="300.00"' in detail.text and "Save settings" in detail.text
        form = {"csrf_token": csrf_of(detail.text), "currency": "EUR", "name": "Spain", "daily_budget": "5",
                "metric": "roas", "cadence": "12", "status": "paused", "autonomy": "observe"}
        r = admin.post(f"/automation/budget-pools/{POOL['id']}/settings", data=form)
        assert r.status_code == 422 and 'id="daily_budget-error"' in r.text
        assert "Daily budget: active members&#39; floors (minBudgetCents) sum to €10.00" in r.text
        assert seen[-1] == {"name": "Spain", "optimizationMetric": "roas", "status": "paused", "autonomy": "observe",
                            "allocationFrequencyHours": 12, "dailyBudgetCents": 500}
        ok = admin.post(f"/automation/budget-pools/{POOL['id']}/settings", data={**form, "daily_budget": "400"},
                        follow_redirects=True)
        assert "Pool settings saved." in ok.text and seen[-1]["dailyBudgetCents"] == 40_000
        bad = admin.post(f"/automation/budget-pools/{POOL['id']}/settings", data={**form, "daily_budget": "x"})
        assert bad.status_code == 422 and "Daily budget: “x” is not an amount in EUR" in bad.text


# ---------------------------------------------------------------- the new-rule wizard

def _step(client: httpx.Client, step: str, data: dict[str, Any]) -> httpx.Response:
    token = csrf_of(client.get(f"/rules/new/{step}").text)
    return client.post(f"/rules/new/{step}", data={"csrf_token": token, **data})


CONDITIONS = {"root_logic": "and", "g0_logic": "and", "g0_r0_metric": "roas", "g0_r0_operator": "gt",
              "g0_r0_value": "target * 1.2", "g0_r0_value2": "", "g0_r0_time_range": "last_3d",
              "g0_r1_metric": "spend", "g0_r1_operator": "gt", "g0_r1_value": "50", "g0_r1_value2": "",
              "g0_r1_time_range": "last_3d", "g0_r2_metric": "", "g0_r2_operator": "gt", "g0_r2_value": "",
              "g0_r2_value2": "", "g0_r2_time_range": "last_7d", "t0_metric": "roas", "t0_value": "2"}
SCHEDULE = {"mode": "schedule", "interval": "60", "cron": "", "d0_start": "", "d0_end": ""}
PROTECTIONS = {"cooldown_minutes": "720", "max_executions_per_day": "3", "budget_change_limit_pct": "20",
               "budget_daily_cap": "250.50", "change_pool_member_budgets": "yes"}


def _walk(client: httpx.Client, template: str = "blank") -> None:
    """Start a draft and fill the five steps with valid values."""
    start = client.get("/rules/new")
    client.post("/rules/new", data={"csrf_token": csrf_of(start.text), "template": template})
    for step, data in (("scope", {"name": "Wizard winners", "account": "act-1", "level": "adset",
                                  "name_contains": "Mad"}),
                       ("conditions", CONDITIONS),
                       ("actions", {"action": "increase_budget_pct", "increase_budget_pct_pct": "20"}),
                       ("schedule", SCHEDULE), ("protections", PROTECTIONS)):
        r = _step(client, step, data)
        assert r.status_code == 303, (step, r.text[-2000:])


def test_the_rule_wizard_checks_each_step_inline_and_keeps_what_was_typed(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin:
        listing = admin.get("/rules").text
        assert 'href="/rules/new" data-testid="new-rule">New rule</a>' in listing
        start = admin.get("/rules/new")
        assert start.status_code == 200 and "Template “scale winners”" in start.text and "A blank rule" in start.text
        assert admin.post("/rules/new", data={"csrf_token": "forged", "template": "blank"}).status_code == 403
        r = admin.post("/rules/new", data={"csrf_token": csrf_of(start.text), "template": "scale_winners"})
        assert r.status_code == 303 and r.headers["location"] == "/rules/new/scope"
        scope = admin.get("/rules/new/scope").text
        assert 'value="Scale winners"' in scope and "act-1" in scope and "sandbox · EUR · Europe/Madrid" in scope
        assert 'aria-current="step">1. Scope' in scope and "<legend>Entity level</legend>" in scope
        bad = _step(admin, "scope", {"name": "", "level": "adset"})
        assert bad.status_code == 422 and 'id="name-error"' in bad.text and "Name: give the rule a name" in bad.text
        assert "Ad accounts: pick at least one ad account" in bad.text and "Traceback" not in bad.text
        assert _step(admin, "scope", {"name": "Wizard winners", "account": "act-1", "level": "adset"}
                     ).headers["location"] == "/rules/new/conditions"
        conditions = admin.get("/rules/new/conditions").text
        assert 'value="target * 1.2"' in conditions and 'value="50.00"' in conditions, "the template, in money"
        assert conditions.count('<option value="hook_rate"') == 5, "34 metrics in every row and target"
        assert "Hook rate (Meta only)" in conditions and "over the last 30 days" in conditions
        assert 'for="g0_r1_value" class="sr">Group 1, condition 2: value</label>' in conditions
        wrong = _step(admin, "conditions", {**CONDITIONS, "g0_r1_value": "lots", "g0_r0_operator": "between",
                                            "t0_value": ""})
        assert wrong.status_code == 422 and 'id="g0_r1_value-error"' in wrong.text
        assert "Group 1, condition 2, value: “lots” is not an amount in EUR (e.g. 12.50)" in wrong.text
        assert "Group 1, condition 1, value: “between” needs a second (upper) value" in wrong.text
        assert "Target ROAS: enter a value" in wrong.text and 'value="lots"' in wrong.text, "the input is kept"
        grouped = _step(admin, "conditions", {**CONDITIONS, "go": "add_group"})
        assert grouped.status_code == 200 and "<legend>Group 2</legend>" in grouped.text
        assert "Combine the groups" in grouped.text
        assert _step(admin, "conditions", CONDITIONS).headers["location"] == "/rules/new/actions"
        actions = admin.get("/rules/new/actions").text
        assert 'value="increase_budget_pct" id="action-increase_budget_pct" checked' in actions
        nothing = _step(admin, "actions", {})
        assert nothing.status_code == 422 and "Actions: choose at least one action" in nothing.text
        pct = _step(admin, "actions", {"action": "increase_budget_pct", "increase_budget_pct_pct": "a fifth"})
        assert "Raise the daily budget by a percentage, percent: “a fifth” is not a number" in pct.text
        back = _step(admin, "actions", {"action": "pause", "go": "back"})
        assert back.status_code == 303 and back.headers["location"] == "/rules/new/conditions"
        assert 'value="pause" id="action-pause" checked' in admin.get("/rules/new/actions").text, "kept on Back"
        _step(admin, "actions", {"action": "increase_budget_pct", "increase_budget_pct_pct": "20"})
        schedule = admin.get("/rules/new/schedule").text
        assert "0 9 * * 1-5" in schedule and "<legend>Window 1 (new)</legend>" in schedule
        cron = _step(admin, "schedule", {**SCHEDULE, "mode": "cron", "d0_days": "mon", "d0_start": "9am"})
        assert cron.status_code == 422 and "Cron expression: required for “At cron times”" in cron.text
        assert "Time window 1, start: a time as HH:MM" in cron.text and "Time window 1, end" in cron.text
        assert _step(admin, "schedule", {**SCHEDULE, "d0_days": ["mon", "tue"], "d0_start": "09:00",
                                         "d0_end": "18:00"}).status_code == 303
        protections = admin.get("/rules/new/protections").text
        assert 'value="720"' in protections and "default 360 (6 hours)" in protections, "the template's, defaults"
        assert "Daily budget cap (EUR, optional)" in protections
        cap = _step(admin, "protections", {**PROTECTIONS, "budget_daily_cap": "x", "cooldown_minutes": "-5"})
        assert cap.status_code == 422 and "Daily budget cap: “x” is not an amount in EUR" in cap.text
        assert "Cooldown (minutes): “-5” is not a whole number" in cap.text
        assert _step(admin, "protections", PROTECTIONS).headers["location"] == "/rules/new/review"
        review = admin.get("/rules/new/review").text
        assert "Ad sets in act-1" in review and "Return on ad spend (ROAS) over the last 3 days is above 1.2 × the " \
                                               "target ROAS = 2.4" in review
        assert "Spend over the last 3 days is above €50.00" in review and f"Raise its daily budget by 20{NB}%" in review
        assert "Every hour" in review and "Only Mon, Tue, 09:00–18:00" in review
        assert "Never raises a daily budget above €250.50" in review and "May change the budgets" in review
        assert 'data-testid="create-activate"' in review


def test_the_wizard_previews_the_rule_with_matches_skips_verdicts_and_ownership_warnings(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin:
        _walk(admin)
        review = admin.get("/rules/new/review").text
        r = admin.post("/rules/new/review", data={"csrf_token": csrf_of(review), "go": "preview"})
        assert r.status_code == 200, r.text[-2000:]
        sent = wizard_seen[-1]["definition"]
        assert sent["scope"] == {"ad_account_ids": ["act-1"], "entity_level": "adset",
                                 "entity_filter": {"name_contains": "Mad"}}
        assert sent["conditions"]["conditions"][1] == {"metric": "spend", "operator": "gt", "value": 5_000,
                                                       "time_range": "last_3d"}, "money in minor units"
        assert sent["conditions"]["conditions"][0]["value"] == {"target": "target_roas", "multiplier": 1.2}
        assert sent["targets"] == {"target_roas": 2.0}
        assert sent["protections"]["budget_daily_cap_cents"] == 25_050
        assert sent["schedule"] == {"mode": "schedule", "interval_minutes": 60}
        text = r.text
        assert "2 evaluated, 1 matched, 1 skipped (1 conditions not met)" in text
        assert "daily budget €100.00 → €120.00 (+20" in text and "Return on ad spend (ROAS) over the last 3 days: 3.4" \
            in text
        assert "Trimmed to €110.00: adset as-1: trimmed to the 10 % change limit (€110.00)" in text
        assert "<td>Sevilla</td><td>conditions not met (roas@last_3d 1.1 not &gt; 2.4)</td>" in text
        assert 'data-testid="preview-guardrails"' in text and ">approved</span> Approved" in text
        assert "belongs to budget pool" in text and 'data-testid="preview-warning"' in text


def test_the_rules_api_s_refusals_land_on_their_step_and_row(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin:
        _walk(admin)
        # two groups (OR of ANDs); a Meta-only metric on a sandbox account and an undefined target: refused by the
        # real rules model with paths like conditions.conditions[1].conditions[0].metric
        two = {**CONDITIONS, "root_logic": "or", "t0_metric": "", "t0_value": "",
               "g1_logic": "and", "g1_r0_metric": "link_clicks", "g1_r0_operator": "gt", "g1_r0_value": "10",
               "g1_r0_value2": "", "g1_r0_time_range": "today"}
        assert _step(admin, "conditions", two).status_code == 303
        review = admin.get("/rules/new/review").text
        assert "Any of these (OR)" in review and "All of these (AND)" in review
        r = admin.post("/rules/new/review", data={"csrf_token": csrf_of(review), "go": "preview"})
        assert r.status_code == 422 and 'data-testid="wizard-conditions"' in r.text
        assert 'id="g1_r0_metric-error"' in r.text and "Group 2, condition 1, metric: &#39;link_clicks&#39; is " \
                                                          "Meta-only" in r.text
        assert 'id="g0_r0_value-error"' in r.text and "target &#39;target_roas&#39; is not defined" in r.text
        assert wizard_seen[-1]["definition"]["conditions"]["logic"] == "or"
        # a nested row whose value the model cannot parse: the path carries the union tags (…group…condition)
        _step(admin, "conditions", {**CONDITIONS, "g0_r1_value": "target_spend * 2 * 3"})
        review = admin.get("/rules/new/review").text
        r = admin.post("/rules/new/review", data={"csrf_token": csrf_of(review), "go": "create"})
        assert r.status_code == 422 and 'id="g0_r1_value-error"' in r.text and "cannot parse" in r.text
        _step(admin, "conditions", CONDITIONS)
        _step(admin, "actions", {"action": ["pause", "activate"]})
        review = admin.get("/rules/new/review").text
        r = admin.post("/rules/new/review", data={"csrf_token": csrf_of(review), "go": "create"})
        assert r.status_code == 422 and 'data-testid="wizard-actions"' in r.text
        assert "Actions: pause and activate cannot be combined" in r.text


def test_create_and_activate_lands_on_the_rule_page_with_the_ownership_warnings(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin:
        _walk(admin, "scale_winners")
        review = admin.get("/rules/new/review").text
        r = admin.post("/rules/new/review", data={"csrf_token": csrf_of(review), "go": "activate"})
        assert r.status_code == 303 and r.headers["location"] == "/rules/0b3c6a52-0000-4000-8000-0000000000aa"
        page = admin.get(r.headers["location"]).text
        assert "Rule “Wizard winners” created and active." in page and "belongs to budget pool" in page
        assert 'class="flash warn"' in page and ">active</span>" in page
        assert admin.get("/rules/new/review").headers["location"] == "/rules/new", "the draft is gone"
        _walk(admin)
        review = admin.get("/rules/new/review").text
        paused = admin.post("/rules/new/review", data={"csrf_token": csrf_of(review), "go": "create"},
                            follow_redirects=True)
        assert "created; it is paused until you activate it" in paused.text and ">paused</span>" in paused.text


def test_viewers_cannot_reach_the_wizard_and_a_down_rules_service_is_named(console_url: str) -> None:
    with closing(signed_in(console_url, "viewer")) as viewer:
        assert "New rule" not in viewer.get("/rules").text
        assert viewer.get("/rules/new").status_code == 403 and viewer.get("/rules/new/review").status_code == 403
        token = csrf_of(viewer.get("/rules").text)
        assert viewer.post("/rules/new/review", data={"csrf_token": token, "go": "create"}).status_code == 403
    with serve_app(fake_pools()) as pools:
        settings = ConsoleSettings(service_name="console", api_keys=KEYS_JSON, pools_url=pools,
                                   rules_url=f"http://127.0.0.1:{_closed_port()}")
        with serve_app(create_app(settings)) as url, closing(signed_in(url, "admin")) as admin:
            start = admin.get("/rules/new")
            assert "The <strong>Rules</strong> service is unavailable" in start.text and "A blank rule" in start.text
            _walk(admin)
            review = admin.get("/rules/new/review").text
            r = admin.post("/rules/new/review", data={"csrf_token": csrf_of(review), "go": "preview"})
            assert r.status_code == 503 and "The <strong>Rules</strong> service is unavailable" in r.text
            assert "Wizard winners" in r.text, "the draft is kept"


def _edit_step(client: httpx.Client, rule_id: str, step: str, data: dict[str, Any]) -> httpx.Response:
    token = csrf_of(client.get(f"/rules/{rule_id}/edit/{step}").text)
    return client.post(f"/rules/{rule_id}/edit/{step}", data={"csrf_token": token, **data})


def test_editing_a_rule_loads_it_into_the_wizard_and_saves_it_with_put_refusals_inline(console_url: str) -> None:
    rid = EDITABLE["id"]
    with closing(signed_in(console_url, "admin")) as admin, closing(signed_in(console_url, "viewer")) as viewer:
        assert 'data-testid="edit-rule"' not in viewer.get(f"/rules/{rid}").text
        assert viewer.get(f"/rules/{rid}/edit").status_code == 403
        assert viewer.get(f"/rules/{rid}/edit/review").status_code == 403
        page = admin.get(f"/rules/{rid}").text
        assert f'href="/rules/{rid}/edit" data-testid="edit-rule">Edit rule</a>' in page
        _walk(admin)  # a new rule's draft in progress is kept while another rule is edited
        start = admin.get(f"/rules/{rid}/edit")
        assert start.status_code == 303 and start.headers["location"] == f"/rules/{rid}/edit/scope"
        scope = admin.get(start.headers["location"]).text
        assert "Edit rule “Trim losers”" in scope and 'value="Trim losers"' in scope and 'value="Mad"' in scope
        assert f'action="/rules/{rid}/edit/scope"' in scope and 'value="act-1" id="acc-1" checked' in scope
        conditions = admin.get(f"/rules/{rid}/edit/conditions").text
        assert "<legend>Group 2</legend>" in conditions, "AND(a condition, OR(two)) → a group of one and a group"
        assert 'value="target * 1.5"' in conditions and 'value="50.00"' in conditions and 'value="2.5"' in conditions
        assert 'id="t0_value" name="t0_value" type="text" inputmode="decimal" value="2"' in conditions
        assert 'value="720"' not in admin.get(f"/rules/{rid}/edit/protections").text
        assert 'value="500.00"' in admin.get(f"/rules/{rid}/edit/protections").text, "the cap in EUR"
        assert _edit_step(admin, rid, "scope", {"name": "Trim losers (edited)", "account": "act-1", "level": "adset",
                                                "name_contains": "Mad"}).headers["location"] == \
            f"/rules/{rid}/edit/conditions"
        assert _edit_step(admin, rid, "protections", {**PROTECTIONS, "cooldown_minutes": "99999"}
                          ).headers["location"] == f"/rules/{rid}/edit/review"
        review = admin.get(f"/rules/{rid}/edit/review").text
        assert 'data-testid="save"' in review and "create-activate" not in review
        assert "Spend yesterday is at least €50.00" in review and "Any of these (OR)" in review
        refused = admin.post(f"/rules/{rid}/edit/review", data={"csrf_token": csrf_of(review), "go": "save"})
        assert refused.status_code == 422 and 'data-testid="wizard-protections"' in refused.text
        assert 'id="cooldown_minutes-error"' in refused.text and "Cooldown (minutes):" in refused.text
        assert 'value="99999"' in refused.text, "the input is kept"
        assert admin.get(f"/rules/{rid}").text.count("Trim losers (edited)") == 0, "nothing saved"
        _edit_step(admin, rid, "protections", PROTECTIONS)
        saved = admin.post(f"/rules/{rid}/edit/review", data={"csrf_token": csrf_of(review), "go": "save"})
        assert saved.status_code == 303 and saved.headers["location"] == f"/rules/{rid}"
        sent = wizard_seen[-1]
        assert sent["put"] == rid and sent["definition"]["name"] == "Trim losers (edited)"
        assert sent["definition"]["conditions"] == {"logic": "and", "conditions": [
            {"logic": "and", "conditions": [{"metric": "roas", "operator": "gt",
                                             "value": {"target": "target_roas", "multiplier": 1.5},
                                             "time_range": "last_7d"}]},
            {"logic": "or", "conditions": [
                {"metric": "spend", "operator": "gte", "value": 5_000, "time_range": "yesterday"},
                {"metric": "ctr", "operator": "between", "value": [1.0, 2.5], "time_range": "today"}]}]}
        assert sent["definition"]["protections"]["cooldown_minutes"] == 720
        assert sent["definition"]["schedule"]["dayparts"] == [{"days": ["mon", "tue"], "start": "09:00",
                                                               "end": "18:00"}]
        after = admin.get(saved.headers["location"]).text
        assert "Rule “Trim losers (edited)” saved; it is paused." in after and "Waits 12 hours" in after
        assert admin.get(f"/rules/{rid}/edit/review").headers["location"] == f"/rules/{rid}/edit", "draft gone"
        assert "Wizard winners" in admin.get("/rules/new/review").text, "the new rule's draft is still there"


def test_bulk_edit_on_the_rules_list_pauses_sets_cooldowns_and_deletes_after_a_confirmation(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin, closing(signed_in(console_url, "viewer")) as viewer:
        v = viewer.get("/rules").text
        assert 'name="rule_id"' not in v and 'data-testid="bulk"' not in v and "Apply to the ticked" not in v
        forged = viewer.post("/rules/bulk", data={"csrf_token": csrf_of(v), "op": "pause", "rule_id": RULE["id"]},
                             follow_redirects=True)
        assert "Bulk edit refused: role &#39;viewer&#39; may not do this" in forged.text and not bulk_seen
        listing = admin.get("/rules").text
        assert f'name="rule_id" value="{RULE["id"]}" form="bulk"' in listing and 'data-testid="bulk-apply"' in listing
        assert "Select Scale winners</label>" in listing, "each checkbox is labelled with its rule"
        token = csrf_of(listing)
        admin.post(f"/rules/{RULE['id']}/activate", data={"csrf_token": token})
        none = admin.post("/rules/bulk", data={"csrf_token": token, "op": "pause"}, follow_redirects=True)
        assert "Bulk edit: tick at least one rule." in none.text and not bulk_seen
        paused = admin.post("/rules/bulk", data={"csrf_token": token, "op": "pause",
                                                 "rule_id": [RULE["id"], TRIPPED["id"]]}, follow_redirects=True)
        assert "Paused 1 rule: Scale winners. Already paused: Doomed." in paused.text
        assert bulk_seen[-1] == {"rule_ids": [RULE["id"], TRIPPED["id"]], "op": "pause"}
        bad = admin.post("/rules/bulk", data={"csrf_token": token, "op": "set_cooldown", "rule_id": RULE["id"],
                                              "cooldown_minutes": "a day"}, follow_redirects=True)
        assert "Cooldown (minutes): “a day” is not a whole number" in bad.text and len(bulk_seen) == 1
        cooled = admin.post("/rules/bulk", data={"csrf_token": token, "op": "set_cooldown", "cooldown_minutes": "90",
                                                 "rule_id": [RULE["id"], TRIPPED["id"]]}, follow_redirects=True)
        assert "Cooldown set to 90 minutes on 2 rules: Scale winners, Doomed." in cooled.text
        assert cooled.text.count("cooldown 90 min") == 2 and bulk_seen[-1]["cooldown_minutes"] == 90
        ask = admin.post("/rules/bulk", data={"csrf_token": token, "op": "delete", "rule_id": TRIPPED["id"]})
        assert ask.status_code == 200 and "Delete 1 rule: Doomed?" in ask.text and len(bulk_seen) == 2
        assert f'name="rule_id" value="{TRIPPED["id"]}"' in ask.text and 'name="confirm" value="yes"' in ask.text
        assert 'name="op" value="delete"' in ask.text and ">Delete 1 rule</button>" in ask.text
        gone = admin.post("/rules/bulk", data={"csrf_token": token, "op": "delete", "rule_id": TRIPPED["id"],
                                               "confirm": "yes"}, follow_redirects=True)
        assert "Deleted 1 rule: Doomed." in gone.text and f'href="/rules/{TRIPPED["id"]}"' not in gone.text
        activated = admin.post("/rules/bulk", data={"csrf_token": token, "op": "activate", "rule_id": RULE["id"]},
                               follow_redirects=True)
        assert "Activated 1 rule: Scale winners." in activated.text
        assert "Scale winners: 1 ad set in scope (Madrid) belongs to budget pool" in activated.text, \
            "a bulk activation shows each rule's ownership warnings, as a single one does"
        admin.post("/rules/bulk", data={"csrf_token": token, "op": "pause", "rule_id": RULE["id"]})
