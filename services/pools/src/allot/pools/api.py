"""Budget-pools HTTP API (thin). Requests accept snake_case or camelCase; responses are camelCase.

Routes (viewer reads, operator writes/allocates; another workspace's pools are 404; every route is 503
while AI-native features are disabled):
- POST   /api/v1/budget-pools                              create (settings + up to 20 active members)
- GET    /api/v1/budget-pools                              list (?include_deleted=)
- GET    /api/v1/budget-pools/{id}                         one pool with its members
- PATCH  /api/v1/budget-pools/{id}                         change settings (never a queued/running allocation:
                                                           those use the settings snapshot stored with them)
- DELETE /api/v1/budget-pools/{id}                         soft delete; members deactivated
- POST   /api/v1/budget-pools/{id}/members                 add or reactivate a member (201 new, 200 updated)
- DELETE /api/v1/budget-pools/{id}/members/{memberId}      remove (deactivate) a member
- POST   /api/v1/budget-pools/{id}/simulate                what-if plan on stored history (from_date/to_date);
                                                           stores a simulation log, changes nothing else; each
                                                           move carries the guardrails' dry-run verdict
- POST   /api/v1/budget-pools/{id}/allocate                {"async": true} (default) → 202 queued;
                                                           {"async": false} → plan + publish, wait for the outcome:
                                                           200 outcomes | 423 guardrail block | 429 guardrail rate
                                                           limit | 202 still pending after the wait
- GET    /api/v1/budget-pools/{id}/allocations             allocation + simulation logs (?kind=, limit)
- GET    /api/v1/budget-pools/{id}/diminishing-returns     members that grew spend without improving ROAS
- GET    /api/v1/budget-pools/{id}/backtest                the engine replayed over stored metrics (from/to_date)

One pool per entity: an entity that is an active member of another pool of the workspace is refused with 409
``entity_in_another_pool`` naming that pool (poolId, poolName) and the request's field (``members.2.entityId`` on
create, ``entityId`` on add/re-activate). A paused pool keeps its members (so resuming never conflicts); deleting
a pool releases them; an inactive member claims nothing. The unique index ``pool_members_one_active_pool`` holds
it under concurrent requests: the loser's unique violation becomes the same 409.
Every membership change (create, add/re-activate, remove, delete) also writes pool.members_changed (the pool's full
active membership, versioned) to the outbox in its transaction (allot.pools.membership): the guardrails' view of
which pool owns which member's budget.

Engine settings per pool (persistenceIntervals, cooldownHours, deadbandPct, explorationShare, compositeWeights):
null/absent = PoolSettings' default (GET shows the values in force and lists the defaulted ones in
``engineDefaults``); 422 names the field and its range (domain/config.py KNOB_RANGES), then PoolSettings must
accept the whole pool. There is no ``tier`` (refused as an unknown field like any other).

Manual allocate order: pool paused → 409; then the LOCAL rate limit (one manual allocate per pool per
``pools_manual_rate_limit_s`` clock seconds → 429 + Retry-After, the body naming today's existing
request if any); then idempotency (the pool's allocation under ``pool:{id}:{utc_day}`` is returned,
nothing is published again). Rate limit first: a double click is refused outright, and a retry after
the window can never publish twice because the day's key already exists.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema
from pydantic.alias_generators import to_camel

from allot.contracts.localday import local_day
from allot.pools import workflow
from allot.pools.adapters import postgres as db
from allot.pools.domain import EngineState, MemberState
from allot.pools.domain.backtest import backtest
from allot.pools.domain.changeset import manual_key
from allot.pools.domain.config import KNOB_RANGES, MemberBounds, Problem, config_problems, knob_problems
from allot.pools.domain.reports import find_diminishing_returns
from allot.pools.membership import publish_membership
from allot.pools.metrics import ALLOCATIONS
from allot.pools.scheduler import AllocationWake, emitter, observe
from allot.pools.settings import PoolsSettings
from allot.runtime.accounts import AccountRef, account_refusals, directory_of
from allot.runtime.auth import Principal, require
from allot.runtime.deps import need, settings_of
from allot.runtime.dryrun import dry_run
from allot.runtime.http import ApiError
from allot.runtime.logging import get_logger
from allot.runtime.openapi import Body as ResponseBody
from allot.runtime.openapi import Json, documented, errors
from allot.runtime.service import ServiceContext, get_ctx

log = get_logger(__name__)

Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Metric = Literal["roas", "cpa", "conversions", "revenue"]
Frequency = Literal[4, 8, 12, 24]
PlatformName = Literal["meta", "google", "tiktok", "sandbox"]


async def ai_native_gate(request: Request) -> None:
    """Every budget-pool route answers 503 while AI-native features are disabled."""
    if not request.app.state.settings.ai_native_enabled:
        raise ApiError(
            503,
            "ai_native_disabled",
            "AI-native features are disabled (ALLOT_AI_NATIVE_ENABLED=false); the budget-pool API is "
            "unavailable until they are enabled",
        )


router = APIRouter(prefix="/api/v1/budget-pools", tags=["budget-pools"], dependencies=[Depends(ai_native_gate)])


def _aliases(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class _In(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class MemberIn(_In):
    """A pool member: a campaign or an ad set."""

    entity_type: Literal["campaign", "adset"]
    entity_id: str = Field(min_length=1, max_length=200)
    ad_account_id: str | None = Field(default=None, min_length=1, max_length=200)
    entity_name: str | None = Field(default=None, max_length=500)
    min_budget_cents: int | None = Field(default=None, ge=0, description="Floor; overrides the pool default.")
    max_budget_cents: int | None = Field(default=None, ge=0, description="Ceiling; overrides the pool default.")
    weight: float = Field(default=1.0, gt=0, le=100, description="Bias toward (>1) or away from (<1) this member.")
    is_active: bool = True
    platform: PlatformName = "sandbox"
    currency: Currency | None = Field(default=None, description="Defaults to the pool's currency (must match it).")


_DEFAULT_MIN = _aliases("defaultMinBudgetCents", "default_min_budget_cents", "minBudgetCents", "min_budget_cents")
_DEFAULT_MAX = _aliases("defaultMaxBudgetCents", "default_max_budget_cents", "maxBudgetCents", "max_budget_cents")
_MIN_CHANGE = _aliases("minBudgetChange", "min_budget_change", "minBudgetChangeCents", "min_budget_change_cents")
_FREQUENCY = _aliases(
    "allocationFrequencyHours", "allocation_frequency_hours", "allocationFrequency", "allocation_frequency"
)


class CompositeWeightsIn(_In):
    """Weights of the composite score (seed 001), all four given: value signals (roas, cpa; roas + cpa > 0,
    each within [0, 100]) and risk penalties (frequencyRisk, engagementDecay; each within [0, 0.5], together at
    most 0.5)."""

    roas: float
    cpa: float
    frequency_risk: float
    engagement_decay: float


class _EngineKnobs(_In):
    """Per-pool engine settings (seed 001: "thresholds you define"); null or absent = the engine's default."""

    persistence_intervals: int | None = Field(
        default=None, description="Consecutive plans a move's direction must hold before it is made; 1-24."
    )
    cooldown_hours: float | None = Field(
        default=None, description="Hours the engine waits before changing a member's budget back again; 0-168."
    )
    deadband_pct: float | None = Field(
        default=None, description="A target must differ from the budget by more than this % to count; 0-50."
    )
    exploration_share: float | None = Field(
        default=None, description="Share of the daily budget the engine may place to learn; 0-0.10."
    )
    composite_weights: CompositeWeightsIn | None = Field(
        default=None, description="All four weights; null: derived from optimizationMetric."
    )


class PoolIn(_EngineKnobs):
    """A new pool: its rules, its engine settings and (optionally) its first members."""

    name: str = Field(min_length=1, max_length=200)
    optimization_metric: Metric = "roas"
    daily_budget_cents: int = Field(gt=0, le=10**12)
    currency: Currency = "EUR"
    allocation_frequency_hours: Frequency = Field(default=24, validation_alias=_FREQUENCY)
    default_min_budget_cents: int = Field(default=0, ge=0, validation_alias=_DEFAULT_MIN)
    default_max_budget_cents: int | None = Field(default=None, ge=0, validation_alias=_DEFAULT_MAX)
    min_budget_change: int = Field(
        default=100,
        ge=1,
        validation_alias=_MIN_CHANGE,
        description="Minimum change in cents (smaller moves are not made).",
    )
    status: Literal["active", "paused"] = "active"
    autonomy: Literal["observe", "live"] = Field(default="observe", description="observe logs only; live publishes.")
    members: list[MemberIn] = Field(default_factory=list, max_length=200)


class PoolPatch(_EngineKnobs):
    """Any subset of the pool's settings (null clears defaultMaxBudgetCents and resets an engine setting to
    the engine's default)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    optimization_metric: Metric | None = None
    daily_budget_cents: int | None = Field(default=None, gt=0, le=10**12)
    currency: Currency | None = None
    allocation_frequency_hours: Frequency | None = Field(default=None, validation_alias=_FREQUENCY)
    default_min_budget_cents: int | None = Field(default=None, ge=0, validation_alias=_DEFAULT_MIN)
    default_max_budget_cents: int | None = Field(default=None, ge=0, validation_alias=_DEFAULT_MAX)
    min_budget_change: int | None = Field(default=None, ge=1, validation_alias=_MIN_CHANGE)
    status: Literal["active", "paused"] | None = None
    autonomy: Literal["observe", "live"] | None = None


class AllocateBody(_In):
    run_async: bool = Field(default=True, validation_alias=_aliases("async", "run_async", "runAsync"))


class SimulateBody(_In):
    from_date: date | None = Field(default=None, validation_alias=_aliases("from_date", "fromDate"))
    to_date: date | None = Field(default=None, validation_alias=_aliases("to_date", "toDate"))


_PATCH_TO_COLUMN = {"min_budget_change": "min_budget_change_cents"}
_NULLABLE = {"default_max_budget_cents", *workflow.ENGINE_KNOBS, "composite_weights"}
_CAMEL_FIELD = {
    "min_budget_change": "minBudgetChange",
    "default_min_budget_cents": "defaultMinBudgetCents",
    "default_max_budget_cents": "defaultMaxBudgetCents",
}

# ---------------------------------------------------------------- views


def _iso(v: datetime | None) -> str | None:
    return v.isoformat() if v is not None else None


def member_view(m: Any) -> dict[str, Any]:
    return {
        "id": str(m["member_id"]),
        "poolId": str(m["pool_id"]),
        "entityType": m["entity_type"],
        "entityId": m["entity_id"],
        "adAccountId": m["ad_account_id"],
        "entityName": m["entity_name"],
        "platform": m["platform"],
        "currency": m["currency"],
        "minBudgetCents": m["min_budget_cents"],
        "maxBudgetCents": m["max_budget_cents"],
        "weight": m["weight"],
        "isActive": m["is_active"],
        "createdAt": _iso(m["created_at"]),
        "updatedAt": _iso(m["updated_at"]),
    }


def engine_settings_view(p: Any) -> dict[str, Any]:
    """The engine settings a pool runs with (its own, or the engine's default where it set none: listed in
    ``engineDefaults``)."""
    ps = workflow.pool_settings(workflow.settings_snapshot(p))
    cw = ps.composite
    return {
        "persistenceIntervals": ps.persistence_intervals,
        "cooldownHours": ps.cooldown_hours,
        "deadbandPct": ps.deadband_pct,
        "explorationShare": ps.exploration_share,
        "compositeWeights": {
            "roas": cw.roas,
            "cpa": cw.cpa,
            "frequencyRisk": cw.frequency_risk,
            "engagementDecay": cw.engagement_decay,
        },
        "engineDefaults": [to_camel(k) for k in (*workflow.ENGINE_KNOBS, "composite_weights") if p[k] is None],
    }


def pool_view(p: Any, members: list[Any]) -> dict[str, Any]:
    state = EngineState.from_dict(p["engine_state"] or {})
    return {
        "id": str(p["pool_id"]),
        "workspaceId": p["workspace_id"],
        "name": p["name"],
        "optimizationMetric": p["optimization_metric"],
        "dailyBudgetCents": p["daily_budget_cents"],
        "currency": p["currency"],
        "allocationFrequencyHours": p["allocation_frequency_hours"],
        "defaultMinBudgetCents": p["default_min_budget_cents"],
        "defaultMaxBudgetCents": p["default_max_budget_cents"],
        "minBudgetChange": p["min_budget_change_cents"],
        "status": "deleted" if p["deleted_at"] else p["status"],
        "autonomy": p["autonomy"],
        **engine_settings_view(p),
        "version": p["version"],
        "createdAt": _iso(p["created_at"]),
        "updatedAt": _iso(p["updated_at"]),
        "deletedAt": _iso(p["deleted_at"]),
        "lastScheduledSlot": _iso(p["last_scheduled_slot"]),
        "engine": {
            "frozenUntil": _iso(state.frozen_until),
            "frozenReason": state.frozen_reason,
            "lastPlanAt": _iso(state.last_plan_at),
        },
        "activeMemberCount": sum(1 for m in members if m["is_active"]),
        "members": [member_view(m) for m in members],
    }


def outcome_view(o: Any) -> dict[str, Any]:
    return {
        "actionId": str(o["action_id"]),
        "entityId": o["entity_id"],
        "outcome": o["outcome"],
        "beforeCents": o["before_cents"],
        "afterCents": o["after_cents"],
        "observedCents": o["observed_cents"],
        "error": o["error"],
        "executedAt": _iso(o["executed_at"]),
    }


def allocation_view(a: Any, outcomes: list[Any]) -> dict[str, Any]:
    return {
        "id": str(a["allocation_id"]),
        "requestId": str(a["allocation_id"]) if a["kind"] == "allocation" else None,
        "poolId": str(a["pool_id"]),
        "kind": a["kind"],
        "trigger": a["trigger"],
        "status": a["status"],
        "autonomy": a["autonomy"],
        "idempotencyKey": a["idempotency_key"],
        "requestedBy": a["requested_by"],
        "createdAt": _iso(a["created_at"]),
        "plannedAt": _iso(a["planned_at"]),
        "updatedAt": _iso(a["updated_at"]),
        "eventId": str(a["event_id"]) if a["event_id"] else None,
        "settings": workflow.camel(a["settings"]),
        "inputs": a["inputs"],
        "plan": a["plan"],
        "actions": a["actions"],
        "decision": a["decision"],
        "outcomes": [outcome_view(o) for o in outcomes],
    }


# ---------------------------------------------------------------- response models (camelCase: by alias)

#: A moment as the views write it (``datetime.isoformat()``).
IsoTime = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


class _Out(ResponseBody):
    """A response body: snake_case fields written (and read) by their camelCase alias."""

    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)


class MemberView(_Out):
    """A pool member (an inactive one claims nothing)."""

    id: str
    pool_id: str
    entity_type: str = Field(description="campaign | adset")
    entity_id: str
    ad_account_id: str | None
    entity_name: str | None
    platform: str
    currency: str
    min_budget_cents: int | None = Field(description="Floor; null: the pool's default.")
    max_budget_cents: int | None = Field(description="Ceiling; null: the pool's default.")
    weight: float
    is_active: bool
    created_at: IsoTime
    updated_at: IsoTime


class CompositeWeightsView(_Out):
    roas: float
    cpa: float
    frequency_risk: float
    engagement_decay: float


class EngineStateView(_Out):
    frozen_until: IsoTime | None = Field(description="The engine makes no move on the pool until then.")
    frozen_reason: str | None
    last_plan_at: IsoTime | None


class PoolView(_Out):
    """A budget pool: its settings, the engine settings in force, its engine state and its members."""

    id: str
    workspace_id: str
    name: str
    optimization_metric: str = Field(description="roas | cpa | conversions | revenue")
    daily_budget_cents: int
    currency: str
    allocation_frequency_hours: int
    default_min_budget_cents: int
    default_max_budget_cents: int | None
    min_budget_change: int = Field(description="Minimum change in cents (smaller moves are not made).")
    status: str = Field(description="active | paused | deleted")
    autonomy: str = Field(description="observe logs only; live publishes.")
    persistence_intervals: int
    cooldown_hours: float
    deadband_pct: float
    exploration_share: float
    composite_weights: CompositeWeightsView
    engine_defaults: list[str] = Field(description="The engine settings the pool never set (the defaults apply).")
    version: int
    created_at: IsoTime
    updated_at: IsoTime
    deleted_at: IsoTime | None
    last_scheduled_slot: IsoTime | None
    engine: EngineStateView
    active_member_count: int
    members: list[MemberView]


class PoolList(_Out):
    pools: list[PoolView]


class ReportedEntity(_Out):
    """A campaign or ad set as last reported by the platform, with the pool it belongs to, if any."""

    entity_id: str
    entity_type: str
    entity_name: str | None
    platform: str
    ad_account_id: str
    ad_account_name: str | None
    timezone_name: str
    status: str
    daily_budget_cents: int | None
    currency: str | None
    reported_at: IsoTime | None
    pool_id: str | None
    pool_name: str | None


class ReportedEntityList(_Out):
    entities: list[ReportedEntity]


class OutcomeView(_Out):
    action_id: str
    entity_id: str
    outcome: str
    before_cents: int | None
    after_cents: int | None
    observed_cents: int | None
    error: str | None
    executed_at: IsoTime | None


class AllocationView(_Out):
    """An allocation (or a simulation): the settings it ran with, the engine's inputs and plan, its actions, the
    guardrails' decision and the executor's outcomes."""

    id: str
    request_id: str | None = Field(description="The allocation.requested id (null for a simulation).")
    pool_id: str
    kind: str = Field(description="allocation | simulation")
    trigger: str = Field(description="manual | scheduled | simulate")
    status: str = Field(description="queued | requested | observed | frozen | no_change | blocked | "
                                    "guardrail_observed | executing | executed | partially_failed | failed | "
                                    "cancelled | simulated")
    autonomy: str
    idempotency_key: str | None
    requested_by: str
    created_at: IsoTime
    planned_at: IsoTime | None
    updated_at: IsoTime
    event_id: str | None
    settings: dict[str, Json] = Field(description="The pool's settings when it was queued.")
    inputs: Json = Field(description="A summary of the engine's inputs.")
    plan: Json = Field(description="Every member's before / after / why, and the plan's flags.")
    actions: Json = Field(description="The (would-be) set_budget actions.")
    decision: Json = Field(description="The guardrail.blocked payload, if any.")
    outcomes: list[OutcomeView]


class SimulationView(AllocationView):
    """A simulation: what the engine would do on stored history; each action with the guardrails' verdict."""

    actions: list[dict[str, Json]] = Field(description="The would-be actions, each with its guardrails line.")
    guardrails: dict[str, Json] = Field(
        description="The guardrails' dry-run answer (available: true and their verdict, or available: false and "
                    "error).")


class AllocateResult(_Out):
    """A manual allocation: queued (202), or run and waited for (200 when it ended, 202 while still pending)."""

    request_id: str
    status: str
    idempotency_key: str | None = Field(None, description="Asynchronous: the day's key of the pool.")
    replayed: bool = Field(description="The day's allocation already existed: nothing published again.")
    allocation: AllocationView
    message: str | None = Field(None, description="Synchronous, still pending: where to look.")


class NoteView(_Out):
    """Something logged against the pool that is not an allocation (a pacing recommendation touching its members);
    the note's own keys follow."""

    id: str
    kind: str
    at: IsoTime


class AllocationLog(_Out):
    pool_id: str
    allocations: list[AllocationView] = Field(description="Newest first.")
    notes: list[NoteView]


class DiminishingReturnsFinding(_Out):
    member_id: str
    entity_id: str
    entity_name: str | None
    entity_type: str
    spend_before_cents_per_day: int
    spend_after_cents_per_day: int
    roas_before: float
    roas_after: float
    spend_growth_pct: float
    explanation: str


class DiminishingReturnsReport(_Out):
    """Active members whose spend grew without their ROAS improving."""

    pool_id: str
    as_of: IsoTime
    window_days: float
    min_spend_growth_pct: float
    entity_type: str
    evaluated_members: int
    findings: list[DiminishingReturnsFinding]


class BacktestMoveView(_Out):
    at: IsoTime
    entity_id: str
    from_cents: int
    to_cents: int
    explanation: str


class BacktestMember(_Out):
    entity_id: str
    current_budget_cents: int


class BacktestReport(_Out):
    """The engine replayed over stored metrics of the period, in the local days of the pool's ad account."""

    pool_id: str
    from_: IsoTime = Field(alias="from")
    to: IsoTime
    plans: int
    frozen_plans: int
    actual_spend_cents: int
    actual_value_cents: int
    estimated_value_cents: int
    estimated_uplift_pct: float
    changes_per_member_per_day: float
    timezone_name: str
    final_budgets: dict[str, int] = Field(description="Each member's budget at the end of the replay.")
    moves: list[BacktestMoveView]
    members: list[BacktestMember]


# ---------------------------------------------------------------- helpers


def _refuse(problems: list[Problem]) -> None:
    if problems:
        first = problems[0]
        raise ApiError(
            422,
            "validation_failed",
            "; ".join(f"{p.field}: {p.message}" for p in problems),
            field=first.field,
            extra={"errors": [{"field": p.field, "message": p.message} for p in problems]},
        )


def _bounds(members: list[Any], *, prefix: str = "members") -> list[MemberBounds]:
    return [
        MemberBounds(f"{prefix}.{i}", m["entity_id"], m["min_budget_cents"], m["max_budget_cents"], m["is_active"])
        for i, m in enumerate(members)
    ]


def _validate(settings: dict[str, Any], members: list[MemberBounds], *, budget_field: str = "dailyBudgetCents") -> None:
    _refuse(
        config_problems(
            daily_budget_cents=settings["daily_budget_cents"],
            default_min_budget_cents=settings["default_min_budget_cents"],
            default_max_budget_cents=settings["default_max_budget_cents"],
            members=members,
            budget_field=budget_field,
        )
    )


def _knobs(body: _EngineKnobs, names: Iterable[str]) -> dict[str, Any]:
    """The engine settings of a request body (snake_case; composite weights as a plain mapping)."""
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(body, name)
        out[name] = value.model_dump() if isinstance(value, CompositeWeightsIn) else value
    return out


def _validate_knobs(settings: dict[str, Any]) -> None:
    """422 naming the field and its allowed range; then PoolSettings itself must accept the whole pool."""
    _refuse(knob_problems(settings))
    try:
        workflow.pool_settings({"pool_id": "validation", **settings})
    except ValueError as exc:  # a rule of the engine's own (PoolSettings / CompositeWeights.__post_init__)
        text = str(exc)
        field = next((api for name, (api, _, _) in KNOB_RANGES.items() if name in text), None)
        if field is None:
            field = "compositeWeights" if "composite" in text or "risk" in text else "body"
        _refuse([Problem(field, f"refused by the engine: {text}")])


def _taken(conflicts: list[tuple[str, str, Any]]) -> ApiError:
    """409 for entities (field, entity id, owning pool row) that are active members of another pool."""
    field, entity, owner = conflicts[0]
    more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
    return ApiError(
        409,
        "entity_in_another_pool",
        f"entity {entity} is an active member of budget pool {owner['name']!r} ({owner['pool_id']}){more}; an "
        "entity can be in one pool only: remove it there (or delete that pool) first",
        field=field,
        extra={
            "entityId": entity,
            "poolId": str(owner["pool_id"]),
            "poolName": owner["name"],
            "conflicts": [
                {"field": f, "entityId": e, "poolId": str(o["pool_id"]), "poolName": o["name"]}
                for f, e, o in conflicts
            ],
        },
    )


async def _refuse_taken(conn: Any, workspace_id: str, pool_id: uuid.UUID, claims: dict[str, str]) -> None:
    """409 when an entity this pool claims (API field → entity id) is an active member of another pool."""
    if not claims:
        return
    owners = await db.active_owners(conn, workspace_id, list(claims.values()), except_pool=pool_id)
    conflicts = [(f, e, owners[e]) for f, e in claims.items() if e in owners]
    if conflicts:
        raise _taken(conflicts)


async def _lost_race(ctx: ServiceContext, workspace_id: str, pool_id: uuid.UUID, claims: dict[str, str]) -> ApiError:
    """The database refused a membership (another request committed the same entity into another pool between
    our check and our write): the same 409, looked up after the rollback."""
    async with ctx.pool.acquire() as conn:
        try:
            await _refuse_taken(conn, workspace_id, pool_id, claims)
        except ApiError as exc:
            return exc
    field = next(iter(claims))
    return ApiError(
        409,
        "entity_in_another_pool",
        "an entity of this request was added to another budget pool at the same moment (and has been released "
        "since); nothing was changed, retry",
        field=field,
    )


async def _refuse_foreign_accounts(ctx: ServiceContext, conn: Any, workspace_id: str, refs: list[AccountRef]) -> None:
    """422 naming the field of an ad account this workspace may not reference: one another workspace has
    connected, or (require_connected_accounts) any not connected to this one, a missing one included."""
    refusals = await account_refusals(ctx.extra, conn, workspace_id, refs,
                                      strict=ctx.settings.require_connected_accounts)
    _refuse([Problem(field, message) for field, message in refusals])


def _account_refs(members: list[dict[str, Any]]) -> list[AccountRef]:
    return [(f"members.{i}.adAccountId", m["platform"], m["ad_account_id"]) for i, m in enumerate(members)]


def _member_row(m: MemberIn, pool_currency: str, field: str) -> dict[str, Any]:
    currency = m.currency or pool_currency
    if currency != pool_currency:
        _refuse([Problem(f"{field}currency", f"member currency {currency} differs from the pool's {pool_currency}")])
    return {
        "entity_type": m.entity_type,
        "entity_id": m.entity_id,
        "ad_account_id": m.ad_account_id,
        "entity_name": m.entity_name,
        "platform": m.platform,
        "currency": currency,
        "min_budget_cents": m.min_budget_cents,
        "max_budget_cents": m.max_budget_cents,
        "weight": m.weight,
        "is_active": m.is_active,
    }


async def _pool_or_404(conn: Any, principal: Principal, pool_id: uuid.UUID, *, for_update: bool = False) -> Any:
    pool = await db.get_pool(conn, principal.workspace_id, pool_id, for_update=for_update)
    if pool is None:
        raise ApiError(404, "not_found", f"no budget pool {pool_id}", field="id")
    return pool


#: 200 a member updated or re-activated; 201 a new one.
_ADD_MEMBER: dict[str, Any] = {**documented(MemberView), "responses": {
    201: {"model": MemberView, "description": "A new member."}, **errors(404, 409)}}
#: 202 queued (or still pending after the wait); 200 run and ended; 409 the pool is paused; 423 / 429 the guardrails
#: blocked / rate-limited it (429 also: one manual allocation per pool per window).
_ALLOCATE: dict[str, Any] = {**documented(AllocateResult), "responses": {
    200: {"model": AllocateResult, "description": "Synchronous: the allocation ended (its outcomes)."},
    **errors(404, 409, 423, 429)}}


# ---------------------------------------------------------------- CRUD


@router.post("", status_code=201, **documented(PoolView, 409))
async def create_pool(
    body: PoolIn, principal: Principal = Depends(require("operator")), ctx: ServiceContext = Depends(get_ctx)
) -> dict[str, Any]:
    settings = {
        "name": body.name,
        "optimization_metric": body.optimization_metric,
        "daily_budget_cents": body.daily_budget_cents,
        "currency": body.currency,
        "allocation_frequency_hours": body.allocation_frequency_hours,
        "default_min_budget_cents": body.default_min_budget_cents,
        "default_max_budget_cents": body.default_max_budget_cents,
        "min_budget_change_cents": body.min_budget_change,
        "status": body.status,
        "autonomy": body.autonomy,
        **_knobs(body, (*workflow.ENGINE_KNOBS, "composite_weights")),
    }
    members = [_member_row(m, body.currency, f"members.{i}.") for i, m in enumerate(body.members)]
    _validate(settings, _bounds(members))
    _validate_knobs(settings)
    # One pool per entity: a paused pool keeps its members too, so this holds whatever the new pool's status.
    claims = {f"members.{i}.entityId": m["entity_id"] for i, m in enumerate(members) if m["is_active"]}
    now = ctx.clock.now()
    pool_id = uuid.uuid4()
    try:
        async with ctx.pool.acquire() as conn, conn.transaction():
            await _refuse_foreign_accounts(ctx, conn, principal.workspace_id, _account_refs(members))
            await _refuse_taken(conn, principal.workspace_id, pool_id, claims)
            pool = await db.insert_pool(conn, pool_id, principal.workspace_id, settings, now)
            for m in members:
                await db.upsert_member(conn, pool_id, principal.workspace_id, m, now)
            rows = await db.members_of(conn, [pool_id])
            await publish_membership(conn, emitter(ctx), pool_id, principal.workspace_id, now=now)
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name != db.ONE_ACTIVE_POOL_INDEX:
            raise
        raise await _lost_race(ctx, principal.workspace_id, pool_id, claims) from None
    ctx.flush()
    log.info(
        "pool_created",
        pool_id=str(pool_id),
        workspace_id=principal.workspace_id,
        members=len(rows),
        autonomy=body.autonomy,
    )
    return pool_view(pool, list(rows))


@router.get("", **documented(PoolList))
async def list_pools(
    include_deleted: bool = Query(False, alias="include_deleted"),
    principal: Principal = Depends(require("viewer")),
    ctx: ServiceContext = Depends(get_ctx),
) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        pools = await db.list_pools(conn, principal.workspace_id, include_deleted=include_deleted)
        members = await db.members_of(conn, [p["pool_id"] for p in pools])
    by_pool: dict[Any, list[Any]] = {}
    for m in members:
        by_pool.setdefault(m["pool_id"], []).append(m)
    return {"pools": [pool_view(p, by_pool.get(p["pool_id"], [])) for p in pools]}


@router.get("/entities", **documented(ReportedEntityList, 404))
async def list_reported_entities(
    pool_id: uuid.UUID | None = Query(None, description="Only the active members of this pool."),
    limit: int = Query(500, ge=1, le=2000),
    principal: Principal = Depends(require("viewer")),
    ctx: ServiceContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Campaigns and ad sets the platform reported for this workspace (latest report: name, account, budget,
    status), so a person picks pool members by name; each names the pool it belongs to, if any."""
    async with ctx.pool.acquire() as conn:
        if pool_id is not None:
            await _pool_or_404(conn, principal, pool_id)
        rows = await db.reported_entities(conn, principal.workspace_id, pool_id=pool_id, limit=limit)
    return {
        "entities": [
            {
                "entityId": r["entity_id"],
                "entityType": r["entity_type"],
                "entityName": r["entity_name"],
                "platform": r["platform"],
                "adAccountId": r["ad_account_id"],
                "adAccountName": r["ad_account_name"] or None,
                "timezoneName": r["timezone_name"] or "UTC",
                "status": r["status"],
                "dailyBudgetCents": r["daily_budget_cents"],
                "currency": r["currency"],
                "reportedAt": _iso(r["reported_at"]),
                "poolId": str(r["pool_id"]) if r["pool_id"] else None,
                "poolName": r["pool_name"],
            }
            for r in rows
        ]
    }


@router.get("/{pool_id}", **documented(PoolView, 404))
async def get_pool(
    pool_id: uuid.UUID, principal: Principal = Depends(require("viewer")), ctx: ServiceContext = Depends(get_ctx)
) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        pool = await _pool_or_404(conn, principal, pool_id)
        members = await db.members_of(conn, [pool_id])
    return pool_view(pool, list(members))


@router.patch("/{pool_id}", **documented(PoolView, 404))
async def patch_pool(
    pool_id: uuid.UUID,
    body: PoolPatch,
    principal: Principal = Depends(require("operator")),
    ctx: ServiceContext = Depends(get_ctx),
) -> dict[str, Any]:
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn, conn.transaction():
        pool = await _pool_or_404(conn, principal, pool_id, for_update=True)
        settings = {k: pool[k] for k in db.SETTINGS_COLUMNS}
        for name in body.model_fields_set:
            value = getattr(body, name)
            if value is None and name not in _NULLABLE:
                _refuse([Problem(_CAMEL_FIELD.get(name, to_camel(name)), "may not be null")])
            settings[_PATCH_TO_COLUMN.get(name, name)] = value
        settings.update(_knobs(body, body.model_fields_set & {*workflow.ENGINE_KNOBS, "composite_weights"}))
        members = list(await db.members_of(conn, [pool_id]))
        if settings["currency"] != pool["currency"] and members:
            _refuse([Problem("currency", "the currency of a pool with members cannot change")])
        _validate(settings, _bounds(members))
        _validate_knobs(settings)
        # Pausing keeps the members (and their claim on their entities), so resuming cannot conflict.
        pool = await db.update_pool_settings(conn, pool_id, settings, now)
    log.info("pool_updated", pool_id=str(pool_id), fields=sorted(body.model_fields_set))
    return pool_view(pool, members)


@router.delete("/{pool_id}", **documented(PoolView, 404))
async def delete_pool(
    pool_id: uuid.UUID, principal: Principal = Depends(require("operator")), ctx: ServiceContext = Depends(get_ctx)
) -> dict[str, Any]:
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn, conn.transaction():
        await _pool_or_404(conn, principal, pool_id, for_update=True)
        await db.soft_delete_pool(conn, pool_id, now)
        await publish_membership(conn, emitter(ctx), pool_id, principal.workspace_id, deleted=True, now=now)
        pool = await db.get_pool(conn, principal.workspace_id, pool_id, include_deleted=True)
        members = await db.members_of(conn, [pool_id])
    ctx.flush()
    log.info("pool_deleted", pool_id=str(pool_id))
    return pool_view(pool, list(members))


@router.post("/{pool_id}/members", **_ADD_MEMBER)
async def add_member(
    pool_id: uuid.UUID,
    body: MemberIn,
    response: Response,
    principal: Principal = Depends(require("operator")),
    ctx: ServiceContext = Depends(get_ctx),
) -> dict[str, Any]:
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn, conn.transaction():
        pool = await _pool_or_404(conn, principal, pool_id, for_update=True)
        row = _member_row(body, pool["currency"], "")
        others = [m for m in await db.members_of(conn, [pool_id]) if m["entity_id"] != body.entity_id]
        bounds = _bounds(others, prefix="existingMembers") + [
            MemberBounds("member", row["entity_id"], row["min_budget_cents"], row["max_budget_cents"], row["is_active"])
        ]
        problems = config_problems(
            daily_budget_cents=pool["daily_budget_cents"],
            default_min_budget_cents=pool["default_min_budget_cents"],
            default_max_budget_cents=pool["default_max_budget_cents"],
            members=bounds,
            budget_field="minBudgetCents",
        )
        _refuse([Problem(p.field.replace("member.", ""), p.message) for p in problems])
        await _refuse_foreign_accounts(ctx, conn, principal.workspace_id,
                                       [("adAccountId", row["platform"], row["ad_account_id"])])
        claims = {"entityId": row["entity_id"]} if row["is_active"] else {}
        await _refuse_taken(conn, principal.workspace_id, pool_id, claims)
        try:  # the check above cannot see a concurrent request's uncommitted row; the unique index can
            member, created = await db.upsert_member(conn, pool_id, principal.workspace_id, row, now)
        except asyncpg.UniqueViolationError as exc:  # the transaction is rolled back as the 409 leaves it
            if exc.constraint_name != db.ONE_ACTIVE_POOL_INDEX:
                raise
            raise await _lost_race(ctx, principal.workspace_id, pool_id, claims) from None
        await publish_membership(conn, emitter(ctx), pool_id, principal.workspace_id, now=now)
    ctx.flush()
    response.status_code = 201 if created else 200
    log.info("pool_member_upserted", pool_id=str(pool_id), entity_id=body.entity_id, created=created)
    return member_view(member)


@router.delete("/{pool_id}/members/{member_id}", **documented(MemberView, 404))
async def remove_member(
    pool_id: uuid.UUID,
    member_id: uuid.UUID,
    principal: Principal = Depends(require("operator")),
    ctx: ServiceContext = Depends(get_ctx),
) -> dict[str, Any]:
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn, conn.transaction():
        await _pool_or_404(conn, principal, pool_id, for_update=True)
        member = await db.deactivate_member(conn, pool_id, member_id, now)
        if member is not None:
            await publish_membership(conn, emitter(ctx), pool_id, principal.workspace_id, now=now)
    ctx.flush()
    if member is None:
        raise ApiError(404, "not_found", f"no member {member_id} in budget pool {pool_id}", field="memberId")
    return member_view(member)


# ---------------------------------------------------------------- simulate / allocate


@router.post("/{pool_id}/simulate", status_code=201, **documented(SimulationView, 404))
async def simulate(
    request: Request,
    pool_id: uuid.UUID,
    body: SimulateBody | None = Body(None),
    from_date: date | None = Query(None),
    to_date: date | None = Query(None),
    principal: Principal = Depends(require("operator")),
    ctx: ServiceContext = Depends(get_ctx),
) -> dict[str, Any]:
    start = (body.from_date if body else None) or from_date
    end = (body.to_date if body else None) or to_date
    if start and end and start > end:
        _refuse([Problem("to_date", f"to_date {end} is before from_date {start}")])
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn, conn.transaction():
        pool = await _pool_or_404(conn, principal, pool_id)
        members = await db.members_of(conn, [pool_id], active_only=True)
        zone = workflow.pool_zone(pool["workspace_id"], members, directory_of(ctx.extra).zone_for)
        row = await workflow.simulate(
            conn,
            pool,
            members,
            now=now,
            from_date=start,
            to_date=end,
            history_days=settings_of(ctx, PoolsSettings).pools_history_days,
            requested_by=principal.key_id,
            zone=zone,
        )
    ALLOCATIONS.labels("simulated").inc()
    view = allocation_view(row, [])
    verdict = await dry_run(ctx, request.headers, source="pool", source_id=str(pool_id),
                            actions=workflow.actions_of_view(view["actions"] or []),
                            pool_daily_budget_cents=int(row["settings"]["daily_budget_cents"]),
                            currency=row["settings"]["currency"])
    return workflow.with_verdicts(view, verdict)


def _retry_after(seconds: float) -> int:
    return max(1, math.ceil(seconds))


async def _wait_outcome(ctx: ServiceContext, allocation_id: uuid.UUID, timeout_s: float) -> tuple[Any, list[Any]]:
    """Poll this service's own projection until the allocation is terminal or the (real-time) wait ends."""
    deadline = time.monotonic() + timeout_s
    while True:
        async with ctx.pool.acquire() as conn:
            row = await db.get_allocation(conn, allocation_id)
            outcomes = list(await db.outcomes_of(conn, [allocation_id]))
        assert row is not None  # the caller wrote it before waiting
        if row["status"] in workflow.TERMINAL or time.monotonic() >= deadline:
            return row, outcomes
        await asyncio.sleep(0.1)


def _sync_response(row: Any, outcomes: list[Any], response: Response, *, replayed: bool) -> dict[str, Any]:
    view = allocation_view(row, outcomes)
    status = row["status"]
    body = {"requestId": view["requestId"], "status": status, "replayed": replayed, "allocation": view}
    if status == "blocked":
        d = row["decision"] or {}
        if d.get("check") == "rate_limited":
            retry = _retry_after(d.get("retryAfterS") or 60)
            raise ApiError(
                429,
                "rate_limited",
                d.get("reason") or "rate limited by the guardrails",
                headers={"Retry-After": str(retry)},
                extra={
                    "check": d.get("check"),
                    "retryAfterS": retry,
                    "requestId": view["requestId"],
                    "details": d.get("details"),
                },
            )
        raise ApiError(
            423,
            "guardrail_blocked",
            d.get("reason") or "blocked by a guardrail",
            extra={
                "check": d.get("check"),
                "details": d.get("details"),
                "requestId": view["requestId"],
                "decisionId": d.get("decisionId"),
            },
        )
    if status in workflow.TERMINAL and status != "guardrail_observed":
        response.status_code = 200
    else:
        response.status_code = 202
        if status not in workflow.TERMINAL:
            body["message"] = "still waiting for the guardrail / executor outcome; see GET .../allocations"
    return body


@router.post("/{pool_id}/allocate", status_code=202, **_ALLOCATE)
async def allocate(
    pool_id: uuid.UUID,
    response: Response,
    body: AllocateBody | None = Body(None),
    principal: Principal = Depends(require("operator")),
    ctx: ServiceContext = Depends(get_ctx),
) -> dict[str, Any]:
    settings = settings_of(ctx, PoolsSettings)
    run_async = body.run_async if body is not None else True
    now = ctx.clock.now()
    key, slot = manual_key(pool_id, now)
    result: workflow.RunResult | None = None
    async with ctx.pool.acquire() as conn, conn.transaction():
        pool = await _pool_or_404(conn, principal, pool_id, for_update=True)
        if pool["status"] != "active":
            raise ApiError(409, "pool_paused", "the pool is paused; set status active to allocate", field="status")
        last = pool["last_manual_allocate_at"]
        window = settings.pools_manual_rate_limit_s
        if last is not None and window > 0 and (now - last).total_seconds() < window:
            retry = _retry_after(window - (now - last).total_seconds())
            existing = await db.allocation_by_key(conn, pool_id, key)
            ALLOCATIONS.labels("rate_limited").inc()
            raise ApiError(
                429,
                "rate_limited",
                f"manual allocations of a pool are limited to one per {window} s; retry in {retry} s",
                headers={"Retry-After": str(retry)},
                extra={"retryAfterS": retry, "existingRequestId": str(existing["allocation_id"]) if existing else None},
            )
        await db.touch_manual_allocate(conn, pool_id, now)
        members = await db.members_of(conn, [pool_id], active_only=True)
        alloc, created = await workflow.queue_allocation(
            conn, pool, members, trigger="manual", key=key, slot=slot, requested_by=principal.key_id, now=now
        )
        if created and not run_async:
            result = await workflow.run_allocation(
                conn, emitter(ctx), alloc, now=now, history_days=settings.pools_history_days
            )
    if result is not None:
        observe(result)
        if result.emitted:
            ctx.flush()
    elif created:
        need(ctx, AllocationWake).set()
    else:
        ALLOCATIONS.labels("replayed").inc()
    log.info(
        "pool_allocate_requested",
        pool_id=str(pool_id),
        request_id=str(alloc["allocation_id"]),
        replayed=not created,
        run_async=run_async,
    )
    if run_async:
        async with ctx.pool.acquire() as conn:
            row = await db.get_allocation(conn, alloc["allocation_id"])
            outcomes = list(await db.outcomes_of(conn, [alloc["allocation_id"]]))
        assert row is not None  # created (or replayed) above
        return {
            "requestId": str(row["allocation_id"]),
            "status": row["status"],
            "idempotencyKey": key,
            "replayed": not created,
            "allocation": allocation_view(row, outcomes),
        }
    row, outcomes = await _wait_outcome(ctx, alloc["allocation_id"], settings.pools_sync_timeout_s)
    return _sync_response(row, outcomes, response, replayed=not created)


# ---------------------------------------------------------------- logs and reports


@router.get("/{pool_id}/allocations", **documented(AllocationLog, 404))
async def list_allocations(
    pool_id: uuid.UUID,
    kind: Literal["allocation", "simulation"] | None = Query(None),
    limit: int = Query(50, ge=1, le=500),
    principal: Principal = Depends(require("viewer")),
    ctx: ServiceContext = Depends(get_ctx),
) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        await _pool_or_404(conn, principal, pool_id)
        rows = await db.list_allocations(conn, pool_id, kind=kind, limit=limit)
        outcomes = await db.outcomes_of(conn, [r["allocation_id"] for r in rows])
        notes = await db.notes_of(conn, pool_id, limit)
    by_alloc: dict[Any, list[Any]] = {}
    for o in outcomes:
        by_alloc.setdefault(o["allocation_id"], []).append(o)
    return {
        "poolId": str(pool_id),
        "allocations": [allocation_view(r, by_alloc.get(r["allocation_id"], [])) for r in rows],
        "notes": [{"id": str(n["note_id"]), "kind": n["kind"], "at": _iso(n["at"]), **n["body"]} for n in notes],
    }


async def _members_now(
    conn: Any, pool: Any, *, entity_type: str | None = None
) -> tuple[list[Any], list[MemberState], dict[str, Any]]:
    members = [
        m
        for m in await db.members_of(conn, [pool["pool_id"]], active_only=True)
        if entity_type is None or m["entity_type"] == entity_type
    ]
    entities = await db.entities_of(conn, pool["workspace_id"], [m["entity_id"] for m in members])
    states = []
    for m in members:
        ent = entities.get(m["entity_id"])
        budget = ent["daily_budget_cents"] if ent is not None else None
        states.append(
            MemberState(
                m["entity_id"],
                int(budget or 0),
                m["min_budget_cents"],
                m["max_budget_cents"],
                m["weight"],
                is_active=ent is not None and budget is not None and ent["status"] != "deleted",
                paused=ent is not None and ent["status"] == "paused",
            )
        )
    return members, states, entities


@router.get("/{pool_id}/diminishing-returns", **documented(DiminishingReturnsReport, 404))
async def diminishing_returns(
    pool_id: uuid.UUID,
    window_days: float = Query(7.0, gt=0, le=60),
    min_spend_growth_pct: float = Query(10.0, ge=0, le=1000),
    entity_type: Literal["campaign", "adset", "all"] = Query("campaign"),
    principal: Principal = Depends(require("viewer")),
    ctx: ServiceContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Active members (campaigns by default, as the seed says) whose spend grew without ROAS improving."""
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn:
        pool = await _pool_or_404(conn, principal, pool_id)
        members, states, _ = await _members_now(conn, pool, entity_type=None if entity_type == "all" else entity_type)
        # The report only needs metric history: members without a reported budget still count.
        states = [
            MemberState(
                s.member_id,
                s.current_budget_cents,
                s.min_budget_cents,
                s.max_budget_cents,
                s.weight,
                is_active=True,
                paused=s.paused,
            )
            for s in states
        ]
        history = await workflow.load_history(
            conn,
            pool["workspace_id"],
            [m["entity_id"] for m in members],
            since=now - timedelta(days=2 * window_days + 1),
            until=now,
        )
    settings = workflow.pool_settings(workflow.settings_snapshot(pool))
    findings = find_diminishing_returns(
        settings, states, history, now=now, window_days=window_days, min_spend_growth_pct=min_spend_growth_pct
    )
    by_entity = {m["entity_id"]: m for m in members}
    return {
        "poolId": str(pool_id),
        "asOf": now.isoformat(),
        "windowDays": window_days,
        "minSpendGrowthPct": min_spend_growth_pct,
        "entityType": entity_type,
        "evaluatedMembers": len(members),
        "findings": [
            {
                "memberId": str(by_entity[f.member_id]["member_id"]),
                "entityId": f.member_id,
                "entityName": by_entity[f.member_id]["entity_name"],
                "entityType": by_entity[f.member_id]["entity_type"],
                "spendBeforeCentsPerDay": f.spend_before_cents_per_day,
                "spendAfterCentsPerDay": f.spend_after_cents_per_day,
                "roasBefore": round(f.roas_before, 6),
                "roasAfter": round(f.roas_after, 6),
                "spendGrowthPct": round(f.spend_growth_pct, 4),
                "explanation": f.explanation,
            }
            for f in findings
        ],
    }


@router.get("/{pool_id}/backtest", **documented(BacktestReport, 404))
async def run_backtest(
    pool_id: uuid.UUID,
    from_date: date | None = Query(None),
    to_date: date | None = Query(None),
    principal: Principal = Depends(require("viewer")),
    ctx: ServiceContext = Depends(get_ctx),
) -> dict[str, Any]:
    """The engine replayed over stored metrics of [from_date, to_date] (default: the last 14 days), days being
    the local days of the pool's ad account (its first member's)."""
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn:
        pool = await _pool_or_404(conn, principal, pool_id)
        members, states, _ = await _members_now(conn, pool)
    zone = workflow.pool_zone(pool["workspace_id"], members, directory_of(ctx.extra).zone_for)
    end_day = to_date or local_day(now, zone)
    start_day = from_date or end_day - timedelta(days=13)
    if start_day > end_day:
        _refuse([Problem("to_date", f"to_date {end_day} is before from_date {start_day}")])
    if (end_day - start_day).days > 92:
        _refuse([Problem("from_date", "a backtest covers at most 93 days")])
    start = workflow.day_start(start_day, zone)
    end = min(workflow.day_start(end_day + timedelta(days=1), zone), now)
    if end <= start:
        _refuse([Problem("from_date", f"from_date {start_day} is not in the past")])
    async with ctx.pool.acquire() as conn:
        settings = workflow.pool_settings(workflow.settings_snapshot(pool))
        history = await workflow.load_history(
            conn,
            pool["workspace_id"],
            [m["entity_id"] for m in members],
            since=start - timedelta(days=settings.lookback_days),
            until=end,
        )
    states = [s for s in states if s.is_active]
    history = {k: v for k, v in history.items() if any(s.member_id == k for s in states)}
    report = await asyncio.to_thread(backtest, settings, states, history, start=start, end=end, zone=zone)
    return {
        "poolId": str(pool_id),
        "from": start.isoformat(),
        "to": end.isoformat(),
        "plans": report.plans,
        "frozenPlans": report.frozen_plans,
        "actualSpendCents": report.actual_spend_cents,
        "actualValueCents": report.actual_value_cents,
        "estimatedValueCents": report.estimated_value_cents,
        "estimatedUpliftPct": round(report.estimated_uplift_pct, 4),
        "changesPerMemberPerDay": round(report.changes_per_member_per_day, 4),
        "timezoneName": str(getattr(zone, "key", zone)),
        "finalBudgets": dict(report.final_budgets),
        "moves": [
            {
                "at": mv.at.isoformat(),
                "entityId": mv.member_id,
                "fromCents": mv.from_cents,
                "toCents": mv.to_cents,
                "explanation": mv.explanation,
            }
            for mv in report.moves
        ],
        "members": [{"entityId": s.member_id, "currentBudgetCents": s.current_budget_cents} for s in states],
    }
