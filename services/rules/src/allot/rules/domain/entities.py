"""Entities as the rules engine sees them, and the per-``now`` cache of their range aggregates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from operator import add
from typing import Final, Literal, get_args

from allot.contracts.localday import local_day
from allot.rules.domain.metrics import ZERO_COUNTERS, DailyCounters
from allot.rules.domain.timeranges import MAX_LOOKBACK_DAYS, TimeRange, ensure_utc

EntityLevel = Literal["campaign", "adset", "ad"]
ENTITY_LEVELS: Final[tuple[EntityLevel, ...]] = get_args(EntityLevel)
Platform = Literal["meta", "google", "tiktok", "snapchat", "pinterest", "linkedin", "sandbox"]
PLATFORMS: Final[tuple[Platform, ...]] = get_args(Platform)
EntityStatus = Literal["active", "paused", "archived", "deleted"]
ENTITY_STATUSES: Final[tuple[EntityStatus, ...]] = get_args(EntityStatus)


@dataclass(frozen=True, slots=True)
class Entity:
    """A campaign, ad set or ad with its attributes and daily raw counters keyed by its account's local date.

    ``daily_budget_cents`` is None when the entity has no budget of its own
    (e.g. an ad set under a campaign-level budget). ``range_reach`` optionally
    carries the platform's deduplicated reach per time range; when present it
    replaces the summed daily reach for that range. ``zone`` is the ad account's time zone: its
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
    range_reach: Mapping[str, int] | None = None
    zone: tzinfo = UTC


#: Offsets (days before today) at which a multi-day range is complete.
_RANGE_END_OFFSETS: Final[dict[int, str]] = {3: "last_3d", 7: "last_7d", 14: "last_14d", 30: "last_30d"}


class AggregateCache:
    """Summed counters per entity per time range for one ``now``, shared across every rule evaluated at it.

    Guarantees: each entity's buckets are read once (one pass over at most 31
    days) however many rules look at it; values equal the element-wise sum of
    the buckets inside each range (see ``timeranges``). The cache is keyed by
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
        """Counters of ``entity`` summed over each of the six time ranges."""
        cached = self._store.get(entity.entity_id)
        if cached is None:
            cached = self._aggregate(entity)
            self._store[entity.entity_id] = cached
        return cached

    def _aggregate(self, entity: Entity) -> dict[str, DailyCounters]:
        get = entity.buckets.get
        today, offset_dates = self.days_in(entity.zone)
        days = [get(day) for day in offset_dates]  # index k = k+1 days before today
        yesterday = days[0]
        out: dict[str, DailyCounters] = {
            "today": get(today, ZERO_COUNTERS),
            "yesterday": ZERO_COUNTERS if yesterday is None else yesterday,
        }
        # Ranges nest (3d ⊂ 7d ⊂ 14d ⊂ 30d): sum each extra slice column-wise once and carry the total.
        acc: tuple[int, ...] = ZERO_COUNTERS
        start = 0
        for end, name in _RANGE_END_OFFSETS.items():
            chunk = [c for c in days[start:end] if c is not None]
            if chunk:
                acc = tuple(map(add, acc, map(sum, zip(*chunk, strict=True))))
            out[name] = DailyCounters._make(acc)
            start = end
        if entity.range_reach:
            for name, reach in entity.range_reach.items():
                if name in out:
                    out[name] = out[name]._replace(reach=reach)
        return out

    def range_counters(self, entity: Entity, time_range: TimeRange) -> DailyCounters:
        """Counters of ``entity`` summed over ``time_range``."""
        return self.ranges_for(entity)[time_range]
