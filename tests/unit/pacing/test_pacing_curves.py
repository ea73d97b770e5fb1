"""Pacing curves: linear (seed), front/back-loaded power curves, day-of-week weights."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allot.pacing.domain import BudgetPacingEngine, PacingCurve, PacingInputError, weighted_seconds

ENGINE = BudgetPacingEngine()
SEED_START = datetime(2026, 7, 1, tzinfo=UTC)
SEED_END = datetime(2026, 9, 30, tzinfo=UTC)
SEED_NOW = datetime(2026, 8, 15, tzinfo=UTC)

MONDAY = datetime(2026, 7, 6, tzinfo=UTC)  # a Monday
TEN_DAYS = MONDAY + timedelta(days=10)
WEEKDAYS_ONLY = (1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0)

CURVES = [
    PacingCurve.linear(),
    PacingCurve.front_loaded(),
    PacingCurve.front_loaded(exponent=3.5),
    PacingCurve.back_loaded(),
    PacingCurve.back_loaded(exponent=1.5),
    PacingCurve.day_of_week(WEEKDAYS_ONLY),
    PacingCurve.day_of_week((3, 1, 1, 1, 1, 0.5, 0)),
    PacingCurve.day_of_week((0,) * 7),
]
CURVE_IDS = ["linear", "front2", "front3.5", "back2", "back1.5", "weekdays", "mixed-weights", "all-zero-weights"]


@pytest.mark.parametrize("curve", [None, PacingCurve.linear(), PacingCurve(), PacingCurve.day_of_week((1,) * 7)])
def test_linear_and_uniform_weights_keep_the_seed_numbers(curve: PacingCurve | None) -> None:
    # 150,000 * 45 / 91 = 74,175.82, whatever the spelling of "linear".
    assert ENGINE.calculate_expected_spend(150_000.0, SEED_START, SEED_END, SEED_NOW, curve) == 74_175.82


@pytest.mark.parametrize(
    ("curve", "at_half", "at_quarter"),
    [
        # Budget 1,000 over 10 days; x = 0.5 and x = 0.25.
        (PacingCurve.linear(), 500.0, 250.0),
        (PacingCurve.front_loaded(), 750.0, 437.5),  # 1 - 0.5^2; 1 - 0.75^2 = 0.4375
        (PacingCurve.front_loaded(exponent=3), 875.0, 578.13),  # 1 - 0.5^3; 1 - 0.75^3 = 0.578125
        (PacingCurve.back_loaded(), 250.0, 62.5),  # 0.5^2; 0.25^2
        (PacingCurve.back_loaded(exponent=3), 125.0, 15.63),  # 0.5^3; 0.25^3 = 0.015625
    ],
)
def test_power_curves_hand_computed(curve: PacingCurve, at_half: float, at_quarter: float) -> None:
    assert ENGINE.calculate_expected_spend(1_000.0, MONDAY, TEN_DAYS, MONDAY + timedelta(days=5), curve) == at_half
    assert ENGINE.calculate_expected_spend(1_000.0, MONDAY, TEN_DAYS, MONDAY + timedelta(days=2.5), curve) == at_quarter


@pytest.mark.parametrize(
    ("current_time", "expected"),
    [
        # Mon 6 Jul .. Thu 16 Jul with weekdays weighted 1, weekends 0: 8 weighted days in total.
        (MONDAY + timedelta(hours=12), 62.5),  # half a Monday: 0.5 / 8 * 1,000
        (MONDAY + timedelta(days=1), 125.0),  # 1 / 8
        (MONDAY + timedelta(days=5), 625.0),  # Mon..Fri = 5 / 8
        (MONDAY + timedelta(days=5, hours=18), 625.0),  # Saturday carries no weight
        (MONDAY + timedelta(days=7), 625.0),  # nor Sunday
        (MONDAY + timedelta(days=7, hours=6), 656.25),  # + a quarter Monday: 5.25 / 8
        (TEN_DAYS - timedelta(seconds=1), 1_000.0),  # 7.99999 / 8 = 0.9999986 -> 999.999 -> 1,000.00
        (TEN_DAYS, 1_000.0),
    ],
)
def test_day_of_week_weights_integrate_partial_days_exactly(current_time: datetime, expected: float) -> None:
    curve = PacingCurve.day_of_week(WEEKDAYS_ONLY)
    assert ENGINE.calculate_expected_spend(1_000.0, MONDAY, TEN_DAYS, current_time, curve) == expected


def test_day_of_week_uses_utc_weekdays_for_any_offset() -> None:
    # Monday 00:00 UTC written as Monday 10:00 at +10:00; the curve must not shift by a day.
    plus_ten = timezone(timedelta(hours=10))
    curve = PacingCurve.day_of_week(WEEKDAYS_ONLY)
    got = ENGINE.calculate_expected_spend(
        1_000.0, MONDAY.astimezone(plus_ten), TEN_DAYS.astimezone(plus_ten), MONDAY + timedelta(days=5), curve
    )
    assert got == 625.0


def test_day_of_week_over_many_weeks_uses_whole_week_arithmetic() -> None:
    # 52 weeks + 3.5 days starting on a Wednesday noon; compare against a day-by-day sum.
    weights = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)
    start = datetime(2026, 7, 1, 12, tzinfo=UTC)
    end = start + timedelta(weeks=52, days=3, hours=12)
    slow = 0.0
    cursor = start
    while cursor < end:
        step = min(cursor.replace(hour=0) + timedelta(days=1), end)
        slow += weights[cursor.weekday()] * (step - cursor).total_seconds()
        cursor = step
    assert weighted_seconds(start, end, weights) == pytest.approx(slow, rel=1e-12)
    assert weighted_seconds(end, start, weights) == 0.0


def test_all_zero_weights_fall_back_to_linear() -> None:
    curve = PacingCurve.day_of_week((0,) * 7)
    assert ENGINE.calculate_expected_spend(1_000.0, MONDAY, TEN_DAYS, MONDAY + timedelta(days=5), curve) == 500.0


@pytest.mark.parametrize("curve", CURVES, ids=CURVE_IDS)
def test_every_curve_is_zero_at_start_and_total_at_end(curve: PacingCurve) -> None:
    assert ENGINE.calculate_expected_spend(1_000.0, MONDAY, TEN_DAYS, MONDAY - timedelta(days=1), curve) == 0.0
    assert ENGINE.calculate_expected_spend(1_000.0, MONDAY, TEN_DAYS, MONDAY, curve) == 0.0
    assert ENGINE.calculate_expected_spend(1_000.0, MONDAY, TEN_DAYS, TEN_DAYS, curve) == 1_000.0
    assert ENGINE.calculate_expected_spend(1_000.0, MONDAY, TEN_DAYS, TEN_DAYS + timedelta(days=1), curve) == 1_000.0


@pytest.mark.parametrize("curve", CURVES, ids=CURVE_IDS)
def test_every_curve_is_monotone_hour_by_hour(curve: PacingCurve) -> None:
    values = [curve.planned_fraction(MONDAY, TEN_DAYS, MONDAY + timedelta(hours=h)) for h in range(-2, 10 * 24 + 3)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert values == sorted(values)


@settings(max_examples=200, deadline=None)
@given(
    curve=st.sampled_from(CURVES),
    duration_s=st.integers(min_value=1, max_value=400 * 86_400),
    a_s=st.integers(min_value=-86_400, max_value=401 * 86_400),
    b_s=st.integers(min_value=-86_400, max_value=401 * 86_400),
)
def test_every_curve_is_monotone_property(curve: PacingCurve, duration_s: int, a_s: int, b_s: int) -> None:
    start = datetime(2026, 1, 1, 7, 30, tzinfo=UTC)
    end = start + timedelta(seconds=duration_s)
    early, late = sorted((a_s, b_s))
    f_early = curve.planned_fraction(start, end, start + timedelta(seconds=early))
    f_late = curve.planned_fraction(start, end, start + timedelta(seconds=late))
    assert 0.0 <= f_early <= f_late <= 1.0


@pytest.mark.parametrize("hours", [1, 24, 60, 119, 200, 239])
def test_front_loaded_leads_and_back_loaded_trails_linear(hours: int) -> None:
    now = MONDAY + timedelta(hours=hours)
    front = PacingCurve.front_loaded().planned_fraction(MONDAY, TEN_DAYS, now)
    linear = PacingCurve.linear().planned_fraction(MONDAY, TEN_DAYS, now)
    back = PacingCurve.back_loaded().planned_fraction(MONDAY, TEN_DAYS, now)
    assert front > linear > back


@pytest.mark.parametrize(
    "build",
    [
        lambda: PacingCurve.front_loaded(exponent=0.5),
        lambda: PacingCurve.back_loaded(exponent=float("nan")),
        lambda: PacingCurve.day_of_week((1, 1, 1, 1, 1, 1)),
        lambda: PacingCurve.day_of_week((1, 1, 1, 1, 1, 1, -1)),
        lambda: PacingCurve.day_of_week((1, 1, 1, 1, 1, 1, float("inf"))),
    ],
    ids=["exponent-below-1", "exponent-nan", "six-weights", "negative-weight", "infinite-weight"],
)
def test_invalid_curves_are_rejected(build: object) -> None:
    with pytest.raises(PacingInputError):
        build()  # type: ignore[operator]
