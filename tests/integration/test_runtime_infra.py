"""Runtime against the real broker and Postgres: contracts through Kafka, outbox, migrations, crash recovery."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from allot.contracts import TOPICS, decode, new_envelope
from allot.contracts.examples import EXAMPLES
from allot.runtime.db import Migration, create_pool, load_migrations, migrate, open_database
from allot.runtime.kafka import ensure_topics, make_producer
from allot.runtime.outbox import OutboxRelay, add_events
from tests.support.kafka import eventually, publish, read_topic

ROOT = Path(__file__).resolve().parents[2]


async def test_every_contract_round_trips_through_kafka(settings: Any, unique: str) -> None:
    await ensure_topics(settings)
    sent = {t: new_envelope(event_type=t, schema_version=1, payload=EXAMPLES[t], producer="test",
                            workspace_id=f"ws-{unique}", occurred_at=datetime.now(UTC)) for t in TOPICS}
    await publish(settings.kafka_bootstrap, *sent.values())
    for topic_name, env in sent.items():
        records = await read_topic(
            settings.kafka_bootstrap, topic_name, min_count=1,
            predicate=lambda r, e=env: dict(r.headers).get("event_id") == str(e.event_id).encode(),
        )
        assert len(records) == 1, topic_name
        assert decode(topic_name, records[0].value) == env


async def test_migrations_are_idempotent_and_safe_concurrently(settings: Any) -> None:
    pool = await create_pool(settings.database_url, settings.schema, max_size=6)
    try:
        migrations = load_migrations("runtime", "allot.runtime.migrations") + [
            Migration("svc", 1, "things", "CREATE TABLE things (id int PRIMARY KEY)"),
            Migration("svc", 2, "more", "ALTER TABLE things ADD COLUMN name text"),
        ]
        results = await asyncio.gather(*(migrate(pool, settings.schema, migrations) for _ in range(4)))
        applied = sorted(len(r) for r in results)
        assert applied == [0, 0, 0, 3], "exactly one instance applies, the others find them done"
        assert await migrate(pool, settings.schema, migrations) == []
        count = await pool.fetchval("SELECT count(*) FROM schema_migrations")
        assert count == 3
        await pool.execute("INSERT INTO things (id, name) VALUES (1, 'x')")
    finally:
        await pool.close()


async def test_outbox_relays_each_event_once_across_a_relay_restart(settings: Any, unique: str) -> None:
    pool = await open_database(settings.database_url, settings.schema, None, "test")
    await ensure_topics(settings)
    topic_name = "guardrail.blocked"
    envs = [new_envelope(event_type=topic_name, schema_version=1, payload=EXAMPLES[topic_name], producer="test",
                         workspace_id=f"ws-{unique}", occurred_at=datetime.now(UTC)) for _ in range(250)]
    async with pool.acquire() as conn, conn.transaction():
        await add_events(conn, envs)
    producer = make_producer(settings)
    await producer.start()
    try:
        first = OutboxRelay(pool, producer, service="test", schema=settings.schema, batch_size=100)
        assert await first.relay_once() == 100
        await first.stop()  # the relay process goes away with 150 rows pending
        second = OutboxRelay(pool, producer, service="test", schema=settings.schema, batch_size=100)
        second.start()

        async def drained() -> bool:
            return await pool.fetchval("SELECT count(*) FROM outbox") == 0

        await eventually(drained, what="outbox drained")
        await second.stop()
    finally:
        await producer.stop()
        await pool.close()
    records = await read_topic(settings.kafka_bootstrap, topic_name, min_count=250,
                               predicate=lambda r: dict(r.headers).get("workspace_id") == f"ws-{unique}".encode())
    ids = [dict(r.headers)["event_id"] for r in records]
    assert len(ids) == 250 and len(set(ids)) == 250
    assert ids == [str(e.event_id).encode() for e in envs], "relayed in outbox order"


async def test_a_rolled_back_transaction_publishes_nothing(settings: Any, unique: str) -> None:
    pool = await open_database(settings.database_url, settings.schema, None, "test")
    env = new_envelope(event_type="guardrail.blocked", schema_version=1, payload=EXAMPLES["guardrail.blocked"],
                       producer="test", workspace_id=f"ws-{unique}", occurred_at=datetime.now(UTC))
    try:
        with pytest.raises(RuntimeError):
            async with pool.acquire() as conn, conn.transaction():
                await add_events(conn, [env])
                raise RuntimeError("state change failed")
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
    finally:
        await pool.close()


async def test_a_consumer_killed_mid_transaction_leaves_no_state_and_reprocesses_after_restart(
    settings: Any, unique: str
) -> None:
    """The consumer process dies (os._exit) inside its transaction after writing state; on restart the
    same event is applied exactly once."""
    await ensure_topics(settings)
    env_vars = dict(os.environ, ALLOT_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
                    ALLOT_DATABASE_URL=settings.database_url, ALLOT_DATABASE_SCHEMA=settings.schema,
                    WORKSPACE=unique, PYTHONPATH=str(ROOT))
    payload = EXAMPLES["metrics.ingested"].model_copy(update={"entity_id": f"crash-{unique}"})
    event = new_envelope(event_type="metrics.ingested", schema_version=1, payload=payload, producer="test",
                         workspace_id=unique, occurred_at=datetime.now(UTC))
    await publish(settings.kafka_bootstrap, event)
    script = [sys.executable, "-m", "tests.support.crashy_consumer"]
    crashed = await asyncio.to_thread(subprocess.run, script, env=dict(env_vars, CRASH="1"), timeout=90,
                                      capture_output=True, cwd=ROOT)
    assert crashed.returncode == 137, crashed.stdout[-2000:] + crashed.stderr[-2000:]
    conn = await asyncpg.connect(settings.database_url)
    try:
        assert await conn.fetchval(f'SELECT count(*) FROM "{settings.schema}".applied') == 0, "rolled back"
        restarted = await asyncio.to_thread(subprocess.run, script, env=dict(env_vars, CRASH="0"), timeout=90,
                                            capture_output=True, cwd=ROOT)
        assert restarted.returncode == 0, restarted.stdout[-2000:] + restarted.stderr[-2000:]
        rows = await conn.fetch(f'SELECT event_id FROM "{settings.schema}".applied')
        assert [r["event_id"] for r in rows] == [event.event_id]
    finally:
        await conn.close()
