"""Reach is never summed: multi-day reach is the platform's deduplicated figure while current (its ``through`` is
the evaluation's yesterday in the account's zone), a day's reach only a single report's own; otherwise reach and
frequency are not computable and the skip says so in plain words."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from allot.rules.domain import (
    REACH_NOT_REPORTED,
    AggregateCache,
    DailyCounters,
    Entity,
    PlatformReach,
    SkipReason,
    compute_metric,
    evaluate_rule,
    instantiate_template,
)

NOW = datetime(2026, 5, 17, 10, 30, tzinfo=UTC)
TODAY = NOW.date()
YESTERDAY = TODAY - timedelta(days=1)
MULTI_DAY = ("last_3d", "last_7d", "last_14d", "last_30d")
DAY = DailyCounters(impressions=1_000, reach=500)


def entity(buckets: dict[date, DailyCounters], **kw: Any) -> Entity:
    fields: dict[str, Any] = dict(entity_id="e1", entity_level="adset", platform="meta", ad_account_id="act_1",
                                  name="Prospecting", status="active", currency="USD", daily_budget_cents=10_000,
                                  buckets=buckets)
    fields.update(kw)
    return Entity(**fields)


def every_day(counters: DailyCounters = DAY, days: int = 30) -> dict[date, DailyCounters]:
    return {TODAY - timedelta(days=k): counters for k in range(1, days + 1)}


def value(e: Entity, metric: str, time_range: str, now: datetime = NOW) -> float | None:
    days = {"today": 1, "yesterday": 1, "last_3d": 3, "last_7d": 7, "last_14d": 14, "last_30d": 30}[time_range]
    counters = AggregateCache(now).range_counters(e, time_range)  # type: ignore[arg-type]
    return compute_metric(metric, counters, days=days, daily_budget_cents=None)


@pytest.mark.parametrize("time_range", MULTI_DAY)
def test_multi_day_reach_without_the_platforms_figure_is_not_computable_never_summed(time_range: str) -> None:
    e = entity(every_day())
    assert AggregateCache(NOW).range_counters(e, time_range).reach == REACH_NOT_REPORTED  # type: ignore[arg-type]
    assert value(e, "reach", time_range) is None
    assert value(e, "frequency", time_range) is None  # not Σ impressions / Σ daily reach = 2.0
    assert value(e, "impressions", time_range) == 1_000 * int(time_range[5:-1])  # additive counters still summed


@pytest.mark.parametrize(("time_range", "people"), [("last_3d", 1_200), ("last_7d", 2_100), ("last_14d", 3_000),
                                                    ("last_30d", 4_000)])
def test_current_platform_reach_is_used_for_reach_and_frequency(time_range: str, people: int) -> None:
    reach = PlatformReach(YESTERDAY, {"last_3d": 1_200, "last_7d": 2_100, "last_14d": 3_000, "last_30d": 4_000})
    e = entity(every_day(), range_reach=reach)
    days = int(time_range[5:-1])
    assert value(e, "reach", time_range) == people
    assert value(e, "frequency", time_range) == pytest.approx(1_000 * days / people)


@pytest.mark.parametrize("through", [YESTERDAY - timedelta(days=1), YESTERDAY - timedelta(days=7), TODAY])
def test_platform_reach_whose_through_is_not_yesterday_is_not_used(through: date) -> None:
    e = entity(every_day(), range_reach=PlatformReach(through, {"yesterday": 700, "last_7d": 2_100}),
               reports={YESTERDAY: 1})
    assert value(e, "reach", "last_7d") is None
    assert value(e, "frequency", "last_7d") is None
    assert value(e, "reach", "yesterday") == 500  # another day's 700 is not used: the single report's own reach


def test_through_is_yesterday_in_the_accounts_zone() -> None:
    # 02:00 UTC on May 17 is still May 16 in Los Angeles: its yesterday is May 15.
    now = datetime(2026, 5, 17, 2, 0, tzinfo=UTC)
    la = ZoneInfo("America/Los_Angeles")
    buckets = {date(2026, 5, 16) - timedelta(days=k): DAY for k in range(1, 8)}
    local = entity(buckets, zone=la, range_reach=PlatformReach(date(2026, 5, 15), {"last_7d": 2_000}))
    utc_through = entity(buckets, zone=la, range_reach=PlatformReach(date(2026, 5, 16), {"last_7d": 2_000}))
    assert value(local, "frequency", "last_7d", now) == pytest.approx(7_000 / 2_000)
    assert value(utc_through, "frequency", "last_7d", now) is None


def test_a_range_the_platform_left_out_is_not_computable() -> None:
    e = entity(every_day(), range_reach=PlatformReach(YESTERDAY, {"last_7d": 2_100}))
    assert value(e, "reach", "last_7d") == 2_100
    assert value(e, "reach", "last_30d") is None


def test_a_range_without_impressions_reached_nobody() -> None:
    e = entity(every_day(DailyCounters(spend_cents=100)))
    assert value(e, "reach", "last_7d") == 0
    assert value(e, "frequency", "last_7d") is None  # 0 / 0


@pytest.mark.parametrize(("reports", "reach"), [(1, 500), (24, None)])
@pytest.mark.parametrize("time_range", ["today", "yesterday"])
def test_a_days_reach_is_its_single_reports_never_the_sum_of_its_intervals(time_range: str, reports: int,
                                                                           reach: int | None) -> None:
    day = TODAY if time_range == "today" else YESTERDAY
    e = entity({day: DAY}, reports={day: reports})
    assert value(e, "reach", time_range) == reach
    assert value(e, "frequency", time_range) == (None if reach is None else pytest.approx(2.0))


def test_the_platforms_reach_of_yesterday_wins_over_its_hourly_reports() -> None:
    e = entity({YESTERDAY: DAY}, reports={YESTERDAY: 24}, range_reach=PlatformReach(YESTERDAY, {"yesterday": 400}))
    assert value(e, "reach", "yesterday") == 400
    assert value(e, "frequency", "yesterday") == pytest.approx(2.5)


def test_reach_zero_with_impressions_means_not_reported() -> None:
    e = entity({YESTERDAY: DailyCounters(impressions=1_000, reach=0)}, reports={YESTERDAY: 1})
    assert value(e, "reach", "yesterday") is None


FREQUENCY_CAP = instantiate_template("frequency_cap", name="Freq",
                                     scope={"ad_account_ids": ["act_1"], "entity_level": "adset"})


def test_frequency_cap_matches_on_the_platforms_reach_and_is_skipped_with_the_reason_without_it() -> None:
    buckets = every_day(DailyCounters(impressions=1_000, reach=900), days=7)  # Σ daily reach 6 300: frequency 1.1
    with_reach = entity(buckets, entity_id="dedup", range_reach=PlatformReach(YESTERDAY, {"last_7d": 1_000}))
    stale = entity(buckets, entity_id="stale", range_reach=PlatformReach(YESTERDAY - timedelta(days=1),
                                                                          {"last_7d": 1_000}))
    without = entity(buckets, entity_id="none")
    result = evaluate_rule(FREQUENCY_CAP, [with_reach, stale, without], None, NOW)
    assert [(m.entity_id, m.snapshot) for m in result.matched] == [("dedup", {"frequency@last_7d": 7.0})]
    why = "frequency@last_7d (reach for last_7d not reported by the platform yet)"
    assert [(s.entity_id, s.reason, s.detail) for s in result.skipped] == [
        ("stale", SkipReason.METRIC_UNAVAILABLE, why), ("none", SkipReason.METRIC_UNAVAILABLE, why)]


def test_a_zero_denominator_keeps_the_bare_key() -> None:
    e = entity(every_day(DailyCounters(spend_cents=100)), entity_id="idle")
    result = evaluate_rule(FREQUENCY_CAP, [e], None, NOW)
    assert [(s.reason, s.detail) for s in result.skipped] == [(SkipReason.METRIC_UNAVAILABLE, "frequency@last_7d")]
