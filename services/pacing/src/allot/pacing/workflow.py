"""The pacing workflows shared by the scheduler, the HTTP routes and the consumers.

Each function runs inside the caller's transaction and returns the events to write to the outbox
(the caller emits them in the same transaction), so state and events commit together.

Event ids are deterministic (``new_envelope`` with a step and no cause =
uuid5 of ``pacing/<workspace>/<step>``):

* ``{plan_id}/{slot}/snapshot_taken``
* ``{plan_id}/{slot}/deviation_detected`` (a critical one with its notification.requested, derived from it:
  ``domain.notices``)
* ``{plan_id}/{slot}/reallocation_recommended/{proposal_id}``
* ``{plan_id}/{slot}/allocation_requested/{proposal_id}`` (the same id whether the proposal was requested
  automatically or approved by a person, so a proposal can never yield two change sets)

``slot`` is the UTC isoformat of the slot start (scheduled) or of the request instant (on demand).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from typing import Any

from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.payloads import (
    AllocationRequested,
    BudgetAction,
    ChannelPacing,
    PacingDeviationDetected,
    PacingReallocationRecommended,
    PacingSnapshotTaken,
)
from allot.contracts.registry import TOPICS
from allot.pacing.adapters import postgres as db
from allot.pacing.domain import (
    CampaignPacingState,
    ChannelPlan,
    DealPlan,
    Delivery,
    EntityRef,
    FlightPlan,
    OpenProposal,
    PacingConfig,
    PacingCurve,
    PacingInputError,
    PlanEvaluation,
    evaluate_plan,
    plan_budget_moves,
    proposal_outcome,
    reconcile_proposals,
    remaining_flight_days,
)
from allot.pacing.domain.curves import CurveKind
from allot.pacing.domain.notices import deviation_notifications
from allot.pacing.domain.plans import PROPOSAL_NAMESPACE, plan_account
from allot.pacing.domain.stored import StoredPlan
from allot.runtime.db import Conn
from allot.runtime.logging import get_logger
from allot.runtime.schedule import claim_slot

log = get_logger(__name__)

PRODUCER = "pacing"
SCHEDULABLE = ("ACTIVE", "PACING_HOLD")
OPEN_STATUSES = ("pending_approval", "needs_budget")


def snapshot_job(plan_id: str) -> str:
    """schedule_claims job name of a plan's snapshots (one claim per (plan, slot))."""
    return f"pacing_snapshot:{plan_id}"


def slot_key(slot: datetime) -> str:
    return slot.isoformat()


def request_id_for(proposal_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(PROPOSAL_NAMESPACE, f"{proposal_id}/request")


def _envelope(topic: str, payload: Any, workspace_id: str, now: datetime, step: str,
              correlation_id: uuid.UUID | None = None) -> Envelope[Any]:
    return new_envelope(event_type=topic, schema_version=TOPICS[topic].schema_version, payload=payload,
                        producer=PRODUCER, workspace_id=workspace_id, occurred_at=now, step=step,
                        correlation_id=correlation_id)


# ---------------------------------------------------------------- rows <-> domain


def _ref(data: Mapping[str, Any]) -> EntityRef:
    return EntityRef(data["platform"], data["ad_account_id"], data["entity_type"], data["entity_id"])


def curve_from_json(data: Mapping[str, Any]) -> PacingCurve:
    kind = CurveKind(data.get("kind", "linear"))
    if kind is CurveKind.DAY_OF_WEEK:
        return PacingCurve.day_of_week(data["weekday_weights"])
    if kind is CurveKind.FRONT_LOADED:
        return PacingCurve.front_loaded(float(data.get("exponent", 2.0)))
    if kind is CurveKind.BACK_LOADED:
        return PacingCurve.back_loaded(float(data.get("exponent", 2.0)))
    return PacingCurve.linear()


def config_from_json(data: Mapping[str, Any]) -> PacingConfig:
    return PacingConfig(
        underpacing_warning_pct=data["underpacing_warning_pct"],
        underpacing_critical_pct=data["underpacing_critical_pct"],
        overpacing_warning_pct=data["overpacing_warning_pct"],
        overpacing_critical_pct=data["overpacing_critical_pct"],
        min_reallocation_amount=data["min_reallocation_amount_cents"] / 100,
        max_reallocation_pct=data["max_reallocation_pct"],
    )


#: (workspace_id, platform, ad_account_id) → the account's time zone (``AccountDirectory.zone_for``).
ZoneLookup = Callable[[str, str, str], tzinfo]


def plan_from_row(row: StoredPlan, zones: ZoneLookup | None = None) -> FlightPlan:
    """The domain plan of a stored plan; its curve's days are those of the plan's ad account (``zones``;
    UTC without a lookup or an account)."""
    plan = FlightPlan(
        plan_id=row.plan_id,
        workspace_id=row.workspace_id,
        campaign_id=row.campaign_id,
        currency=row.currency,
        total_budget_cents=row.total_budget_cents,
        flight_start=row.flight_start,
        flight_end=row.flight_end,
        channels=tuple(
            ChannelPlan(c["name"], c["allocated_budget_cents"], tuple(_ref(e) for e in c.get("entities", [])),
                        _ref(c["budget_entity"]) if c.get("budget_entity") else None)
            for c in row.channels
        ),
        deals=tuple(
            DealPlan(d["deal_id"], d["allocated_budget_cents"], tuple(_ref(e) for e in d.get("entities", [])))
            for d in row.deals
        ),
        curve=curve_from_json(row.curve),
        config=config_from_json(row.thresholds),
        requires_approval=row.requires_approval,
        escalate_after_s=float(row.escalate_after_s),
        state=CampaignPacingState(row.state),
        held_since=row.held_since,
    )
    account = plan_account(plan.channels, plan.deals)
    if zones is None or account is None:
        return plan
    zone = zones(plan.workspace_id, account.platform, account.ad_account_id)
    return plan if zone is UTC else replace(plan, curve=plan.curve.in_zone(zone))


# ---------------------------------------------------------------- snapshots


@dataclass
class SnapshotPass:
    """What one snapshot transaction did (for metrics, logs and the HTTP response)."""

    envelopes: list[Envelope[Any]] = field(default_factory=list)
    snapshot_ids: dict[str, uuid.UUID] = field(default_factory=dict)  # plan_id -> snapshot id
    deviations: list[str] = field(default_factory=list)  # alert levels
    proposal_statuses: list[str] = field(default_factory=list)
    transitions: list[str] = field(default_factory=list)  # to_state
    skipped: list[str] = field(default_factory=list)  # plan ids claimed by someone else or not schedulable
    failed: list[str] = field(default_factory=list)  # plan ids whose data the engine refused


async def take_snapshots(conn: Conn, due: Sequence[tuple[str, datetime]], *, now: datetime,
                         claimed_by: str, trigger: str = "schedule", zones: ZoneLookup | None = None) -> SnapshotPass:
    """Claim each (plan, slot) once, evaluate the claimed plans and persist snapshots, transitions and proposals.

    Must run inside a transaction.  ``trigger='schedule'`` snapshots only ACTIVE/PACING_HOLD plans;
    ``'manual'`` snapshots any plan (a PAUSED plan's proposals then wait for a human).
    """
    result = SnapshotPass()
    slots: dict[str, datetime] = {}
    for plan_id, slot in sorted(due):
        if await claim_slot(conn, snapshot_job(plan_id), slot, claimed_by):
            slots[plan_id] = slot
        else:
            result.skipped.append(plan_id)
    if not slots:
        return result
    rows = await db.lock_plans(conn, list(slots))
    if trigger == "schedule":
        result.skipped += [r.plan_id for r in rows if r.state not in SCHEDULABLE]
        rows = [r for r in rows if r.state in SCHEDULABLE]
    if not rows:
        return result
    plan_ids = [r.plan_id for r in rows]
    delivery: dict[str, tuple[dict[str, Delivery], dict[str, Delivery]]] = {p: ({}, {}) for p in plan_ids}
    for d in await db.delivery_for(conn, plan_ids, [now] * len(plan_ids)):
        kind_map = delivery[d.plan_id][0 if d.kind == "channel" else 1]
        kind_map[d.name] = Delivery(d.spend_cents, d.impressions)

    open_by_plan: dict[str, list[OpenProposal]] = defaultdict(list)
    for o in await db.open_proposals(conn, plan_ids):
        open_by_plan[o.plan_id].append(OpenProposal(o.proposal_id, o.source_channel, o.target_channel,
                                                    int(o.amount_cents), o.status))
    superseded: list[uuid.UUID] = []
    snapshot_rows: list[tuple[Any, ...]] = []
    plan_updates: list[tuple[str, str, datetime | None, datetime]] = []
    transition_rows: list[tuple[Any, ...]] = []
    proposal_rows: list[tuple[Any, ...]] = []
    auto: list[tuple[StoredPlan, FlightPlan, Any, str, uuid.UUID]] = []
    evaluated: list[tuple[StoredPlan, FlightPlan, PlanEvaluation, str, uuid.UUID]] = []
    for row in rows:
        plan_id = row.plan_id
        slot = slots[plan_id]
        key = slot_key(slot)
        try:
            plan = plan_from_row(row, zones)
            ev = evaluate_plan(plan, delivery[plan_id][0], delivery[plan_id][1], now=now, slot_key=key)
        except (PacingInputError, KeyError, ValueError) as exc:
            # Claimed but unusable: log it and mark the slot done so it is not retried every scan.
            log.error("pacing_snapshot_refused", plan_id=plan_id, error=repr(exc))
            result.failed.append(plan_id)
            plan_updates.append((plan_id, row.state, row.held_since, slot))
            continue
        snap_event = _envelope("pacing.snapshot_taken", _snapshot_payload(plan, ev), plan.workspace_id, now,
                               f"{plan_id}/{key}/snapshot_taken")
        evaluated.append((row, plan, ev, key, snap_event.event_id))
        result.envelopes.append(snap_event)
        result.snapshot_ids[plan_id] = ev.snapshot_id
        plan_updates.append((plan_id, ev.state_after.value, ev.held_since_after, slot))
        if ev.transition is not None:
            transition_rows.append((plan_id, plan.workspace_id, ev.transition.from_state.value,
                                    ev.transition.to_state.value, ev.transition.reason, PRODUCER, ev.snapshot_id, now))
            result.transitions.append(ev.transition.to_state.value)
        if ev.alert is not None:
            result.deviations.append(ev.alert.level.value)
            deviation = _envelope(
                "pacing.deviation_detected",
                PacingDeviationDetected(
                    plan_id=plan_id, campaign_id=plan.campaign_id, snapshot_id=ev.snapshot_id,
                    alert_level=ev.alert.level.value, direction=ev.alert.direction.value,
                    deviation_pct=ev.alert.deviation_pct, threshold_pct=ev.alert.threshold_pct,
                    message=ev.alert.message, state_before=ev.state_before.value, state_after=ev.state_after.value,
                ),
                plan.workspace_id, now, f"{plan_id}/{key}/deviation_detected", snap_event.event_id)
            result.envelopes += [deviation, *deviation_notifications(deviation)]
        needs_human = plan.requires_approval or ev.state_after is CampaignPacingState.PAUSED
        if needs_human:
            # Stable proposals: an open one stays unless the situation changed materially.
            rec = reconcile_proposals(open_by_plan[plan_id], ev.proposals)
            drafts, kept = rec.new, rec.kept
            superseded += rec.superseded
        else:
            drafts, kept = ev.proposals, {}
            superseded += [o.proposal_id for o in open_by_plan[plan_id]]
        proposal_ids = [kept.get(p.proposal_id, p.proposal_id) for p in ev.proposals]
        for prop in drafts:
            status = "pending_approval" if needs_human else "requested"
            proposal_rows.append((prop.proposal_id, plan_id, plan.workspace_id, ev.snapshot_id, key,
                                  prop.source_channel, prop.target_channel, prop.amount_cents, plan.currency,
                                  prop.reason, needs_human, "pending_approval", snap_event.event_id, now))
            # Auto-requested proposals go pending_approval -> requested | needs_budget below.
            result.envelopes.append(_envelope(
                "pacing.reallocation_recommended",
                PacingReallocationRecommended(
                    plan_id=plan_id, campaign_id=plan.campaign_id, proposal_id=prop.proposal_id,
                    snapshot_id=ev.snapshot_id, source_channel=prop.source_channel,
                    target_channel=prop.target_channel, amount_cents=prop.amount_cents, currency=plan.currency,
                    reason=prop.reason, requires_approval=needs_human,
                ),
                plan.workspace_id, now, f"{plan_id}/{key}/reallocation_recommended/{prop.proposal_id}",
                snap_event.event_id))
            if status == "pending_approval":
                result.proposal_statuses.append(status)
            else:
                auto.append((row, plan, prop, key, snap_event.event_id))
        snapshot_rows.append((
            ev.snapshot_id, plan_id, plan.workspace_id, plan.campaign_id, slot, now, trigger, plan.currency,
            ev.total_budget_cents, ev.total_spend_cents, ev.expected_spend_cents, ev.pacing_pct, ev.deviation_pct,
            ev.state_before.value, ev.state_after.value, _alert_json(ev), _channels_json(ev), _deals_json(ev),
            proposal_ids,
        ))

    await db.supersede_proposals(conn, superseded, now)
    await db.insert_snapshots(conn, snapshot_rows)
    await db.record_snapshot_on_plans(conn, plan_updates)
    await db.insert_transitions(conn, transition_rows)
    await db.insert_proposals(conn, proposal_rows)
    if auto:
        budgets = await _budgets_by_workspace(conn, [(plan, p) for _, plan, p, _, _ in auto])
        for _row, plan, prop, key, correlation in auto:
            status, envs = await request_proposal(
                conn, plan, proposal_id=prop.proposal_id, slot=key, source_channel=prop.source_channel,
                target_channel=prop.target_channel, amount_cents=prop.amount_cents, now=now, requested_by=PRODUCER,
                correlation_id=correlation, budgets=budgets[plan.workspace_id])
            result.proposal_statuses.append(status)
            result.envelopes += envs
    return result


async def _budgets_by_workspace(conn: Conn, items: Iterable[tuple[FlightPlan, Any]]
                                ) -> dict[str, dict[tuple[str, str], int | None]]:
    """Current budgets of every budget entity the pass's automatic proposals touch, per workspace."""
    wanted: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for plan, prop in items:
        channels = {c.name: c for c in plan.channels}
        for name in (prop.source_channel, prop.target_channel):
            ch = channels.get(name)
            if ch is not None and ch.budget_entity is not None:
                wanted[plan.workspace_id].add((ch.budget_entity.platform, ch.budget_entity.entity_id))
    out: dict[str, dict[tuple[str, str], int | None]] = defaultdict(dict)
    for workspace_id, refs in wanted.items():
        out[workspace_id] = await db.latest_budgets(conn, workspace_id, refs)
    return out


def _snapshot_payload(plan: FlightPlan, ev: PlanEvaluation) -> PacingSnapshotTaken:
    return PacingSnapshotTaken(
        plan_id=plan.plan_id, campaign_id=plan.campaign_id, snapshot_id=ev.snapshot_id, taken_at=ev.taken_at,
        currency=plan.currency, total_budget_cents=ev.total_budget_cents, total_spend_cents=ev.total_spend_cents,
        expected_spend_cents=ev.expected_spend_cents, pacing_pct=ev.pacing_pct, deviation_pct=ev.deviation_pct,
        channel_count=len(ev.channels), deal_count=len(ev.deals),
        channels=[
            ChannelPacing(channel=c.channel, allocated_budget_cents=c.allocated_budget_cents, spend_cents=c.spend_cents,
                          expected_spend_cents=c.expected_spend_cents, pacing_pct=c.pacing_pct,
                          deviation_pct=c.deviation_pct, impressions=c.impressions)
            for c in ev.channels
        ],
        state=ev.state_after.value,
    )


def _alert_json(ev: PlanEvaluation) -> dict[str, Any] | None:
    if ev.alert is None:
        return None
    return {"level": ev.alert.level.value, "direction": ev.alert.direction.value,
            "deviation_pct": ev.alert.deviation_pct, "threshold_pct": ev.alert.threshold_pct,
            "message": ev.alert.message}


def _channels_json(ev: PlanEvaluation) -> list[dict[str, Any]]:
    return [{"channel": c.channel, "allocated_budget_cents": c.allocated_budget_cents, "spend_cents": c.spend_cents,
             "expected_spend_cents": c.expected_spend_cents, "pacing_pct": c.pacing_pct,
             "deviation_pct": c.deviation_pct, "impressions": c.impressions, "alert_level": c.alert_level,
             "effective_cpm": c.effective_cpm, "fill_rate": c.fill_rate,
             "unplanned_spend_cents": c.unplanned_spend_cents}
            for c in ev.channels]


def _deals_json(ev: PlanEvaluation) -> list[dict[str, Any]]:
    return [{"deal_id": d.deal_id, "allocated_budget_cents": d.allocated_budget_cents, "spend_cents": d.spend_cents,
             "expected_spend_cents": d.expected_spend_cents, "pacing_pct": d.pacing_pct,
             "deviation_pct": d.deviation_pct, "impressions": d.impressions, "alert_level": d.alert_level,
             "effective_cpm": d.effective_cpm, "fill_rate": d.fill_rate, "win_rate": d.win_rate}
            for d in ev.deals]


# ---------------------------------------------------------------- proposals -> allocation.requested


async def request_proposal(
    conn: Conn, plan: FlightPlan, *, proposal_id: uuid.UUID, slot: str, source_channel: str,
    target_channel: str, amount_cents: int, now: datetime, requested_by: str, correlation_id: uuid.UUID,
    budgets: dict[tuple[str, str], int | None] | None = None,
) -> tuple[str, list[Envelope[Any]]]:
    """Turn an approved proposal into one ``allocation.requested`` change set, or mark it ``needs_budget``.

    The flight-level amount becomes daily-budget steps over the flight's remaining days within the
    guardrails' default limits (``plan_budget_moves``); the first step is requested now, the status note
    says how many steps and days the whole move takes.  Current budgets are the ``daily_budget_cents`` of
    each entity's latest metrics report.  ``budgets`` (when given) is updated with the new targets, so several
    proposals requested in one pass that touch the same entity chain their from -> to instead of all
    starting from a stale budget.
    Returns the new status and the events to emit.
    """
    channels = {c.name: c for c in plan.channels}
    target = channels[target_channel].budget_entity if target_channel in channels else None
    source = channels[source_channel].budget_entity if source_channel in channels else None
    if budgets is None:
        refs = [(r.platform, r.entity_id) for r in (target, source) if r is not None]
        budgets = await db.latest_budgets(conn, plan.workspace_id, refs)
    move = plan_budget_moves(
        proposal_id, amount_cents, target=target, source=source,
        target_budget_cents=budgets.get((target.platform, target.entity_id)) if target else None,
        source_budget_cents=budgets.get((source.platform, source.entity_id)) if source else None,
        remaining_days=remaining_flight_days(plan.flight_end, now), currency=plan.currency, now=now,
        last_changed=await db.last_pacing_changes(
            conn, plan.workspace_id, [(r.platform, r.entity_id) for r in (target, source) if r is not None]),
    )
    decided_by = "" if requested_by == PRODUCER else requested_by
    if move.needs_budget is not None:
        await db.set_proposal_status(conn, [(proposal_id, "needs_budget", move.needs_budget, None, None, now,
                                             decided_by)])
        log.warning("pacing_proposal_needs_budget", plan_id=plan.plan_id, proposal_id=str(proposal_id),
                    reason=move.needs_budget)
        return "needs_budget", []
    for m in move.moves:
        budgets[(m.entity.platform, m.entity.entity_id)] = m.to_cents
    request_id = request_id_for(proposal_id)
    note = f" ({move.summary})"
    actions = [
        BudgetAction(
            action_id=m.action_id, platform=m.entity.platform, ad_account_id=m.entity.ad_account_id,  # type: ignore[arg-type]
            entity_type=m.entity.entity_type, entity_id=m.entity.entity_id, action_type="set_budget",  # type: ignore[arg-type]
            currency=plan.currency, from_cents=m.from_cents, to_cents=m.to_cents,
            reason=(f"pacing plan {plan.plan_id}: move {amount_cents} {plan.currency} cents of flight budget from "
                    f"{source_channel} to {target_channel}, step 1 of {len(move.steps)}{note}"),
        )
        for m in move.moves
    ]
    await db.insert_proposal_actions(conn, [
        (m.action_id, proposal_id, m.role, m.entity.platform, m.entity.ad_account_id, m.entity.entity_type,
         m.entity.entity_id, m.from_cents, m.to_cents)
        for m in move.moves
    ])
    await db.set_proposal_status(conn, [(proposal_id, "requested", note.strip(), request_id, move.moved_cents, now,
                                         decided_by)])
    envelope = _envelope(
        "allocation.requested",
        AllocationRequested(request_id=request_id, source="pacing", source_id=plan.plan_id,
                            idempotency_key=str(proposal_id), manual=False, actions=actions,
                            requested_by=requested_by),
        plan.workspace_id, now, f"{plan.plan_id}/{slot}/allocation_requested/{proposal_id}", correlation_id)
    return "requested", [envelope]


# ---------------------------------------------------------------- action.executed -> proposal outcome


async def apply_action_outcomes(conn: Conn, rows: Sequence[tuple[Any, ...]],
                                now: datetime) -> list[tuple[str, str]]:
    """Record action outcomes; complete every requested proposal whose actions all have one.

    An applied proposal also moves ``moved_cents`` of allocated flight budget from the source channel to
    the target channel, so later snapshots pace against the new split and do not propose the same move.
    Returns (proposal_id, status) of the proposals completed.
    """
    touched = await db.record_action_outcomes(conn, rows)
    if not touched:
        return []
    proposals = [p for p in await db.lock_proposals(conn, touched) if p.status == "requested"]
    actions: dict[uuid.UUID, dict[str, str | None]] = defaultdict(dict)
    errors: dict[uuid.UUID, list[str]] = defaultdict(list)
    for a in await db.proposal_actions(conn, [p.proposal_id for p in proposals]):
        actions[a.proposal_id][str(a.action_id)] = a.outcome
        if a.outcome not in (None, "succeeded", "already_applied"):
            errors[a.proposal_id].append(f"{a.role} {a.entity_id}: {a.outcome} {a.error or ''}".strip())
    done: list[tuple[str, str]] = []
    for p in proposals:
        status = proposal_outcome(actions[p.proposal_id])
        if status is None:
            continue
        await db.complete_proposal(conn, p.proposal_id, status, "; ".join(errors[p.proposal_id]), now)
        if status == "applied":
            plan = await db.get_plan(conn, p.workspace_id, p.plan_id, for_update=True)
            if plan is not None:
                await db.shift_allocation(conn, p.plan_id, _shifted(plan.channels, p.source_channel,
                                                                    p.target_channel, p.moved_cents), now)
        done.append((str(p.proposal_id), status))
    return done


def _shifted(channels: list[dict[str, Any]], source: str, target: str, moved: int | None) -> list[dict[str, Any]]:
    amount = int(moved or 0)
    out = []
    for ch in channels:
        ch = dict(ch)
        if ch["name"] == source:
            ch["allocated_budget_cents"] = max(0, ch["allocated_budget_cents"] - amount)
        elif ch["name"] == target:
            ch["allocated_budget_cents"] = ch["allocated_budget_cents"] + amount
        out.append(ch)
    return out
