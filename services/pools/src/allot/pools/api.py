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
- GET    /api/v1/budget-pools/{id}/diminishing-returns     members that grew spend without improving ROAS; fitted curves
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

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from allot.pools import views, workflow
from allot.pools.adapters import postgres as db
from allot.pools.domain.config import Problem
from allot.pools.domain.stored import StoredAllocation, StoredMember, StoredOutcome
from allot.pools.views import (
    AllocateResult,
    AllocationLog,
    BacktestReport,
    DiminishingReturnsReport,
    MemberView,
    PoolList,
    PoolView,
    ReportedEntityList,
    SimulationView,
)
from allot.runtime.auth import Principal, require
from allot.runtime.http import ApiError
from allot.runtime.openapi import documented, errors
from allot.runtime.service import ServiceContext, get_ctx

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

# ---------------------------------------------------------------- parse


def _knobs(body: _EngineKnobs, names: Iterable[str]) -> dict[str, Any]:
    """The engine settings of a request body (snake_case; composite weights as a plain mapping)."""
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(body, name)
        out[name] = value.model_dump() if isinstance(value, CompositeWeightsIn) else value
    return out


def _invalid(problems: list[Problem]) -> ApiError:
    first = problems[0]
    return ApiError(
        422,
        "validation_failed",
        "; ".join(f"{p.field}: {p.message}" for p in problems),
        field=first.field,
        extra={"errors": [{"field": p.field, "message": p.message} for p in problems]},
    )


def _taken(exc: workflow.EntityTaken) -> ApiError:
    """409 for entities (field, entity id, owning pool) that are active members of another pool."""
    if not exc.conflicts:
        return ApiError(
            409,
            "entity_in_another_pool",
            "an entity of this request was added to another budget pool at the same moment (and has been released "
            "since); nothing was changed, retry",
            field=exc.field,
        )
    field, entity, owner = exc.conflicts[0]
    more = f" (and {len(exc.conflicts) - 1} more)" if len(exc.conflicts) > 1 else ""
    return ApiError(
        409,
        "entity_in_another_pool",
        f"entity {entity} is an active member of budget pool {owner.pool_name!r} ({owner.pool_id}){more}; an "
        "entity can be in one pool only: remove it there (or delete that pool) first",
        field=field,
        extra={
            "entityId": entity,
            "poolId": str(owner.pool_id),
            "poolName": owner.pool_name,
            "conflicts": [
                {"field": f, "entityId": e, "poolId": str(o.pool_id), "poolName": o.pool_name}
                for f, e, o in exc.conflicts
            ],
        },
    )


@contextmanager
def _refusals() -> Iterator[None]:
    """The application layer's refusals as this API's errors."""
    try:
        yield
    except workflow.PoolNotFound as exc:
        raise ApiError(404, "not_found", f"no budget pool {exc.args[0]}", field="id") from None
    except workflow.Invalid as exc:
        raise _invalid(exc.problems) from None
    except workflow.EntityTaken as exc:
        raise _taken(exc) from None
    except workflow.PoolPaused:
        raise ApiError(
            409, "pool_paused", "the pool is paused; set status active to allocate", field="status"
        ) from None
    except workflow.RateLimited as exc:
        raise ApiError(
            429,
            "rate_limited",
            f"manual allocations of a pool are limited to one per {exc.window_s} s; retry in {exc.retry_after_s} s",
            headers={"Retry-After": str(exc.retry_after_s)},
            extra={
                "retryAfterS": exc.retry_after_s,
                "existingRequestId": str(exc.existing_request_id) if exc.existing_request_id else None,
            },
        ) from None


def _member(m: MemberIn) -> dict[str, Any]:
    return m.model_dump(include=set(workflow.MEMBER_KEYS))


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
    with _refusals():
        pool, members = await workflow.create_pool(
            ctx, principal.workspace_id, settings, [_member(m) for m in body.members], now=ctx.clock.now()
        )
    return views.pool_view(pool, members)


@router.get("", **documented(PoolList))
async def list_pools(
    include_deleted: bool = Query(False, alias="include_deleted"),
    principal: Principal = Depends(require("viewer")),
    ctx: ServiceContext = Depends(get_ctx),
) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        pools = await db.list_pools(conn, principal.workspace_id, include_deleted=include_deleted)
        members = await db.members_of(conn, [p.pool_id for p in pools])
    by_pool: dict[uuid.UUID, list[StoredMember]] = {}
    for m in members:
        by_pool.setdefault(m.pool_id, []).append(m)
    return {"pools": [views.pool_view(p, by_pool.get(p.pool_id, [])) for p in pools]}


@router.get("/entities", **documented(ReportedEntityList, 404))
async def list_reported_entities(
    pool_id: uuid.UUID | None = Query(None, description="Only the active members of this pool."),
    limit: int = Query(500, ge=1, le=2000),
    principal: Principal = Depends(require("viewer")),
    ctx: ServiceContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Campaigns and ad sets the platform reported for this workspace (latest report: name, account, budget,
    status), so a person picks pool members by name; each names the pool it belongs to, if any."""
    with _refusals():
        async with ctx.pool.acquire() as conn:
            if pool_id is not None:
                await workflow.pool_of(conn, principal.workspace_id, pool_id)
            rows = await db.reported_entities(conn, principal.workspace_id, pool_id=pool_id, limit=limit)
    return {"entities": [views.reported_entity_view(r) for r in rows]}


@router.get("/{pool_id}", **documented(PoolView, 404))
async def get_pool(
    pool_id: uuid.UUID, principal: Principal = Depends(require("viewer")), ctx: ServiceContext = Depends(get_ctx)
) -> dict[str, Any]:
    with _refusals():
        async with ctx.pool.acquire() as conn:
            pool = await workflow.pool_of(conn, principal.workspace_id, pool_id)
            members = await db.members_of(conn, [pool_id])
    return views.pool_view(pool, list(members))


@router.patch("/{pool_id}", **documented(PoolView, 404))
async def patch_pool(
    pool_id: uuid.UUID,
    body: PoolPatch,
    principal: Principal = Depends(require("operator")),
    ctx: ServiceContext = Depends(get_ctx),
) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    problems: list[Problem] = []
    for name in body.model_fields_set:
        value = getattr(body, name)
        if value is None and name not in _NULLABLE:
            problems = [Problem(_CAMEL_FIELD.get(name, to_camel(name)), "may not be null")]
            break
        changes[_PATCH_TO_COLUMN.get(name, name)] = value
    changes.update(_knobs(body, body.model_fields_set & {*workflow.ENGINE_KNOBS, "composite_weights"}))
    with _refusals():
        pool, members = await workflow.update_pool(
            ctx, principal.workspace_id, pool_id, changes, problems=problems, now=ctx.clock.now()
        )
    return views.pool_view(pool, members)


@router.delete("/{pool_id}", **documented(PoolView, 404))
async def delete_pool(
    pool_id: uuid.UUID, principal: Principal = Depends(require("operator")), ctx: ServiceContext = Depends(get_ctx)
) -> dict[str, Any]:
    with _refusals():
        pool, members = await workflow.delete_pool(ctx, principal.workspace_id, pool_id, now=ctx.clock.now())
    return views.pool_view(pool, members)


@router.post("/{pool_id}/members", **_ADD_MEMBER)
async def add_member(
    pool_id: uuid.UUID,
    body: MemberIn,
    response: Response,
    principal: Principal = Depends(require("operator")),
    ctx: ServiceContext = Depends(get_ctx),
) -> dict[str, Any]:
    with _refusals():
        member, created = await workflow.add_member(
            ctx, principal.workspace_id, pool_id, _member(body), now=ctx.clock.now()
        )
    response.status_code = 201 if created else 200
    return views.member_view(member)


@router.delete("/{pool_id}/members/{member_id}", **documented(MemberView, 404))
async def remove_member(
    pool_id: uuid.UUID,
    member_id: uuid.UUID,
    principal: Principal = Depends(require("operator")),
    ctx: ServiceContext = Depends(get_ctx),
) -> dict[str, Any]:
    try:
        with _refusals():
            member = await workflow.remove_member(ctx, principal.workspace_id, pool_id, member_id,
                                                  now=ctx.clock.now())
    except workflow.MemberNotFound:
        raise ApiError(404, "not_found", f"no member {member_id} in budget pool {pool_id}", field="memberId") from None
    return views.member_view(member)


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
        raise _invalid([Problem("to_date", f"to_date {end} is before from_date {start}")])
    with _refusals():
        row, verdict = await workflow.simulate_pool(
            ctx, principal.workspace_id, pool_id, request.headers, from_date=start, to_date=end,
            requested_by=principal.key_id, now=ctx.clock.now(),
        )
    return views.with_verdicts(views.allocation_view(row, []), verdict)


def _sync_response(row: StoredAllocation, outcomes: list[StoredOutcome], response: Response, *,
                   replayed: bool) -> dict[str, Any]:
    view = views.allocation_view(row, outcomes)
    status = row.status
    body = {"requestId": view["requestId"], "status": status, "replayed": replayed, "allocation": view}
    if status == "blocked":
        d = row.decision or {}
        if d.get("check") == "rate_limited":
            retry = workflow.retry_after_s(d.get("retryAfterS") or 60)
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
    run_async = body.run_async if body is not None else True
    with _refusals():
        done = await workflow.allocate(
            ctx, principal.workspace_id, pool_id, run_async=run_async, requested_by=principal.key_id
        )
    row = done.allocation
    if run_async:
        return {
            "requestId": str(row.allocation_id),
            "status": row.status,
            "idempotencyKey": done.idempotency_key,
            "replayed": not done.created,
            "allocation": views.allocation_view(row, done.outcomes),
        }
    return _sync_response(row, done.outcomes, response, replayed=not done.created)


# ---------------------------------------------------------------- logs and reports


@router.get("/{pool_id}/allocations", **documented(AllocationLog, 404))
async def list_allocations(
    pool_id: uuid.UUID,
    kind: Literal["allocation", "simulation"] | None = Query(None),
    limit: int = Query(50, ge=1, le=500),
    principal: Principal = Depends(require("viewer")),
    ctx: ServiceContext = Depends(get_ctx),
) -> dict[str, Any]:
    with _refusals():
        async with ctx.pool.acquire() as conn:
            await workflow.pool_of(conn, principal.workspace_id, pool_id)
            rows = await db.list_allocations(conn, pool_id, kind=kind, limit=limit)
            outcomes = await db.outcomes_of(conn, [r.allocation_id for r in rows])
            notes = await db.notes_of(conn, pool_id, limit)
    return views.allocation_log_view(pool_id, rows, outcomes, notes)


@router.get("/{pool_id}/diminishing-returns", **documented(DiminishingReturnsReport, 404))
async def diminishing_returns(
    pool_id: uuid.UUID,
    window_days: float = Query(7.0, gt=0, le=60),
    min_spend_growth_pct: float = Query(10.0, ge=0, le=1000),
    entity_type: Literal["campaign", "adset", "all"] = Query("campaign"),
    principal: Principal = Depends(require("viewer")),
    ctx: ServiceContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Active members (campaigns by default, as the seed says) whose spend grew without ROAS improving, and each
    member's response curve as the engine fits it (spend against value per day, posterior mean)."""
    with _refusals():
        report = await workflow.diminishing_returns(
            ctx, principal.workspace_id, pool_id, window_days=window_days, min_spend_growth_pct=min_spend_growth_pct,
            entity_type=None if entity_type == "all" else entity_type,
        )
    return views.diminishing_returns_view(pool_id, report, window_days=window_days,
                                          min_spend_growth_pct=min_spend_growth_pct, entity_type=entity_type)


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
    with _refusals():
        run = await workflow.backtest_pool(ctx, principal.workspace_id, pool_id, from_date=from_date, to_date=to_date)
    return views.backtest_view(pool_id, run.report, start=run.start, end=run.end, zone=run.zone, members=run.members)
