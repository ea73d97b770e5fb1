"""Queue, plan and publish pool allocations; simulate; the one place that turns stored rows into engine inputs.

Every allocation — manual (API), queued (async API, run by the worker) or scheduled — is planned by
``run_allocation`` inside the caller's transaction:

1. lock the pool row (serialises engine-state updates of one pool across instances);
2. build the engine inputs from the SETTINGS AND MEMBER SNAPSHOT stored with the allocation when it was
   queued (a PATCH afterwards never changes a running allocation), the members' current budgets/status
   from the entity projection (latest metrics.ingested report, or a later executed change) and their
   metric history;
3. call the ONE engine function ``plan_allocation`` with the stored EngineState and persist the
   returned state (in observe autonomy too: the persistence/cooldown logic must see the plans it would
   have made, or an observed pool would never show a move);
4. write the log (inputs summary, every member's before/after/why) and, in ``live`` autonomy with at
   least one change and no freeze, emit ONE allocation.requested through the outbox (same transaction);
5. when the plan starts a freeze (``domain.freeze``: a pool-wide one, or members the oscillation detector holds),
   emit ONE notification.requested (``pool_frozen``) in the same transaction; a freeze that continues over
   later plans says nothing more.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import asyncpg
from pydantic.alias_generators import to_camel

from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.localday import day_bounds_utc, local_day
from allot.contracts.payloads import AllocationRequested, BudgetAction, NotificationRequested, NotifiedEntity
from allot.contracts.registry import TOPICS
from allot.pools.adapters import postgres as db
from allot.pools.domain import (
    EngineState,
    MemberState,
    MetricInterval,
    OptimizationMetric,
    PoolSettings,
    plan_allocation,
)
from allot.pools.domain.backtest import BacktestReport, backtest
from allot.pools.domain.changeset import ActionTarget, PlannedAction, manual_key, planned_actions, request_id_for
from allot.pools.domain.config import KNOB_RANGES, MemberBounds, Problem, config_problems, knob_problems
from allot.pools.domain.freeze import FreezeStart, freeze_started
from allot.pools.domain.models import AllocationPlan, CompositeWeights
from allot.pools.domain.netchange import net_change_bounds
from allot.pools.domain.reports import (
    DiminishingReturnsFinding,
    ResponseCurve,
    find_diminishing_returns,
    response_curves,
)
from allot.pools.domain.stored import (
    StoredAllocation,
    StoredEntity,
    StoredInterval,
    StoredMember,
    StoredOutcome,
    StoredOwner,
    StoredPool,
)
from allot.pools.membership import publish_membership
from allot.pools.metrics import ALLOCATIONS
from allot.pools.settings import PoolsSettings
from allot.runtime.accounts import AccountRef, account_refusals, directory_of
from allot.runtime.db import Conn
from allot.runtime.deps import need, settings_of
from allot.runtime.dryrun import dry_run
from allot.runtime.logging import get_logger
from allot.runtime.service import ServiceContext

log = get_logger(__name__)

Emit = Callable[[Conn, Sequence[Envelope[Any]]], Awaitable[None]]

#: Statuses after which nothing more will happen to an allocation.
TERMINAL = frozenset(
    {
        "observed",
        "frozen",
        "no_change",
        "blocked",
        "guardrail_observed",
        "executed",
        "partially_failed",
        "failed",
        "cancelled",
    }
)
NO_BUDGET = (
    "excluded: no daily budget reported yet for this entity (waiting for metrics.ingested with daily_budget_cents)"
)
NO_ACCOUNT = "excluded: no ad account known for this entity (set adAccountId or wait for a metrics report)"

#: Per-pool engine knobs (seed 001's "thresholds you define"); a pool that leaves one unset (NULL) gets
#: PoolSettings' default, resolved when a snapshot is taken. composite_weights stays null when unset: the
#: engine derives it from the optimisation metric (which is in the snapshot too).
ENGINE_KNOBS = ("persistence_intervals", "cooldown_hours", "deadband_pct", "exploration_share")
_POOL_FIELDS = {f.name: f for f in dataclasses.fields(PoolSettings)}
MEMBER_KEYS = (
    "entity_type",
    "entity_id",
    "ad_account_id",
    "entity_name",
    "platform",
    "currency",
    "min_budget_cents",
    "max_budget_cents",
    "weight",
    "is_active",
)


def camel(d: dict[str, Any]) -> dict[str, Any]:
    return {to_camel(k): camel(v) if isinstance(v, dict) else v for k, v in d.items()}


def knob_default(name: str) -> Any:
    """PoolSettings' default of an engine knob (the value a pool that never set it runs with)."""
    return _POOL_FIELDS[name].default


def settings_snapshot(pool: StoredPool) -> dict[str, Any]:
    """The pool's settings as stored with an allocation (snake_case, JSON-ready); unset knobs as their default."""
    snap = {"pool_id": str(pool.pool_id), **{k: getattr(pool, k) for k in db.SETTINGS_COLUMNS}}
    for k in ENGINE_KNOBS:
        if snap[k] is None:
            snap[k] = knob_default(k)
    return snap


def member_values(m: StoredMember) -> dict[str, Any]:
    """A stored member's MEMBER_KEYS (what ``member_row`` stores)."""
    return {k: getattr(m, k) for k in MEMBER_KEYS}


def members_snapshot(members: Sequence[StoredMember]) -> list[dict[str, Any]]:
    """Active members as stored with an allocation."""
    return [{"member_id": str(m.member_id), **member_values(m)} for m in members if m.is_active]


def pool_settings(snap: dict[str, Any]) -> PoolSettings:
    """PoolSettings of a settings snapshot (raises ValueError when PoolSettings refuses them).

    Snapshots taken before the engine knobs existed lack them: the engine defaults apply. The shorter
    cooldown for continuing a ramp never exceeds the pool's own cooldown (PoolSettings requires it)."""
    knobs: dict[str, Any] = {}
    for k in ENGINE_KNOBS:
        if snap.get(k) is not None:
            knobs[k] = int(snap[k]) if k == "persistence_intervals" else float(snap[k])
    if "cooldown_hours" in knobs and "continuation_cooldown_hours" in _POOL_FIELDS:
        knobs["continuation_cooldown_hours"] = min(
            float(knob_default("continuation_cooldown_hours")), knobs["cooldown_hours"]
        )
    cw = snap.get("composite_weights")
    return PoolSettings(
        pool_id=snap["pool_id"],
        daily_budget_cents=int(snap["daily_budget_cents"]),
        currency=snap["currency"],
        optimization_metric=OptimizationMetric(snap["optimization_metric"]),
        allocation_frequency_hours=int(snap["allocation_frequency_hours"]),
        default_min_budget_cents=int(snap["default_min_budget_cents"]),
        default_max_budget_cents=None
        if snap["default_max_budget_cents"] is None
        else int(snap["default_max_budget_cents"]),
        min_budget_change_cents=int(snap["min_budget_change_cents"]),
        composite_weights=None if cw is None else CompositeWeights(**cw),
        **knobs,
    )


@dataclass
class EngineInputs:
    pool: PoolSettings
    members: list[MemberState]
    history: dict[str, list[MetricInterval]]
    targets: dict[str, ActionTarget]
    snapshot: dict[str, dict[str, Any]]
    """Member snapshot by entity id (the engine's member id)."""
    excluded: dict[str, str] = field(default_factory=dict)
    entities: dict[str, StoredEntity] = field(default_factory=dict)


def _interval(r: StoredInterval) -> MetricInterval:
    reach = r.reach
    return MetricInterval(
        start_at=r.interval_start,
        end_at=r.interval_end,
        spend_cents=int(r.spend_cents),
        revenue_cents=int(r.revenue_cents),
        conversions=float(r.conversions),
        impressions=int(r.impressions),
        clicks=int(r.clicks),
        frequency=(r.impressions / reach) if reach else None,
    )


async def load_history(
    conn: Conn, workspace_id: str, entity_ids: Sequence[str], *, since: datetime, until: datetime
) -> dict[str, list[MetricInterval]]:
    history: dict[str, list[MetricInterval]] = {}
    for r in await db.history_of(conn, workspace_id, entity_ids, since=since, until=until):
        history.setdefault(r.entity_id, []).append(_interval(r))
    return history


async def load_inputs(
    conn: Conn,
    workspace_id: str,
    settings: dict[str, Any],
    members: list[dict[str, Any]],
    *,
    since: datetime,
    until: datetime,
    net_pct: int = 20,
    net_window_h: int = 72,
) -> EngineInputs:
    """Engine inputs from a settings + member snapshot and the projections (members without a budget excluded).

    Each member carries the window of the guardrails' rolling net-change budget (``net_pct`` % over
    ``net_window_h`` h, the guardrails' defaults): this plan moves it only within what the window still
    allows, so plans are not blocked for moving an entity too far, while its target stays planned on its
    floor and ceiling (money that must wait for the window is not parked on other members meanwhile).
    """
    ids = [m["entity_id"] for m in members]
    entities = await db.entities_of(conn, workspace_id, ids)
    history = await load_history(conn, workspace_id, ids, since=since, until=until)
    recent_changes = await db.budget_changes(conn, workspace_id, ids, since=until - timedelta(hours=net_window_h))
    states: list[MemberState] = []
    targets: dict[str, ActionTarget] = {}
    excluded: dict[str, str] = {}
    for m in members:
        eid = m["entity_id"]
        ent = entities.get(eid)
        budget = ent.daily_budget_cents if ent is not None else None
        # Where the entity lives is what its platform reports (the member's own fields are the fallback).
        account = (ent.ad_account_id if ent is not None else None) or m.get("ad_account_id")
        lo, hi = m.get("min_budget_cents"), m.get("max_budget_cents")
        if ent is None or budget is None or not account:  # no entity: no budget
            excluded[eid] = NO_BUDGET if budget is None else NO_ACCOUNT
            states.append(MemberState(eid, 0, lo, hi, float(m.get("weight") or 1.0), is_active=False))
            continue
        status = ent.status
        default_lo, default_hi = settings.get("default_min_budget_cents"), settings.get("default_max_budget_cents")
        window_lo, window_hi = net_change_bounds(int(budget), recent_changes.get(eid, []), net_pct)
        states.append(
            MemberState(
                eid,
                int(budget),
                lo if lo is not None else default_lo,
                hi if hi is not None else default_hi,
                float(m.get("weight") or 1.0),
                is_active=status != "deleted",
                paused=status == "paused",
                window_min_cents=window_lo,
                window_max_cents=window_hi,
            )
        )
        targets[eid] = ActionTarget(
            platform=ent.platform or m["platform"],  # type: ignore[arg-type]  # stored text, one of Platform
            ad_account_id=account,
            entity_type=m["entity_type"],
            entity_id=eid,
            currency=m["currency"],
        )
    return EngineInputs(
        pool=pool_settings(settings),
        members=states,
        history=history,
        targets=targets,
        snapshot={m["entity_id"]: m for m in members},
        excluded=excluded,
        entities=entities,
    )


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 6)


def plan_view(plan: AllocationPlan, inputs: EngineInputs) -> dict[str, Any]:
    """The log of a plan: flags and every member's before/after/why."""
    lines = []
    for a in plan.allocations:
        snap = inputs.snapshot.get(a.member_id, {})
        why = inputs.excluded.get(a.member_id) if a.action == "excluded" else None
        lines.append(
            {
                "memberId": snap.get("member_id"),
                "entityId": a.member_id,
                "entityName": snap.get("entity_name"),
                "entityType": snap.get("entity_type"),
                "beforeCents": a.previous_budget_cents,
                "afterCents": a.new_budget_cents,
                "changeCents": a.change_cents,
                "action": a.action,
                "why": why or a.explanation,
                "reasons": list(a.reasons),
                "targetCents": a.target_cents,
                "baselineRoas": _num(a.baseline_roas),
                "recentRoas": _num(a.recent_roas),
                "marginalReturn": _num(a.marginal_return),
                "elasticity": _num(a.elasticity),
                "shrinkage": _num(a.shrinkage),
                "evidenceCount": a.evidence_count,
            }
        )
    return {
        "plannedAt": plan.planned_at.isoformat(),
        "dailyBudgetCents": plan.daily_budget_cents,
        "currency": plan.currency,
        "poolTotalCents": plan.pool_total_cents,
        "feasible": plan.feasible,
        "infeasibleReason": plan.infeasible_reason,
        "frozen": plan.frozen,
        "frozenReason": plan.frozen_reason,
        "poolMarginalReturn": _num(plan.pool_marginal_return),
        "members": lines,
    }


def inputs_view(
    inputs: EngineInputs, state: EngineState, *, now: datetime, since: datetime, until: datetime
) -> dict[str, Any]:
    """Summary of what the engine was given."""
    members = []
    for m in inputs.members:
        ivs = inputs.history.get(m.member_id, [])
        ent = inputs.entities.get(m.member_id)
        members.append(
            {
                "entityId": m.member_id,
                "currentBudgetCents": m.current_budget_cents if ent is not None else None,
                "status": ent.status if ent is not None else None,
                "budgetReportedAt": ent.reported_at.isoformat() if ent is not None else None,
                "intervals": len(ivs),
                "spendCents": sum(i.spend_cents for i in ivs),
                "revenueCents": sum(i.revenue_cents for i in ivs),
                "conversions": sum(i.conversions for i in ivs),
                "minBudgetCents": m.min_budget_cents,
                "maxBudgetCents": m.max_budget_cents,
                "windowMinCents": m.window_min_cents,
                "windowMaxCents": m.window_max_cents,
                "weight": m.weight,
            }
        )
    return {
        "now": now.isoformat(),
        "historyFrom": since.isoformat(),
        "historyTo": until.isoformat(),
        "dailyBudgetCents": inputs.pool.daily_budget_cents,
        "currency": inputs.pool.currency,
        "optimizationMetric": str(inputs.pool.optimization_metric),
        "members": members,
        "engineStateBefore": {
            "frozenUntil": state.frozen_until.isoformat() if state.frozen_until else None,
            "frozenReason": state.frozen_reason,
            "lastPlanAt": state.last_plan_at.isoformat() if state.last_plan_at else None,
        },
    }


def action_view(a: PlannedAction) -> dict[str, Any]:
    t = a.target
    return {
        "actionId": str(a.action_id),
        "entityId": t.entity_id,
        "entityType": t.entity_type,
        "platform": t.platform,
        "adAccountId": t.ad_account_id,
        "currency": t.currency,
        "actionType": "set_budget",
        "fromCents": a.from_cents,
        "toCents": a.to_cents,
        "reason": a.reason,
    }


def actions_of_view(views: Sequence[dict[str, Any]]) -> list[BudgetAction]:
    """The change set's actions back from their stored views (``action_view``), e.g. to dry-run a simulation."""
    return [
        BudgetAction(
            action_id=v["actionId"], platform=v["platform"], ad_account_id=v["adAccountId"],
            entity_type=v["entityType"], entity_id=v["entityId"], action_type=v["actionType"],
            currency=v["currency"], from_cents=v["fromCents"], to_cents=v["toCents"], reason=v["reason"],
        )
        for v in views
    ]


def change_set(alloc: StoredAllocation, actions: Sequence[PlannedAction]) -> AllocationRequested:
    snap = alloc.settings
    assert alloc.idempotency_key is not None  # queue_allocation keys every allocation (a simulation has none)
    return AllocationRequested(
        request_id=alloc.allocation_id,
        source="pool",
        source_id=str(alloc.pool_id),
        idempotency_key=alloc.idempotency_key,
        manual=alloc.trigger == "manual",
        actions=[
            BudgetAction(
                action_id=a.action_id,
                platform=a.target.platform,
                ad_account_id=a.target.ad_account_id,
                entity_type=a.target.entity_type,
                entity_id=a.target.entity_id,
                action_type="set_budget",
                currency=a.target.currency,
                from_cents=a.from_cents,
                to_cents=a.to_cents,
                reason=a.reason,
            )
            for a in actions
        ],
        pool_daily_budget_cents=int(snap["daily_budget_cents"]),
        currency=snap["currency"],
        requested_by=alloc.requested_by,
    )


def _until_text(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def pool_frozen_envelope(*, pool_id: uuid.UUID, workspace_id: str, pool_name: str, pool: PoolSettings,
                         freeze: FreezeStart, members: Mapping[str, Mapping[str, Any]], live: bool,
                         now: datetime) -> Envelope[NotificationRequested]:
    """The notification.requested of a freeze a plan starts: the pool by its name, why, and until when (the same
    freeze always gives the same notification id)."""
    until = _until_text(freeze.until)
    until_iso = freeze.until.astimezone(UTC).isoformat()
    currency = pool.currency
    listed = [NotifiedEntity(entity_type="pool", entity_id=str(pool_id), name=pool_name[:200],
                             amount_cents=pool.daily_budget_cents, currency=currency,
                             detail=f"daily budget; frozen until {until}"[:300])]
    facts: dict[str, int | float | str | None] = {"frozen_until": until_iso}
    if freeze.pool_wide:
        reason = freeze.reason or "frozen"
        title = f"Pool '{pool_name}' is frozen until {until}"
        summary = (f"Allot makes no budget moves in pool '{pool_name}' until {until}: {reason}. Budgets stay where "
                   f"they are (the pool total is still repaired when members join or leave).")
        condition = reason
        step = f"frozen/{until_iso}"
    else:
        labels = []
        for h in freeze.held[:199]:
            m = members.get(h.member_id) or {}
            name, etype = str(m.get("entity_name") or ""), str(m.get("entity_type") or "campaign")
            labels.append(f"{name} ({etype} {h.member_id})" if name else f"{etype} {h.member_id}")
            listed.append(NotifiedEntity(
                entity_type=etype, entity_id=h.member_id[:128], name=name[:200],  # type: ignore[arg-type]
                amount_cents=h.new_budget_cents, currency=currency,
                detail=f"daily budget; held until {until}"[:300]))
        one = len(freeze.held) == 1
        hours = (freeze.until - now).total_seconds() / 3600
        title = (f"Pool '{pool_name}': {labels[0]} frozen until {until}" if one
                 else f"Pool '{pool_name}': {len(freeze.held)} members frozen until {until}")
        summary = (f"The budget of {', '.join(labels)} kept changing direction, so Allot leaves "
                   f"{'it' if one else 'them'} alone until {until} ({hours:g} h). The other members of the pool "
                   f"keep being allocated.")
        condition = (f"oscillation: {pool.oscillation_reversals} direction reversals within the last "
                     f"{pool.oscillation_window} changes; held for {pool.freeze_hours:g} h")
        facts.update({"members_frozen": len(freeze.held), "freeze_hours": pool.freeze_hours,
                      "oscillation_reversals": pool.oscillation_reversals,
                      "oscillation_window": pool.oscillation_window})
        step = f"held/{until_iso}"
    facts["daily_budget_cents"] = pool.daily_budget_cents
    n = NotificationRequested(
        notification_id=uuid.uuid5(pool_id, step), workspace_id=workspace_id, kind="pool_frozen",
        severity="warning" if live else "info", title=title[:200], summary=summary[:2000], condition=condition[:500],
        facts=facts, currency=currency, entities=listed, source="pools",
        source_id=str(pool_id), dedupe_key=f"pool_frozen/{pool_id}/{until_iso}"[:200],
        console_path=f"/automation/budget-pools/{pool_id}", occurred_at=now)
    topic = "notification.requested"
    return new_envelope(event_type=topic, schema_version=TOPICS[topic].schema_version, payload=n, producer="pools",
                        workspace_id=workspace_id, occurred_at=now, event_id=n.notification_id)


@dataclass(frozen=True)
class RunResult:
    allocation_id: uuid.UUID
    status: str
    actions: int
    emitted: bool
    """Whether it wrote events to the outbox (a change set, a freeze notification)."""


async def queue_allocation(
    conn: Conn,
    pool: StoredPool,
    members: Sequence[StoredMember],
    *,
    trigger: str,
    key: str,
    slot: str,
    requested_by: str,
    now: datetime,
) -> tuple[StoredAllocation, bool]:
    """Insert the allocation (status queued) with its settings + member snapshot; (existing row, False) if the key
    was already used for this pool."""
    pool_id = pool.pool_id
    row = await db.insert_allocation(
        conn,
        allocation_id=request_id_for(pool_id, key),
        pool_id=pool_id,
        workspace_id=pool.workspace_id,
        kind="allocation",
        trigger=trigger,
        idempotency_key=key,
        slot=slot,
        status="queued",
        autonomy=pool.autonomy,
        settings=settings_snapshot(pool),
        members=members_snapshot(members),
        requested_by=requested_by,
        now=now,
    )
    if row is not None:
        return row, True
    existing = await db.allocation_by_key(conn, pool_id, key)
    assert existing is not None
    return existing, False


async def run_allocation(
    conn: Conn, emit: Emit, alloc: StoredAllocation, *, now: datetime, history_days: int,
    locked_pool: StoredPool | None = None
) -> RunResult:
    """Plan a queued allocation (caller's transaction; see the module docstring). ``locked_pool``: the pool row
    when the caller already holds its lock in this transaction (else it is locked here)."""
    alloc_id = alloc.allocation_id
    pool = locked_pool if locked_pool is not None else await db.lock_pool(conn, alloc.pool_id)
    assert pool is not None
    ws = alloc.workspace_id
    if pool.deleted_at is not None:  # deleted while queued: nothing to allocate any more
        await db.save_plan(
            conn,
            alloc_id,
            status="cancelled",
            inputs={"now": now.isoformat()},
            plan={"error": "the pool was deleted before the allocation ran"},
            actions=[],
            planned_at=now,
            event_id=None,
        )
        return RunResult(alloc_id, "cancelled", 0, False)
    state = EngineState.from_dict(pool.engine_state or {})
    since = now - timedelta(days=history_days)
    try:
        inputs = await load_inputs(conn, ws, alloc.settings, alloc.members, since=since, until=now)
        plan = plan_allocation(inputs.pool, inputs.members, inputs.history, now=now, state=state)
    except ValueError as exc:  # an impossible configuration must not wedge the queue
        log.error("pool_allocation_failed", pool_id=str(alloc.pool_id), allocation_id=str(alloc_id), error=str(exc))
        await db.save_plan(
            conn,
            alloc_id,
            status="failed",
            inputs={"now": now.isoformat()},
            plan={"error": str(exc)},
            actions=[],
            planned_at=now,
            event_id=None,
        )
        return RunResult(alloc_id, "failed", 0, False)
    await db.set_engine_state(conn, alloc.pool_id, plan.state.to_dict())
    assert alloc.slot is not None  # queue_allocation labels every allocation's slot (a simulation has none)
    actions = planned_actions(plan, inputs.targets, pool_id=alloc.pool_id, slot=alloc.slot)
    freeze = freeze_started(state, plan)
    if freeze is not None:
        await emit(conn, [pool_frozen_envelope(
            pool_id=alloc.pool_id, workspace_id=ws, pool_name=str(pool.name), pool=inputs.pool, freeze=freeze,
            members=inputs.snapshot, live=alloc.autonomy == "live", now=now)])
    event_id = None
    if plan.frozen:
        status = "frozen"
    elif not actions:
        status = "no_change"
    elif alloc.autonomy != "live":
        status = "observed"
    else:
        envelope = new_envelope(
            event_type="allocation.requested",
            schema_version=TOPICS["allocation.requested"].schema_version,
            payload=change_set(alloc, actions),
            producer="pools",
            workspace_id=ws,
            occurred_at=now,
            step=f"pool-allocation/{alloc_id}",
        )
        await emit(conn, [envelope])
        event_id = envelope.event_id
        status = "requested"
    await db.save_plan(
        conn,
        alloc_id,
        status=status,
        inputs=inputs_view(inputs, state, now=now, since=since, until=now),
        plan=plan_view(plan, inputs),
        actions=[action_view(a) for a in actions],
        planned_at=now,
        event_id=event_id,
    )
    log.info(
        "pool_allocation_planned",
        pool_id=str(alloc.pool_id),
        allocation_id=str(alloc_id),
        status=status,
        trigger=alloc.trigger,
        autonomy=alloc.autonomy,
        actions=len(actions),
        frozen=plan.frozen,
        frozen_reason=plan.frozen_reason,
        freeze_until=None if freeze is None else freeze.until.isoformat(),
        feasible=plan.feasible,
    )
    return RunResult(alloc_id, status, len(actions), event_id is not None or freeze is not None)


#: (workspace_id, platform, ad_account_id) → the account's time zone (``AccountDirectory.zone_for``).
ZoneLookup = Callable[[str, str, str], tzinfo]


def pool_zone(workspace_id: str, members: Sequence[StoredMember], zones: ZoneLookup | None) -> tzinfo:
    """The zone whose days a pool's dates name: its first member's ad account's (UTC without one)."""
    for m in members:
        if zones is not None and m.ad_account_id:
            return zones(workspace_id, m.platform, m.ad_account_id)
    return UTC


def day_start(d: date, zone: tzinfo = UTC) -> datetime:
    """The instant the local day ``d`` starts in ``zone`` (UTC)."""
    return day_bounds_utc(d, zone)[0]


async def simulate(
    conn: Conn,
    pool: StoredPool,
    members: Sequence[StoredMember],
    *,
    now: datetime,
    from_date: date | None,
    to_date: date | None,
    history_days: int,
    requested_by: str,
    zone: tzinfo = UTC,
) -> StoredAllocation:
    """What-if plan on stored history (optionally [from_date, to_date]); stores a simulation log, changes nothing else.

    The plan is made as of the end of ``to_date`` (or now), from the stored engine state, without persisting it."""
    until = now if to_date is None else min(now, day_start(to_date + timedelta(days=1), zone))
    since = day_start(from_date, zone) if from_date is not None else until - timedelta(days=history_days)
    settings = settings_snapshot(pool)
    snap = members_snapshot(members)
    state = EngineState.from_dict(pool.engine_state or {})
    sim_id = uuid.uuid4()
    inputs = await load_inputs(conn, pool.workspace_id, settings, snap, since=since, until=until)
    plan = plan_allocation(inputs.pool, inputs.members, inputs.history, now=until, state=state)
    actions = planned_actions(plan, inputs.targets, pool_id=pool.pool_id, slot=f"simulation/{sim_id}")
    await db.insert_allocation(
        conn,
        allocation_id=sim_id,
        pool_id=pool.pool_id,
        workspace_id=pool.workspace_id,
        kind="simulation",
        trigger="simulate",
        idempotency_key=None,
        slot=None,
        status="simulated",
        autonomy=pool.autonomy,
        settings=settings,
        members=snap,
        requested_by=requested_by,
        now=now,
    )
    view_inputs = inputs_view(inputs, state, now=until, since=since, until=until)
    view_inputs["range"] = {
        "fromDate": from_date.isoformat() if from_date else None,
        "toDate": to_date.isoformat() if to_date else None,
    }
    await db.save_plan(
        conn,
        sim_id,
        status="simulated",
        inputs=view_inputs,
        plan=plan_view(plan, inputs),
        actions=[action_view(a) for a in actions],
        planned_at=now,
        event_id=None,
    )
    row = await db.get_allocation(conn, sim_id)
    assert row is not None  # inserted above
    return row


# ---------------------------------------------------------------- the API's operations
#
# The routes parse, call one of these and render: each owns its transaction, and refuses with the exceptions
# below (the API turns them into its errors).


class PoolNotFound(LookupError):
    """No pool of that id in the workspace (a deleted one counts as none)."""


class MemberNotFound(LookupError):
    """No member of that id in the pool."""


class Invalid(ValueError):
    """The request's settings or members break a rule; every problem names its API field."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in self.problems))


class EntityTaken(Exception):
    """Entities the request claims are active members of another pool: (API field, entity id, owning pool).
    None listed: the database refused a claim made at the same moment, and its owner has released it since."""

    def __init__(self, conflicts: Sequence[tuple[str, str, StoredOwner]], *, field: str) -> None:
        self.conflicts = list(conflicts)
        self.field = field
        super().__init__(field)


class PoolPaused(Exception):
    """A paused pool is not allocated."""


class RateLimited(Exception):
    """A manual allocation within ``window_s`` of the pool's last one; the day's existing request, if any."""

    def __init__(self, *, window_s: float, retry_after_s: int, existing_request_id: uuid.UUID | None) -> None:
        self.window_s = window_s
        self.retry_after_s = retry_after_s
        self.existing_request_id = existing_request_id
        super().__init__(f"retry in {retry_after_s} s")


def emitter(ctx: ServiceContext) -> Emit:
    async def emit(conn: Conn, envelopes: Sequence[Envelope[Any]]) -> None:
        await ctx.emit(conn, *envelopes)

    return emit


class AllocationWake(asyncio.Event):
    """Set when an allocation is queued, so the worker runs it now instead of at its next poll."""


def observe(result: RunResult) -> None:
    ALLOCATIONS.labels(result.status).inc()


def retry_after_s(seconds: float) -> int:
    """A Retry-After in whole seconds (at least 1)."""
    return max(1, math.ceil(seconds))


def refuse(problems: Sequence[Problem]) -> None:
    if problems:
        raise Invalid(problems)


async def pool_of(conn: Conn, workspace_id: str, pool_id: uuid.UUID, *, for_update: bool = False) -> StoredPool:
    pool = await db.get_pool(conn, workspace_id, pool_id, for_update=for_update)
    if pool is None:
        raise PoolNotFound(pool_id)
    return pool


def member_row(m: Mapping[str, Any], pool_currency: str, field: str) -> dict[str, Any]:
    """A member to store (MEMBER_KEYS); its currency defaults to the pool's and must be the pool's."""
    currency = m.get("currency") or pool_currency
    if currency != pool_currency:
        refuse([Problem(f"{field}currency", f"member currency {currency} differs from the pool's {pool_currency}")])
    return {k: currency if k == "currency" else m[k] for k in MEMBER_KEYS}


def member_bounds(members: Sequence[Mapping[str, Any]], *, prefix: str = "members") -> list[MemberBounds]:
    return [
        MemberBounds(f"{prefix}.{i}", m["entity_id"], m["min_budget_cents"], m["max_budget_cents"], m["is_active"])
        for i, m in enumerate(members)
    ]


def validate_settings(settings: Mapping[str, Any], members: list[MemberBounds], *,
                      budget_field: str = "dailyBudgetCents") -> None:
    refuse(
        config_problems(
            daily_budget_cents=settings["daily_budget_cents"],
            default_min_budget_cents=settings["default_min_budget_cents"],
            default_max_budget_cents=settings["default_max_budget_cents"],
            members=members,
            budget_field=budget_field,
        )
    )


def validate_knobs(settings: Mapping[str, Any]) -> None:
    """Each engine setting within its range (naming the field); then PoolSettings itself must accept the pool."""
    refuse(knob_problems(dict(settings)))
    try:
        pool_settings({"pool_id": "validation", **settings})
    except ValueError as exc:  # a rule of the engine's own (PoolSettings / CompositeWeights.__post_init__)
        text = str(exc)
        field_ = next((api for name, (api, _, _) in KNOB_RANGES.items() if name in text), None)
        if field_ is None:
            field_ = "compositeWeights" if "composite" in text or "risk" in text else "body"
        refuse([Problem(field_, f"refused by the engine: {text}")])


async def refuse_taken(conn: Conn, workspace_id: str, pool_id: uuid.UUID, claims: Mapping[str, str]) -> None:
    """EntityTaken when an entity this pool claims (API field → entity id) is an active member of another pool."""
    if not claims:
        return
    owners = await db.active_owners(conn, workspace_id, list(claims.values()), except_pool=pool_id)
    conflicts = [(f, e, owners[e]) for f, e in claims.items() if e in owners]
    if conflicts:
        raise EntityTaken(conflicts, field=conflicts[0][0])


async def _lost_race(ctx: ServiceContext, workspace_id: str, pool_id: uuid.UUID,
                     claims: Mapping[str, str]) -> EntityTaken:
    """The database refused a membership (another request committed the same entity into another pool between
    our check and our write): the same refusal, looked up after the rollback."""
    async with ctx.pool.acquire() as conn:
        try:
            await refuse_taken(conn, workspace_id, pool_id, claims)
        except EntityTaken as exc:
            return exc
    return EntityTaken([], field=next(iter(claims)))


async def refuse_foreign_accounts(ctx: ServiceContext, conn: Conn, workspace_id: str, refs: list[AccountRef]) -> None:
    """Invalid naming the field of an ad account this workspace may not reference: one another workspace has
    connected, or (require_connected_accounts) any not connected to this one, a missing one included."""
    refusals = await account_refusals(ctx.extra, conn, workspace_id, refs,
                                      strict=ctx.settings.require_connected_accounts)
    refuse([Problem(field_, message) for field_, message in refusals])


async def create_pool(ctx: ServiceContext, workspace_id: str, settings: dict[str, Any],
                      members_in: Sequence[Mapping[str, Any]], *,
                      now: datetime) -> tuple[StoredPool, list[StoredMember]]:
    """A new pool with its first members, and its pool.members_changed, in one transaction."""
    members = [member_row(m, settings["currency"], f"members.{i}.") for i, m in enumerate(members_in)]
    validate_settings(settings, member_bounds(members))
    validate_knobs(settings)
    # One pool per entity: a paused pool keeps its members too, so this holds whatever the new pool's status.
    claims = {f"members.{i}.entityId": m["entity_id"] for i, m in enumerate(members) if m["is_active"]}
    refs: list[AccountRef] = [(f"members.{i}.adAccountId", m["platform"], m["ad_account_id"])
                              for i, m in enumerate(members)]
    pool_id = uuid.uuid4()
    try:
        async with ctx.pool.acquire() as conn, conn.transaction():
            await refuse_foreign_accounts(ctx, conn, workspace_id, refs)
            await refuse_taken(conn, workspace_id, pool_id, claims)
            pool = await db.insert_pool(conn, pool_id, workspace_id, settings, now)
            for m in members:
                await db.upsert_member(conn, pool_id, workspace_id, m, now)
            rows = await db.members_of(conn, [pool_id])
            await publish_membership(conn, emitter(ctx), pool_id, workspace_id, now=now)
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name != db.ONE_ACTIVE_POOL_INDEX:
            raise
        raise await _lost_race(ctx, workspace_id, pool_id, claims) from None
    ctx.flush()
    log.info("pool_created", pool_id=str(pool_id), workspace_id=workspace_id, members=len(rows),
             autonomy=settings["autonomy"])
    return pool, list(rows)


async def update_pool(ctx: ServiceContext, workspace_id: str, pool_id: uuid.UUID, changes: Mapping[str, Any], *,
                      problems: Sequence[Problem] = (), now: datetime) -> tuple[StoredPool, list[StoredMember]]:
    """Change a pool's settings (columns → values); ``problems`` the request already has, refused once the pool
    is found. Pausing keeps the members (and their claim on their entities), so resuming cannot conflict."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        pool = await pool_of(conn, workspace_id, pool_id, for_update=True)
        refuse(problems)
        settings = {k: getattr(pool, k) for k in db.SETTINGS_COLUMNS}
        settings.update(changes)
        members = list(await db.members_of(conn, [pool_id]))
        if settings["currency"] != pool.currency and members:
            refuse([Problem("currency", "the currency of a pool with members cannot change")])
        validate_settings(settings, member_bounds([member_values(m) for m in members]))
        validate_knobs(settings)
        pool = await db.update_pool_settings(conn, pool_id, settings, now)
    log.info("pool_updated", pool_id=str(pool_id), fields=sorted(changes))
    return pool, members


async def delete_pool(ctx: ServiceContext, workspace_id: str, pool_id: uuid.UUID, *,
                      now: datetime) -> tuple[StoredPool, list[StoredMember]]:
    """Soft delete: the members are released, and pool.members_changed says so."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        await pool_of(conn, workspace_id, pool_id, for_update=True)
        await db.soft_delete_pool(conn, pool_id, now)
        await publish_membership(conn, emitter(ctx), pool_id, workspace_id, deleted=True, now=now)
        pool = await db.get_pool(conn, workspace_id, pool_id, include_deleted=True)
        members = await db.members_of(conn, [pool_id])
    assert pool is not None  # locked above
    ctx.flush()
    log.info("pool_deleted", pool_id=str(pool_id))
    return pool, list(members)


async def add_member(ctx: ServiceContext, workspace_id: str, pool_id: uuid.UUID, member: Mapping[str, Any], *,
                     now: datetime) -> tuple[StoredMember, bool]:
    """Add, update or re-activate the pool's member of an entity; (row, created)."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        pool = await pool_of(conn, workspace_id, pool_id, for_update=True)
        row = member_row(member, pool.currency, "")
        others = [member_values(m) for m in await db.members_of(conn, [pool_id]) if m.entity_id != row["entity_id"]]
        bounds = member_bounds(others, prefix="existingMembers") + [
            MemberBounds("member", row["entity_id"], row["min_budget_cents"], row["max_budget_cents"], row["is_active"])
        ]
        problems = config_problems(
            daily_budget_cents=pool.daily_budget_cents,
            default_min_budget_cents=pool.default_min_budget_cents,
            default_max_budget_cents=pool.default_max_budget_cents,
            members=bounds,
            budget_field="minBudgetCents",
        )
        refuse([Problem(p.field.replace("member.", ""), p.message) for p in problems])
        await refuse_foreign_accounts(ctx, conn, workspace_id, [("adAccountId", row["platform"], row["ad_account_id"])])
        claims = {"entityId": row["entity_id"]} if row["is_active"] else {}
        await refuse_taken(conn, workspace_id, pool_id, claims)
        try:  # the check above cannot see a concurrent request's uncommitted row; the unique index can
            stored, created = await db.upsert_member(conn, pool_id, workspace_id, row, now)
        except asyncpg.UniqueViolationError as exc:  # the transaction is rolled back as the refusal leaves it
            if exc.constraint_name != db.ONE_ACTIVE_POOL_INDEX:
                raise
            raise await _lost_race(ctx, workspace_id, pool_id, claims) from None
        await publish_membership(conn, emitter(ctx), pool_id, workspace_id, now=now)
    ctx.flush()
    log.info("pool_member_upserted", pool_id=str(pool_id), entity_id=row["entity_id"], created=created)
    return stored, created


async def remove_member(ctx: ServiceContext, workspace_id: str, pool_id: uuid.UUID, member_id: uuid.UUID, *,
                        now: datetime) -> StoredMember:
    """Deactivate a member (it claims nothing any more)."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        await pool_of(conn, workspace_id, pool_id, for_update=True)
        member = await db.deactivate_member(conn, pool_id, member_id, now)
        if member is not None:
            await publish_membership(conn, emitter(ctx), pool_id, workspace_id, now=now)
    ctx.flush()
    if member is None:
        raise MemberNotFound(member_id)
    return member


async def simulate_pool(ctx: ServiceContext, workspace_id: str, pool_id: uuid.UUID, headers: Mapping[str, str], *,
                        from_date: date | None, to_date: date | None, requested_by: str,
                        now: datetime) -> tuple[StoredAllocation, dict[str, Any]]:
    """A stored simulation (``simulate``) and the guardrails' dry-run verdict on its would-be actions."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        pool = await pool_of(conn, workspace_id, pool_id)
        members = await db.members_of(conn, [pool_id], active_only=True)
        zone = pool_zone(pool.workspace_id, members, directory_of(ctx.extra).zone_for)
        row = await simulate(
            conn,
            pool,
            members,
            now=now,
            from_date=from_date,
            to_date=to_date,
            history_days=settings_of(ctx, PoolsSettings).pools_history_days,
            requested_by=requested_by,
            zone=zone,
        )
    ALLOCATIONS.labels("simulated").inc()
    verdict = await dry_run(ctx, headers, source="pool", source_id=str(pool_id),
                            actions=actions_of_view(row.actions or []),
                            pool_daily_budget_cents=int(row.settings["daily_budget_cents"]),
                            currency=row.settings["currency"])
    return row, verdict


@dataclass(frozen=True)
class ManualAllocation:
    """A manual allocation as it stands when the request returns."""

    allocation: StoredAllocation
    outcomes: list[StoredOutcome]
    idempotency_key: str
    created: bool
    """False: the day's allocation already existed (nothing published again)."""


async def _wait_outcome(ctx: ServiceContext, allocation_id: uuid.UUID,
                        timeout_s: float) -> tuple[StoredAllocation, list[StoredOutcome]]:
    """Poll this service's own projection until the allocation is terminal or the (real-time) wait ends."""
    deadline = time.monotonic() + timeout_s
    while True:
        async with ctx.pool.acquire() as conn:
            row = await db.get_allocation(conn, allocation_id)
            outcomes = list(await db.outcomes_of(conn, [allocation_id]))
        assert row is not None  # the caller wrote it before waiting
        if row.status in TERMINAL or time.monotonic() >= deadline:
            return row, outcomes
        await asyncio.sleep(0.1)


async def allocate(ctx: ServiceContext, workspace_id: str, pool_id: uuid.UUID, *, run_async: bool,
                   requested_by: str) -> ManualAllocation:
    """A manual allocation: pool paused → PoolPaused; then the local rate limit (RateLimited); then idempotency
    (the day's key). Asynchronous: queued for the worker. Synchronous: planned now, in the transaction that holds
    the pool's lock, then waited for (real time, ``pools_sync_timeout_s``) until it ends."""
    settings = settings_of(ctx, PoolsSettings)
    now = ctx.clock.now()
    key, slot = manual_key(pool_id, now)
    result: RunResult | None = None
    async with ctx.pool.acquire() as conn, conn.transaction():
        pool = await pool_of(conn, workspace_id, pool_id, for_update=True)
        if pool.status != "active":
            raise PoolPaused(pool_id)
        last = pool.last_manual_allocate_at
        window = settings.pools_manual_rate_limit_s
        if last is not None and window > 0 and (now - last).total_seconds() < window:
            existing = await db.allocation_by_key(conn, pool_id, key)
            ALLOCATIONS.labels("rate_limited").inc()
            raise RateLimited(window_s=window, retry_after_s=retry_after_s(window - (now - last).total_seconds()),
                              existing_request_id=existing.allocation_id if existing else None)
        await db.touch_manual_allocate(conn, pool_id, now)
        members = await db.members_of(conn, [pool_id], active_only=True)
        alloc, created = await queue_allocation(
            conn, pool, members, trigger="manual", key=key, slot=slot, requested_by=requested_by, now=now
        )
        if created and not run_async:
            result = await run_allocation(
                conn, emitter(ctx), alloc, now=now, history_days=settings.pools_history_days, locked_pool=pool
            )
    if result is not None:
        observe(result)
        if result.emitted:
            ctx.flush()
    elif created:
        need(ctx, AllocationWake).set()
    else:
        ALLOCATIONS.labels("replayed").inc()
    log.info("pool_allocate_requested", pool_id=str(pool_id), request_id=str(alloc.allocation_id),
             replayed=not created, run_async=run_async)
    if run_async:
        async with ctx.pool.acquire() as conn:
            row = await db.get_allocation(conn, alloc.allocation_id)
            outcomes = list(await db.outcomes_of(conn, [alloc.allocation_id]))
        assert row is not None  # created (or replayed) above
    else:
        row, outcomes = await _wait_outcome(ctx, alloc.allocation_id, settings.pools_sync_timeout_s)
    return ManualAllocation(row, outcomes, key, created)


async def members_now(conn: Conn, pool: StoredPool, *, since: datetime, until: datetime,
                      entity_type: str | None = None) -> tuple[list[StoredMember], EngineInputs]:
    """The pool's active members (of ``entity_type``) and the engine inputs they give over (since, until]: the
    same rules as a plan (``load_inputs``: no budget or no account → inactive; bounds as the engine sees them)."""
    members = [
        m
        for m in await db.members_of(conn, [pool.pool_id], active_only=True)
        if entity_type is None or m.entity_type == entity_type
    ]
    inputs = await load_inputs(conn, pool.workspace_id, settings_snapshot(pool), members_snapshot(members),
                               since=since, until=until)
    return members, inputs


def _paused(entity: StoredEntity | None) -> bool:
    return entity is not None and entity.status == "paused"


@dataclass(frozen=True)
class DiminishingReturnsRun:
    as_of: datetime
    members: list[StoredMember]
    """The active members evaluated."""
    findings: list[DiminishingReturnsFinding]
    curves: list[ResponseCurve] = field(default_factory=list)
    """The evaluated members' response curves as a plan now would fit them (those the plan shares the budget
    among)."""


async def diminishing_returns(ctx: ServiceContext, workspace_id: str, pool_id: uuid.UUID, *, window_days: float,
                              min_spend_growth_pct: float, entity_type: str | None) -> DiminishingReturnsRun:
    """Active members whose spend grew without ROAS improving (``find_diminishing_returns``), and each one's response
    curve from the inputs and stored engine state a plan made now would get (``response_curves``: every member of
    the pool shares the budget, whatever ``entity_type`` the report shows)."""
    now = ctx.clock.now()
    history_days = max(2 * window_days + 1, settings_of(ctx, PoolsSettings).pools_history_days)
    async with ctx.pool.acquire() as conn:
        pool = await pool_of(conn, workspace_id, pool_id)
        every, inputs = await members_now(conn, pool, since=now - timedelta(days=history_days), until=now)
    state = EngineState.from_dict(pool.engine_state or {})
    members = [m for m in every if entity_type is None or m.entity_type == entity_type]
    shown = {m.entity_id for m in members}
    curves = [c for c in response_curves(inputs.pool, inputs.members, inputs.history, now=now, state=state)
              if c.member_id in shown]
    # The report only needs metric history: members without a reported budget still count (a paused one not).
    states = [dataclasses.replace(s, is_active=True, paused=_paused(inputs.entities.get(s.member_id)))
              for s in inputs.members if s.member_id in shown]
    findings = find_diminishing_returns(
        inputs.pool, states, inputs.history, now=now, window_days=window_days,
        min_spend_growth_pct=min_spend_growth_pct,
    )
    return DiminishingReturnsRun(now, members, list(findings), curves)


@dataclass(frozen=True)
class BacktestRun:
    report: BacktestReport
    start: datetime
    end: datetime
    zone: tzinfo
    members: list[MemberState]
    """The members replayed (active now) with their budgets now."""


async def backtest_pool(ctx: ServiceContext, workspace_id: str, pool_id: uuid.UUID, *, from_date: date | None,
                        to_date: date | None) -> BacktestRun:
    """The engine replayed over stored metrics of [from_date, to_date] (default: the last 14 days), days being the
    local days of the pool's ad account (its first member's)."""
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn:
        pool = await pool_of(conn, workspace_id, pool_id)
        members = await db.members_of(conn, [pool_id], active_only=True)
    zone = pool_zone(pool.workspace_id, members, directory_of(ctx.extra).zone_for)
    end_day = to_date or local_day(now, zone)
    start_day = from_date or end_day - timedelta(days=13)
    if start_day > end_day:
        refuse([Problem("to_date", f"to_date {end_day} is before from_date {start_day}")])
    if (end_day - start_day).days > 92:
        refuse([Problem("from_date", "a backtest covers at most 93 days")])
    start = day_start(start_day, zone)
    end = min(day_start(end_day + timedelta(days=1), zone), now)
    if end <= start:
        refuse([Problem("from_date", f"from_date {start_day} is not in the past")])
    lookback = pool_settings(settings_snapshot(pool)).lookback_days
    async with ctx.pool.acquire() as conn:
        _, inputs = await members_now(conn, pool, since=start - timedelta(days=lookback), until=end)
    states = [s for s in inputs.members if s.is_active]
    active = {s.member_id for s in states}
    history = {k: v for k, v in inputs.history.items() if k in active}
    report = await asyncio.to_thread(backtest, inputs.pool, states, history, start=start, end=end, zone=zone)
    return BacktestRun(report, start, end, zone, states)
