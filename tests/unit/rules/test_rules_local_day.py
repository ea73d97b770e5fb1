"""Rules' today / yesterday / last_Nd over the ad account's local days (pure; DST days included)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from allot.contracts.localday import zone_named
from allot.rules.domain import AggregateCache, DailyCounters, Entity, bucket_date, resolve_range
from allot.rules.domain.timeranges import DateSpan

NY = zone_named("America/New_York")
BERLIN = zone_named("Europe/Berlin")


def spend(cents: int) -> DailyCounters:
    return DailyCounters(cents, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def entity(buckets: dict[date, DailyCounters], zone: object = UTC, entity_id: str = "e1") -> Entity:
    return Entity(entity_id, "adset", "meta", "act_1", "n", "active", "USD", 10_000, buckets,  # type: ignore[arg-type]
                  zone=zone)  # type: ignore[arg-type]


@pytest.mark.parametrize(("ts", "zone", "day"), [
    (datetime(2026, 4, 1, 2, tzinfo=UTC), NY, date(2026, 3, 31)),
    (datetime(2026, 4, 1, 2, tzinfo=UTC), UTC, date(2026, 4, 1)),
    # 25-hour day in New York: 04:30 UTC on 2 November is 23:30 EST on 1 November
    (datetime(2026, 11, 2, 4, 30, tzinfo=UTC), NY, date(2026, 11, 1)),
    # 23-hour day in Berlin: 22:00 UTC on 29 March is already 30 March (CEST)
    (datetime(2026, 3, 29, 22, 0, tzinfo=UTC), BERLIN, date(2026, 3, 30)),
    (datetime(2026, 3, 29, 21, 59, tzinfo=UTC), BERLIN, date(2026, 3, 29)),
])
def test_a_report_is_bucketed_on_its_accounts_local_day(ts: datetime, zone: object, day: date) -> None:
    assert bucket_date(ts, zone) == day  # type: ignore[arg-type]


def test_ranges_resolve_on_the_accounts_day() -> None:
    now = datetime(2026, 4, 1, 2, tzinfo=UTC)
    assert resolve_range("today", now, NY) == DateSpan(date(2026, 3, 31), date(2026, 3, 31))
    assert resolve_range("yesterday", now, NY) == DateSpan(date(2026, 3, 30), date(2026, 3, 30))
    assert resolve_range("last_7d", now, NY) == DateSpan(date(2026, 3, 24), date(2026, 3, 30))
    assert resolve_range("today", now) == DateSpan(date(2026, 4, 1), date(2026, 4, 1))  # default: UTC


def test_one_cache_serves_accounts_in_different_zones_with_their_own_today() -> None:
    now = datetime(2026, 4, 1, 2, tzinfo=UTC)
    buckets = {date(2026, 4, 1): spend(100), date(2026, 3, 31): spend(20), date(2026, 3, 30): spend(3)}
    cache = AggregateCache(now)
    ny = cache.ranges_for(entity(buckets, NY, "ny"))
    utc = cache.ranges_for(entity(buckets, UTC, "utc"))
    berlin = cache.ranges_for(entity(buckets, BERLIN, "berlin"))
    assert (ny["today"].spend_cents, ny["yesterday"].spend_cents, ny["last_3d"].spend_cents) == (20, 3, 3)
    assert (utc["today"].spend_cents, utc["yesterday"].spend_cents, utc["last_3d"].spend_cents) == (100, 20, 23)
    assert (berlin["today"].spend_cents, berlin["yesterday"].spend_cents) == (100, 20)


def test_after_the_spring_forward_night_yesterday_is_the_23_hour_day() -> None:
    # 8 March 2026 lasts 23 h in New York; at 09:00 EDT on 9 March yesterday is 8 March, today 9 March
    now = datetime(2026, 3, 9, 13, tzinfo=UTC)
    buckets = {date(2026, 3, 8): spend(23), date(2026, 3, 9): spend(9)}
    r = AggregateCache(now).ranges_for(entity(buckets, NY))
    assert (r["today"].spend_cents, r["yesterday"].spend_cents) == (9, 23)
