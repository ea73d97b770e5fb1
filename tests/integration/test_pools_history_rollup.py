"""The pools history query on the real Postgres: the last week summed per UTC 4-hour block, older days per UTC day,
nothing lost or counted twice."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from allot.pools import workflow
from allot.pools.adapters import postgres as db
from allot.runtime.db import open_database

UNTIL = datetime(2026, 11, 20, 8, tzinfo=UTC)


@pytest.fixture
async def pool(settings: Any) -> Any:
    pool = await open_database(settings.database_url, settings.schema, "allot.pools.migrations", "pools")
    yield pool
    await pool.close()


async def test_old_days_come_back_summed_per_day_and_the_last_week_in_4_hour_blocks(pool: Any) -> None:
    ws = f"ws-{uuid.uuid4().hex[:8]}"
    rng = random.Random(4)
    rows = []
    start = UNTIL - timedelta(days=12)
    for entity in ("e1", "e2"):
        for h in range(12 * 24):
            s = start + timedelta(hours=h)
            spend = rng.randint(0, 900)
            rows.append((ws, entity, s, s + timedelta(hours=1), s + timedelta(hours=2), uuid.uuid4(), spend,
                         spend * 3, rng.randint(0, 4), spend * 10, spend // 9, spend * 4))
    async with pool.acquire() as conn:
        await db.upsert_metrics(conn, rows)
        since = UNTIL - timedelta(days=10)
        history = await workflow.load_history(conn, ws, ["e1", "e2"], since=since, until=UNTIL)

    cutoff = datetime(2026, 11, 13, tzinfo=UTC)  # the UTC day that starts 7 days before UNTIL
    for entity in ("e1", "e2"):
        want = [r for r in rows if r[1] == entity and since < r[3] <= UNTIL]
        got = history[entity]
        # Nothing lost, nothing counted twice.
        assert sum(iv.spend_cents for iv in got) == sum(r[6] for r in want)
        assert sum(iv.revenue_cents for iv in got) == sum(r[7] for r in want)
        assert sum(iv.conversions for iv in got) == sum(r[8] for r in want)
        assert sum(iv.clicks for iv in got) == sum(r[10] for r in want)
        old = [iv for iv in got if iv.end_at <= cutoff]
        recent = [iv for iv in got if iv.end_at > cutoff]
        # The last week: the hours summed per UTC 4-hour block (00-04, 04-08, ...).
        assert all(iv.start_at.hour % 4 == 0 and iv.end_at - iv.start_at == timedelta(hours=4) for iv in recent)
        assert len(recent) == len({r[2].replace(hour=r[2].hour // 4 * 4) for r in want if r[3] > cutoff})
        block = recent[2]
        block_rows = [r for r in want if block.start_at <= r[2] < block.end_at]
        assert len(block_rows) == 4
        assert (block.spend_cents, block.conversions) == (sum(r[6] for r in block_rows), sum(r[8] for r in block_rows))
        # Old intervals: one row per UTC day (the first day starts at since, the last ends at the cutoff).
        assert [iv.start_at.date() for iv in old] == sorted({r[2].date() for r in want if r[3] <= cutoff})
        assert old[-1].end_at == cutoff and all(iv.end_at - iv.start_at <= timedelta(days=1) for iv in old)
        day = old[1]
        day_rows = [r for r in want if r[2].date() == day.start_at.date()]
        assert (day.spend_cents, day.impressions) == (sum(r[6] for r in day_rows), sum(r[9] for r in day_rows))
        assert day.frequency == pytest.approx(sum(r[9] for r in day_rows) / sum(r[11] for r in day_rows))
        # In time order, without overlaps.
        assert all(a.end_at <= b.start_at for a, b in pairwise(got))
