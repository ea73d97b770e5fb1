"""Entities as the rules engine sees them, and the per-``now`` cache of their range aggregates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from operator import add
from typing import Final, Literal, get_args

from allot.contracts.localday import local_day
from allot.rules.domain.metrics import REACH_NOT_REPORTED, ZERO_COUNTERS, DailyCounters
from allot.rules.domain.timeranges import MAX_LOOKBACK_DAYS, TimeRange, ensure_utc

EntityLevel = Literal["campaign", "adset", "ad"]
ENTITY_LEVELS: Final[tuple[EntityLevel, ...]] = get_args(EntityLevel)
Platform = Literal["meta", "google", "tiktok", "snapchat", "pinterest", "linkedin", "sandbox"]
PLATFORMS: Final[tuple[Platform, ...]] = get_args(Platform)
EntityStatus = Literal["active", "paused", "archived", "deleted"]
ENTITY_STATUSES: Final[tuple[EntityStatus, ...]] = get_args(EntityStatus)


@dataclass(frozen=True, slots=True)
class PlatformReach:
    """The platform's deduplicated reach of an entity per complete-day range ending with the local day ``through``.

    ``by_range`` maps ``yesterday`` (the day ``through`` alone) and ``last_3d`` … ``last_30d`` to people
    reached; a range absent from it was not reported.
    """

    through: date
    by_range: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Entity:
    """A campaign, ad set or ad with its attributes and daily raw counters keyed by its account's local date.

    ``daily_budget_cents`` is None when the entity has no budget of its own
    (e.g. an ad set under a campaign-level budget). ``range_reach`` is the
    platform's latest deduplicated reach per range (used only while its
    ``through`` is the evaluation's yesterday). ``reports`` counts the interval
    reports summed into each day's bucket (a day absent from it counts as one):
    a day of several reports has no daily reach. ``zone`` is the ad account's time zone: its
    ``today`` and ``yesterday`` are local days there (UTC for an account not profiled yet).
    """

    entity_id: str
    entity_level: EntityLevel
    platform: Platform
    ad_account_id: str
    name: str
    status: EntityStatus
    currency: str
    daily_budget_cents: int | None
    buckets: Mapping[date, DailyCounters] = field(default_factory=dict)
    range_reach: PlatformReach | None = None
    zone: tzinfo = UTC
    reports: Mapping[date, int] = field(default_factory=dict)


#: Offsets (days before today) at which a multi-day range is complete.
_RANGE_END_OFFSETS: Final[dict[int, str]] = {3: "last_3d", 7: "last_7d", 14: "last_14d", 30: "last_30d"}


def _day_reach(day: DailyCounters, reports: int) -> int:
    """A day's reach when its bucket is one report that carries reach; never the sum of several reports' reach."""
    if day.impressions == 0:
        return 0
    if reports > 1 or day.reach == 0:  # several intervals' reach do not add up; 0 with impressions = not reported
        return REACH_NOT_REPORTED
    return day.reach


class AggregateCache:
    """Range counters per entity per time range for one ``now``, shared across every rule evaluated at it.

    Guarantees: each entity's buckets are read once (one pass over at most 31
    days) however many rules look at it; every counter but ``reach`` equals the
    element-wise sum of the buckets inside each range (see ``timeranges``).
    ``reach`` is never summed: it is the platform's deduplicated reach of the
    range when current, a single-report day's own reach, 0 for a range without
    impressions, else ``REACH_NOT_REPORTED`` (see ``metrics``, "Reach"). The cache is keyed by
    ``entity_id`` and assumes an entity's data does not change while the cache
    lives: build one per evaluation run.
    """

    __slots__ = ("_days", "_store", "now", "today")

    def __init__(self, now: datetime) -> None:
        self.now: datetime = ensure_utc(now)
        self.today: date = self.now.date()  #: the UTC day (accounts' own days: ``days_in``)
        self._days: dict[tzinfo, tuple[date, tuple[date, ...]]] = {}
        self._store: dict[str, dict[str, DailyCounters]] = {}

    def days_in(self, zone: tzinfo) -> tuple[date, tuple[date, ...]]:
        """Today in ``zone`` and the local days before it (index k = k+1 days before today), once per zone."""
        held = self._days.get(zone)
        if held is None:
            today = local_day(self.now, zone)
            held = self._days[zone] = (today, tuple(today - timedelta(days=k) for k in range(1, MAX_LOOKBACK_DAYS + 1)))
        return held

    def __len__(self) -> int:
        return len(self._store)

    def ranges_for(self, entity: Entity) -> dict[str, DailyCounters]:
        """Counters of ``entity`` over each of the six time ranges (see the class doc for ``reach``)."""
        cached = self._store.get(entity.entity_id)
        if cached is None:
            cached = self._aggregate(entity)
            self._store[entity.entity_id] = cached
        return cached

    def _aggregate(self, entity: Entity) -> dict[str, DailyCounters]:
        get = entity.buckets.get
        today, offset_dates = self.days_in(entity.zone)
        days = [get(day) for day in offset_dates]  # index k = k+1 days before today
        reported = entity.range_reach
        # The platform's ranges count only while they end yesterday: after the local day rolls over they are
        # another range (a day too early) until a report with the new ``through`` arrives.
        platform = reported.by_range if reported is not None and reported.through == offset_dates[0] else {}
        reports = entity.reports
        today_counters = get(today, ZERO_COUNTERS)
        yesterday = ZERO_COUNTERS if days[0] is None else days[0]
        out: dict[str, DailyCounters] = {
            "today": today_counters._replace(reach=_day_reach(today_counters, reports.get(today, 1))),
            "yesterday": yesterday._replace(reach=platform.get(
                "yesterday", _day_reach(yesterday, reports.get(offset_dates[0], 1)))),
        }
        # Ranges nest (3d ⊂ 7d ⊂ 14d ⊂ 30d): sum each extra slice column-wise once and carry the total.
        acc: tuple[int, ...] = ZERO_COUNTERS
        start = 0
        for end, name in _RANGE_END_OFFSETS.items():
            chunk = [c for c in days[start:end] if c is not None]
            if chunk:
                acc = tuple(map(add, acc, map(sum, zip(*chunk, strict=True))))
            summed = DailyCounters._make(acc)
            # Reach is never the sum of daily reach: the platform's figure, or nobody when nothing was shown.
            reach = platform.get(name, 0 if summed.impressions == 0 else REACH_NOT_REPORTED)
            out[name] = summed._replace(reach=reach)
            start = end
        return out

    def range_counters(self, entity: Entity, time_range: TimeRange) -> DailyCounters:
        """Counters of ``entity`` over ``time_range`` (see the class doc for ``reach``)."""
        return self.ranges_for(entity)[time_range]
