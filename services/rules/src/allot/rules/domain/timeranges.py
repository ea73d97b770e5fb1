"""Time ranges, day buckets and evaluation slots, all resolved from a passed-in ``now`` and ``zone``.

Conventions (every function here is pure; ``now`` must be timezone-aware):

- Days are the ad account's local calendar days (``zone``, its IANA time zone from
  ``account.profiled``; UTC for an account not profiled yet), the days on which the
  platform resets budgets and reports "today". A metric bucket belongs to the local
  date of its timestamp: 23:59:59 is still that day, 00:00:00 is the next one; a
  local day lasts 23 h or 25 h when the clocks change (``allot.contracts.localday``).
- ``today``     = the current local day, partial (local midnight up to ``now``).
- ``yesterday`` = the local day before today.
- ``last_Nd``   = the N *complete* local days before today; today is excluded
  (the same as Meta's ``last_7d`` preset), so a range never mixes a partial
  day into a multi-day aggregate. ``last_7d`` at any time on 2026-05-17 is
  2026-05-10 .. 2026-05-16 inclusive.
- Evaluation slots are aligned to the Unix epoch (``floor(epoch / interval)``),
  so every instance computes the same slot for the same instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Final, Literal, get_args

from allot.contracts.localday import last_n_days, local_day

TimeRange = Literal["today", "yesterday", "last_3d", "last_7d", "last_14d", "last_30d"]
TIME_RANGES: Final[tuple[TimeRange, ...]] = get_args(TimeRange)

#: Number of UTC days each range covers (``today`` counts as one, partial, day).
RANGE_DAYS: Final[dict[str, int]] = {
    "today": 1,
    "yesterday": 1,
    "last_3d": 3,
    "last_7d": 7,
    "last_14d": 14,
    "last_30d": 30,
}
#: Oldest day offset (days before today) any range reaches; older buckets are never read.
MAX_LOOKBACK_DAYS: Final[int] = 30
DEFAULT_INTERVAL_MINUTES: Final[int] = 15
_EPOCH: Final[datetime] = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DateSpan:
    """An inclusive span of (local) dates; ``days`` is its length."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end


def ensure_utc(now: datetime) -> datetime:
    """Return ``now`` converted to UTC; raises ``ValueError`` for a naive datetime."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (UTC); got a naive datetime")
    return now.astimezone(UTC)


def bucket_date(ts: datetime, zone: tzinfo = UTC) -> date:
    """The local day in ``zone`` a timestamped metric belongs to (23:59:59 → that day, 00:00:00 → the new day)."""
    return local_day(ensure_utc(ts), zone)


def resolve_range(time_range: TimeRange | str, now: datetime, zone: tzinfo = UTC) -> DateSpan:
    """The inclusive local date span ``time_range`` covers at ``now`` in ``zone`` (see module doc)."""
    today = local_day(ensure_utc(now), zone)
    if time_range == "today":
        return DateSpan(today, today)
    if time_range == "yesterday":
        day = today - timedelta(days=1)
        return DateSpan(day, day)
    try:
        days = RANGE_DAYS[time_range]
    except KeyError:
        raise ValueError(f"unknown time range {time_range!r}; allowed: {', '.join(TIME_RANGES)}") from None
    first, last = last_n_days(now, zone, days)
    return DateSpan(first, last)


def slot_start(now: datetime, interval_minutes: int = DEFAULT_INTERVAL_MINUTES) -> datetime:
    """Start (UTC, epoch-aligned) of the evaluation slot containing ``now``; equal for every instant in the slot."""
    if interval_minutes < 1:
        raise ValueError("interval_minutes must be >= 1")
    step = timedelta(minutes=interval_minutes)
    elapsed = ensure_utc(now) - _EPOCH
    return _EPOCH + (elapsed // step) * step


def is_slot_due(
    last_evaluated_at: datetime | None,
    now: datetime,
    interval_minutes: int = DEFAULT_INTERVAL_MINUTES,
) -> bool:
    """True when the rule has not yet been evaluated in the slot containing ``now``."""
    if last_evaluated_at is None:
        return True
    return slot_start(last_evaluated_at, interval_minutes) < slot_start(now, interval_minutes)
