"""Campaign pacing state machine: ACTIVE <-> PACING_HOLD -> PAUSED, manual PAUSED is sticky."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from allot.pacing.domain import (
    BudgetPacingEngine,
    CampaignPacingState,
    PacingAlert,
    PacingInputError,
    decide_pacing_state,
)

ENGINE = BudgetPacingEngine()
NOW = datetime(2026, 8, 15, 12, tzinfo=UTC)
HOUR_S = 3_600.0

CRITICAL_UNDER = ENGINE.classify_deviation(-32.22)
CRITICAL_OVER = ENGINE.classify_deviation(25.01)
WARNING = ENGINE.classify_deviation(-19.11)
assert CRITICAL_UNDER is not None and CRITICAL_OVER is not None and WARNING is not None

ACTIVE = CampaignPacingState.ACTIVE
HOLD = CampaignPacingState.PACING_HOLD
PAUSED = CampaignPacingState.PAUSED


@pytest.mark.parametrize(
    ("state", "alert", "held_for_s", "to_state"),
    [
        (ACTIVE, None, None, None),
        (ACTIVE, WARNING, None, None),
        (ACTIVE, CRITICAL_UNDER, None, HOLD),
        (ACTIVE, CRITICAL_OVER, None, HOLD),
        (HOLD, None, 60.0, ACTIVE),
        (HOLD, WARNING, 60.0, ACTIVE),
        (HOLD, WARNING, 10 * HOUR_S, ACTIVE),  # recovery wins over escalation
        (HOLD, CRITICAL_UNDER, 0.0, None),
        (HOLD, CRITICAL_UNDER, HOUR_S - 1, None),
        (HOLD, CRITICAL_UNDER, HOUR_S, PAUSED),  # exactly escalate_after_s has elapsed
        (HOLD, CRITICAL_OVER, 2 * HOUR_S, PAUSED),
        (HOLD, CRITICAL_UNDER, -HOUR_S, None),  # clock behind held_since counts as no time held
        (PAUSED, None, None, None),
        (PAUSED, WARNING, None, None),
        (PAUSED, CRITICAL_UNDER, None, None),
        (PAUSED, CRITICAL_UNDER, 10 * HOUR_S, None),
    ],
)
def test_transitions(
    state: CampaignPacingState,
    alert: PacingAlert | None,
    held_for_s: float | None,
    to_state: CampaignPacingState | None,
) -> None:
    held_since = None if held_for_s is None else NOW - timedelta(seconds=held_for_s)
    decision = decide_pacing_state(state, alert, held_since, NOW, escalate_after_s=HOUR_S)
    if to_state is None:
        assert decision is None
    else:
        assert decision is not None
        assert (decision.from_state, decision.to_state) == (state, to_state)
        assert decision.reason


def test_entering_hold_records_when_and_why() -> None:
    decision = decide_pacing_state(ACTIVE, CRITICAL_UNDER, None, NOW, escalate_after_s=HOUR_S)
    assert decision is not None
    assert decision.held_since == NOW
    assert decision.reason == "Automatic pacing hold: Critical underpacing: -32.2% deviation (threshold: -25.0%)"


def test_leaving_hold_clears_held_since() -> None:
    decision = decide_pacing_state(HOLD, None, NOW - timedelta(minutes=5), NOW, escalate_after_s=HOUR_S)
    assert decision is not None
    assert decision.held_since is None
    assert decision.reason == "Pacing recovered, releasing automatic hold: deviation within thresholds"


def test_escalation_reason_names_the_elapsed_time() -> None:
    held_since = NOW - timedelta(hours=2)
    decision = decide_pacing_state(HOLD, CRITICAL_UNDER, held_since, NOW, escalate_after_s=HOUR_S)
    assert decision is not None
    assert decision.to_state == PAUSED
    assert decision.held_since == held_since
    assert decision.reason.startswith("Escalated to manual pause: still critical after 7,200s on hold (limit 3,600s)")


@pytest.mark.parametrize("escalate_after_s", [0.0, 1.0, 86_400.0])
def test_escalation_delay_is_configurable(escalate_after_s: float) -> None:
    held_since = NOW - timedelta(seconds=escalate_after_s)
    just_before = decide_pacing_state(
        HOLD, CRITICAL_UNDER, held_since, NOW - timedelta(microseconds=1), escalate_after_s
    )
    at = decide_pacing_state(HOLD, CRITICAL_UNDER, held_since, NOW, escalate_after_s)
    assert at is not None and at.to_state == PAUSED
    if escalate_after_s > 0:
        assert just_before is None


def test_state_values_are_strings() -> None:
    assert [s.value for s in CampaignPacingState] == ["ACTIVE", "PACING_HOLD", "PAUSED"]
    assert CampaignPacingState("PACING_HOLD") is HOLD


@pytest.mark.parametrize(
    ("state", "held_since", "now", "escalate_after_s", "match"),
    [
        (HOLD, None, NOW, HOUR_S, "held_since"),
        (HOLD, datetime(2026, 8, 15), NOW, HOUR_S, "timezone-aware"),
        (ACTIVE, None, datetime(2026, 8, 15), HOUR_S, "timezone-aware"),
        (ACTIVE, None, NOW, -1.0, "escalate_after_s"),
        (ACTIVE, None, NOW, float("nan"), "escalate_after_s"),
    ],
)
def test_invalid_inputs_are_rejected(
    state: CampaignPacingState, held_since: datetime | None, now: datetime, escalate_after_s: float, match: str
) -> None:
    with pytest.raises(PacingInputError, match=match):
        decide_pacing_state(state, CRITICAL_UNDER, held_since, now, escalate_after_s)
