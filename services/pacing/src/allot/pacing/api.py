"""HTTP API of the pacing service (viewer reads; operator writes, approves, pauses and snapshots).

All routes are scoped to the caller's workspace: another workspace's plan is a 404.

Plans
    POST   /api/v1/pacing/plans                                   create a flight plan (201)
    GET    /api/v1/pacing/plans?campaign_id=&state=&limit=        list plans
    GET    /api/v1/pacing/plans/{plan_id}                         one plan
    PATCH  /api/v1/pacing/plans/{plan_id}                         change any field but currency (re-validated whole)
    POST   /api/v1/pacing/plans/{plan_id}/pause                   manual pause (any state -> PAUSED)
    POST   /api/v1/pacing/plans/{plan_id}/resume                  PAUSED or PACING_HOLD -> ACTIVE
    GET    /api/v1/pacing/plans/{plan_id}/transitions             state changes, newest first
    GET    /api/v1/pacing/plans/{plan_id}/planned?points=48       expected spend over the whole flight (for charts)

Snapshots
    POST   /api/v1/pacing/plans/{plan_id}/snapshots               take a snapshot now (201; 200 if one exists
                                                                  for this exact instant)
    GET    /api/v1/pacing/plans/{plan_id}/snapshots/latest        latest snapshot (404 when none)
    GET    /api/v1/pacing/plans/{plan_id}/snapshots?start_time=&end_time=&limit=
                                                                  start_time <= taken_at <= end_time, oldest first
    GET    /api/v1/pacing/snapshots?campaign_id=&start_time=&end_time=&limit=
                                                                  the same across the plans of a campaign

Proposals
    GET    /api/v1/pacing/plans/{plan_id}/proposals?status=open|all|<status>
                                                                  open = pending_approval + needs_budget
    GET    /api/v1/pacing/plans/{plan_id}/proposals/{proposal_id}
    POST   /api/v1/pacing/plans/{plan_id}/proposals/{proposal_id}/approve
                                                                  -> allocation.requested (or needs_budget); a
                                                                  proposal a newer snapshot replaced applies the
                                                                  current one within 10 %, else 409
                                                                  proposal_superseded with ``current`` in the body
    POST   /api/v1/pacing/plans/{plan_id}/proposals/{proposal_id}/reject

A snapshot's channels and deals carry, as the seed's data model does, ``effective_cpm`` (spend per 1,000
impressions in currency units; null without impressions), ``fill_rate`` and, for deals, ``win_rate``: null
(unknown), because no metrics report carries bid requests or auctions won yet.  A channel with no allocated
budget that spends reports it as ``unplanned_spend_cents`` and is never a target of a proposal.

Money is integer cents beside the plan's ISO 4217 currency.  Validation failures are 422 naming the
field (``flight_end``, ``channels``, ``channels.0.allocated_budget_cents``, ``curve.kind`` ...).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import fields
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from allot.contracts.payloads import Currency, EntityType, Platform
from allot.pacing import workflow
from allot.pacing.adapters import postgres as db
from allot.pacing.domain import planned_spend, within_tolerance
from allot.pacing.domain.plans import plan_account
from allot.pacing.domain.stored import StoredAction, StoredPlan, StoredProposal, StoredSnapshot, StoredTransition
from allot.pacing.metrics import PROPOSALS, TRANSITIONS
from allot.pacing.scheduler import observe
from allot.pacing.settings import PacingSettings
from allot.runtime.accounts import AccountRef, account_refusals, directory_of
from allot.runtime.auth import Principal, require
from allot.runtime.deps import settings_of
from allot.runtime.http import ApiError
from allot.runtime.openapi import Body as ResponseBody
from allot.runtime.openapi import Instant, documented, errors
from allot.runtime.service import ServiceContext, get_ctx

router = APIRouter(prefix="/api/v1/pacing", tags=["pacing"])

Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Ctx = Annotated[ServiceContext, Depends(get_ctx)]

MAX_INTERVAL_S = 7 * 86_400


# ---------------------------------------------------------------- request models


#: Far above any real budget, and sums of such amounts stay inside PostgreSQL bigint (beyond: a 500 before).
MAX_CENTS = 10**15
#: Text compared in SQL: PostgreSQL text cannot hold NUL (a 500 before).
_NO_NUL = r"^[^\x00]*$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text and jsonb cannot store U+0000: refuse it as a 422 naming the field.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL (U+0000) characters")
        return value


class EntityIn(_In):
    """A platform entity: whose spend counts toward a channel/deal, or whose daily budget a channel moves."""

    platform: Platform
    ad_account_id: str = Field(min_length=1, max_length=200)
    entity_type: EntityType
    entity_id: str = Field(min_length=1, max_length=200)


class ChannelIn(_In):
    name: str = Field(min_length=1, max_length=100)
    allocated_budget_cents: int = Field(ge=0, le=MAX_CENTS)
    entities: list[EntityIn] = Field(default_factory=list, max_length=500)
    budget_entity: EntityIn | None = Field(default=None, description="Entity whose daily budget is moved.")


class DealIn(_In):
    deal_id: str = Field(min_length=1, max_length=200)
    allocated_budget_cents: int = Field(ge=0, le=MAX_CENTS)
    entities: list[EntityIn] = Field(default_factory=list, max_length=500)


class CurveIn(_In):
    kind: Literal["linear", "front_loaded", "back_loaded", "day_of_week"] = "linear"
    exponent: float = Field(default=2.0, ge=1.0, le=10.0, description="front_loaded / back_loaded only.")
    weekday_weights: list[float] | None = Field(default=None, description="day_of_week: 7 weights, Monday first.")

    @field_validator("weekday_weights")
    @classmethod
    def _weights(cls, value: list[float] | None, info: ValidationInfo) -> list[float] | None:
        if info.data.get("kind") == "day_of_week":
            if value is None or len(value) != 7:
                raise ValueError("day_of_week needs exactly 7 weights (Monday..Sunday)")
            if any(not math.isfinite(w) or w < 0 for w in value):
                raise ValueError("weights must be finite and >= 0")
            if sum(value) <= 0:
                raise ValueError("at least one weight must be positive")
        return value


class ApprovalConfigIn(_In):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    pacing_adjustment: bool = Field(
        default=False, alias="PACING_ADJUSTMENT",
        description="On: proposals wait for a human approve/reject. Off: they are requested automatically.")


class ThresholdsIn(_In):
    underpacing_warning_pct: float = Field(default=10.0, ge=0, le=1000)
    underpacing_critical_pct: float = Field(default=25.0, ge=0, le=1000)
    overpacing_warning_pct: float = Field(default=10.0, ge=0, le=1000)
    overpacing_critical_pct: float = Field(default=25.0, ge=0, le=1000)
    min_reallocation_amount_cents: int = Field(default=10_000, ge=0, le=MAX_CENTS)
    max_reallocation_pct: float = Field(default=30.0, ge=0, le=100)

    @field_validator("underpacing_critical_pct", "overpacing_critical_pct")
    @classmethod
    def _critical_above_warning(cls, value: float, info: ValidationInfo) -> float:
        warning = info.data.get(str(info.field_name).replace("critical", "warning"))
        if warning is not None and value < warning:
            raise ValueError(f"must be >= {str(info.field_name).replace('critical', 'warning')} ({warning})")
        return value


def _check_entities(channels: list[ChannelIn] | list[DealIn], what: str) -> None:
    seen: dict[tuple[str, str], str] = {}
    for item in channels:
        name = item.name if isinstance(item, ChannelIn) else item.deal_id
        for e in item.entities:
            key = (e.platform, e.entity_id)
            if key in seen and seen[key] != name:
                raise ValueError(f"entity {e.platform}:{e.entity_id} is listed in two {what}s ({seen[key]}, {name})")
            seen[key] = name


class PlanIn(_In):
    """A flight plan. Field order matters: later fields are checked against earlier ones."""

    campaign_id: str = Field(min_length=1, max_length=200)
    name: str = Field(default="", max_length=200)
    currency: Currency
    total_budget_cents: int = Field(ge=0, le=MAX_CENTS)
    flight_start: AwareDatetime
    flight_end: AwareDatetime
    channels: list[ChannelIn] = Field(min_length=1, max_length=50)
    deals: list[DealIn] = Field(default_factory=list, max_length=500)
    approval_config: ApprovalConfigIn = Field(default_factory=ApprovalConfigIn)
    curve: CurveIn = Field(default_factory=CurveIn)
    thresholds: ThresholdsIn = Field(default_factory=ThresholdsIn)
    snapshot_interval_s: int | None = Field(default=None, ge=60, le=MAX_INTERVAL_S)
    escalate_after_s: int | None = Field(default=None, ge=0, le=90 * 86_400)

    @field_validator("flight_end")
    @classmethod
    def _end_after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("flight_start")
        if start is not None and value <= start:
            raise ValueError("flight_end must be after flight_start")
        return value

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: list[ChannelIn], info: ValidationInfo) -> list[ChannelIn]:
        names = [c.name for c in value]
        if len(set(names)) != len(names):
            raise ValueError("channel names must be unique")
        total = info.data.get("total_budget_cents")
        allocated = sum(c.allocated_budget_cents for c in value)
        if total is not None and allocated > total:
            raise ValueError(f"channel budgets sum to {allocated}, above total_budget_cents {total}")
        _check_entities(value, "channel")
        budget_refs = [(c.budget_entity.platform, c.budget_entity.entity_id) for c in value if c.budget_entity]
        if len(set(budget_refs)) != len(budget_refs):
            raise ValueError("two channels name the same budget_entity")
        return value

    @field_validator("deals")
    @classmethod
    def _deals(cls, value: list[DealIn], info: ValidationInfo) -> list[DealIn]:
        ids = [d.deal_id for d in value]
        if len(set(ids)) != len(ids):
            raise ValueError("deal ids must be unique")
        total = info.data.get("total_budget_cents")
        allocated = sum(d.allocated_budget_cents for d in value)
        if total is not None and allocated > total:
            raise ValueError(f"deal budgets sum to {allocated}, above total_budget_cents {total}")
        _check_entities(value, "deal")
        return value


class PlanPatch(_In):
    """Fields to change; omitted fields keep their value (currency cannot change)."""

    campaign_id: str | None = None
    name: str | None = None
    total_budget_cents: int | None = None
    flight_start: AwareDatetime | None = None
    flight_end: AwareDatetime | None = None
    channels: list[dict[str, Any]] | None = None
    deals: list[dict[str, Any]] | None = None
    approval_config: dict[str, Any] | None = None
    curve: dict[str, Any] | None = None
    thresholds: dict[str, Any] | None = None
    snapshot_interval_s: int | None = None
    escalate_after_s: int | None = None


class ReasonIn(_In):
    reason: str = Field(default="", max_length=1000)


# ---------------------------------------------------------------- response models


class PlanView(ResponseBody):
    """A flight plan as stored (money in integer cents of ``currency``), with its pacing state."""

    plan_id: str
    workspace_id: str
    campaign_id: str
    name: str
    currency: str
    total_budget_cents: int
    flight_start: Instant
    flight_end: Instant
    channels: list[ChannelIn]
    deals: list[DealIn]
    approval_config: ApprovalConfigIn
    curve: CurveIn
    thresholds: ThresholdsIn
    snapshot_interval_s: int
    escalate_after_s: int
    state: str = Field(description="ACTIVE | PACING_HOLD | PAUSED")
    held_since: Instant | None = Field(description="Since when the plan is in PACING_HOLD.")
    last_slot_at: Instant | None = Field(description="The latest slot a snapshot was taken for.")
    created_at: Instant
    updated_at: Instant


class PlanList(ResponseBody):
    plans: list[PlanView]


class TransitionView(ResponseBody):
    from_state: str
    to_state: str
    reason: str
    actor: str = Field(description="'pacing' or the API key id.")
    snapshot_id: str | None = Field(description="The snapshot that caused it, if one did.")
    at: Instant


class TransitionList(ResponseBody):
    transitions: list[TransitionView] = Field(description="Newest first.")


class PlannedChannel(ResponseBody):
    channel: str
    expected_spend_cents: int


class PlannedPointView(ResponseBody):
    at: Instant
    expected_spend_cents: int
    channels: list[PlannedChannel] = Field(description="The flight's expected spend split by today's channels.")


class PlannedView(ResponseBody):
    """The spend the plan expects over its whole flight, for charts."""

    plan_id: str
    currency: str
    timezone_name: str = Field(description="The time zone the plan's curve runs in (its ad account's).")
    points: list[PlannedPointView] = Field(description="points + 1 instants, flight start to flight end.")


class PacingAlert(ResponseBody):
    level: str = Field(description="warning | critical")
    direction: str = Field(description="underpacing | overpacing")
    deviation_pct: float
    threshold_pct: float
    message: str


class ChannelPacingView(ResponseBody):
    channel: str
    allocated_budget_cents: int
    spend_cents: int
    expected_spend_cents: int
    pacing_pct: float
    deviation_pct: float
    impressions: int
    alert_level: str | None
    effective_cpm: float | None = Field(None, description="Spend per 1,000 impressions in currency units; null "
                                                          "without impressions.")
    fill_rate: float | None = None
    unplanned_spend_cents: int = Field(0, description="Spend of a channel without allocated budget.")


class DealPacingView(ResponseBody):
    deal_id: str
    allocated_budget_cents: int
    spend_cents: int
    expected_spend_cents: int
    pacing_pct: float
    deviation_pct: float
    impressions: int
    alert_level: str | None
    effective_cpm: float | None = None
    fill_rate: float | None = None
    win_rate: float | None = Field(None, description="Null: no report carries auctions won yet.")


class SnapshotView(ResponseBody):
    """The plan's pacing at one instant: spend against the curve, its alert and the proposals it made."""

    snapshot_id: str
    plan_id: str
    workspace_id: str
    campaign_id: str
    slot_at: Instant
    taken_at: Instant
    trigger: str = Field(description="schedule | manual")
    currency: str
    total_budget_cents: int
    total_spend_cents: int
    expected_spend_cents: int
    pacing_pct: float
    deviation_pct: float
    state_before: str
    state: str
    alert: PacingAlert | None
    channels: list[ChannelPacingView]
    deals: list[DealPacingView]
    proposal_ids: list[str]


class SnapshotList(ResponseBody):
    snapshots: list[SnapshotView] = Field(description="Oldest first.")


class ProposalAction(ResponseBody):
    """One budget change of a proposal: the target entity gains, the source entity gives."""

    action_id: str
    proposal_id: str
    role: str = Field(description="target | source")
    platform: str
    ad_account_id: str
    entity_type: str
    entity_id: str
    from_cents: int
    to_cents: int
    outcome: str | None
    error: str | None
    executed_at: Instant | None


class ProposalView(ResponseBody):
    """A proposed reallocation between two channels of a plan."""

    proposal_id: str
    plan_id: str
    workspace_id: str
    snapshot_id: str
    slot_key: str
    source_channel: str
    target_channel: str
    amount_cents: int
    moved_cents: int | None
    currency: str
    reason: str
    requires_approval: bool
    status: str = Field(description="pending_approval | needs_budget | requested | rejected | superseded | applied | "
                                    "failed | conflict")
    status_reason: str
    request_id: str | None = Field(description="The allocation.requested it became.")
    correlation_id: str
    created_at: Instant
    decided_at: Instant | None
    decided_by: str
    completed_at: Instant | None
    actions: list[ProposalAction]
    approved_for: str | None = Field(None, description="Approve: the superseded proposal the approval was for, when "
                                                       "it applied its current replacement.")


class ProposalList(ResponseBody):
    proposals: list[ProposalView]


# ---------------------------------------------------------------- helpers


def _settings(ctx: ServiceContext) -> PacingSettings:
    settings = settings_of(ctx, PacingSettings)
    return settings


def _not_found(what: str, ident: object) -> ApiError:
    return ApiError(404, "not_found", f"{what} {ident} not found")


def _definition(body: PlanIn, settings: PacingSettings) -> dict[str, Any]:
    return {
        "campaign_id": body.campaign_id,
        "name": body.name,
        "total_budget_cents": body.total_budget_cents,
        "flight_start": body.flight_start,
        "flight_end": body.flight_end,
        "channels": [c.model_dump(mode="json") for c in body.channels],
        "deals": [d.model_dump(mode="json") for d in body.deals],
        "curve": body.curve.model_dump(mode="json"),
        "thresholds": body.thresholds.model_dump(mode="json"),
        "requires_approval": body.approval_config.pacing_adjustment,
        "snapshot_interval_s": body.snapshot_interval_s or settings.pacing_snapshot_interval_s,
        "escalate_after_s": (body.escalate_after_s if body.escalate_after_s is not None
                             else settings.pacing_escalate_after_s),
    }


def _entity_rows(body: PlanIn) -> list[tuple[str, str, str, str, str, str]]:
    rows = [("channel", c.name, e.platform, e.ad_account_id, e.entity_type, e.entity_id)
            for c in body.channels for e in c.entities]
    rows += [("deal", d.deal_id, e.platform, e.ad_account_id, e.entity_type, e.entity_id)
             for d in body.deals for e in d.entities]
    # The same entity listed twice in one channel counts once.
    return list({(r[0], r[2], r[5]): r for r in rows}.values())


def _account_refs(body: PlanIn) -> list[AccountRef]:
    """Every ad account the plan names, with the field that names it."""
    refs: list[AccountRef] = []
    for i, c in enumerate(body.channels):
        refs += [(f"channels.{i}.entities.{j}.ad_account_id", e.platform, e.ad_account_id)
                 for j, e in enumerate(c.entities)]
        if c.budget_entity is not None:
            refs.append((f"channels.{i}.budget_entity.ad_account_id", c.budget_entity.platform,
                         c.budget_entity.ad_account_id))
    for i, d in enumerate(body.deals):
        refs += [(f"deals.{i}.entities.{j}.ad_account_id", e.platform, e.ad_account_id)
                 for j, e in enumerate(d.entities)]
    return refs


def _stored_accounts(row: StoredPlan) -> set[tuple[str | None, str | None]]:
    """(platform, ad account) of every entity a stored plan names."""
    entities = [e for c in row.channels for e in [*c.get("entities", []), c.get("budget_entity")] if e]
    entities += [e for d in row.deals for e in d.get("entities", [])]
    return {(e.get("platform"), e.get("ad_account_id")) for e in entities}


async def _refuse_foreign_accounts(ctx: ServiceContext, conn: Any, workspace_id: str, refs: list[AccountRef]) -> None:
    """422 naming the field of an ad account this workspace may not reference: one another workspace has
    connected, or (require_connected_accounts) any not connected to this one."""
    refusals = await account_refusals(ctx.extra, conn, workspace_id, refs,
                                      strict=ctx.settings.require_connected_accounts)
    if refusals:
        raise RequestValidationError([{"loc": ("body", *field.split(".")), "msg": reason, "type": "ad_account"}
                                      for field, reason in refusals])


def _plain(value: Any) -> Any:
    # asyncpg returns its own UUID subclass, which orjson does not serialise.
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _stored_out(item: StoredProposal | StoredAction | StoredSnapshot | StoredTransition) -> dict[str, Any]:
    """Every column of a stored proposal, action, snapshot or transition, in column order, ids as text."""
    return {f.name: _plain(getattr(item, f.name)) for f in fields(item)}


def plan_out(row: StoredPlan) -> dict[str, Any]:
    return {
        "plan_id": row.plan_id, "workspace_id": row.workspace_id, "campaign_id": row.campaign_id,
        "name": row.name, "currency": row.currency, "total_budget_cents": row.total_budget_cents,
        "flight_start": row.flight_start, "flight_end": row.flight_end, "channels": row.channels,
        "deals": row.deals, "approval_config": {"PACING_ADJUSTMENT": row.requires_approval},
        "curve": row.curve, "thresholds": row.thresholds, "snapshot_interval_s": row.snapshot_interval_s,
        "escalate_after_s": row.escalate_after_s, "state": row.state, "held_since": row.held_since,
        "last_slot_at": row.last_slot_at, "created_at": row.created_at, "updated_at": row.updated_at,
    }


def snapshot_out(row: StoredSnapshot) -> dict[str, Any]:
    return _stored_out(row)


async def _proposal_out(conn: Any, row: StoredProposal) -> dict[str, Any]:
    out = _stored_out(row)
    out["actions"] = [_stored_out(a) for a in await db.proposal_actions(conn, [row.proposal_id])]
    return out


async def _plan_now(conn: Any, workspace_id: str, plan_id: str) -> StoredPlan:
    """The plan as this transaction just wrote it."""
    row = await db.get_plan(conn, workspace_id, plan_id)
    assert row is not None
    return row


async def _proposal_now(conn: Any, plan_id: str, proposal_id: uuid.UUID) -> StoredProposal:
    """The proposal as the request just left it."""
    row = await db.get_proposal(conn, plan_id, proposal_id)
    assert row is not None
    return row


async def _plan_or_404(conn: Any, principal: Principal, plan_id: str, *, for_update: bool = False) -> StoredPlan:
    if "\x00" in plan_id:  # no plan id holds NUL, and PostgreSQL text cannot compare one (a 500 before)
        raise _not_found("plan", plan_id.replace("\x00", ""))
    row = await db.get_plan(conn, principal.workspace_id, plan_id, for_update=for_update)
    if row is None:
        raise _not_found("plan", plan_id)
    return row


def _time_window(start_time: datetime | None, end_time: datetime | None) -> None:
    if start_time is not None and end_time is not None and end_time < start_time:
        msg = "end_time must not be before start_time"
        raise ApiError(422, "validation_failed", f"end_time: {msg}", field="end_time",
                       extra={"errors": [{"field": "end_time", "message": msg}]})


# ---------------------------------------------------------------- plans


@router.post("/plans", status_code=201, **documented(PlanView))
async def create_plan(body: PlanIn, principal: Operator, ctx: Ctx) -> dict[str, Any]:
    now = ctx.clock.now()
    plan = {"plan_id": str(uuid.uuid4()), "workspace_id": principal.workspace_id, "currency": body.currency,
            **_definition(body, _settings(ctx)), "state": "ACTIVE", "held_since": None, "last_slot_at": None,
            "created_at": now, "updated_at": now, "created_by": principal.key_id}
    async with ctx.pool.acquire() as conn, conn.transaction():
        await _refuse_foreign_accounts(ctx, conn, principal.workspace_id, _account_refs(body))
        await db.insert_plan(conn, plan)
        await db.replace_plan_entities(conn, plan["plan_id"], principal.workspace_id, _entity_rows(body))
        row = await _plan_now(conn, principal.workspace_id, plan["plan_id"])
    return plan_out(row)


@router.get("/plans", **documented(PlanList))
async def list_plans(
    principal: Viewer, ctx: Ctx, campaign_id: str | None = Query(None, pattern=_NO_NUL),
    state: Literal["ACTIVE", "PACING_HOLD", "PAUSED"] | None = None, limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await db.list_plans(conn, principal.workspace_id, campaign_id=campaign_id, state=state, limit=limit)
    return {"plans": [plan_out(r) for r in rows]}


@router.get("/plans/{plan_id}", **documented(PlanView, 404))
async def get_plan(plan_id: str, principal: Viewer, ctx: Ctx) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        return plan_out(await _plan_or_404(conn, principal, plan_id))


@router.patch("/plans/{plan_id}", **documented(PlanView, 404))
async def update_plan(plan_id: str, body: PlanPatch, principal: Operator, ctx: Ctx) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await _plan_or_404(conn, principal, plan_id, for_update=True)
        current = plan_out(row)
        merged = {k: current[k] for k in PlanIn.model_fields if k in current}
        merged["approval_config"] = {"pacing_adjustment": row.requires_approval}
        patch = body.model_dump(exclude_unset=True)
        merged.update({k: v for k, v in patch.items() if v is not None})
        try:
            validated = PlanIn.model_validate(merged)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from None
        named = _stored_accounts(row)  # accounts the plan names already stay (a disconnected one can be removed)
        await _refuse_foreign_accounts(ctx, conn, principal.workspace_id,
                                       [r for r in _account_refs(validated) if (r[1], r[2]) not in named])
        definition = _definition(validated, _settings(ctx))
        await db.update_plan_definition(conn, {"plan_id": plan_id, **definition, "updated_at": ctx.clock.now()})
        await db.replace_plan_entities(conn, plan_id, principal.workspace_id, _entity_rows(validated))
        return plan_out(await _plan_now(conn, principal.workspace_id, plan_id))


async def _set_state(ctx: ServiceContext, principal: Principal, plan_id: str, to_state: str, allowed_from: set[str],
                     reason: str) -> dict[str, Any]:
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await _plan_or_404(conn, principal, plan_id, for_update=True)
        if row.state != to_state:
            if row.state not in allowed_from:
                raise ApiError(409, "invalid_state", f"plan is {row.state}; cannot go to {to_state}",
                               field="state")
            await db.set_plan_state(conn, plan_id, to_state, None, now)
            await db.insert_transitions(conn, [(plan_id, principal.workspace_id, row.state, to_state, reason,
                                                principal.key_id, None, now)])
            TRANSITIONS.labels("pacing", to_state).inc()
        return plan_out(await _plan_now(conn, principal.workspace_id, plan_id))


@router.post("/plans/{plan_id}/pause", **documented(PlanView, 404, 409))
async def pause_plan(plan_id: str, principal: Operator, ctx: Ctx, body: ReasonIn | None = None) -> dict[str, Any]:
    reason = (body.reason if body else "") or "Manual pause"
    return await _set_state(ctx, principal, plan_id, "PAUSED", {"ACTIVE", "PACING_HOLD"}, reason)


@router.post("/plans/{plan_id}/resume", **documented(PlanView, 404, 409))
async def resume_plan(plan_id: str, principal: Operator, ctx: Ctx, body: ReasonIn | None = None) -> dict[str, Any]:
    reason = (body.reason if body else "") or "Manual resume"
    return await _set_state(ctx, principal, plan_id, "ACTIVE", {"PAUSED", "PACING_HOLD"}, reason)


@router.get("/plans/{plan_id}/transitions", **documented(TransitionList, 404))
async def list_transitions(plan_id: str, principal: Viewer, ctx: Ctx,
                           limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        await _plan_or_404(conn, principal, plan_id)
        return {"transitions": [_stored_out(t) for t in await db.list_transitions(conn, plan_id, limit)]}


@router.get("/plans/{plan_id}/planned", **documented(PlannedView, 404))
async def planned(plan_id: str, principal: Viewer, ctx: Ctx, points: int = Query(48, ge=1, le=500)) -> dict[str, Any]:
    """The spend the plan expects over its whole flight (``points`` + 1 instants, start to end), for the flight
    and per channel with today's split: what each snapshot's ``expected_spend_cents`` would be at that instant.
    The plan's curve runs in its ad account's time zone, named in ``timezone_name``."""
    async with ctx.pool.acquire() as conn:
        row = await _plan_or_404(conn, principal, plan_id)
    zones = directory_of(ctx.extra).zone_for
    plan = workflow.plan_from_row(row, zones)
    account = plan_account(plan.channels, plan.deals)
    zone = zones(plan.workspace_id, account.platform, account.ad_account_id).key if account is not None else "UTC"
    return {"plan_id": plan_id, "currency": plan.currency, "timezone_name": zone,
            "points": [{"at": p.at, "expected_spend_cents": p.expected_spend_cents,
                        "channels": [{"channel": name, "expected_spend_cents": cents} for name, cents in p.channels]}
                       for p in planned_spend(plan, points)]}


# ---------------------------------------------------------------- snapshots

#: 201 a new snapshot; 200 the one already taken at this instant; 409 the plan's data could not be evaluated.
_TAKE_SNAPSHOT: dict[str, Any] = {**documented(SnapshotView), "responses": {
    200: {"model": SnapshotView, "description": "This instant was already snapshotted: the same snapshot again."},
    **errors(404, 409)}}


@router.post("/plans/{plan_id}/snapshots", status_code=201, **_TAKE_SNAPSHOT)
async def take_snapshot(plan_id: str, principal: Operator, ctx: Ctx, response: Response) -> dict[str, Any]:
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            await _plan_or_404(conn, principal, plan_id)
            result = await workflow.take_snapshots(conn, [(plan_id, now)], now=now,
                                                   claimed_by=f"api:{principal.key_id}", trigger="manual",
                                                   zones=directory_of(ctx.extra).zone_for)
            await ctx.emit(conn, *result.envelopes)
        row = await db.snapshot_at_slot(conn, plan_id, now)
    if result.envelopes:
        ctx.flush()
    observe(result, "manual")
    if row is None:
        raise ApiError(409, "snapshot_failed", "the plan's data could not be evaluated; see the service log")
    if not result.snapshot_ids:
        response.status_code = 200  # this instant was already snapshotted: the same snapshot again
    return snapshot_out(row)


@router.get("/plans/{plan_id}/snapshots/latest", **documented(SnapshotView, 404))
async def latest_snapshot(plan_id: str, principal: Viewer, ctx: Ctx) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        await _plan_or_404(conn, principal, plan_id)
        row = await db.latest_snapshot(conn, plan_id)
    if row is None:
        raise _not_found("snapshot of plan", plan_id)
    return snapshot_out(row)


@router.get("/plans/{plan_id}/snapshots", **documented(SnapshotList, 404))
async def list_plan_snapshots(
    plan_id: str, principal: Viewer, ctx: Ctx, start_time: AwareDatetime | None = None,
    end_time: AwareDatetime | None = None, limit: int = Query(500, ge=1, le=5000),
) -> dict[str, Any]:
    _time_window(start_time, end_time)
    async with ctx.pool.acquire() as conn:
        await _plan_or_404(conn, principal, plan_id)
        rows = await db.list_snapshots(conn, principal.workspace_id, plan_id=plan_id, campaign_id=None,
                                       start_time=start_time, end_time=end_time, limit=limit)
    return {"snapshots": [snapshot_out(r) for r in rows]}


@router.get("/snapshots", **documented(SnapshotList))
async def list_campaign_snapshots(
    principal: Viewer, ctx: Ctx, campaign_id: str = Query(min_length=1, pattern=_NO_NUL),
    start_time: AwareDatetime | None = None,
    end_time: AwareDatetime | None = None, limit: int = Query(500, ge=1, le=5000),
) -> dict[str, Any]:
    _time_window(start_time, end_time)
    async with ctx.pool.acquire() as conn:
        rows = await db.list_snapshots(conn, principal.workspace_id, plan_id=None, campaign_id=campaign_id,
                                       start_time=start_time, end_time=end_time, limit=limit)
    return {"snapshots": [snapshot_out(r) for r in rows]}


# ---------------------------------------------------------------- proposals

ProposalStatus = Literal["open", "all", "pending_approval", "needs_budget", "requested", "rejected", "superseded",
                         "applied", "failed", "conflict"]


@router.get("/plans/{plan_id}/proposals", **documented(ProposalList, 404))
async def list_proposals(plan_id: str, principal: Viewer, ctx: Ctx, status: ProposalStatus = "open",
                         limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    statuses = {"open": list(workflow.OPEN_STATUSES), "all": None}.get(status, [status])
    async with ctx.pool.acquire() as conn:
        await _plan_or_404(conn, principal, plan_id)
        rows = await db.list_proposals(conn, plan_id, statuses, limit)
        return {"proposals": [await _proposal_out(conn, r) for r in rows]}


@router.get("/plans/{plan_id}/proposals/{proposal_id}", **documented(ProposalView, 404))
async def get_proposal(plan_id: str, proposal_id: uuid.UUID, principal: Viewer, ctx: Ctx) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        await _plan_or_404(conn, principal, plan_id)
        row = await db.get_proposal(conn, plan_id, proposal_id)
        if row is None:
            raise _not_found("proposal", proposal_id)
        return await _proposal_out(conn, row)


async def _open_proposal(conn: Any, plan_id: str, proposal_id: uuid.UUID) -> StoredProposal:
    row = await db.get_proposal(conn, plan_id, proposal_id, for_update=True)
    if row is None:
        raise _not_found("proposal", proposal_id)
    if row.status not in workflow.OPEN_STATUSES:
        raise ApiError(409, "proposal_closed", f"proposal is {row.status}; only open proposals "
                       f"({', '.join(workflow.OPEN_STATUSES)}) can be decided", field="status")
    return row


@router.post("/plans/{plan_id}/proposals/{proposal_id}/approve", **documented(ProposalView, 404, 409))
async def approve_proposal(plan_id: str, proposal_id: uuid.UUID, principal: Operator, ctx: Ctx) -> dict[str, Any]:
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            plan_row = await _plan_or_404(conn, principal, plan_id, for_update=True)
            prop = await _current_for_approval(conn, plan_id, proposal_id)
            status, envelopes = await workflow.request_proposal(
                conn, workflow.plan_from_row(plan_row), proposal_id=prop.proposal_id, slot=prop.slot_key,
                source_channel=prop.source_channel, target_channel=prop.target_channel,
                amount_cents=prop.amount_cents, now=now, requested_by=principal.key_id,
                correlation_id=prop.correlation_id)
            await ctx.emit(conn, *envelopes)
        if envelopes:
            ctx.flush()
        PROPOSALS.labels("pacing", status).inc()
        out = await _proposal_out(conn, await _proposal_now(conn, plan_id, prop.proposal_id))
        if prop.proposal_id != proposal_id:
            out["approved_for"] = str(proposal_id)
        return out


async def _current_for_approval(conn: Any, plan_id: str, proposal_id: uuid.UUID) -> StoredProposal:
    """The proposal an approval applies: the approved one while open; when a newer snapshot replaced it, the
    pair's current proposal if its amount is within ``MATERIAL_CHANGE_PCT`` % of the approved one, else 409
    ``proposal_superseded`` with the current proposal (or null) in the body, so the person sees what changed."""
    row = await db.get_proposal(conn, plan_id, proposal_id, for_update=True)
    if row is None or row.status != "superseded":
        return await _open_proposal(conn, plan_id, proposal_id)
    current = await db.current_proposal(conn, plan_id, row.source_channel, row.target_channel, for_update=True)
    if current is not None and within_tolerance(row.amount_cents, current.amount_cents):
        return current
    shown = jsonable_encoder(await _proposal_out(conn, current)) if current is not None else None
    why = (f"the situation changed: the current proposal moves {current.amount_cents} {current.currency} "
           f"cents instead of {row.amount_cents}; review and approve it" if current is not None
           else "the situation changed: no proposal is open for this pair any more")
    raise ApiError(409, "proposal_superseded", f"proposal was replaced by a newer snapshot; {why}", field="status",
                   extra={"current": shown})


@router.post("/plans/{plan_id}/proposals/{proposal_id}/reject", **documented(ProposalView, 404, 409))
async def reject_proposal(plan_id: str, proposal_id: uuid.UUID, principal: Operator, ctx: Ctx,
                          body: ReasonIn | None = None) -> dict[str, Any]:
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            await _plan_or_404(conn, principal, plan_id)
            await _open_proposal(conn, plan_id, proposal_id)
            await db.set_proposal_status(conn, [(proposal_id, "rejected", (body.reason if body else "") or "rejected",
                                                 None, None, now, principal.key_id)])
        PROPOSALS.labels("pacing", "rejected").inc()
        return await _proposal_out(conn, await _proposal_now(conn, plan_id, proposal_id))
