"""The one projection of ``metrics.ingested`` (pure): which report of an interval, and of an entity, is current.

Platforms restate an interval as late conversions arrive, and every ``metrics.ingested`` record carries
the FULL counters of its interval as of ``reported_at``. So a consumer keeps, per interval, the report
that is latest in one order, :data:`ORDER`: ``(reported_at, event_id)``. Two reports with the same
``reported_at`` (two reads within the platform's clock resolution, a re-ingest) are told apart by the
greater event id, so what a service keeps never depends on delivery order or on where a batch ends.
The services' upserts use the same order in SQL
(``WHERE (new.reported_at, new.event_id) > (kept.reported_at, kept.event_id)``; rows stored before
event ids were kept hold :data:`NIL_EVENT_ID`, the smallest).

An entity's attributes (name, status, account, current budget) come from its latest report in the
order ``(reported_at, interval_start, event_id)``: among reports made at the same moment, the one
about the most recent interval describes the entity as it is now.

Pools, rules and pacing all reduce their batches with these functions; each keeps its own tables in its
own schema, keyed as its table is keyed (the ``key`` argument).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime

from allot.contracts.envelope import Envelope
from allot.contracts.payloads import MetricsIngested

__all__ = [
    "NIL_EVENT_ID",
    "ORDER",
    "EntityReport",
    "Report",
    "entity_key",
    "interval_key",
    "latest_entities",
    "latest_intervals",
    "platform_interval_key",
]

#: The order in which reports of one interval supersede each other.
ORDER = ("reported_at", "event_id")
#: Event id of rows stored before event ids were kept: older than any real report at the same time.
NIL_EVENT_ID = uuid.UUID(int=0)


@dataclass(frozen=True, slots=True)
class Report:
    """One ``metrics.ingested`` record with what orders it."""

    workspace_id: str
    event_id: uuid.UUID
    metrics: MetricsIngested

    @classmethod
    def of(cls, envelope: Envelope[MetricsIngested]) -> Report:
        return cls(envelope.workspace_id, envelope.event_id, envelope.payload)

    @property
    def order(self) -> tuple[datetime, uuid.UUID]:
        """Its place among reports of the same interval (greater supersedes)."""
        return (self.metrics.reported_at, self.event_id)

    @property
    def entity_order(self) -> tuple[datetime, datetime, uuid.UUID]:
        """Its place among reports of the same entity (greater describes the entity as it is now)."""
        return (self.metrics.reported_at, self.metrics.interval_start, self.event_id)


@dataclass(frozen=True, slots=True)
class EntityReport:
    """An entity's latest report, and the budget known from the latest report in the batch that carried one."""

    report: Report
    known_budget_cents: int | None


def interval_key(r: Report) -> Hashable:
    """(workspace, entity, interval start): how pools and rules key their interval tables."""
    return (r.workspace_id, r.metrics.entity_id, r.metrics.interval_start)


def platform_interval_key(r: Report) -> Hashable:
    """(workspace, platform, entity, interval start): how pacing keys its report table."""
    return (r.workspace_id, r.metrics.platform, r.metrics.entity_id, r.metrics.interval_start)


def entity_key(r: Report) -> Hashable:
    """(workspace, entity): how pools and rules key their entity tables."""
    return (r.workspace_id, r.metrics.entity_id)


def _reports(events: Iterable[Envelope[MetricsIngested] | Report]) -> Iterable[Report]:
    for e in events:
        yield e if isinstance(e, Report) else Report.of(e)


def latest_intervals(
    events: Iterable[Envelope[MetricsIngested] | Report], key: Callable[[Report], Hashable] = interval_key
) -> list[Report]:
    """The current report of every interval in ``events``: the greatest :attr:`Report.order` per ``key``."""
    kept: dict[Hashable, Report] = {}
    for r in _reports(events):
        k = key(r)
        held = kept.get(k)
        if held is None or r.order > held.order:
            kept[k] = r
    return list(kept.values())


def latest_entities(
    events: Iterable[Envelope[MetricsIngested] | Report], key: Callable[[Report], Hashable] = entity_key
) -> list[EntityReport]:
    """The latest report of every entity in ``events`` (greatest :attr:`Report.entity_order` per ``key``), with the
    budget of its latest report that carried one (a report without a budget does not say the budget is gone)."""
    kept: dict[Hashable, Report] = {}
    budget: dict[Hashable, Report] = {}
    for r in _reports(events):
        k = key(r)
        held = kept.get(k)
        if held is None or r.entity_order > held.entity_order:
            kept[k] = r
        if r.metrics.daily_budget_cents is not None:
            b = budget.get(k)
            if b is None or r.entity_order > b.entity_order:
                budget[k] = r
    out = []
    for k, r in kept.items():
        b = budget.get(k)
        out.append(EntityReport(r, b.metrics.daily_budget_cents if b is not None else None))
    return out
