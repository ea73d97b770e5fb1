"""Flight plans in integer cents, and the pure evaluation of one plan at one instant.

The engine (``engine.py``) computes in currency units (floats rounded to cents).
This module is the boundary: cents in, cents out.

* Cents -> units: ``cents / 100`` (Python's division is correctly rounded, so
  the float's shortest spelling is exactly the cents value over 100).
* Units -> cents (``cents_from_units``): ``Decimal(repr(x)) * 100`` quantized to
  an integer with ROUND_HALF_EVEN.  The engine already rounds every amount to
  2 decimals (half away from zero), so this conversion is exact for its
  outputs; half-even only decides values that still carry sub-cent digits.

Ids are deterministic: the same plan, data and slot give the same snapshot id,
proposal ids and action ids, so a re-run derives identical events.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from allot.contracts.currencies import UnknownCurrency, min_budget_minor
from allot.pacing.domain.curves import PacingCurve
from allot.pacing.domain.engine import BudgetPacingEngine, round2
from allot.pacing.domain.errors import PacingInputError
from allot.pacing.domain.models import PacingAlert, PacingConfig, PacingSnapshot, require_aware
from allot.pacing.domain.state import CampaignPacingState, PacingTransition, decide_pacing_state

PLAN_SNAPSHOT_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://allot.dev/pacing/plan-snapshot")
PROPOSAL_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://allot.dev/pacing/proposal")
ACTION_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://allot.dev/pacing/action")


def cents_from_units(amount: float) -> int:
    """Return ``amount`` currency units as integer cents, rounding half to even on the shortest decimal spelling."""
    return int((Decimal(repr(float(amount))) * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def units_from_cents(cents: int) -> float:
    """Return integer cents as currency units (exact to the cent)."""
    return cents / 100


def plan_snapshot_id(plan_id: str, slot_key: str) -> uuid.UUID:
    """Deterministic snapshot id of one plan in one slot."""
    return uuid.uuid5(PLAN_SNAPSHOT_NAMESPACE, f"{plan_id}/{slot_key}")


def proposal_id_for(plan_id: str, slot_key: str, source: str, target: str) -> uuid.UUID:
    """Deterministic proposal id: a snapshot proposes at most one move per (source, target) pair."""
    return uuid.uuid5(PROPOSAL_NAMESPACE, f"{plan_id}/{slot_key}/{source}->{target}")


def action_id_for(proposal_id: uuid.UUID | str, entity_id: str) -> uuid.UUID:
    """Deterministic action id of the budget change a proposal makes on one entity."""
    return uuid.uuid5(ACTION_NAMESPACE, f"{proposal_id}/{entity_id}")


@dataclass(frozen=True, slots=True)
class EntityRef:
    """An ad platform entity whose metrics count toward a channel or deal, or whose budget is moved."""

    platform: str
    ad_account_id: str
    entity_type: str
    entity_id: str


@dataclass(frozen=True, slots=True)
class ChannelPlan:
    """One channel: its allocated flight budget, the entities whose spend counts, its budget entity."""

    name: str
    allocated_budget_cents: int
    entities: tuple[EntityRef, ...] = ()
    budget_entity: EntityRef | None = None


@dataclass(frozen=True, slots=True)
class DealPlan:
    """One deal: its allocated flight budget and the entities whose spend counts toward it."""

    deal_id: str
    allocated_budget_cents: int
    entities: tuple[EntityRef, ...] = ()


def plan_account(channels: Sequence[ChannelPlan], deals: Sequence[DealPlan] = ()) -> EntityRef | None:
    """The entity whose ad account's day a plan keeps (its first channel's budget entity, else the first
    entity listed); None when the plan names no entity (then days are UTC days)."""
    for c in channels:
        if c.budget_entity is not None:
            return c.budget_entity
    groups: tuple[ChannelPlan | DealPlan, ...] = (*channels, *deals)
    for group in groups:
        if group.entities:
            return group.entities[0]
    return None


@dataclass(frozen=True, slots=True)
class FlightPlan:
    """Everything needed to pace one campaign; money in integer cents."""

    plan_id: str
    workspace_id: str
    campaign_id: str
    currency: str
    total_budget_cents: int
    flight_start: datetime
    flight_end: datetime
    channels: tuple[ChannelPlan, ...]
    deals: tuple[DealPlan, ...] = ()
    curve: PacingCurve = field(default_factory=PacingCurve.linear)
    config: PacingConfig = field(default_factory=PacingConfig)
    requires_approval: bool = False
    escalate_after_s: float = 86_400.0
    state: CampaignPacingState = CampaignPacingState.ACTIVE
    held_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """Spend and impressions to date of a channel or deal."""

    spend_cents: int = 0
    impressions: int = 0


@dataclass(frozen=True, slots=True)
class ChannelResult:
    """Pacing of one channel in cents."""

    channel: str
    allocated_budget_cents: int
    spend_cents: int
    expected_spend_cents: int
    pacing_pct: float
    deviation_pct: float
    impressions: int
    alert_level: str | None
    effective_cpm: float | None = None
    fill_rate: float | None = None
    unplanned_spend_cents: int = 0


@dataclass(frozen=True, slots=True)
class DealResult:
    """Pacing of one deal in cents."""

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
    win_rate: float | None = None


def effective_cpm_or_none(spend_cents: int, impressions: int) -> float | None:
    """Spend per 1,000 impressions in currency units, rounded to cents; None (unknown) without impressions."""
    if impressions <= 0:
        return None
    return round2(spend_cents / 100 / impressions * 1000.0)


@dataclass(frozen=True, slots=True)
class ProposalDraft:
    """A reallocation proposal in cents, with its deterministic id."""

    proposal_id: uuid.UUID
    source_channel: str
    target_channel: str
    amount_cents: int
    reason: str


@dataclass(frozen=True, slots=True)
class PlanEvaluation:
    """The outcome of evaluating one plan at one instant: numbers, alert, state decision, proposals."""

    snapshot_id: uuid.UUID
    taken_at: datetime
    total_budget_cents: int
    total_spend_cents: int
    expected_spend_cents: int
    pacing_pct: float
    deviation_pct: float
    channels: tuple[ChannelResult, ...]
    deals: tuple[DealResult, ...]
    alert: PacingAlert | None
    state_before: CampaignPacingState
    state_after: CampaignPacingState
    held_since_after: datetime | None
    transition: PacingTransition | None
    proposals: tuple[ProposalDraft, ...]
    engine_snapshot: PacingSnapshot


def evaluate_plan(
    plan: FlightPlan,
    channel_delivery: Mapping[str, Delivery],
    deal_delivery: Mapping[str, Delivery],
    *,
    now: datetime,
    slot_key: str,
) -> PlanEvaluation:
    """Return the plan's pacing at ``now`` and the state transition it calls for; same inputs, same result.

    Missing deliveries count as zero spend.  The state machine is
    ``decide_pacing_state`` fed with the campaign-level alert.
    """
    require_aware("now", now)
    engine = BudgetPacingEngine(plan.config)
    snapshot_id = plan_snapshot_id(plan.plan_id, slot_key)
    channel_data: dict[str, dict[str, object]] = {}
    for ch in plan.channels:
        got = channel_delivery.get(ch.name, Delivery())
        channel_data[ch.name] = {
            "allocated_budget": units_from_cents(ch.allocated_budget_cents),
            "spend": units_from_cents(got.spend_cents),
            "impressions": got.impressions,
        }
    deal_data: list[dict[str, object]] = []
    for deal in plan.deals:
        got = deal_delivery.get(deal.deal_id, Delivery())
        deal_data.append({
            "deal_id": deal.deal_id,
            "allocated_budget": units_from_cents(deal.allocated_budget_cents),
            "spend": units_from_cents(got.spend_cents),
            "impressions": got.impressions,
        })
    snap = engine.generate_snapshot(
        campaign_id=plan.campaign_id,
        total_budget=units_from_cents(plan.total_budget_cents),
        flight_start=plan.flight_start,
        flight_end=plan.flight_end,
        current_time=now,
        channel_data=channel_data,
        deal_data=deal_data,
        snapshot_id=str(snapshot_id),
        curve=plan.curve,
        currency=plan.currency,
    )
    channels = tuple(
        ChannelResult(
            channel=c.channel,
            allocated_budget_cents=cents_from_units(c.allocated_budget),
            spend_cents=cents_from_units(c.spend),
            expected_spend_cents=cents_from_units(c.expected_spend),
            pacing_pct=c.pacing_pct,
            deviation_pct=c.deviation_pct,
            impressions=c.impressions,
            alert_level=c.alert.level.value if c.alert else None,
            effective_cpm=effective_cpm_or_none(cents_from_units(c.spend), c.impressions),
            # Fill and win rates need bid requests and auctions won, which no metrics report carries yet.
            fill_rate=None,
            unplanned_spend_cents=cents_from_units(c.spend) if c.allocated_budget == 0.0 else 0,
        )
        for c in snap.channel_snapshots
    )
    deals = tuple(
        DealResult(
            deal_id=d.deal_id,
            allocated_budget_cents=cents_from_units(d.allocated_budget),
            spend_cents=cents_from_units(d.spend),
            expected_spend_cents=cents_from_units(d.expected_spend or 0.0),
            pacing_pct=d.pacing_pct if d.pacing_pct is not None else 100.0,
            deviation_pct=d.deviation_pct if d.deviation_pct is not None else 0.0,
            impressions=d.impressions,
            alert_level=d.alert.level.value if d.alert else None,
            effective_cpm=effective_cpm_or_none(cents_from_units(d.spend), d.impressions),
            fill_rate=None,
            win_rate=None,
        )
        for d in snap.deal_snapshots
    )
    transition = decide_pacing_state(plan.state, snap.alert, plan.held_since, now, plan.escalate_after_s)
    state_after = transition.to_state if transition else plan.state
    held_since_after = transition.held_since if transition else plan.held_since
    slot = slot_key
    proposals = tuple(
        ProposalDraft(
            proposal_id=proposal_id_for(plan.plan_id, slot, r.source_channel, r.target_channel),
            source_channel=r.source_channel,
            target_channel=r.target_channel,
            amount_cents=cents_from_units(r.amount),
            reason=r.reason,
        )
        for r in snap.recommendations
    )
    return PlanEvaluation(
        snapshot_id=snapshot_id,
        taken_at=snap.timestamp,
        total_budget_cents=plan.total_budget_cents,
        total_spend_cents=sum(c.spend_cents for c in channels),
        expected_spend_cents=cents_from_units(snap.expected_spend),
        pacing_pct=snap.pacing_pct,
        deviation_pct=snap.deviation_pct,
        channels=channels,
        deals=deals,
        alert=snap.alert,
        state_before=plan.state,
        state_after=state_after,
        held_since_after=held_since_after,
        transition=transition,
        proposals=proposals,
        engine_snapshot=snap,
    )


@dataclass(frozen=True, slots=True)
class PlannedPoint:
    """The spend a plan expects by ``at``: for the flight and per channel (with the channels' current split)."""

    at: datetime
    expected_spend_cents: int
    channels: tuple[tuple[str, int], ...]


def planned_spend(plan: FlightPlan, points: int) -> list[PlannedPoint]:
    """The plan's expected spend at ``points`` + 1 evenly spaced instants from flight start to flight end.

    The same numbers a snapshot taken at that instant would carry as ``expected_spend_cents`` (the plan's
    curve, in the zone it was given; a channel's share is its allocated budget over the total), so a chart of
    expected vs actual spend can draw the whole flight. ``points`` below 1 counts as 1.
    """
    steps = max(1, points)
    engine = BudgetPacingEngine(plan.config)
    total = units_from_cents(plan.total_budget_cents)
    span = plan.flight_end - plan.flight_start
    out = []
    for i in range(steps + 1):
        at = plan.flight_end if i == steps else plan.flight_start + span * i / steps
        expected = engine.calculate_expected_spend(total, plan.flight_start, plan.flight_end, at, plan.curve)
        channels = tuple(
            (c.name, cents_from_units(engine.build_channel_snapshot(
                c.name, units_from_cents(c.allocated_budget_cents), 0.0, total_budget=total,
                campaign_expected_spend=expected).expected_spend))
            for c in plan.channels)
        out.append(PlannedPoint(at, cents_from_units(expected), channels))
    return out


@dataclass(frozen=True, slots=True)
class StepLimits:
    """The guardrails' budget-change limits pacing plans within, so it never proposes what they block.

    The guardrails' limits are per workspace (``WorkspaceLimits``); pacing uses their defaults (20 % single
    change, 20 % net change per entity within 72 h). A unit test keeps these equal to the guardrails' defaults.
    """

    max_change_pct: int = 20
    net_change_pct_window: int = 20
    net_change_window_h: int = 72

    @property
    def step_pct(self) -> int:
        """Largest change of one step, percent of the budget before it (both limits hold)."""
        return min(self.max_change_pct, self.net_change_pct_window)

    @property
    def step_spacing_days(self) -> int:
        """Days between two steps on one entity: a full net-change window, so each step has the window alone."""
        return max(1, -(-self.net_change_window_h // 24))


DEFAULT_STEP_LIMITS: Final = StepLimits()


@dataclass(frozen=True, slots=True)
class BudgetMove:
    """One absolute daily-budget change on one entity (from -> to, cents)."""

    action_id: uuid.UUID
    entity: EntityRef
    from_cents: int
    to_cents: int
    role: str  # "target" or "source"


@dataclass(frozen=True, slots=True)
class MoveStep:
    """One step of a move: on flight day ``day`` (0 = today) the source goes down and the target up by ``delta``."""

    day: int
    delta_cents: int
    source_from_cents: int
    source_to_cents: int
    target_from_cents: int
    target_to_cents: int


@dataclass(frozen=True, slots=True)
class MovePlan:
    """The budget changes a proposal makes, or why it cannot make them (``needs_budget``).

    ``moves`` are the first step's two changes (what is requested now); ``steps`` the whole schedule.
    ``moved_cents`` is the flight-level money the first step moves over the remaining days (what the plan's
    allocation shifts by when it is applied); ``planned_cents`` what all steps move; ``days`` how many flight
    days the schedule spans; ``note`` says what limited the move, if anything.
    """

    moves: tuple[BudgetMove, ...]
    moved_cents: int
    needs_budget: str | None = None
    steps: tuple[MoveStep, ...] = ()
    daily_change_cents: int = 0
    planned_cents: int = 0
    days: int = 0
    remaining_days: int = 0
    note: str = ""

    @property
    def summary(self) -> str:
        """One line a person reads: the daily change, the steps and the days it takes."""
        if not self.steps:
            return ""
        n = len(self.steps)
        text = (f"daily budgets change by {self.daily_change_cents} cents over the {self.remaining_days} remaining "
                f"day(s) in {n} step(s) over {self.days} day(s)")
        if n > 1:
            text += f"; step 1 now ({self.steps[0].delta_cents} cents), the rest in later snapshots"
        return text + (f"; {self.note}" if self.note else "")


def remaining_flight_days(flight_end: datetime, now: datetime) -> int:
    """Whole days left in the flight at ``now``, a started day counting as one; at least 1."""
    require_aware("now", now)
    seconds = (flight_end - now).total_seconds()
    return max(1, math.ceil(seconds / 86_400))


def _minimum(ref: EntityRef, currency: str) -> int | None:
    try:
        return min_budget_minor(ref.platform, ref.entity_type, currency)
    except UnknownCurrency:
        return None


def plan_budget_moves(
    proposal_id: uuid.UUID | str,
    amount_cents: int,
    *,
    target: EntityRef | None,
    source: EntityRef | None,
    target_budget_cents: int | None,
    source_budget_cents: int | None,
    remaining_days: int = 1,
    currency: str = "USD",
    limits: StepLimits = DEFAULT_STEP_LIMITS,
    now: datetime | None = None,
    last_changed: Mapping[tuple[str, str], datetime] | None = None,
) -> MovePlan:
    """Turn a flight-level ``amount_cents`` into daily-budget steps within the guardrails' limits.

    The daily change is ``amount_cents // remaining_days`` (spread over the flight's remaining days, never
    more than the proposal). It is reached in steps: each moves the same ``delta`` off the source's and onto
    the target's daily budget (their sum is unchanged), ``delta`` at most ``limits.step_pct`` % of either
    budget before the step (rounded down), never taking the source below the platform minimum
    (``min_budget_minor`` of its platform, entity type and ``currency``). Steps are one net-change window
    apart (``limits.step_spacing_days``) and only on days inside the flight. When the daily change cannot be
    reached within the flight, the schedule stops short and ``note`` says why. ``needs_budget`` explains
    why nothing at all can move, including a step pacing made on either entity within the net-change window
    before ``now`` (``last_changed``: (platform, entity_id) -> when pacing last changed it): the guardrails
    would trim or drop the next one, so it waits and the reason says from when it is possible.
    """
    if amount_cents <= 0:
        raise PacingInputError(f"amount_cents must be positive, got {amount_cents}")
    if remaining_days <= 0:
        raise PacingInputError(f"remaining_days must be positive, got {remaining_days}")
    if target is None:
        return MovePlan((), 0, "target channel has no budget entity")
    if source is None:
        return MovePlan((), 0, "source channel has no budget entity")
    if target.entity_id == source.entity_id and target.platform == source.platform:
        return MovePlan((), 0, "source and target channels share one budget entity")
    missing = [
        f"{role} budget entity {ref.platform}:{ref.entity_id} has no known daily budget"
        for role, ref, budget in (("target", target, target_budget_cents), ("source", source, source_budget_cents))
        if budget is None
    ]
    if missing:
        return MovePlan((), 0, "; ".join(missing))
    assert target_budget_cents is not None and source_budget_cents is not None
    if now is not None and last_changed:
        window = timedelta(hours=limits.net_change_window_h)
        recent = [(role, ref, at) for role, ref in (("target", target), ("source", source))
                  if (at := last_changed.get((ref.platform, ref.entity_id))) is not None and now - window < at <= now]
        if recent:
            latest = max(at for _, _, at in recent)
            names = ", ".join(f"{role} {ref.platform}:{ref.entity_id} at {at.isoformat()}" for role, ref, at in recent)
            return MovePlan((), 0, f"waiting for the {limits.net_change_window_h} h net-change window: pacing "
                                   f"changed {names}; the next step is possible from {(latest + window).isoformat()}")
    minimum = _minimum(source, currency)
    if minimum is None:
        return MovePlan((), 0, f"no platform minimum is known for {currency} on {source.platform}")
    if source_budget_cents <= 0:
        return MovePlan((), 0, f"source budget entity {source.platform}:{source.entity_id} has a daily budget of 0")
    daily = amount_cents // remaining_days
    if daily <= 0:
        return MovePlan((), 0, f"{amount_cents} cents over {remaining_days} remaining days is less than a cent a day")

    steps: list[MoveStep] = []
    src, tgt, left, day = source_budget_cents, target_budget_cents, daily, 0
    limited_by = ""
    while left > 0:
        if day >= remaining_days:
            limited_by = "the flight ends before more steps"
            break
        caps = {
            f"the {limits.step_pct}% step on the source": src * limits.step_pct // 100,
            f"the {limits.step_pct}% step on the target": tgt * limits.step_pct // 100,
            f"the {source.platform} minimum daily budget of {minimum}": src - minimum,
        }
        why, cap = min(caps.items(), key=lambda kv: kv[1])
        delta = min(left, cap)
        if delta <= 0:
            limited_by = why
            break
        steps.append(MoveStep(day, delta, src, src - delta, tgt, tgt + delta))
        src, tgt, left = src - delta, tgt + delta, left - delta
        day += limits.step_spacing_days

    if not steps:
        if target_budget_cents <= 0:
            limited_by = (f"the target's daily budget is 0 and the {limits.max_change_pct}% step allows no change "
                          "from 0")
        return MovePlan((), 0, f"no step fits: {limited_by} (source {source_budget_cents}, target "
                               f"{target_budget_cents} cents)")
    first = steps[0]
    planned = sum(s.delta_cents * (remaining_days - s.day) for s in steps)
    note = f"the daily change stops {left} cents short of {daily}: {limited_by}" if left > 0 else ""
    return MovePlan(
        moves=(
            BudgetMove(action_id_for(proposal_id, target.entity_id), target, first.target_from_cents,
                       first.target_to_cents, "target"),
            BudgetMove(action_id_for(proposal_id, source.entity_id), source, first.source_from_cents,
                       first.source_to_cents, "source"),
        ),
        moved_cents=min(amount_cents, first.delta_cents * remaining_days),
        steps=tuple(steps),
        daily_change_cents=sum(s.delta_cents for s in steps),
        planned_cents=min(amount_cents, planned),
        days=steps[-1].day + 1,
        remaining_days=remaining_days,
        note=note,
    )


def proposal_outcome(outcomes: Mapping[str, str | None]) -> str | None:
    """Return the proposal status once every action has an outcome: applied, conflict, failed or expired (the
    approval ran out before the executor received it; nothing was applied by it) — None while waiting."""
    if not outcomes or any(o is None for o in outcomes.values()):
        return None
    values = set(outcomes.values())
    if values <= {"succeeded", "already_applied"}:
        return "applied"
    if "conflict" in values:
        return "conflict"
    if values <= {"succeeded", "already_applied", "expired"}:
        return "expired"
    return "failed"
