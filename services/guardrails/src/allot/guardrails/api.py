"""Guardrails HTTP API: a workspace's limits and autonomy (audited), its decisions and its spend ledger.

Routes (every query is scoped to the caller's workspace):
- GET   /api/v1/guardrails/limits                 viewer   — current limits (defaults when never set)
- PUT   /api/v1/guardrails/limits                 admin    — replace all limits (missing fields = defaults)
- PATCH /api/v1/guardrails/limits                 admin    — JSON merge patch (RFC 7386) of the limits
- POST  /api/v1/guardrails/kill-switch            operator — {enabled, ad_account_id?}: workspace or one account
- GET   /api/v1/guardrails/audit-log              viewer   — who changed which setting when, before → after
- GET   /api/v1/guardrails/decisions/{request_id} viewer   — the decision on one change set
- GET   /api/v1/guardrails/decisions              viewer   — recent decisions (?source_id=&limit=)
- GET   /api/v1/guardrails/ledger                 viewer   — the spend ledger of a day (?day=; default today, in
                                                             the zone of ?platform=&ad_account_id= when given, else UTC)
- POST  /api/v1/guardrails/dry-run                viewer   — the whole check chain on a proposed change set, now,
                                                             recording nothing: approved / trimmed / dropped / blocked
                                                             per action, with the check, the reason and the numbers
- POST  /api/v1/guardrails/pool-membership        viewer   — {entity_ids}: which of them belong to a budget pool as the
                                                             arbiter sees it now (a read: nothing is recorded)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, ValidationError

from allot.contracts.localday import local_day
from allot.contracts.payloads import AllocationRequested, BudgetAction, Currency, Platform, Source
from allot.guardrails import workflow
from allot.guardrails.adapters import postgres as db
from allot.guardrails.domain import (
    Decision,
    WorkspaceLimits,
    action_verdicts,
    http_status,
    patch_limits,
    set_kill_switch,
)
from allot.guardrails.domain.facts import PoolMember
from allot.runtime.accounts import UTC_ZONE, directory_of
from allot.runtime.auth import Principal, require
from allot.runtime.http import ApiError
from allot.runtime.openapi import Body as ResponseBody
from allot.runtime.openapi import documented
from allot.runtime.service import ServiceContext, get_ctx

router = APIRouter(prefix="/api/v1/guardrails", tags=["guardrails"])


class KillSwitchBody(BaseModel):
    """Flip the workspace kill switch, or one ad account's when ``ad_account_id`` is given."""

    model_config = ConfigDict(extra="forbid")

    enabled: StrictBool = Field(description="True stops every action (of the account); false resumes.")
    ad_account_id: str | None = Field(default=None, min_length=1, description="Only this ad account.")


class LimitsView(ResponseBody):
    """A workspace's limits in force, with their version and who set them."""

    workspace_id: str
    limits: WorkspaceLimits
    version: int = Field(description="0 while the defaults apply.")
    updated_at: datetime | None
    updated_by: str | None = Field(description="The key id that last changed them.")
    defaults: bool = Field(description="True when the workspace never set its limits.")
    changed: list[str] | None = Field(None, description="PUT / PATCH: the fields this request changed.")


class KillSwitchView(ResponseBody):
    workspace_id: str
    kill_switch: bool = Field(description="The workspace's switch.")
    killed_ad_accounts: list[str] = Field(description="Accounts whose switch is on.")
    version: int
    changed: list[str]


class AuditEntry(ResponseBody):
    id: int
    at: datetime
    key_id: str
    role: str
    action: str = Field(description="put | patch | kill_switch")
    version: int
    changes: Any = Field(description="Each changed setting, before → after.")


class AuditLog(ResponseBody):
    entries: list[AuditEntry] = Field(description="Newest first; page with before_id.")


class DecisionView(ResponseBody):
    """A recorded decision (allot.guardrails.domain.Decision as stored) and how it was answered."""

    decision_id: str
    request_id: str
    source: str
    source_id: str
    status: str
    check: str | None
    reason: str
    details: dict[str, Any] = Field(description="The numbers behind the outcome.")
    observe_only: bool
    retry_after_s: int | None
    actions: list[dict[str, Any]] = Field(description="The approved BudgetActions (possibly trimmed).")
    notes: list[str]
    decided_at: str
    http_status: int = Field(description="The status a synchronous caller got for it (200, 423, 429).")
    event_id: str
    event_type: str = Field(description="guardrail.approved or guardrail.blocked")
    looked_up_request_id: str | None = Field(None, description="GET by request id: the id asked for.")


class DecisionList(ResponseBody):
    decisions: list[DecisionView]


class PoolExposure(ResponseBody):
    pool_id: str
    exposure_eur_cents: int


class LedgerView(ResponseBody):
    """The spend ledger of one day and its month, with the caps and what remains of them."""

    workspace_id: str
    day: str = Field(description="YYYY-MM-DD")
    month: str = Field(description="YYYY-MM")
    exposure_eur_cents: int
    month_exposure_eur_cents: int
    approvals_counted: int
    released_eur_cents: int
    pools: list[PoolExposure]
    decisions: dict[str, int] = Field(description="Decisions counted on the day: approved, blocked, observed.")
    timezone_name: str
    daily_cap_eur_cents: int | None
    monthly_cap_eur_cents: int | None
    daily_remaining_eur_cents: int | None
    monthly_remaining_eur_cents: int | None


class ActionVerdict(ResponseBody):
    action_id: str
    entity_id: str
    action_type: str
    from_cents: int | None
    to_cents: int | None
    currency: str | None
    verdict: str = Field(description="approved | trimmed | dropped | blocked")
    approved_to_cents: int | None
    note: str | None


class DryRunView(ResponseBody):
    """What the guardrails would decide now; nothing recorded."""

    dry_run: bool
    status: str
    check: str | None
    reason: str
    details: dict[str, Any]
    observe_only: bool
    retry_after_s: int | None
    notes: list[str]
    decided_at: str
    actions: list[ActionVerdict]


class PoolMembershipView(ResponseBody):
    workspace_id: str
    checked: int = Field(description="How many distinct entity ids were looked up.")
    members: list[PoolMember]


def _limits_view(workspace_id: str, limits: WorkspaceLimits, row: Any) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "limits": limits.model_dump(mode="json"),
        "version": row["version"] if row else 0,
        "updated_at": row["updated_at"] if row else None,
        "updated_by": row["updated_by"] if row else None,
        "defaults": row is None,
    }


_PG_BIGINT_MAX = 2**63 - 1
#: Query text compared in SQL: PostgreSQL text cannot hold NUL (a 500 otherwise).
_NO_NUL = r"^[^\x00]*$"


async def _change_limits(ctx: ServiceContext, principal: Principal, action: str,
                         change: Callable[[WorkspaceLimits], WorkspaceLimits], *,
                         fields: dict[str, str] | None = None) -> dict[str, Any]:
    """``workflow.change_limits`` rendered: 422 naming the field for limits it refuses."""
    try:
        result = await workflow.change_limits(ctx, principal, action, change, fields=fields)
    except workflow.LimitsRefused as exc:
        if exc.kind == "nul":  # PostgreSQL jsonb cannot store U+0000: a 422 naming the field, not a 500
            ((name, _),) = exc.refusals
            raise ApiError(422, "validation_failed", f"{name}: must not contain NUL (U+0000) characters", field=name,
                           extra={"errors": [{"field": name, "message": "must not contain NUL characters"}]}) from None
        raise RequestValidationError([{"loc": ("body", field), "msg": reason, "type": "ad_account"}
                                      for field, reason in exc.refusals]) from None
    view = _limits_view(principal.workspace_id, result.limits, result.row)
    view["changed"] = result.changed
    return view


@router.get("/limits", **documented(LimitsView))
async def get_limits(principal: Principal = Depends(require("viewer")),
                     ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        row = await db.load_limits_row(conn, principal.workspace_id)
    limits = WorkspaceLimits() if row is None else WorkspaceLimits.model_validate(row["limits"])
    return _limits_view(principal.workspace_id, limits, row)


@router.put("/limits", **documented(LimitsView))
async def put_limits(limits: WorkspaceLimits, principal: Principal = Depends(require("admin")),
                     ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return await _change_limits(ctx, principal, "put", lambda _before: limits)


@router.patch("/limits", **documented(LimitsView))
async def patch_limits_route(patch: dict[str, Any] = Body(..., description="JSON merge patch of the limits."),
                             principal: Principal = Depends(require("admin")),
                             ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    def change(before: WorkspaceLimits) -> WorkspaceLimits:
        try:
            return patch_limits(before, patch)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None

    return await _change_limits(ctx, principal, "patch", change)


@router.post("/kill-switch", **documented(KillSwitchView))
async def kill_switch(body: KillSwitchBody, principal: Principal = Depends(require("operator")),
                      ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    view = await _change_limits(ctx, principal, "kill_switch",
                                lambda before: set_kill_switch(before, body.enabled, body.ad_account_id),
                                fields={"killed_ad_accounts": "ad_account_id"})
    limits = view["limits"]
    return {"workspace_id": principal.workspace_id, "kill_switch": limits["kill_switch"],
            "killed_ad_accounts": limits["killed_ad_accounts"], "version": view["version"],
            "changed": view["changed"]}


@router.get("/audit-log", **documented(AuditLog))
async def get_audit_log(limit: int = Query(50, ge=1, le=500),
                        before_id: int | None = Query(None, ge=1, le=_PG_BIGINT_MAX),
                        principal: Principal = Depends(require("viewer")),
                        ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await db.audit_log(conn, principal.workspace_id, limit=limit, before_id=before_id)
    return {"entries": [
        {"id": r["id"], "at": r["at"], "key_id": r["key_id"], "role": r["role"], "action": r["action"],
         "version": r["version"], "changes": r["changes"]}
        for r in rows
    ]}


def _decision_view(decision_json: dict[str, Any], event_id: uuid.UUID) -> dict[str, Any]:
    decision = Decision.model_validate(decision_json)
    return {**decision_json, "http_status": http_status(decision), "event_id": str(event_id),
            "event_type": "guardrail.approved" if decision.approved else "guardrail.blocked"}


@router.get("/decisions/{request_id}", **documented(DecisionView, 404))
async def get_decision(request_id: uuid.UUID, principal: Principal = Depends(require("viewer")),
                       ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        row = await db.decision_by_request(conn, principal.workspace_id, request_id)
    if row is None:
        raise ApiError(404, "not_found", f"no decision for request {request_id}", field="request_id")
    view = _decision_view(row["decision"], row["event_id"])
    view["looked_up_request_id"] = str(request_id)
    return view


@router.get("/decisions", **documented(DecisionList))
async def list_decisions(source_id: str | None = Query(None, min_length=1, pattern=_NO_NUL),
                         limit: int = Query(50, ge=1, le=500),
                         principal: Principal = Depends(require("viewer")),
                         ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await db.list_decisions(conn, principal.workspace_id, source_id=source_id, limit=limit)
    return {"decisions": [_decision_view(r["decision"], r["event_id"]) for r in rows]}


@router.get("/ledger", **documented(LedgerView))
async def get_ledger(day: date | None = Query(None, description="Local day (YYYY-MM-DD); default today."),
                     platform: Platform = Query("meta", description="Platform of ad_account_id."),
                     ad_account_id: str | None = Query(None, max_length=128, description=(
                         "Whose today is the default day: this account's local day (UTC when not given or unknown).")),
                     principal: Principal = Depends(require("viewer")),
                     ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    zone = (directory_of(ctx.extra).zone_for(principal.workspace_id, platform, ad_account_id)
            if ad_account_id else UTC_ZONE)
    the_day = day or local_day(ctx.clock.now(), zone)
    async with ctx.pool.acquire() as conn:
        ledger = await db.ledger_for_day(conn, principal.workspace_id, the_day)
        limits = await db.load_limits(conn, principal.workspace_id)
    daily_cap, monthly_cap = limits.daily_cap_eur_cents, limits.monthly_cap_eur_cents
    return {
        "workspace_id": principal.workspace_id,
        **ledger,
        "timezone_name": zone.key,
        "daily_cap_eur_cents": daily_cap,
        "monthly_cap_eur_cents": monthly_cap,
        "daily_remaining_eur_cents": None if daily_cap is None else max(0, daily_cap - ledger["exposure_eur_cents"]),
        "monthly_remaining_eur_cents": (
            None if monthly_cap is None else max(0, monthly_cap - ledger["month_exposure_eur_cents"])),
    }


class DryRunAction(BudgetAction):
    """A proposed action; ``action_id`` may be left out (one is made up for the dry run)."""

    action_id: uuid.UUID = Field(default_factory=uuid.uuid4, description="Optional: the proposer's action id.")


class DryRunBody(BaseModel):
    """A change set as its source would request it."""

    model_config = ConfigDict(extra="forbid")

    source: Source = Field(description="Who would ask: pool, rule, pacing, manual or undo.")
    source_id: str = Field(min_length=1, max_length=128, pattern=_NO_NUL, description="Pool id, rule id, plan id...")
    manual: bool = Field(default=False, description="Asked by a person (rate-limited) rather than a schedule.")
    actions: list[DryRunAction] = Field(min_length=1, max_length=500)
    pool_daily_budget_cents: int | None = Field(default=None, ge=0)
    currency: Currency | None = Field(default=None, description="Currency of pool_daily_budget_cents.")
    change_pool_member_budgets: bool = Field(default=False, description="A rule's opt-in to change pool members.")


@router.post("/dry-run", **documented(DryRunView))
async def dry_run(body: DryRunBody, principal: Principal = Depends(require("viewer")),
                  ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    """What the guardrails would decide on this change set now; nothing is recorded, reserved or published."""
    ws = principal.workspace_id
    try:
        request = AllocationRequested(
            request_id=uuid.uuid4(), source=body.source, source_id=body.source_id,
            idempotency_key=f"dry-run-{uuid.uuid4()}", manual=body.manual,
            actions=[BudgetAction.model_validate(a.model_dump()) for a in body.actions],
            pool_daily_budget_cents=body.pool_daily_budget_cents, currency=body.currency,
            requested_by=principal.key_id, change_pool_member_budgets=body.change_pool_member_budgets)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    decision, now = await workflow.dry_run(ctx, ws, request, accounts=directory_of(ctx.extra))
    return {
        "dry_run": True, "status": decision.status, "check": decision.check, "reason": decision.reason,
        "details": decision.details, "observe_only": decision.observe_only, "retry_after_s": decision.retry_after_s,
        "notes": list(decision.notes), "decided_at": now.isoformat(),
        "actions": action_verdicts(request.actions, decision),
    }


#: Entity ids per membership question (a rule's scope larger than this asks in several).
MAX_MEMBERSHIP_IDS = 5000


class PoolMembershipBody(BaseModel):
    """Entities to look up (a rule's scope, say)."""

    model_config = ConfigDict(extra="forbid")

    entity_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=_NO_NUL)]] = Field(
        min_length=1, max_length=MAX_MEMBERSHIP_IDS, description="Platform entity ids (ad sets, campaigns, ads).")


@router.post("/pool-membership", **documented(PoolMembershipView))
async def pool_membership(body: PoolMembershipBody, principal: Principal = Depends(require("viewer")),
                          ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    """Which of ``entity_ids`` belong to a budget pool, exactly as the arbiter sees it: the membership each pool
    announces on pool.members_changed whenever it changes (the later announcement wins an entity; pools that never
    announced are learned from their approved allocations). A rule's set_budget on a member is dropped unless the
    rule opted in (``change_pool_member_budgets``); pause and activate pass. A read: nothing is recorded."""
    ids = sorted(set(body.entity_ids))
    async with ctx.pool.acquire() as conn:
        members = await db.pool_members(conn, principal.workspace_id, ids)
    return {"workspace_id": principal.workspace_id, "checked": len(ids),
            "members": [m.model_dump(mode="json") for m in members]}
