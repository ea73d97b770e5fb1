"""The idempotent consumer against the real broker and Postgres: poison → DLQ, duplicates skipped."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import orjson

from allot.contracts.envelope import Envelope
from allot.runtime.clock import RealClock
from allot.runtime.consumer import BatchContext, IdempotentConsumer, PoisonEvent
from allot.runtime.db import open_database
from allot.runtime.kafka import ensure_topics, make_broker, make_producer
from allot.runtime.outbox import OutboxRelay
from tests.integration.consumer_support import TOPIC, metric_event
from tests.support.kafka import eventually, publish, publish_raw, read_topic


async def _start(settings: Any, handler: Any) -> tuple[Any, Any, Any, Any]:
    pool = await open_database(settings.database_url, settings.schema, None, "test")
    await pool.execute("CREATE TABLE IF NOT EXISTS seen (event_id uuid, entity text, spend bigint)")
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    relay = OutboxRelay(pool, producer, service="test", schema=settings.schema)
    relay.start()
    consumer = IdempotentConsumer(service="test", group=f"g_{settings.schema}", pool=pool, clock=RealClock(),
                                  on_commit=relay.notify)
    consumer.handle(TOPIC, handler)
    broker = make_broker(settings)
    consumer.subscribe(broker, [TOPIC], session_timeout_ms=3000, heartbeat_interval_ms=500)
    await broker.start()
    return pool, producer, relay, broker


async def _stop(pool: asyncpg.Pool, producer: Any, relay: OutboxRelay, broker: Any) -> None:
    await broker.stop()
    await relay.stop()
    await producer.stop()
    await pool.close()


async def _record(ctx: BatchContext, events: list[Envelope[Any]]) -> None:
    for e in events:
        if e.payload.entity_id.endswith("reject-me"):
            raise PoisonEvent(e.event_id, "entity is marked unprocessable")
    await ctx.conn.executemany("INSERT INTO seen VALUES ($1, $2, $3)",
                               [(e.event_id, e.payload.entity_id, e.payload.spend_cents) for e in events])


async def test_poison_messages_reach_the_dlq_and_the_partition_keeps_flowing(settings: Any, unique: str) -> None:
    pool, producer, relay, broker = await _start(settings, _record)
    try:
        good = [metric_event(unique, f"{unique}-good-{i}", i) for i in range(3)]
        key = f"{unique}-poison".encode()
        await publish(settings.kafka_bootstrap, good[0])
        await publish_raw(settings.kafka_bootstrap, TOPIC, b"{not json", key=key)
        await publish(settings.kafka_bootstrap, good[1])
        bad_type = orjson.loads(orjson.dumps(good[0].model_dump(mode="json")))
        bad_type["event_type"] = "metrics.exploded"
        await publish_raw(settings.kafka_bootstrap, TOPIC, orjson.dumps(bad_type), key=key)
        newer = dict(bad_type, event_type=TOPIC, schema_version=99, event_id=str(uuid.uuid4()))
        await publish_raw(settings.kafka_bootstrap, TOPIC, orjson.dumps(newer), key=key)
        invalid = dict(newer, schema_version=1, payload=dict(bad_type["payload"], spend_cents=-5))
        await publish_raw(settings.kafka_bootstrap, TOPIC, orjson.dumps(invalid), key=key)
        await publish_raw(settings.kafka_bootstrap, TOPIC, b"x" * 1_100_000, key=key)
        await publish(settings.kafka_bootstrap, metric_event(unique, f"{unique}-reject-me", 1))
        await publish(settings.kafka_bootstrap, good[2])

        async def applied() -> list[Any]:
            rows = await pool.fetch("SELECT entity FROM seen WHERE entity LIKE $1 ORDER BY spend", f"{unique}-%")
            return rows if len(rows) == 3 else []

        rows = await eventually(applied, what="three good events applied")
        assert [r["entity"] for r in rows] == [f"{unique}-good-{i}" for i in range(3)]

        group = f"g_{settings.schema}"
        dlq = await read_topic(settings.kafka_bootstrap, f"{TOPIC}.dlq", min_count=6,
                               predicate=lambda r: dict(r.headers).get("x-dlq-consumer-group") == group.encode()
                               and (r.key or b"").startswith(unique.encode()))
        reasons = sorted(dict(r.headers)["x-dlq-reason"].decode() for r in dlq)
        assert reasons == sorted(["invalid_json", "unknown_event_type", "unsupported_schema_version",
                                  "validation_failed", "oversized", "rejected_by_handler"])
        invalid_rec = next(r for r in dlq if dict(r.headers)["x-dlq-reason"] == b"validation_failed")
        assert b"spend_cents" in dict(invalid_rec.headers)["x-dlq-error"]
        assert all(r.value for r in dlq), "the original bytes travel to the DLQ"
    finally:
        await _stop(pool, producer, relay, broker)


async def test_redelivered_and_duplicated_events_are_applied_once(settings: Any, unique: str) -> None:
    pool, producer, relay, broker = await _start(settings, _record)
    try:
        event = metric_event(unique, f"{unique}-dup", 7)
        marker = metric_event(unique, f"{unique}-dup", 8)  # same key, so same partition, after the copies
        await publish(settings.kafka_bootstrap, event, event, event)
        await publish(settings.kafka_bootstrap, marker)

        async def marker_seen() -> bool:
            return bool(await pool.fetchval("SELECT count(*) FROM seen WHERE event_id = $1", marker.event_id))

        await eventually(marker_seen, what="the marker event")
        assert await pool.fetchval("SELECT count(*) FROM seen WHERE event_id = $1", event.event_id) == 1
    finally:
        await _stop(pool, producer, relay, broker)
