"""Turns the sandbox's entities into ``metrics.ingested`` payloads, interval by interval, on an injected clock.

The simulator owns no clock: :meth:`DeliverySimulator.advance_to` is told what
time it is. Each interval of each entity is drawn from an RNG seeded by
(seed, entity id, interval start), so results do not depend on how many other
entities exist, on their order, or on how the calls to ``advance_to`` are
batched. Conversions mature over 72 hours (``delivery.reported_after``); the
simulator keeps only the intervals that can still change and re-reports them
when they cross a maturation checkpoint.

Like a platform's reporting, each entity's report of the latest interval of a call also carries
``range_reach``: its people reached over the complete local days of its account ending yesterday
(``yesterday``, ``last_3d`` … ``last_30d``), deduplicated with the fixed overlap model of
``delivery.deduplicated_reach`` (the hours of a day, then the days of a range), never summed. An interval
belongs to the local day of its start in the account's zone (``zone_of``, UTC by default), as in the
services' daily buckets. The simulator keeps each entity's largest and total hourly reach per local day
for 31 days, in memory: the sandbox's world starts with the process, as its entities do.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Protocol

import structlog

from allot.contracts.payloads import MetricsIngested, RangeReach
from allot.sandbox.delivery import (
    REACH_OVERLAP,
    EntityCurve,
    deduplicated_reach,
    maturation_fraction,
    simulate_interval,
)
from allot.sandbox.profiles import derived_seed, profile_curve

__all__ = ["DEFAULT_REREPORT_AGES_H", "DeliverySimulator", "SimEntity", "run_delivery"]

log = structlog.get_logger("allot.sandbox.simulator")

#: Ages (hours after an interval ends) at which a not-yet-matured interval is re-reported; the last one is final.
DEFAULT_REREPORT_AGES_H: tuple[float, ...] = (6.0, 24.0, 48.0, 72.0)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SEED_MASK = (1 << 64) - 1
#: Complete local days each reported reach range covers, ending with the account's yesterday.
_REACH_RANGES: dict[str, int] = {"yesterday": 1, "last_3d": 3, "last_7d": 7, "last_14d": 14, "last_30d": 30}
#: Local days of hourly reach kept per entity (the longest range, and the day being delivered).
_REACH_DAYS = 31


class SimEntity(Protocol):
    """What the simulator reads of an entity (the sandbox's ``Entity`` satisfies it)."""

    @property
    def id(self) -> str: ...
    @property
    def platform(self) -> str: ...
    @property
    def ad_account_id(self) -> str: ...
    @property
    def entity_type(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def currency(self) -> str: ...
    @property
    def daily_budget_cents(self) -> int | None: ...
    @property
    def status(self) -> str: ...
    @property
    def parent_id(self) -> str | None: ...
    @property
    def curve(self) -> EntityCurve | None: ...


@dataclass(slots=True)
class _Row:
    """One entity's delivery in one retained interval: full counters and what was reported so far."""

    entity_id: str
    spend_cents: int
    impressions: int
    clicks: int
    reach: int
    conversions: int
    revenue_cents: int
    reported_conversions: int
    reported_revenue_cents: int


@dataclass(slots=True)
class _Interval:
    start_at: datetime
    end_at: datetime
    checkpoint: int
    """How many re-report checkpoints this interval has passed."""
    rows: list[_Row]


class DeliverySimulator:
    """Deterministic hourly (by default) delivery of every active, budgeted entity.

    Guarantees: an entity delivers in an interval only if it and its parent are
    ``active`` and it has a positive daily budget (paused entities spend
    nothing and are not reported); each report carries the interval's full
    counters with conversions/revenue matured to the report's age, never less
    than an earlier report of the same interval; memory holds at most the
    intervals of the last ``rereport_ages_h[-1]`` hours that still have
    conversions to mature.
    """

    def __init__(
        self,
        entities: Callable[[], Iterable[SimEntity]],
        *,
        seed: int = 0,
        interval: timedelta = timedelta(hours=1),
        start_at: datetime | None = None,
        rereport_ages_h: Sequence[float] = DEFAULT_REREPORT_AGES_H,
        zone_of: Callable[[str], tzinfo] | None = None,
        reach_overlap: float = REACH_OVERLAP,
    ) -> None:
        if interval <= timedelta(0):
            raise ValueError("interval must be positive")
        if not rereport_ages_h or list(rereport_ages_h) != sorted(rereport_ages_h):
            raise ValueError("rereport_ages_h must be a non-empty ascending sequence")
        if start_at is not None and start_at.tzinfo is None:
            raise ValueError("start_at must be timezone-aware")
        self._entities = entities
        self._seed = seed
        self._interval = interval
        self._hours = interval.total_seconds() / 3600.0
        self._ages = tuple(float(a) for a in rereport_ages_h)
        self._cursor: datetime | None = start_at
        self._retained: deque[_Interval] = deque()
        self._fallback_curves: dict[str, EntityCurve] = {}
        self._entity_seeds: dict[str, int] = {}
        self._rng = random.Random()
        self._zone_of = zone_of or (lambda _account: UTC)
        self._overlap = reach_overlap
        #: entity → local day → [largest, total] hourly reach (the inputs of ``deduplicated_reach``)
        self._day_reach: dict[str, dict[date, list[int]]] = {}
        self._pruned_on: date | None = None

    @property
    def cursor(self) -> datetime | None:
        """Start of the next interval to simulate (None until the first ``advance_to`` without ``start_at``)."""
        return self._cursor

    @property
    def retained_rows(self) -> int:
        """Entity-intervals kept for re-reporting (the simulator's memory footprint)."""
        return sum(len(i.rows) for i in self._retained)

    def advance_to(self, sim_now: datetime) -> list[MetricsIngested]:
        """Simulate every interval that ended by ``sim_now`` and return its reports plus due re-reports, reported at
        ``sim_now``.

        Entities' budgets and statuses are read once per call, so every
        interval simulated in this call uses the settings in force at
        ``sim_now``. Calling again with the same or an earlier time returns [].
        """
        if sim_now.tzinfo is None:
            raise ValueError("sim_now must be timezone-aware")
        if self._cursor is None:
            self._cursor = _floor(sim_now, self._interval)
            return []
        entities = {e.id: e for e in self._entities()}
        out: list[MetricsIngested] = []
        while self._cursor + self._interval <= sim_now:
            start = self._cursor
            end = start + self._interval
            self._cursor = end
            rows = self._simulate(entities, start, sim_now)
            age_h = (sim_now - end).total_seconds() / 3600.0
            fraction = maturation_fraction(age_h)
            latest = self._cursor + self._interval > sim_now  # the last interval of this call
            for row in rows:
                self._report(row, fraction)
                entity = entities[row.entity_id]
                reach = self._range_reach(entity, sim_now) if latest else None
                out.append(self._payload(entity, row, start, end, sim_now, reach))
            checkpoint = sum(1 for a in self._ages if a <= age_h)
            if checkpoint < len(self._ages):
                pending = [
                    r
                    for r in rows
                    if r.reported_conversions < r.conversions or r.reported_revenue_cents < r.revenue_cents
                ]
                if pending:
                    self._retained.append(_Interval(start, end, checkpoint, pending))
        out.extend(self._rereport(entities, sim_now))
        self._prune(sim_now)
        return out

    def _range_reach(self, entity: SimEntity, sim_now: datetime) -> RangeReach:
        """The entity's deduplicated reach over the complete local days ending with its account's yesterday."""
        through = sim_now.astimezone(self._zone_of(entity.ad_account_id)).date() - timedelta(days=1)
        days = self._day_reach.get(entity.id, {})
        overlap = self._overlap
        # each day's own reach (its hours deduplicated), then the days of each range deduplicated in turn
        per_day = []
        for k in range(max(_REACH_RANGES.values())):
            largest, total = days.get(through - timedelta(days=k), (0, 0))
            per_day.append(deduplicated_reach(largest, total, overlap))
        ranges: dict[str, int] = {}
        for name, n in _REACH_RANGES.items():
            span = per_day[:n]
            ranges[name] = deduplicated_reach(max(span), sum(span), overlap)
        return RangeReach(through=through, **ranges)

    def _prune(self, sim_now: datetime) -> None:
        """Forget hourly reach of local days no range reaches any more (once a day)."""
        today = sim_now.date()
        if self._pruned_on == today:
            return
        self._pruned_on = today
        oldest = today - timedelta(days=_REACH_DAYS + 1)  # a day's margin for zones ahead of or behind UTC
        for entity_id in list(self._day_reach):
            days = self._day_reach[entity_id]
            for day in [d for d in days if d < oldest]:
                del days[day]
            if not days:
                del self._day_reach[entity_id]

    # ------------------------------------------------------------------ internals

    def _simulate(self, entities: dict[str, SimEntity], start: datetime, sim_now: datetime) -> list[_Row]:
        rows: list[_Row] = []
        local_days: dict[str, date] = {}  # ad account → the local day of ``start`` there
        # One RNG reseeded per (entity, interval): an integer seed is much cheaper than a fresh Random per draw.
        interval_key = (int((start - _EPOCH).total_seconds()) * 0x9E3779B97F4A7C15) & _SEED_MASK
        for entity in entities.values():
            budget = entity.daily_budget_cents
            if entity.status != "active" or budget is None or budget <= 0:
                continue
            parent = entities.get(entity.parent_id) if entity.parent_id is not None else None
            if parent is not None and parent.status != "active":
                continue
            curve = entity.curve or self._fallback_curve(entity, start)
            self._rng.seed(self._entity_seed(entity.id) ^ interval_key)
            d = simulate_interval(curve, budget, start, self._hours, self._rng)
            reach = int(d.impressions / d.frequency) if d.frequency > 0 else d.impressions
            rows.append(
                _Row(entity.id, d.spend_cents, d.impressions, d.clicks, reach, d.conversions, d.revenue_cents, 0, 0)
            )
            if reach:
                account = entity.ad_account_id
                day = local_days.get(account)
                if day is None:
                    day = local_days[account] = start.astimezone(self._zone_of(account)).date()
                held = self._day_reach.setdefault(entity.id, {}).setdefault(day, [0, 0])
                held[0] = max(held[0], reach)
                held[1] += reach
        return rows

    def _entity_seed(self, entity_id: str) -> int:
        seed = self._entity_seeds.get(entity_id)
        if seed is None:
            seed = self._entity_seeds[entity_id] = derived_seed(self._seed, entity_id) & _SEED_MASK
        return seed

    def _fallback_curve(self, entity: SimEntity, start: datetime) -> EntityCurve:
        curve = self._fallback_curves.get(entity.id)
        if curve is None:
            curve = profile_curve("regular", seed=self._seed, entity_id=entity.id, origin_at=start)
            self._fallback_curves[entity.id] = curve
        return curve

    @staticmethod
    def _report(row: _Row, fraction: float) -> bool:
        """Mature ``row`` to ``fraction``; True when the reported numbers changed.

        Same arithmetic as ``delivery.reported_after`` (floor of full × fraction) on a compact row, so the
        retained window costs a few ints per entity-interval instead of a full IntervalDelivery.
        """
        if fraction >= 1.0:
            conv, rev = row.conversions, row.revenue_cents
        else:
            conv = int(row.conversions * fraction + 1e-9)
            rev = int(row.revenue_cents * fraction + 1e-9)
        conv = max(conv, row.reported_conversions)
        rev = max(rev, row.reported_revenue_cents)
        changed = conv != row.reported_conversions or rev != row.reported_revenue_cents
        row.reported_conversions, row.reported_revenue_cents = conv, rev
        return changed

    def _rereport(self, entities: dict[str, SimEntity], sim_now: datetime) -> list[MetricsIngested]:
        out: list[MetricsIngested] = []
        keep: deque[_Interval] = deque()
        for interval in self._retained:
            age_h = (sim_now - interval.end_at).total_seconds() / 3600.0
            checkpoint = sum(1 for a in self._ages if a <= age_h)
            if checkpoint > interval.checkpoint:
                interval.checkpoint = checkpoint
                fraction = 1.0 if checkpoint >= len(self._ages) else maturation_fraction(age_h)
                for row in interval.rows:
                    entity = entities.get(row.entity_id)
                    if self._report(row, fraction) and entity is not None:
                        out.append(self._payload(entity, row, interval.start_at, interval.end_at, sim_now))
            if interval.checkpoint < len(self._ages):
                keep.append(interval)
        self._retained = keep
        return out

    @staticmethod
    def _payload(entity: SimEntity, row: _Row, start: datetime, end: datetime, sim_now: datetime,
                 range_reach: RangeReach | None = None) -> MetricsIngested:
        # Name, status and budget are as of the report, as a platform's insights API reports them.
        return MetricsIngested(
            platform=entity.platform,  # type: ignore[arg-type]
            ad_account_id=entity.ad_account_id,
            entity_type=entity.entity_type,  # type: ignore[arg-type]
            entity_id=entity.id,
            entity_name=entity.name,
            parent_id=entity.parent_id,
            status=entity.status,  # type: ignore[arg-type]
            currency=entity.currency,
            daily_budget_cents=entity.daily_budget_cents,
            interval_start=start,
            interval_end=end,
            reported_at=sim_now,
            spend_cents=row.spend_cents,
            impressions=row.impressions,
            clicks=row.clicks,
            conversions=row.reported_conversions,
            revenue_cents=row.reported_revenue_cents,
            reach=row.reach,
            range_reach=range_reach,
        )


def _floor(at: datetime, interval: timedelta) -> datetime:
    steps = (at - _EPOCH) // interval
    return _EPOCH + steps * interval


async def run_delivery(
    simulator: DeliverySimulator,
    clock_now: Callable[[], datetime],
    sink: Callable[[list[MetricsIngested]], Awaitable[None]],
    interval_s: float,
) -> None:
    """Every ``interval_s`` seconds, advance the simulator to ``clock_now()`` and hand any reports to ``sink``; runs
    until cancelled.

    A batch the sink fails to take is retried, unchanged, on the next tick
    before the simulator advances again, so no report is lost and memory stays
    bounded by one batch.
    """
    pending: list[MetricsIngested] = []
    while True:
        try:
            if not pending:
                pending = simulator.advance_to(clock_now())
            if pending:
                await sink(pending)
                log.info("delivery_reported", reports=len(pending))
                pending = []
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any sink failure: keep the batch, retry next tick
            log.warning("delivery_sink_failed", reports=len(pending), error=type(exc).__name__)
        await asyncio.sleep(interval_s)
