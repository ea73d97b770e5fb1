"""The rules metric projection on the real Postgres: whatever the order, batching, duplication or
concurrency of the reports, every daily bucket equals the sum of the latest report of each of its
intervals and counts those intervals (the incremental bucket update never drifts from that definition)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.payloads import MetricsIngested
from allot.rules.domain.metrics import COUNTER_NAMES
from allot.rules.handlers import on_metrics_ingested
from allot.runtime.clock import RealClock
from allot.runtime.consumer import BatchContext
from allot.runtime.db import open_database

DAY0 = datetime(2026, 11, 2, tzinfo=UTC)


def report(ws: str, entity: str, start: datetime, reported_at: datetime, spend: int,
           extra: dict[str, int]) -> Envelope[Any]:
    payload = MetricsIngested(
        platform="meta", ad_account_id="act-1", entity_type="adset", entity_id=entity, currency="EUR",
        daily_budget_cents=10_000, interval_start=start, interval_end=start + timedelta(hours=6),
        reported_at=reported_at, spend_cents=spend, impressions=spend * 10, clicks=spend // 7,
        conversions=spend % 5, revenue_cents=spend * 3, reach=spend * 4, extra=extra)
    return new_envelope(event_type="metrics.ingested", schema_version=1, payload=payload, producer="test",
                        workspace_id=ws, occurred_at=reported_at)


def history(ws: str, rng: random.Random) -> list[Envelope[Any]]:
    """4 entities × 3 days × 4 intervals, each reported 1–4 times (restated later, sometimes identical)."""
    out = []
    for e in range(4):
        for d in range(3):
            for i in range(4):
                start = DAY0 + timedelta(days=d, hours=6 * i)
                for n in range(rng.randint(1, 4)):
                    spend = rng.randint(0, 5000)
                    extra = {"inline_link_clicks": rng.randint(0, 90)} if rng.random() < 0.5 else {}
                    at = start + timedelta(hours=6, minutes=rng.choice([0, 30, 30 * (n + 1)]))
                    out.append(report(ws, f"{ws}-e{e}", start, at, spend, extra))
    return out


def expected_daily(events: list[Envelope[Any]]) -> dict[tuple[str, date], tuple[int, ...]]:
    """The definition, computed the slow way: latest (reported_at, event_id) per interval (the order of
    allot.contracts.projection), summed per UTC day."""
    kept: dict[tuple[str, datetime], tuple[Any, tuple[int, ...]]] = {}
    for ev in events:
        m = ev.payload
        counters = (m.spend_cents, m.impressions, m.clicks, m.conversions, m.revenue_cents, m.reach,
                    max(0, m.extra.get("inline_link_clicks", 0)), 0, 0, 0, 0, 0, 0)
        cand = (m.reported_at, ev.event_id, counters)
        key = (m.entity_id, m.interval_start)
        if key not in kept or cand > kept[key]:
            kept[key] = cand
    daily: dict[tuple[str, date], list[int]] = {}
    for (entity, start), (_, _, counters) in kept.items():
        acc = daily.setdefault((entity, start.date()), [0] * len(COUNTER_NAMES))
        for j, v in enumerate(counters):
            acc[j] += v
    return {k: tuple(v) for k, v in daily.items()}


@pytest.fixture
async def pool(settings: Any) -> Any:
    pool = await open_database(settings.database_url, settings.schema, "allot.rules.migrations", "rules")
    yield pool
    await pool.close()


async def apply(pool: Any, events: list[Envelope[Any]]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await on_metrics_ingested(BatchContext(conn=conn, clock=RealClock(), service="rules",
                                               topic="metrics.ingested"), events)


async def stored_daily(pool: Any, ws: str) -> dict[tuple[str, date], tuple[int, ...]]:
    rows = await pool.fetch(f"SELECT entity_id, day, {', '.join(COUNTER_NAMES)} FROM metric_daily "
                            "WHERE workspace_id = $1", ws)
    return {(r["entity_id"], r["day"]): tuple(r[c] for c in COUNTER_NAMES) for r in rows}


def expected_reports(events: list[Envelope[Any]]) -> dict[tuple[str, date], int]:
    """Intervals per (entity, UTC day): a restatement replaces its interval's report, it adds no interval."""
    intervals = {(ev.payload.entity_id, ev.payload.interval_start) for ev in events}
    out: dict[tuple[str, date], int] = {}
    for entity, start in intervals:
        out[(entity, start.date())] = out.get((entity, start.date()), 0) + 1
    return out


async def stored_reports(pool: Any, ws: str) -> dict[tuple[str, date], int]:
    rows = await pool.fetch("SELECT entity_id, day, reports FROM metric_daily WHERE workspace_id = $1", ws)
    return {(r["entity_id"], r["day"]): r["reports"] for r in rows}


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_buckets_equal_the_latest_reports_whatever_the_order_batching_and_replays(
        pool: Any, unique: str, seed: int) -> None:
    rng = random.Random(seed)
    ws = f"{unique}-{seed}"
    events = history(ws, rng)
    shuffled = events[:]
    rng.shuffle(shuffled)
    i = 0
    while i < len(shuffled):  # random batch sizes, late restatements and stale reports included
        n = rng.randint(1, 25)
        await apply(pool, shuffled[i:i + n])
        i += n
    want = expected_daily(events)
    assert await stored_daily(pool, ws) == want
    assert await stored_reports(pool, ws) == expected_reports(events)
    for ev in rng.sample(events, 20):  # replays of old reports change nothing
        await apply(pool, [ev])
    assert await stored_daily(pool, ws) == want
    assert await stored_reports(pool, ws) == expected_reports(events)


async def test_concurrent_writers_of_one_interval_never_double_count(pool: Any, unique: str) -> None:
    """Two transactions racing on the same new intervals (e.g. during a rebalance): the bucket still equals
    the kept report, because each delta is taken from the row version the upsert replaced, under its lock."""
    ws = unique
    starts = [DAY0 + timedelta(hours=6 * i) for i in range(4)]
    a = [report(ws, f"{ws}-e", s, s + timedelta(hours=6), 1000 + k, {}) for k, s in enumerate(starts)]
    b = [report(ws, f"{ws}-e", s, s + timedelta(hours=7), 2000 + k, {}) for k, s in enumerate(starts)]
    for _ in range(5):
        await asyncio.gather(apply(pool, a), apply(pool, b))
        await asyncio.gather(apply(pool, b), apply(pool, a))
    assert await stored_daily(pool, ws) == expected_daily(a + b)
    spend = await pool.fetchval("SELECT spend_cents FROM metric_daily WHERE workspace_id = $1", ws)
    assert spend == sum(2000 + k for k in range(4))
    assert await stored_reports(pool, ws) == {(f"{ws}-e", DAY0.date()): 4}
