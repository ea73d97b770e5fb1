"""Each protection exactly at its boundary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from allot.rules.domain import (
    ActionOutcome,
    SkipReason,
    check_circuit_breaker,
    check_cooldown,
    check_failure_backoff,
    check_max_executions,
    check_pending_action,
    circuit_state,
)
from allot.rules.domain.protections import dropped_error

NOW = datetime(2026, 5, 17, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("age", "allowed"),
    [
        (timedelta(minutes=359), False),
        (timedelta(minutes=359, seconds=59, microseconds=999_999), False),
        (timedelta(minutes=360), True),
        (timedelta(minutes=361), True),
    ],
)
def test_cooldown_boundary_at_360_minutes(age: timedelta, allowed: bool) -> None:
    check = check_cooldown(NOW - age, NOW, 360)
    assert check.allowed is allowed
    assert check.reason is (None if allowed else SkipReason.COOLDOWN)


def test_cooldown_without_history_or_zero_cooldown_allows() -> None:
    assert check_cooldown(None, NOW, 360).allowed
    assert check_cooldown(NOW, NOW, 0).allowed


def test_cooldown_720_from_template() -> None:
    assert not check_cooldown(NOW - timedelta(minutes=719), NOW, 720).allowed
    assert check_cooldown(NOW - timedelta(minutes=720), NOW, 720).allowed


def _runs(n: int) -> list[datetime]:
    return [NOW - timedelta(minutes=30 * (i + 1)) for i in range(n)]


@pytest.mark.parametrize(("previous_runs", "allowed"), [(0, True), (2, True), (3, False), (4, False)])
def test_max_executions_third_allowed_fourth_blocked(previous_runs: int, allowed: bool) -> None:
    check = check_max_executions(_runs(previous_runs), NOW, 3)
    assert check.allowed is allowed
    if not allowed:
        assert check.reason is SkipReason.MAX_EXECUTIONS_PER_DAY


def test_max_executions_counts_only_the_current_utc_day() -> None:
    yesterday_late = datetime(2026, 5, 16, 23, 59, 59, tzinfo=UTC)
    today_start = datetime(2026, 5, 17, 0, 0, tzinfo=UTC)
    assert check_max_executions([yesterday_late] * 10 + [today_start] * 2, NOW, 3).allowed
    assert not check_max_executions([yesterday_late] * 10 + [today_start] * 3, NOW, 3).allowed


@pytest.mark.parametrize("limit", [1, 50])
def test_max_executions_limit_bounds(limit: int) -> None:
    assert check_max_executions(_runs(limit - 1), NOW, limit).allowed
    assert not check_max_executions([NOW] * limit, NOW, limit).allowed


@pytest.mark.parametrize(
    ("age", "allowed"),
    [
        (timedelta(0), False),
        (timedelta(minutes=29, seconds=59), False),
        (timedelta(minutes=30), True),
        (timedelta(hours=5), True),
    ],
)
def test_pending_action_blocks_for_under_30_minutes(age: timedelta, allowed: bool) -> None:
    check = check_pending_action([NOW - age], NOW)
    assert check.allowed is allowed
    if not allowed:
        assert check.reason is SkipReason.PENDING_ACTION


def test_any_recent_pending_action_blocks() -> None:
    assert not check_pending_action([NOW - timedelta(hours=3), NOW - timedelta(minutes=1)], NOW).allowed
    assert check_pending_action([], NOW).allowed


def _failures(n: int, start: timedelta = timedelta(minutes=10)) -> list[ActionOutcome]:
    return [ActionOutcome(NOW - start - timedelta(minutes=i), False, "boom") for i in range(n)]


@pytest.mark.parametrize(("failures", "allowed"), [(0, True), (4, True), (5, False), (6, False)])
def test_failure_backoff_after_five_consecutive_failures(failures: int, allowed: bool) -> None:
    check = check_failure_backoff(_failures(failures), NOW)
    assert check.allowed is allowed
    if not allowed:
        assert check.reason is SkipReason.FAILURE_BACKOFF


def test_success_resets_the_failure_streak() -> None:
    outcomes = _failures(5, start=timedelta(hours=2)) + [ActionOutcome(NOW - timedelta(hours=1), True)]
    assert check_failure_backoff(outcomes, NOW).allowed
    outcomes += _failures(4, start=timedelta(minutes=1))
    assert check_failure_backoff(outcomes, NOW).allowed
    outcomes += [ActionOutcome(NOW, False, "again")]
    assert not check_failure_backoff(outcomes, NOW).allowed


def test_failure_backoff_order_of_input_does_not_matter() -> None:
    outcomes = [ActionOutcome(NOW - timedelta(minutes=1), True)] + _failures(5, start=timedelta(minutes=5))
    assert check_failure_backoff(outcomes, NOW).allowed  # the success is the most recent


def test_failures_older_than_24_hours_do_not_count() -> None:
    old = [ActionOutcome(NOW - timedelta(hours=24), False)]  # exactly 24 h old: outside the window
    assert check_failure_backoff(old + _failures(4), NOW).allowed
    inside = [ActionOutcome(NOW - timedelta(hours=23, minutes=59, seconds=59), False)]
    assert not check_failure_backoff(inside + _failures(4), NOW).allowed


def _outcomes(errors: int, successes: int, age: timedelta = timedelta(minutes=5)) -> list[ActionOutcome]:
    return [ActionOutcome(NOW - age, False, f"err{i}") for i in range(errors)] + [
        ActionOutcome(NOW - age, True) for _ in range(successes)
    ]


@pytest.mark.parametrize(
    ("errors", "successes", "tripped"),
    [
        (19, 0, False),  # 100 % but only 19 errors
        (20, 0, True),
        (20, 20, False),  # exactly 50 %: not above
        (20, 19, True),  # 51.3 %
        (500, 500, False),  # 50.0 %
        (501, 499, True),  # 50.1 %
    ],
)
def test_circuit_breaker_boundaries(errors: int, successes: int, tripped: bool) -> None:
    state = circuit_state(_outcomes(errors, successes), NOW)
    assert state.tripped is tripped
    check = check_circuit_breaker(_outcomes(errors, successes), NOW)
    assert check.allowed is (not tripped)
    if tripped:
        assert check.reason is SkipReason.CIRCUIT_BREAKER


def test_circuit_breaker_window_is_last_24_hours() -> None:
    assert not circuit_state(_outcomes(30, 0, age=timedelta(hours=24)), NOW).tripped
    assert circuit_state(_outcomes(30, 0, age=timedelta(hours=23, minutes=59)), NOW).tripped


def test_circuit_state_reports_latest_error() -> None:
    outcomes = [ActionOutcome(NOW - timedelta(minutes=m), False, f"e{m}") for m in (5, 1, 9)]
    state = circuit_state(outcomes, NOW)
    assert (state.errors, state.total, state.last_error) == (3, 3, "e1")
    assert circuit_state([], NOW).error_rate == 0.0


def test_protections_reject_naive_datetimes() -> None:
    with pytest.raises(ValueError):
        check_cooldown(datetime(2026, 5, 17), NOW, 360)


def test_a_dropped_action_carries_the_notes_that_name_its_entity_else_all_of_them() -> None:
    notes = ["adset a-1: member of budget pool p-1", "adset a-2: member of budget pool p-2", "exposure: 0 EUR"]
    assert dropped_error("a-2", notes) == "dropped by the guardrails: adset a-2: member of budget pool p-2"
    assert dropped_error("a-3", notes) == "dropped by the guardrails: " + "; ".join(notes)
    assert dropped_error("a-3", []) == "dropped by the guardrails"
    assert len(dropped_error("a-1", ["adset a-1: " + "x" * 5000])) == 2000
