"""Cron schedules: 5-field expressions read in an ad account's own time zone, fire times as UTC instants. Pure.

Syntax and semantics are Debian cron's (Vixie cron), through the ``cronsim`` library:

- fields ``minute hour day-of-month month day-of-week`` with lists (``1,15``), ranges (``1-5``), steps
  (``*/15``, ``9-17/2``) and names (``JAN``-``DEC``, ``SUN``-``SAT``, any case); day-of-week 0 and 7 are Sunday;
  cronsim's extensions ``L`` / ``LW`` (last day / last weekday of the month), ``5L`` (last Friday) and
  ``MON#2`` (second Monday) also work; ``@daily``-style macros and a seconds field do not;
- when both day-of-month and day-of-week are restricted (neither starts with ``*``), a day matches if
  EITHER matches (``0 9 1 * MON``: the 1st and every Monday), as in every Vixie-derived cron;
- daylight saving time, for an expression with a fixed minute and hour (``30 2 * * *``): a fire time the
  clocks skip fires once at the first valid instant after the gap (02:30 on a spring-forward night fires at
  03:00), and a fire time the clocks repeat fires once, on its first occurrence. An expression whose minute or
  hour is a wildcard or a step (``*/15 * * * *``, ``0 */2 * * *``) follows the wall clock in real time:
  nothing fires in the skipped hour and the repeated hour fires in both passes.

Fires of one expression are at least :data:`MIN_CRON_GAP_MINUTES` apart (checked on the minute × hour
grid, as interval rules run at most every 5 minutes).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Final

from cronsim import CronSim, CronSimError

from allot.rules.domain.timeranges import ensure_utc

MIN_CRON_GAP_MINUTES: Final[int] = 5
MAX_CRON_LENGTH: Final[int] = 200
CRON_FIELDS: Final[tuple[str, ...]] = ("minute", "hour", "day-of-month", "month", "day-of-week")
_ALLOWED: Final[dict[str, str]] = {
    "minute": "0-59",
    "hour": "0-23",
    "day-of-month": "1-31 (or L, LW)",
    "month": "1-12 or JAN-DEC",
    "day-of-week": "0-7 or SUN-SAT (0 and 7 are Sunday; also 5L, MON#2)",
}
_SYNTAX: Final = "lists 1,15, ranges 1-5, steps */15"
_EXAMPLE: Final = "'0 9 * * 1-5' (09:00 Monday to Friday)"
#: The reference instant an expression is checked against for "never fires" (any fixed instant would do).
_REFERENCE: Final[datetime] = datetime(2000, 1, 1, tzinfo=UTC)


class CronError(ValueError):
    """An invalid cron expression; the message says which field and what is allowed."""


@dataclass(frozen=True, slots=True)
class CronFire:
    """One fire time (UTC) and the scoped ad accounts whose local schedule fires at that instant."""

    at: datetime
    account_ids: tuple[str, ...]


def parse_cron(expr: str) -> str:
    """The expression with its whitespace normalised; ``CronError`` saying what is wrong when it is not a
    5-field cron expression that fires at least every 50 years and at most every 5 minutes."""
    fields = expr.split()
    if not fields:
        raise CronError(f"is empty; expected 5 fields (minute hour day-of-month month day-of-week), e.g. {_EXAMPLE}")
    if fields[0].startswith("@"):
        raise CronError("macros (@daily, @hourly, ...) are not supported; write the 5 fields, e.g. '0 0 * * *' "
                        "for @daily")
    if len(fields) != len(CRON_FIELDS):
        raise CronError(f"has {len(fields)} field{'s' if len(fields) != 1 else ''}; expected 5 (minute hour "
                        f"day-of-month month day-of-week), e.g. {_EXAMPLE}")
    normalised = " ".join(fields)
    try:
        sim = CronSim(normalised, _REFERENCE)
    except CronSimError as exc:
        raise CronError(_field_error(fields, str(exc))) from None
    try:
        next(sim)
    except StopIteration:
        raise CronError(f"{normalised!r} never fires (no matching date in 50 years)") from None
    _check_gap(sim)
    return normalised


def _field_error(fields: list[str], message: str) -> str:
    match = re.fullmatch(r"Bad (?P<field>[a-z-]+)", message)
    if match is None or match["field"] not in CRON_FIELDS:
        return f"not a valid cron expression ({message})"
    name = match["field"]
    value = fields[CRON_FIELDS.index(name)]
    if name == "day-of-month" and _valid(fields[:3] + ["*"] + fields[4:]):
        return f"day-of-month {value!r} never occurs in month {fields[3]!r}"
    return f"{name} field {value!r} is not valid; allowed: {_ALLOWED[name]}, {_SYNTAX}"


def _valid(fields: list[str]) -> bool:
    try:
        CronSim(" ".join(fields), _REFERENCE)
    except CronSimError:
        return False
    return True


def _check_gap(sim: CronSim) -> None:
    times = sorted(h * 60 + m for h in sim.hours for m in sim.minutes)
    gaps = [(b - a, a, b) for a, b in zip(times, times[1:], strict=False)]
    gaps.append((times[0] + 1440 - times[-1], times[-1], times[0]))  # last of one day → first of the next
    gap, first, second = min(gaps)
    if gap < MIN_CRON_GAP_MINUTES:
        raise CronError(f"fires {gap} minute{'s' if gap != 1 else ''} apart ({_hhmm(first)} and {_hhmm(second)}); "
                        f"a cron rule fires at most every {MIN_CRON_GAP_MINUTES} minutes, e.g. '*/5 * * * *'")


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _sim(expr: str, start: datetime, *, reverse: bool = False) -> CronSim:
    try:
        return CronSim(expr, start, reverse=reverse)
    except CronSimError as exc:
        raise CronError(f"{expr!r}: {exc}") from None


def next_fire(expr: str, after: datetime, zone: tzinfo) -> datetime | None:
    """The first fire time strictly after ``after``, as a UTC instant, reading ``expr`` in ``zone``; None when it
    never fires again (within cronsim's 50-year horizon)."""
    after = ensure_utc(after)
    start = after.astimezone(zone)
    it = _sim(expr, start)
    for _ in range(3):  # local wall times repeat once at most (DST): a second step always passes ``after``
        try:
            fire = next(it).astimezone(UTC)
        except StopIteration:
            return None
        if fire > after:
            return fire
    return None  # pragma: no cover - unreachable: see above


@lru_cache(maxsize=4096)
def previous_fire(expr: str, at: datetime, zone: tzinfo) -> datetime | None:
    """The latest fire time at or before ``at``, as a UTC instant, reading ``expr`` in ``zone``; None when there
    is none (within cronsim's 50-year horizon). Cached: one scan asks it for many rules at the same ``at``."""
    at = ensure_utc(at)
    # Iterating backwards from one second past ``at`` (whole seconds) makes a fire exactly at ``at`` count.
    start = (at.replace(microsecond=0) + timedelta(seconds=1)).astimezone(zone)
    try:
        fire: datetime | None = next(_sim(expr, start, reverse=True)).astimezone(UTC)
    except StopIteration:
        fire = None
    # Backwards iteration runs on local wall times: in a repeated hour it may return a fire before a later one
    # that already happened (or, in a skipped hour, one moved past ``at``); settle it on real instants.
    while fire is not None and fire > at:
        fire = _step_back(expr, fire, zone)
    while fire is not None and (later := next_fire(expr, fire, zone)) is not None and later <= at:
        fire = later
    return fire


def _step_back(expr: str, fire: datetime, zone: tzinfo) -> datetime | None:
    try:
        earlier = next(_sim(expr, fire.astimezone(zone), reverse=True)).astimezone(UTC)
    except StopIteration:
        return None
    return earlier if earlier < fire else None


def due_fire(expr: str, zone: tzinfo, *, since: datetime, now: datetime) -> datetime | None:
    """The latest fire time in ``(since, now]`` in ``zone``, or None: the schedule is due when there is one.

    Fire times missed before the latest (the scheduler was down) are not caught up one by one: the latest
    runs once, late."""
    fire = previous_fire(expr, ensure_utc(now), zone)
    return fire if fire is not None and fire > ensure_utc(since) else None


def due_fires(expr: str, account_zones: Mapping[str, tzinfo], *, since: datetime,
              now: datetime) -> tuple[CronFire, ...]:
    """Each instant in ``(since, now]`` at which the schedule is due for some of the accounts (each account's
    latest fire time, see :func:`due_fire`), with those accounts; earliest first. Accounts whose zones fire at
    the same instant (same offset) share one fire."""
    by_zone: dict[tzinfo, list[str]] = defaultdict(list)
    for account, zone in account_zones.items():
        by_zone[zone].append(account)
    by_instant: dict[datetime, list[str]] = defaultdict(list)
    for zone, accounts in by_zone.items():
        fire = due_fire(expr, zone, since=since, now=now)
        if fire is not None:
            by_instant[fire].extend(accounts)
    return tuple(CronFire(at, tuple(sorted(accounts))) for at, accounts in sorted(by_instant.items()))
