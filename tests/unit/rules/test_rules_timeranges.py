"""Time ranges at their edges, bucket days, evaluation slots."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from allot.rules.domain import (
    AggregateCache,
    DailyCounters,
    Entity,
    bucket_date,
    is_slot_due,
    resolve_range,
    slot_start,
)
from allot.rules.domain.timeranges import TIME_RANGES

LAST_SECOND = datetime(2026, 5, 16, 23, 59, 59, 999_999, tzinfo=UTC)
MIDNIGHT = datetime(2026, 5, 17, 0, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("time_range", "now", "start", "end"),
    [
        ("today", LAST_SECOND, date(2026, 5, 16), date(2026, 5, 16)),
        ("today", MIDNIGHT, date(2026, 5, 17), date(2026, 5, 17)),
        ("yesterday", LAST_SECOND, date(2026, 5, 15), date(2026, 5, 15)),
        ("yesterday", MIDNIGHT, date(2026, 5, 16), date(2026, 5, 16)),
        ("last_3d", LAST_SECOND, date(2026, 5, 13), date(2026, 5, 15)),
        ("last_3d", MIDNIGHT, date(2026, 5, 14), date(2026, 5, 16)),
        ("last_7d", LAST_SECOND, date(2026, 5, 9), date(2026, 5, 15)),
        ("last_7d", MIDNIGHT, date(2026, 5, 10), date(2026, 5, 16)),
        ("last_14d", MIDNIGHT, date(2026, 5, 3), date(2026, 5, 16)),
        ("last_30d", MIDNIGHT, date(2026, 4, 17), date(2026, 5, 16)),
        ("last_30d", LAST_SECOND, date(2026, 4, 16), date(2026, 5, 15)),
    ],
)
def test_range_resolution_at_midnight_edges(time_range: str, now: datetime, start: date, end: date) -> None:
    span = resolve_range(time_range, now)
    assert (span.start, span.end) == (start, end)


@pytest.mark.parametrize(("time_range", "days"), [("today", 1), ("yesterday", 1), ("last_3d", 3), ("last_7d", 7),
                                                  ("last_14d", 14), ("last_30d", 30)])
def test_range_lengths(time_range: str, days: int) -> None:
    assert resolve_range(time_range, MIDNIGHT).days == days


def test_multi_day_ranges_exclude_today() -> None:
    now = datetime(2026, 5, 17, 12, tzinfo=UTC)
    for name in ("last_3d", "last_7d", "last_14d", "last_30d"):
        assert now.date() not in resolve_range(name, now)


def test_non_utc_now_is_converted_to_utc_day() -> None:
    # 01:30 in UTC+2 is still the previous UTC day.
    now = datetime(2026, 5, 17, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert resolve_range("today", now).start == date(2026, 5, 16)


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        resolve_range("today", datetime(2026, 5, 17))


def test_unknown_range_is_rejected() -> None:
    with pytest.raises(ValueError, match="allowed: today"):
        resolve_range("last_90d", MIDNIGHT)


@pytest.mark.parametrize(("ts", "day"), [(LAST_SECOND, date(2026, 5, 16)), (MIDNIGHT, date(2026, 5, 17))])
def test_bucket_date_is_the_utc_day_of_the_timestamp(ts: datetime, day: date) -> None:
    assert bucket_date(ts) == day


def _entity_with_one_spend_per_day(days_back: range) -> Entity:
    today = date(2026, 5, 17)
    buckets = {today - timedelta(days=d): DailyCounters(spend_cents=10**d) for d in days_back}
    return Entity("e", "adset", "meta", "a", "n", "active", "USD", 1000, buckets)


@pytest.mark.parametrize("now", [MIDNIGHT, datetime(2026, 5, 17, 23, 59, 59, tzinfo=UTC)])
@pytest.mark.parametrize(
    ("time_range", "included_offsets"),
    [("today", [0]), ("yesterday", [1]), ("last_3d", [1, 2, 3]), ("last_7d", list(range(1, 8))),
     ("last_14d", list(range(1, 15))), ("last_30d", list(range(1, 31)))],
)
def test_aggregates_sum_exactly_the_buckets_inside_the_range(
    now: datetime, time_range: str, included_offsets: list[int]
) -> None:
    # Spend 10**offset makes every included/excluded day visible in the digits of the sum.
    entity = _entity_with_one_spend_per_day(range(0, 32))
    total = AggregateCache(now).range_counters(entity, time_range)
    assert total.spend_cents == sum(10**d for d in included_offsets)


def test_aggregates_cover_every_range() -> None:
    ranges = AggregateCache(MIDNIGHT).ranges_for(_entity_with_one_spend_per_day(range(0, 3)))
    assert set(ranges) == set(TIME_RANGES)


def test_future_buckets_are_ignored() -> None:
    entity = _entity_with_one_spend_per_day(range(-2, 1))
    ranges = AggregateCache(MIDNIGHT).ranges_for(entity)
    assert ranges["today"].spend_cents == 1
    assert ranges["last_30d"].spend_cents == 0


@pytest.mark.parametrize(
    ("now", "interval", "expected"),
    [
        (datetime(2026, 5, 17, 10, 14, 59, 999_999, tzinfo=UTC), 15, datetime(2026, 5, 17, 10, 0, tzinfo=UTC)),
        (datetime(2026, 5, 17, 10, 15, tzinfo=UTC), 15, datetime(2026, 5, 17, 10, 15, tzinfo=UTC)),
        (datetime(2026, 5, 17, 0, 0, tzinfo=UTC), 15, datetime(2026, 5, 17, 0, 0, tzinfo=UTC)),
        (datetime(2026, 5, 16, 23, 59, 59, tzinfo=UTC), 60, datetime(2026, 5, 16, 23, 0, tzinfo=UTC)),
        (datetime(2026, 5, 17, 10, 7, tzinfo=UTC), 5, datetime(2026, 5, 17, 10, 5, tzinfo=UTC)),
    ],
)
def test_slot_start(now: datetime, interval: int, expected: datetime) -> None:
    assert slot_start(now, interval) == expected


def test_slot_start_defaults_to_15_minutes_and_is_utc() -> None:
    now = datetime(2026, 5, 17, 12, 44, tzinfo=timezone(timedelta(hours=2)))
    assert slot_start(now) == datetime(2026, 5, 17, 10, 30, tzinfo=UTC)
    assert slot_start(now).tzinfo == UTC


@pytest.mark.parametrize(
    ("last", "now", "due"),
    [
        (None, MIDNIGHT, True),
        (datetime(2026, 5, 17, 10, 0, tzinfo=UTC), datetime(2026, 5, 17, 10, 14, 59, tzinfo=UTC), False),
        (datetime(2026, 5, 17, 10, 14, 59, tzinfo=UTC), datetime(2026, 5, 17, 10, 15, tzinfo=UTC), True),
    ],
)
def test_is_slot_due_once_per_slot(last: datetime | None, now: datetime, due: bool) -> None:
    assert is_slot_due(last, now) is due
