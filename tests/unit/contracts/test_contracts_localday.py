"""The account's local day: 23 h and 25 h days, bounds that agree with local_day, last_n_days, zone names."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from allot.contracts.localday import (
    UnknownTimeZone,
    day_bounds_utc,
    day_length,
    last_n_days,
    local_day,
    local_days_between,
    local_month,
    zone_named,
)

NY = zone_named("America/New_York")
BERLIN = zone_named("Europe/Berlin")


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(("zone", "day", "hours", "start"), [
    # spring forward: 02:00 EST → 03:00 EDT on 2026-03-08, the day starts at 05:00 UTC and ends at 04:00 UTC
    (NY, date(2026, 3, 8), 23, at(2026, 3, 8, 5)),
    # fall back: 02:00 EDT → 01:00 EST on 2026-11-01, the day starts at 04:00 UTC and ends at 05:00 UTC
    (NY, date(2026, 11, 1), 25, at(2026, 11, 1, 4)),
    (NY, date(2026, 7, 1), 24, at(2026, 7, 1, 4)),
    (NY, date(2026, 1, 15), 24, at(2026, 1, 15, 5)),
    # Europe: 02:00 CET → 03:00 CEST on 2026-03-29; 03:00 CEST → 02:00 CET on 2026-10-25
    (BERLIN, date(2026, 3, 29), 23, at(2026, 3, 28, 23)),
    (BERLIN, date(2026, 10, 25), 25, at(2026, 10, 24, 22)),
    (BERLIN, date(2026, 6, 1), 24, at(2026, 5, 31, 22)),
    (zone_named("UTC"), date(2026, 3, 8), 24, at(2026, 3, 8)),
    # no DST, a half-hour offset: +05:30 all year
    (zone_named("Asia/Kolkata"), date(2026, 3, 8), 24, at(2026, 3, 7, 18, 30)),
])
def test_day_bounds_and_length(zone: object, day: date, hours: int, start: datetime) -> None:
    lo, hi = day_bounds_utc(day, zone)  # type: ignore[arg-type]
    assert lo == start
    assert hi - lo == timedelta(hours=hours)
    assert day_length(day, zone) == timedelta(hours=hours)  # type: ignore[arg-type]
    assert lo.tzinfo is UTC and hi.tzinfo is UTC
    # consecutive days tile time: this day's end is the next day's start
    assert day_bounds_utc(day + timedelta(days=1), zone)[0] == hi  # type: ignore[arg-type]


@pytest.mark.parametrize("zone_name", [
    "America/New_York", "Europe/Berlin", "Australia/Lord_Howe",  # 30-minute DST shift
    "America/Santiago",  # DST changes at local midnight: some midnights do not exist
    "America/Havana",    # clocks go back from 01:00 to 00:00: midnight happens twice
    "Pacific/Apia",      # skipped 2011-12-30 entirely
])
def test_every_instant_lies_in_exactly_the_bounds_of_its_local_day(zone_name: str) -> None:
    zone = zone_named(zone_name)
    year = 2011 if zone_name == "Pacific/Apia" else 2026
    t = at(year, 1, 1)
    while t < at(year + 1, 1, 1):
        day = local_day(t, zone)
        lo, hi = day_bounds_utc(day, zone)
        assert lo <= t < hi, (zone_name, t, day, lo, hi)
        t += timedelta(minutes=30)


def test_local_day_near_midnight() -> None:
    # 03:30 UTC on 9 March is still 8 March in New York (EDT, UTC-4) and 9 March in Berlin
    t = at(2026, 3, 9, 3, 30)
    assert local_day(t, NY) == date(2026, 3, 8)
    assert local_day(t, BERLIN) == date(2026, 3, 9)
    assert local_day(at(2026, 3, 9, 4), NY) == date(2026, 3, 9)
    assert local_month(at(2026, 4, 1, 3), NY) == "2026-03"
    assert local_month(at(2026, 4, 1, 3), BERLIN) == "2026-04"


def test_local_day_refuses_naive_instants() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        local_day(datetime(2026, 3, 8, 12), NY)


def test_last_n_days_excludes_today_in_the_account_zone() -> None:
    # 02:00 UTC on 10 March: 9 March in New York, so last_7d there is 2..8 March; in Berlin it is 3..9 March
    now = at(2026, 3, 10, 2)
    assert last_n_days(now, NY, 7) == (date(2026, 3, 2), date(2026, 3, 8))
    assert last_n_days(now, BERLIN, 7) == (date(2026, 3, 3), date(2026, 3, 9))
    assert last_n_days(now, BERLIN, 1) == (date(2026, 3, 9), date(2026, 3, 9))
    with pytest.raises(ValueError):
        last_n_days(now, NY, 0)


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "", " UTC", "../etc/passwd", "America/", "x" * 65])
def test_unknown_zone_names_are_refused_with_the_name(name: str) -> None:
    with pytest.raises(UnknownTimeZone, match="unknown IANA time zone"):
        zone_named(name)


def test_local_days_between_counts_whole_dst_days_as_one() -> None:
    lo, hi = day_bounds_utc(date(2026, 3, 8), NY)                         # the 23 h day
    assert local_days_between(lo, hi, NY) == 1.0
    lo25, hi25 = day_bounds_utc(date(2026, 11, 1), NY)                    # the 25 h day
    assert local_days_between(lo25, hi25, NY) == 1.0
    assert local_days_between(lo25, lo25 + timedelta(hours=5), NY) == pytest.approx(5 / 25)
    # 1 March 00:00 .. 15 March 00:00 in New York: 14 local days, though only 13 d 23 h pass
    start, end = day_bounds_utc(date(2026, 3, 1), NY)[0], day_bounds_utc(date(2026, 3, 15), NY)[0]
    assert end - start == timedelta(days=14) - timedelta(hours=1)
    assert local_days_between(start, end, NY) == pytest.approx(14.0)
    # half of the 23 h day, then half of the next (24 h) day
    mid8 = lo + timedelta(hours=11.5)
    assert local_days_between(mid8, hi + timedelta(hours=12), NY) == pytest.approx(1.0)
    assert local_days_between(hi, lo, NY) == 0.0
