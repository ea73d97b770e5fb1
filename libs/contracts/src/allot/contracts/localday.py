"""An ad account's local day: pure helpers every service uses (no clock, no I/O; the zone is an argument).

Ad platforms reset daily budgets and report "today" at the ad account's local midnight (Meta: the
account's ``timezone_name``), so a "day" is a calendar date in the account's IANA time zone. Instants
stay aware UTC everywhere else; these helpers are the only place that turns one into the other.

A local day is ``[day_bounds_utc(day)[0], day_bounds_utc(day)[1])``: 24 h on most days, 23 h on the
day clocks spring forward and 25 h on the day they fall back. Every instant belongs to exactly one
local day, and ``local_day(t, zone) == day`` exactly when ``start <= t < end``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "UnknownTimeZone",
    "day_bounds_utc",
    "day_length",
    "last_n_days",
    "local_day",
    "local_days_between",
    "local_month",
    "zone_named",
]


class UnknownTimeZone(ValueError):
    """A time zone name that is not in the IANA database this process has."""


@lru_cache(maxsize=1024)
def zone_named(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (e.g. ``America/New_York``); raises ``UnknownTimeZone`` naming it when unknown."""
    if not name or len(name) > 64 or name != name.strip():
        raise UnknownTimeZone(f"unknown IANA time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # ValueError: a path-like or malformed key
        raise UnknownTimeZone(f"unknown IANA time zone {name!r}") from exc


def _aware(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("instant must be timezone-aware (UTC)")
    return instant


def local_day(instant: datetime, zone: tzinfo) -> date:
    """The calendar date ``instant`` falls on in ``zone`` (raises ValueError for a naive instant)."""
    return _aware(instant).astimezone(zone).date()


def local_month(instant: datetime, zone: tzinfo) -> str:
    """The ``YYYY-MM`` month ``instant`` falls in, in ``zone``."""
    return f"{local_day(instant, zone):%Y-%m}"


def _start_utc(day: date, zone: tzinfo) -> datetime:
    # fold=0: an ambiguous local midnight starts at its first occurrence; a midnight that does not exist
    # (clocks jump from 00:00 to 01:00) maps to the transition instant itself (PEP 495).
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def day_bounds_utc(day: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """[start, end) of the local ``day`` in ``zone`` as aware UTC instants (23 h or 25 h across DST changes)."""
    return _start_utc(day, zone), _start_utc(day + timedelta(days=1), zone)


def day_length(day: date, zone: tzinfo) -> timedelta:
    """How long the local ``day`` lasts in ``zone``: 24 h, or 23 h / 25 h on a daylight-saving change."""
    start, end = day_bounds_utc(day, zone)
    return end - start


def last_n_days(now: datetime, zone: tzinfo, n: int) -> tuple[date, date]:
    """The ``n`` complete local days before today in ``zone``, as an inclusive (first, last) date pair.

    Today is excluded (Meta's ``last_7d`` preset does the same), so ``last_n_days`` never mixes a
    partial day into a multi-day aggregate.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    today = local_day(now, zone)
    return today - timedelta(days=n), today - timedelta(days=1)


def local_days_between(start: datetime, end: datetime, zone: tzinfo) -> float:
    """How many local days of ``zone`` [start, end) covers, each partial day by the share of its OWN length
    (so a whole 23 h or 25 h day counts as one day); 0 when ``end <= start``."""
    if _aware(end) <= _aware(start):
        return 0.0
    first, last = local_day(start, zone), local_day(end, zone)
    lo, hi = day_bounds_utc(first, zone)
    if first == last:
        return (end - start) / (hi - lo)
    head = (hi - start) / (hi - lo)
    lo_last, hi_last = day_bounds_utc(last, zone)
    tail = (end - lo_last) / (hi_last - lo_last)
    return head + (last - first).days - 1 + tail
