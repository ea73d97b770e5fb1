"""Flight plans in cents: evaluation, cents boundary, budget moves and proposal outcomes (pure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from allot.contracts.currencies import min_budget_minor
from allot.pacing.domain import (
    CampaignPacingState,
    ChannelPlan,
    DealPlan,
    Delivery,
    EntityRef,
    FlightPlan,
    PacingCurve,
    PacingInputError,
    StepLimits,
    action_id_for,
    cents_from_units,
    evaluate_plan,
    plan_budget_moves,
    planned_spend,
    proposal_outcome,
    remaining_flight_days,
)

START = datetime(2026, 8, 1, tzinfo=UTC)
END = datetime(2026, 8, 11, tzinfo=UTC)
HALF = datetime(2026, 8, 6, tzinfo=UTC)
A = EntityRef("sandbox", "act", "campaign", "a")
B = EntityRef("sandbox", "act", "campaign", "b")


def plan(**overrides: object) -> FlightPlan:
    base: dict[str, object] = {
        "plan_id": "p1", "workspace_id": "ws", "campaign_id": "c1", "currency": "USD",
        "total_budget_cents": 10_000_000, "flight_start": START, "flight_end": END,
        "channels": (ChannelPlan("CTV", 6_000_000, (A,), A), ChannelPlan("DISPLAY", 4_000_000, (B,), B)),
        "deals": (DealPlan("deal-1", 2_000_000, (A,)),),
    }
    base.update(overrides)
    return FlightPlan(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("units", "cents"),
    [(0.0, 0), (12.34, 1234), (0.125, 12), (0.135, 14), (1e10 + 0.01, 1_000_000_000_001), (73770.49, 7_377_049)],
)
def test_units_become_cents_half_even(units: float, cents: int) -> None:
    assert cents_from_units(units) == cents


def test_evaluate_plan_gives_cents_alert_and_one_proposal() -> None:
    ev = evaluate_plan(plan(), {"CTV": Delivery(1_500_000, 10), "DISPLAY": Delivery(2_600_000, 20)},
                       {"deal-1": Delivery(1_500_000)}, now=HALF, slot_key="s1")
    assert (ev.total_spend_cents, ev.expected_spend_cents, ev.pacing_pct, ev.deviation_pct) == (
        4_100_000, 5_000_000, 82.0, -18.0)
    assert ev.alert is not None and ev.alert.level == "warning"
    assert [(c.channel, c.expected_spend_cents, c.alert_level) for c in ev.channels] == [
        ("CTV", 3_000_000, "critical"), ("DISPLAY", 2_000_000, "critical")]
    assert ev.deals[0].expected_spend_cents == 1_000_000 and ev.deals[0].pacing_pct == 150.0
    (prop,) = ev.proposals
    assert (prop.source_channel, prop.target_channel, prop.amount_cents) == ("CTV", "DISPLAY", 600_000)
    assert ev.transition is None and ev.state_after is CampaignPacingState.ACTIVE
    again = evaluate_plan(plan(), {"CTV": Delivery(1_500_000, 10), "DISPLAY": Delivery(2_600_000, 20)},
                          {"deal-1": Delivery(1_500_000)}, now=HALF, slot_key="s1")
    assert (again.snapshot_id, again.proposals[0].proposal_id) == (ev.snapshot_id, prop.proposal_id)
    other_slot = evaluate_plan(plan(), {}, {}, now=HALF, slot_key="s2")
    assert other_slot.snapshot_id != ev.snapshot_id


def test_planned_spend_draws_the_whole_flight_as_a_snapshot_would_compute_it() -> None:
    points = planned_spend(plan(), 10)
    assert [p.at for p in points] == [START + timedelta(days=d) for d in range(11)]
    assert (points[0].expected_spend_cents, points[5].expected_spend_cents, points[-1].expected_spend_cents) == (
        0, 5_000_000, 10_000_000)
    assert points[5].channels == (("CTV", 3_000_000), ("DISPLAY", 2_000_000))
    assert points[-1].channels == (("CTV", 6_000_000), ("DISPLAY", 4_000_000))
    ev = evaluate_plan(plan(), {}, {}, now=HALF, slot_key="s1")
    assert [(c.channel, c.expected_spend_cents) for c in ev.channels] == list(points[5].channels)
    front = planned_spend(plan(curve=PacingCurve.front_loaded(2.0)), 2)
    assert front[1].expected_spend_cents > 5_000_000 and front[-1].expected_spend_cents == 10_000_000
    assert [p.at for p in planned_spend(plan(), 0)] == [START, END]


def test_reasons_use_the_plans_currency() -> None:
    delivery = {"CTV": Delivery(1_500_000, 10), "DISPLAY": Delivery(2_600_000, 20)}
    (eur,) = evaluate_plan(plan(currency="EUR"), delivery, {}, now=HALF, slot_key="s").proposals
    assert eur.reason.startswith("Move €6,000.00 from CTV to DISPLAY") and "$" not in eur.reason
    assert "(€15,000.00 behind plan)" in eur.reason
    (chf,) = evaluate_plan(plan(currency="CHF"), delivery, {}, now=HALF, slot_key="s").proposals
    assert chf.reason.startswith("Move 6,000.00 CHF from CTV") and "$" not in chf.reason
    (usd,) = evaluate_plan(plan(), delivery, {}, now=HALF, slot_key="s").proposals
    assert usd.reason.startswith("Move $6,000.00 from CTV")


def test_channels_and_deals_carry_cpm_and_unknown_rates() -> None:
    ev = evaluate_plan(plan(), {"CTV": Delivery(1_500_000, 3_000), "DISPLAY": Delivery(0, 0)},
                       {"deal-1": Delivery(10_000, 4_000)}, now=HALF, slot_key="s")
    ctv, display = ev.channels
    assert (ctv.effective_cpm, ctv.fill_rate) == (5_000.0, None)  # 15,000.00 / 3,000 impressions * 1,000
    assert display.effective_cpm is None
    assert (ev.deals[0].effective_cpm, ev.deals[0].fill_rate, ev.deals[0].win_rate) == (25.0, None, None)


def test_a_channel_without_budget_that_spends_is_unplanned_spend() -> None:
    channels = (ChannelPlan("CTV", 6_000_000, (A,), A), ChannelPlan("DISPLAY", 4_000_000, (B,), B),
                ChannelPlan("SOCIAL", 0, (EntityRef("sandbox", "act", "campaign", "s"),)))
    ev = evaluate_plan(plan(channels=channels), {"CTV": Delivery(1_500_000), "DISPLAY": Delivery(2_600_000),
                                                 "SOCIAL": Delivery(900_000)}, {}, now=HALF, slot_key="s")
    assert [(c.channel, c.unplanned_spend_cents) for c in ev.channels] == [
        ("CTV", 0), ("DISPLAY", 0), ("SOCIAL", 900_000)]
    assert [p.target_channel for p in ev.proposals] == ["DISPLAY"]
    assert ev.total_spend_cents == 5_000_000


def test_missing_delivery_is_zero_and_critical_holds_then_escalates() -> None:
    ev = evaluate_plan(plan(), {}, {}, now=HALF, slot_key="s")
    assert ev.total_spend_cents == 0 and ev.state_after is CampaignPacingState.PACING_HOLD
    assert ev.held_since_after == HALF
    held = plan(state=CampaignPacingState.PACING_HOLD, held_since=HALF, escalate_after_s=3600.0)
    assert evaluate_plan(held, {}, {}, now=HALF + timedelta(seconds=3599), slot_key="s").transition is None
    later = evaluate_plan(held, {}, {}, now=HALF + timedelta(hours=1), slot_key="s")
    assert later.state_after is CampaignPacingState.PAUSED


def test_curve_changes_expected_spend() -> None:
    front = evaluate_plan(plan(curve=PacingCurve.front_loaded()), {}, {}, now=HALF, slot_key="s")
    back = evaluate_plan(plan(curve=PacingCurve.back_loaded()), {}, {}, now=HALF, slot_key="s")
    assert (front.expected_spend_cents, back.expected_spend_cents) == (7_500_000, 2_500_000)


def test_budget_moves_are_absolute_and_deterministic() -> None:
    pid = uuid.uuid4()
    # 6,000.00 over 10 remaining days = 600.00 a day; 20 % of the target's 4,000.00 is 800.00: one step.
    move = plan_budget_moves(pid, 600_000, target=B, source=A, target_budget_cents=400_000,
                             source_budget_cents=1_000_000, remaining_days=10)
    assert move.needs_budget is None and move.moved_cents == 600_000 and move.daily_change_cents == 60_000
    assert [(m.role, m.from_cents, m.to_cents) for m in move.moves] == [
        ("target", 400_000, 460_000), ("source", 1_000_000, 940_000)]
    assert (len(move.steps), move.days, move.note) == (1, 1, "")
    assert move.moves[0].action_id == action_id_for(pid, "b") == action_id_for(str(pid), "b")


def test_a_3000_budget_source_is_never_emptied() -> None:
    # The case: 3000 -> 0 was blocked by budget_minimum and the 20 % step. 300.00 over 10 days is
    # 30.00 (3000 cents) a day: steps of 20 % of the smaller budget, one net-change window (3 days) apart.
    move = plan_budget_moves("p", 30_000, target=B, source=A, target_budget_cents=3000, source_budget_cents=3000,
                             remaining_days=10)
    assert move.needs_budget is None
    assert [(s.day, s.source_from_cents, s.source_to_cents, s.target_from_cents, s.target_to_cents)
            for s in move.steps] == [(0, 3000, 2400, 3000, 3600), (3, 2400, 1920, 3600, 4080),
                                     (6, 1920, 1536, 4080, 4464), (9, 1536, 1229, 4464, 4771)]
    assert [(m.role, m.from_cents, m.to_cents) for m in move.moves] == [("target", 3000, 3600),
                                                                      ("source", 3000, 2400)]
    assert (move.days, move.daily_change_cents, move.moved_cents) == (10, 1771, 6000)
    assert move.planned_cents == 600 * 10 + 480 * 7 + 384 * 4 + 307 * 1
    assert "stops 1229 cents short of 3000: the flight ends" in move.note
    assert "4 step(s) over 10 day(s)" in move.summary


@pytest.mark.parametrize("source_budget", [201, 240, 250, 999, 3000, 50_000, 1_000_000])
@pytest.mark.parametrize("target_budget", [1, 5, 200, 3000, 2_000_000])
@pytest.mark.parametrize("amount", [1_000, 30_000, 10_000_000])
def test_every_step_stays_within_the_guardrails(source_budget: int, target_budget: int, amount: int) -> None:
    minimum = min_budget_minor("sandbox", "campaign", "USD")
    move = plan_budget_moves("p", amount, target=B, source=A, target_budget_cents=target_budget,
                             source_budget_cents=source_budget, remaining_days=30)
    for s in move.steps:
        assert s.source_to_cents >= minimum
        assert (s.source_from_cents - s.source_to_cents) * 100 <= 20 * s.source_from_cents
        assert (s.target_to_cents - s.target_from_cents) * 100 <= 20 * s.target_from_cents
        assert s.source_from_cents - s.source_to_cents == s.target_to_cents - s.target_from_cents == s.delta_cents > 0
    assert all(b.day - a.day == 3 for a, b in zip(move.steps, move.steps[1:], strict=False))
    assert move.daily_change_cents <= amount // 30 and move.moved_cents <= amount
    if move.needs_budget is None:
        assert move.moves and move.steps
    else:
        assert move.moves == () and move.steps == ()


def test_the_source_stops_at_the_platform_minimum() -> None:
    move = plan_budget_moves("p", 100_000, target=B, source=A, target_budget_cents=10_000, source_budget_cents=240,
                             remaining_days=10)
    assert [(m.role, m.to_cents) for m in move.moves] == [("target", 10_040), ("source", 200)]
    assert len(move.steps) == 1 and "minimum daily budget of 200" in move.note
    at_minimum = plan_budget_moves("p", 100_000, target=B, source=A, target_budget_cents=10_000,
                                   source_budget_cents=200, remaining_days=10)
    assert at_minimum.moves == () and "minimum daily budget of 200" in (at_minimum.needs_budget or "")


def test_a_target_at_zero_cannot_step() -> None:
    move = plan_budget_moves("p", 100_000, target=B, source=A, target_budget_cents=0, source_budget_cents=10_000,
                             remaining_days=10)
    assert move.moves == () and "target's daily budget is 0" in (move.needs_budget or "")


def test_small_amount_and_unknown_currency() -> None:
    tiny = plan_budget_moves("p", 9, target=B, source=A, target_budget_cents=10_000, source_budget_cents=10_000,
                             remaining_days=10)
    assert tiny.moves == () and "less than a cent a day" in (tiny.needs_budget or "")
    odd = plan_budget_moves("p", 9_000, target=B, source=A, target_budget_cents=10_000, source_budget_cents=10_000,
                            remaining_days=10, currency="XXX")
    assert odd.moves == () and "XXX" in (odd.needs_budget or "")


def test_shorter_window_steps_daily() -> None:
    move = plan_budget_moves("p", 30_000, target=B, source=A, target_budget_cents=3000, source_budget_cents=3000,
                             remaining_days=10, limits=StepLimits(net_change_window_h=24))
    assert [s.day for s in move.steps][:3] == [0, 1, 2]


def test_step_limits_match_the_guardrails_defaults() -> None:
    from allot.guardrails.domain.settings import WorkspaceLimits

    defaults, mine = WorkspaceLimits(), StepLimits()
    assert (mine.max_change_pct, mine.net_change_pct_window, mine.net_change_window_h) == (
        defaults.max_change_pct, defaults.net_change_pct_window, defaults.net_change_window_h)


def test_a_step_within_the_net_change_window_waits() -> None:
    changed = {("sandbox", "b"): HALF}
    kwargs: dict[str, Any] = {"target": B, "source": A, "target_budget_cents": 3600, "source_budget_cents": 2400,
                              "remaining_days": 5, "last_changed": changed}
    waiting = plan_budget_moves("p", 30_000, now=HALF + timedelta(hours=71, minutes=59), **kwargs)
    assert waiting.moves == () and waiting.needs_budget is not None
    assert "72 h net-change window" in waiting.needs_budget and "target sandbox:b" in waiting.needs_budget
    assert "possible from 2026-08-09T00:00:00+00:00" in waiting.needs_budget
    after = plan_budget_moves("p", 30_000, now=HALF + timedelta(hours=72), **kwargs)
    assert after.needs_budget is None and after.moves[1].to_cents == 1920
    assert plan_budget_moves("p", 30_000, now=None, **kwargs).needs_budget is None


def test_remaining_flight_days() -> None:
    assert remaining_flight_days(END, END - timedelta(days=2, hours=12)) == 3
    assert remaining_flight_days(END, END - timedelta(days=4)) == 4
    assert remaining_flight_days(END, END + timedelta(hours=1)) == 1


@pytest.mark.parametrize(
    ("target", "source", "tb", "sb", "needle"),
    [(None, A, 1, 1, "target channel has no budget entity"), (B, None, 1, 1, "source channel has no budget"),
     (A, A, 1, 1, "share one budget entity"), (B, A, None, 1, "target budget entity sandbox:b"),
     (B, A, 1, 0, "daily budget of 0")],
)
def test_unknown_budgets_need_budget(target: EntityRef | None, source: EntityRef | None, tb: int | None,
                                     sb: int | None, needle: str) -> None:
    move = plan_budget_moves("p", 100, target=target, source=source, target_budget_cents=tb, source_budget_cents=sb)
    assert move.moves == () and move.needs_budget is not None and needle in move.needs_budget


def test_non_positive_amount_is_refused() -> None:
    with pytest.raises(PacingInputError):
        plan_budget_moves("p", 0, target=B, source=A, target_budget_cents=1, source_budget_cents=1)


@pytest.mark.parametrize(
    ("outcomes", "status"),
    [({}, None), ({"a": "succeeded", "b": None}, None), ({"a": "succeeded", "b": "already_applied"}, "applied"),
     ({"a": "succeeded", "b": "conflict"}, "conflict"), ({"a": "failed", "b": "succeeded"}, "failed"),
     ({"a": "rejected", "b": "conflict"}, "conflict")],
)
def test_proposal_outcome(outcomes: dict[str, str | None], status: str | None) -> None:
    assert proposal_outcome(outcomes) == status
