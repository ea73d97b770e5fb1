"""Meta's hourly rows (local wall-clock hours of the ad account) as UTC intervals, DST included."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from allot.ingest.domain.errors import AccountProblem

_HOUR_LABEL = re.compile(r"^(\d{2}):00:00 - (\d{2}):59:59$")


def zone(timezone_name: str) -> ZoneInfo:
    """The IANA zone of an account; AccountProblem when Python's database does not know it."""
    try:
        return ZoneInfo(timezone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise AccountProblem(f"time zone {timezone_name!r} of the account is not a known IANA zone") from None


def parse_hour_label(label: str) -> int:
    """``"13:00:00 - 13:59:59"`` (hourly_stats_aggregated_by_advertiser_time_zone) → 13."""
    m = _HOUR_LABEL.match(label.strip())
    if not m or m.group(1) != m.group(2) or int(m.group(1)) > 23:
        raise ValueError(f"not an hourly breakdown label: {label!r}")
    return int(m.group(1))


def _exists(day: date, hour: int, tz: ZoneInfo) -> bool:
    local = datetime.combine(day, time(hour), tz)
    return local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == local.replace(tzinfo=None)


def _utc(day: date, hour: int, tz: ZoneInfo) -> datetime:
    """The first instant the wall clock reads ``day hour:00`` (fold=0: before a repeated hour's second pass)."""
    return datetime.combine(day, time(hour), tz).astimezone(UTC)


def local_hour_interval(day: date, hour: int, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    """UTC [start, end) of the local hour labelled ``hour`` on ``day``.

    A repeated hour (clocks go back) covers both passes, so it lasts two hours; an hour the clocks skip
    (clocks go forward) does not exist and gives None. The hours of one local day tile it exactly: 23 h on
    the spring-forward day, 25 h on the fall-back day.
    """
    if not _exists(day, hour, tz):
        return None
    start = _utc(day, hour, tz)
    nxt_day, nxt_hour = (day, hour + 1) if hour < 23 else (day + timedelta(days=1), 0)
    while not _exists(nxt_day, nxt_hour, tz):
        nxt_day, nxt_hour = (nxt_day, nxt_hour + 1) if nxt_hour < 23 else (nxt_day + timedelta(days=1), 0)
    return start, _utc(nxt_day, nxt_hour, tz)


def local_day_intervals(day: date, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """Every hour interval of one local day, in order (absent hours left out)."""
    return [iv for h in range(24) if (iv := local_hour_interval(day, h, tz)) is not None]


def trailing_window(now: datetime, tz: ZoneInfo, days: int) -> tuple[date, date]:
    """(since, until) local dates: today in the account's zone and the ``days - 1`` days before it."""
    today = now.astimezone(tz).date()
    return today - timedelta(days=max(days, 1) - 1), today
