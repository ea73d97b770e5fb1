"""Pacing curves: how much of a flight's budget should be spent by a given instant.

Every curve maps an instant to a *planned fraction* in ``[0, 1]`` that is
0 at (and before) flight start, 1 at (and after) flight end, and
non-decreasing in between.  Time is measured in seconds
(``timedelta.total_seconds``), never in whole days.

Shapes (``x`` is the elapsed fraction of the flight in seconds):

* ``linear`` (default, the seed's model): ``f(x) = x``.
* ``front_loaded``: ``f(x) = 1 - (1 - x) ** k`` with exponent ``k >= 1``
  (default 2): spends faster early on.
* ``back_loaded``: ``f(x) = x ** k`` with exponent ``k >= 1`` (default 2):
  spends faster towards the end.
* ``day_of_week``: seven non-negative weights for Monday..Sunday, the
  weekdays of the curve's ``zone`` (the ad account's time zone; UTC when it is
  not known), so Monday starts at the account's local midnight and a 23 h or
  25 h day weighs what it lasts.  ``f = W(start, now) / W(start, end)`` where
  ``W`` integrates the weight of each instant over seconds, so partial days
  count exactly.  When the
  flight only covers zero-weight time (``W(start, end) == 0``) the curve falls
  back to linear so the budget is still planned to be spent.

Degenerate flights (``end <= start``) are fully elapsed at and after start and
not started before it, whatever the curve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta, tzinfo
from enum import StrEnum

from allot.contracts.localday import day_bounds_utc, local_day
from allot.pacing.domain.errors import PacingInputError
from allot.pacing.domain.models import require_aware

_DAY_S = 86_400.0
_WEEK = timedelta(days=7)


class CurveKind(StrEnum):
    """Shape of a pacing curve."""

    LINEAR = "linear"
    FRONT_LOADED = "front_loaded"
    BACK_LOADED = "back_loaded"
    DAY_OF_WEEK = "day_of_week"


@dataclass(frozen=True, slots=True)
class PacingCurve:
    """A planned-spend curve; build it with the ``linear``/``front_loaded``/``back_loaded``/``day_of_week``
    constructors."""

    kind: CurveKind = CurveKind.LINEAR
    exponent: float = 2.0  # used by front_loaded and back_loaded only
    weekday_weights: tuple[float, ...] = ()  # Monday..Sunday, used by day_of_week only
    zone: tzinfo = UTC  # whose weekdays day_of_week weighs: the ad account's time zone

    def __post_init__(self) -> None:
        power = self.kind in (CurveKind.FRONT_LOADED, CurveKind.BACK_LOADED)
        if power and (not math.isfinite(self.exponent) or self.exponent < 1.0):
            raise PacingInputError(f"curve exponent must be finite and >= 1, got {self.exponent!r}")
        if self.kind is CurveKind.DAY_OF_WEEK:
            if len(self.weekday_weights) != 7:
                raise PacingInputError(f"day_of_week needs 7 weights (Mon..Sun), got {len(self.weekday_weights)}")
            for weight in self.weekday_weights:
                if not math.isfinite(weight) or weight < 0:
                    raise PacingInputError(f"weekday weights must be finite and >= 0, got {weight!r}")

    @classmethod
    def linear(cls) -> PacingCurve:
        """Spend proportional to elapsed time (the seed's model)."""
        return cls(CurveKind.LINEAR)

    @classmethod
    def front_loaded(cls, exponent: float = 2.0) -> PacingCurve:
        """Planned fraction ``1 - (1 - x) ** exponent``: ahead of linear at every interior instant."""
        return cls(CurveKind.FRONT_LOADED, exponent=exponent)

    @classmethod
    def back_loaded(cls, exponent: float = 2.0) -> PacingCurve:
        """Planned fraction ``x ** exponent``: behind linear at every interior instant."""
        return cls(CurveKind.BACK_LOADED, exponent=exponent)

    @classmethod
    def day_of_week(cls, weights: Sequence[float]) -> PacingCurve:
        """Planned fraction weighted by seven Monday..Sunday (UTC) weights, integrated per second."""
        return cls(CurveKind.DAY_OF_WEEK, weekday_weights=tuple(float(w) for w in weights))

    def in_zone(self, zone: tzinfo) -> PacingCurve:
        """The same curve on the weekdays of ``zone`` (only ``day_of_week`` depends on it)."""
        return replace(self, zone=zone)

    def planned_fraction(self, flight_start: datetime, flight_end: datetime, current_time: datetime) -> float:
        """Return the planned share of budget spent by ``current_time``: in [0, 1], 0 before start, 1 from end on."""
        require_aware("flight_start", flight_start)
        require_aware("flight_end", flight_end)
        require_aware("current_time", current_time)
        if current_time <= flight_start:
            # At start of a degenerate flight (end <= start) the whole budget is due.
            return 1.0 if flight_end <= flight_start and current_time == flight_start else 0.0
        if current_time >= flight_end:
            return 1.0
        elapsed_s = (current_time - flight_start).total_seconds()
        duration_s = (flight_end - flight_start).total_seconds()
        x = min(max(elapsed_s / duration_s, 0.0), 1.0)
        if self.kind is CurveKind.LINEAR:
            return x
        if self.kind is CurveKind.FRONT_LOADED:
            return 1.0 - math.pow(1.0 - x, self.exponent)
        if self.kind is CurveKind.BACK_LOADED:
            return math.pow(x, self.exponent)
        total_w = weighted_seconds(flight_start, flight_end, self.weekday_weights, self.zone)
        if total_w <= 0.0:
            return x
        return min(weighted_seconds(flight_start, current_time, self.weekday_weights, self.zone) / total_w, 1.0)


def weighted_seconds(start: datetime, end: datetime, weekday_weights: Sequence[float], zone: tzinfo = UTC) -> float:
    """Return the integral over [start, end) of the weight of each instant's weekday in ``zone``, in weight x
    seconds (0 if end <= start); a local day counts for as long as it lasts (23 h / 25 h on DST changes)."""
    if end <= start:
        return 0.0
    if zone is not UTC and getattr(zone, "key", None) != "UTC":
        return _weighted_local_seconds(start, end, weekday_weights, zone)
    cursor = start.astimezone(UTC)
    stop = end.astimezone(UTC)
    total = 0.0
    # Partial first day, up to the next UTC midnight.
    next_midnight = datetime.combine(cursor.date() + timedelta(days=1), time(), tzinfo=UTC)
    head_end = min(next_midnight, stop)
    total += weekday_weights[cursor.weekday()] * (head_end - cursor).total_seconds()
    cursor = head_end
    # Whole weeks contain every weekday exactly once.
    whole_weeks = (stop - cursor) // _WEEK
    if whole_weeks:
        total += whole_weeks * sum(weekday_weights) * _DAY_S
        cursor += whole_weeks * _WEEK
    # At most seven remaining (possibly partial) days.
    while cursor < stop:
        day_end = min(cursor + timedelta(days=1), stop)
        total += weekday_weights[cursor.weekday()] * (day_end - cursor).total_seconds()
        cursor = day_end
    return total


def _weighted_local_seconds(start: datetime, end: datetime, weekday_weights: Sequence[float], zone: tzinfo) -> float:
    """``weighted_seconds`` day by local day: local days are not all 86 400 s long, so no whole-week shortcut."""
    total = 0.0
    day = local_day(start, zone)
    cursor = start
    while cursor < end:
        day_end = min(day_bounds_utc(day, zone)[1], end)
        total += weekday_weights[day.weekday()] * (day_end - cursor).total_seconds()
        cursor = day_end
        day += timedelta(days=1)
    return total
