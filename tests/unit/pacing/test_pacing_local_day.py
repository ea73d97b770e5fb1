"""Pacing flights' days are the ad account's: day_of_week weighs local weekdays, 23 h and 25 h days included."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from allot.contracts.localday import day_bounds_utc, zone_named
from allot.pacing.domain import ChannelPlan, DealPlan, EntityRef, PacingCurve, weighted_seconds
from allot.pacing.domain.plans import plan_account

NY = zone_named("America/New_York")
MONDAY_ONLY = (1.0, 0, 0, 0, 0, 0, 0)
SUNDAY_ONLY = (0, 0, 0, 0, 0, 0, 1.0)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_monday_is_the_accounts_monday() -> None:
    # Flight: Sunday 1 March 00:00 New York (05:00 UTC) .. Sunday 15 March 00:00 New York (04:00 UTC, EDT)
    start, end = at(2026, 3, 1, 5), at(2026, 3, 15, 4)
    ny = PacingCurve.day_of_week(MONDAY_ONLY).in_zone(NY)
    utc = PacingCurve.day_of_week(MONDAY_ONLY)
    # 03:00 UTC on Monday 2 March is still Sunday 22:00 in New York: no Monday has begun there
    assert ny.planned_fraction(start, end, at(2026, 3, 2, 3)) == 0.0
    assert utc.planned_fraction(start, end, at(2026, 3, 2, 3)) > 0.0
    # Tuesday 00:00 in New York (05:00 UTC): the first of the two Mondays is complete
    assert ny.planned_fraction(start, end, at(2026, 3, 3, 5)) == pytest.approx(0.5)


def test_the_23_hour_sunday_weighs_23_hours() -> None:
    # Sunday 8 March 2026 lasts 23 h in New York; Sunday 15 March 24 h
    start, _ = day_bounds_utc(date(2026, 3, 8), NY)
    _, end = day_bounds_utc(date(2026, 3, 15), NY)
    curve = PacingCurve.day_of_week(SUNDAY_ONLY).in_zone(NY)
    first_sunday_end = day_bounds_utc(date(2026, 3, 8), NY)[1]
    assert curve.planned_fraction(start, end, first_sunday_end) == pytest.approx(23 / 47)
    assert weighted_seconds(start, first_sunday_end, (1.0,) * 7, NY) == 23 * 3600


def test_the_25_hour_day_weighs_25_hours_and_utc_keeps_its_fast_path() -> None:
    lo, hi = day_bounds_utc(date(2026, 11, 1), NY)
    assert weighted_seconds(lo, hi, (1.0,) * 7, NY) == 25 * 3600
    # a long flight: the UTC path and the day-by-day path agree when the zone is UTC
    start, end = at(2026, 1, 1, 7, 30), at(2026, 12, 31, 19)
    weights = (1.0, 2.0, 0.5, 0, 3.0, 1.5, 0.25)
    assert weighted_seconds(start, end, weights) == pytest.approx(
        weighted_seconds(start, end, weights, zone_named("Etc/GMT")))
    assert weighted_seconds(start, start - timedelta(seconds=1), weights, NY) == 0.0


def test_a_plan_keeps_its_first_budget_entitys_account_else_its_first_entity() -> None:
    a = EntityRef("meta", "act-a", "adset", "as-1")
    b = EntityRef("meta", "act-b", "campaign", "c-1")
    assert plan_account([ChannelPlan("x", 1, (a,)), ChannelPlan("y", 1, (), b)]) == b
    assert plan_account([ChannelPlan("x", 1, (a,))]) == a
    assert plan_account([ChannelPlan("x", 1)], [DealPlan("d", 1, (b,))]) == b
    assert plan_account([ChannelPlan("x", 1)]) is None
