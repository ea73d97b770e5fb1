"""Key-grouped batches (``by_key=True``) on the real Postgres: a batch is applied as concurrent key
groups, each key's events in order and once, and a group that committed before another failed is not
applied again when the batch is re-delivered."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest

from allot.contracts.codec import encode
from allot.runtime.clock import RealClock
from allot.runtime.consumer import MIN_GROUP_SIZE, BatchContext, IdempotentConsumer
from allot.runtime.db import open_database
from tests.integration.consumer_support import TOPIC, metric_event


def records(unique: str, keys: int, per_key: int) -> list[SimpleNamespace]:
    out = []
    for seq in range(per_key):
        for k in range(keys):
            rec = encode(metric_event(unique, f"{unique}-k{k}", seq))
            out.append(SimpleNamespace(topic=TOPIC, key=rec.key, value=rec.value, headers=rec.headers, partition=0,
                                       offset=len(out), timestamp=0))
    return out


async def _apply(ctx: BatchContext, events: list[Any]) -> None:
    await ctx.conn.executemany(
        "INSERT INTO applied (event_id, entity, seq, tx) VALUES ($1, $2, $3, txid_current())",
        [(e.event_id, e.payload.entity_id, e.payload.spend_cents) for e in events])


@pytest.fixture
async def pool(settings: Any) -> Any:
    pool = await open_database(settings.database_url, settings.schema, None, "test")
    await pool.execute(
        "CREATE TABLE applied (id bigserial PRIMARY KEY, event_id uuid, entity text, seq int, tx bigint)")
    yield pool
    await pool.close()


def consumer(pool: asyncpg.Pool, handler: Any, parallelism: int = 2) -> IdempotentConsumer:
    c = IdempotentConsumer(service="test", group="g", pool=pool, clock=RealClock(), parallelism=parallelism)
    c.handle(TOPIC, handler, by_key=True)
    return c


async def test_a_batch_is_applied_as_concurrent_key_groups_each_key_in_order_and_once(pool: Any, unique: str) -> None:
    batch = records(unique, keys=40, per_key=10)
    await consumer(pool, _apply, parallelism=3).process_records(batch)
    rows = await pool.fetch("SELECT entity, seq, tx FROM applied ORDER BY id")
    assert len(rows) == len(batch) == len({r["entity"] + str(r["seq"]) for r in rows})
    for k in range(40):
        assert [r["seq"] for r in rows if r["entity"] == f"{unique}-k{k}"] == list(range(10))
    by_tx: dict[int, set[str]] = {}
    for r in rows:
        by_tx.setdefault(r["tx"], set()).add(r["entity"])
    assert len(by_tx) == 3, "three groups, three transactions"
    entities = [e for group in by_tx.values() for e in group]
    assert len(entities) == len(set(entities)), "a key never spans two groups"


async def test_a_small_batch_stays_one_group(pool: Any, unique: str) -> None:
    batch = records(unique, keys=MIN_GROUP_SIZE, per_key=1)  # below two groups' worth
    await consumer(pool, _apply).process_records(batch)
    assert await pool.fetchval("SELECT count(DISTINCT tx) FROM applied") == 1
    assert await pool.fetchval("SELECT count(*) FROM applied") == MIN_GROUP_SIZE


async def test_when_one_group_fails_the_batch_fails_and_redelivery_applies_only_what_was_missing(
        pool: Any, unique: str) -> None:
    batch = records(unique, keys=30, per_key=8)
    doomed = f"{unique}-k7"
    broken = {"on": True}

    async def flaky(ctx: BatchContext, events: list[Any]) -> None:
        if broken["on"] and any(e.payload.entity_id == doomed for e in events):
            raise ConnectionResetError("database went away")  # transient: retried, then the batch fails
        await _apply(ctx, events)

    c = consumer(pool, flaky)
    c.transient_deadline_s = 0.2
    with pytest.raises(ConnectionResetError):
        await c.process_records(batch)
    first = await pool.fetch("SELECT entity FROM applied")
    assert first, "the healthy group committed"
    assert doomed not in {r["entity"] for r in first}
    assert len(first) < len(batch)

    broken["on"] = False
    await c.process_records(batch)  # the broker re-delivers the whole batch
    rows = await pool.fetch("SELECT entity, seq FROM applied ORDER BY id")
    assert len(rows) == len(batch), "every event once: the committed group was skipped"
    assert sorted((r["entity"], r["seq"]) for r in rows) == sorted(
        (f"{unique}-k{k}", s) for k in range(30) for s in range(8))
