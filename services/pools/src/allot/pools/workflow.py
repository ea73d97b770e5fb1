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

import dataclasses
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import asyncpg
from pydantic.alias_generators import to_camel

from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.localday import day_bounds_utc
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
from allot.pools.domain.changeset import ActionTarget, PlannedAction, planned_actions, request_id_for
from allot.pools.domain.freeze import FreezeStart, freeze_started
from allot.pools.domain.models import AllocationPlan, CompositeWeights
from allot.pools.domain.netchange import narrow, net_change_bounds
from allot.runtime.db import Conn
from allot.runtime.logging import get_logger

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

SETTINGS_KEYS = (
    "name",
    "optimization_metric",
    "daily_budget_cents",
    "currency",
    "allocation_frequency_hours",
    "default_min_budget_cents",
    "default_max_budget_cents",
    "min_budget_change_cents",
    "status",
    "autonomy",
    "persistence_intervals",
    "cooldown_hours",
    "deadband_pct",
    "exploration_share",
    "composite_weights",
)
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


def settings_snapshot(pool: Any) -> dict[str, Any]:
    """The pool's settings as stored with an allocation (snake_case, JSON-ready); unset knobs as their default."""
    snap = {"pool_id": str(pool["pool_id"]), **{k: pool[k] for k in SETTINGS_KEYS}}
    for k in ENGINE_KNOBS:
        if snap[k] is None:
            snap[k] = knob_default(k)
    return snap


def members_snapshot(members: Sequence[Any]) -> list[dict[str, Any]]:
    """Active members as stored with an allocation."""
    return [{"member_id": str(m["member_id"]), **{k: m[k] for k in MEMBER_KEYS}} for m in members if m["is_active"]]


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
    entities: dict[str, Any] = field(default_factory=dict)


def _interval(r: Any) -> MetricInterval:
    reach = r["reach"]
    return MetricInterval(
        start_at=r["interval_start"],
        end_at=r["interval_end"],
        spend_cents=int(r["spend_cents"]),
        revenue_cents=int(r["revenue_cents"]),
        conversions=float(r["conversions"]),
        impressions=int(r["impressions"]),
        clicks=int(r["clicks"]),
        frequency=(r["impressions"] / reach) if reach else None,
    )


async def load_history(
    conn: Conn, workspace_id: str, entity_ids: Sequence[str], *, since: datetime, until: datetime
) -> dict[str, list[MetricInterval]]:
    history: dict[str, list[MetricInterval]] = {}
    for r in await db.history_of(conn, workspace_id, entity_ids, since=since, until=until):
        history.setdefault(r["entity_id"], []).append(_interval(r))
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

    Each member's floor and ceiling are narrowed to what the guardrails' rolling net-change budget
    (``net_pct`` % over ``net_window_h`` h, the guardrails' defaults) still allows, so plans are not
    blocked for moving an entity too far within the window.
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
        budget = ent["daily_budget_cents"] if ent is not None else None
        # Where the entity lives is what its platform reports (the member's own fields are the fallback).
        account = (ent["ad_account_id"] if ent is not None else None) or m.get("ad_account_id")
        lo, hi = m.get("min_budget_cents"), m.get("max_budget_cents")
        if ent is None or budget is None or not account:  # no entity: no budget
            excluded[eid] = NO_BUDGET if budget is None else NO_ACCOUNT
            states.append(MemberState(eid, 0, lo, hi, float(m.get("weight") or 1.0), is_active=False))
            continue
        status = ent["status"]
        default_lo, default_hi = settings.get("default_min_budget_cents"), settings.get("default_max_budget_cents")
        lo, hi = narrow(lo if lo is not None else default_lo, hi if hi is not None else default_hi,
                        net_change_bounds(int(budget), recent_changes.get(eid, []), net_pct))
        states.append(
            MemberState(
                eid,
                int(budget),
                lo,
                hi,
                float(m.get("weight") or 1.0),
                is_active=status != "deleted",
                paused=status == "paused",
            )
        )
        targets[eid] = ActionTarget(
            platform=ent["platform"] or m["platform"],
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
                "status": ent["status"] if ent is not None else None,
                "budgetReportedAt": ent["reported_at"].isoformat() if ent is not None else None,
                "intervals": len(ivs),
                "spendCents": sum(i.spend_cents for i in ivs),
                "revenueCents": sum(i.revenue_cents for i in ivs),
                "conversions": sum(i.conversions for i in ivs),
                "minBudgetCents": m.min_budget_cents,
                "maxBudgetCents": m.max_budget_cents,
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


def with_verdicts(view: dict[str, Any], verdict: dict[str, Any]) -> dict[str, Any]:
    """A simulation's view with the guardrails' dry-run answer: ``guardrails`` at the top (status, check, reason,
    notes; or ``available: false`` and why) and on each action its verdict line."""
    lines = {line["action_id"]: line for line in verdict.get("actions") or []}
    actions = [{**a, "guardrails": lines.get(a["actionId"])} for a in view["actions"] or []]
    return {**view, "actions": actions, "guardrails": verdict}


def change_set(alloc: Any, actions: Sequence[PlannedAction]) -> AllocationRequested:
    snap = alloc["settings"]
    return AllocationRequested(
        request_id=alloc["allocation_id"],
        source="pool",
        source_id=str(alloc["pool_id"]),
        idempotency_key=alloc["idempotency_key"],
        manual=alloc["trigger"] == "manual",
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
        requested_by=alloc["requested_by"],
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
    pool: Any,
    members: Sequence[Any],
    *,
    trigger: str,
    key: str,
    slot: str,
    requested_by: str,
    now: datetime,
) -> tuple[Any, bool]:
    """Insert the allocation (status queued) with its settings + member snapshot; (existing row, False) if the key
    was already used for this pool."""
    pool_id = pool["pool_id"]
    row = await db.insert_allocation(
        conn,
        allocation_id=request_id_for(pool_id, key),
        pool_id=pool_id,
        workspace_id=pool["workspace_id"],
        kind="allocation",
        trigger=trigger,
        idempotency_key=key,
        slot=slot,
        status="queued",
        autonomy=pool["autonomy"],
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
    conn: Conn, emit: Emit, alloc: Any, *, now: datetime, history_days: int, locked_pool: Any = None
) -> RunResult:
    """Plan a queued allocation (caller's transaction; see the module docstring). ``locked_pool``: the pool row
    when the caller already holds its lock in this transaction (else it is locked here)."""
    alloc_id = alloc["allocation_id"]
    pool = locked_pool if locked_pool is not None else await db.lock_pool(conn, alloc["pool_id"])
    assert pool is not None
    ws = alloc["workspace_id"]
    if pool["deleted_at"] is not None:  # deleted while queued: nothing to allocate any more
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
    state = EngineState.from_dict(pool["engine_state"] or {})
    since = now - timedelta(days=history_days)
    try:
        inputs = await load_inputs(conn, ws, alloc["settings"], alloc["members"], since=since, until=now)
        plan = plan_allocation(inputs.pool, inputs.members, inputs.history, now=now, state=state)
    except ValueError as exc:  # an impossible configuration must not wedge the queue
        log.error("pool_allocation_failed", pool_id=str(alloc["pool_id"]), allocation_id=str(alloc_id), error=str(exc))
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
    await db.set_engine_state(conn, alloc["pool_id"], plan.state.to_dict())
    actions = planned_actions(plan, inputs.targets, pool_id=alloc["pool_id"], slot=alloc["slot"])
    freeze = freeze_started(state, plan)
    if freeze is not None:
        await emit(conn, [pool_frozen_envelope(
            pool_id=alloc["pool_id"], workspace_id=ws, pool_name=str(pool["name"]), pool=inputs.pool, freeze=freeze,
            members=inputs.snapshot, live=alloc["autonomy"] == "live", now=now)])
    event_id = None
    if plan.frozen:
        status = "frozen"
    elif not actions:
        status = "no_change"
    elif alloc["autonomy"] != "live":
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
        pool_id=str(alloc["pool_id"]),
        allocation_id=str(alloc_id),
        status=status,
        trigger=alloc["trigger"],
        autonomy=alloc["autonomy"],
        actions=len(actions),
        frozen=plan.frozen,
        frozen_reason=plan.frozen_reason,
        freeze_until=None if freeze is None else freeze.until.isoformat(),
        feasible=plan.feasible,
    )
    return RunResult(alloc_id, status, len(actions), event_id is not None or freeze is not None)


#: (workspace_id, platform, ad_account_id) → the account's time zone (``AccountDirectory.zone_for``).
ZoneLookup = Callable[[str, str, str], tzinfo]


def pool_zone(workspace_id: str, members: Sequence[Mapping[str, Any] | asyncpg.Record],
              zones: ZoneLookup | None) -> tzinfo:
    """The zone whose days a pool's dates name: its first member's ad account's (UTC without one)."""
    for m in members:
        if zones is not None and m["ad_account_id"]:
            return zones(workspace_id, m["platform"], m["ad_account_id"])
    return UTC


def day_start(d: date, zone: tzinfo = UTC) -> datetime:
    """The instant the local day ``d`` starts in ``zone`` (UTC)."""
    return day_bounds_utc(d, zone)[0]


async def simulate(
    conn: Conn,
    pool: Any,
    members: Sequence[Any],
    *,
    now: datetime,
    from_date: date | None,
    to_date: date | None,
    history_days: int,
    requested_by: str,
    zone: tzinfo = UTC,
) -> Any:
    """What-if plan on stored history (optionally [from_date, to_date]); stores a simulation log, changes nothing else.

    The plan is made as of the end of ``to_date`` (or now), from the stored engine state, without persisting it."""
    until = now if to_date is None else min(now, day_start(to_date + timedelta(days=1), zone))
    since = day_start(from_date, zone) if from_date is not None else until - timedelta(days=history_days)
    settings = settings_snapshot(pool)
    snap = members_snapshot(members)
    state = EngineState.from_dict(pool["engine_state"] or {})
    sim_id = uuid.uuid4()
    inputs = await load_inputs(conn, pool["workspace_id"], settings, snap, since=since, until=until)
    plan = plan_allocation(inputs.pool, inputs.members, inputs.history, now=until, state=state)
    actions = planned_actions(plan, inputs.targets, pool_id=pool["pool_id"], slot=f"simulation/{sim_id}")
    await db.insert_allocation(
        conn,
        allocation_id=sim_id,
        pool_id=pool["pool_id"],
        workspace_id=pool["workspace_id"],
        kind="simulation",
        trigger="simulate",
        idempotency_key=None,
        slot=None,
        status="simulated",
        autonomy=pool["autonomy"],
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
    return row
