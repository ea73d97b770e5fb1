"""A poison record at a (topic, partition, offset) the consumer has dead-lettered before still reaches the DLQ.

Offsets are not unique over time: the embedded broker keeps topics in memory (a restart starts every
partition at offset 0 again) and a topic can be deleted and re-created, while the consumer's Postgres schema
(and its processed ids) lives on. A different poison record arriving at an offset seen before must still be
dead-lettered, not silently dropped as "already processed"; the SAME record delivered again must not be
dead-lettered twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from allot.contracts.envelope import Envelope
from allot.runtime.clock import RealClock
from allot.runtime.consumer import BatchContext, IdempotentConsumer
from allot.runtime.db import open_database
from allot.runtime.settings import Settings

pytestmark = pytest.mark.e2e


@dataclass
class Rec:
    """The fields of an aiokafka ConsumerRecord the consumer reads."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    value: bytes | None
    key: bytes = b"k"
    headers: list[tuple[str, bytes]] = field(default_factory=list)


async def _noop(ctx: BatchContext, events: list[Envelope[Any]]) -> None:
    return None


async def test_a_new_poison_record_at_an_old_offset_is_dead_lettered(settings: Settings) -> None:
    pool = await open_database(settings.database_url, settings.schema, None, "test")
    try:
        consumer = IdempotentConsumer(service="test", group=f"g-{uuid.uuid4().hex[:8]}", pool=pool,
                                      clock=RealClock())
        consumer.handle("metrics.ingested", _noop)
        first = Rec("metrics.ingested", 2, 5, 1_700_000_000_000, b"{first broker's bad record")
        await consumer.process_records([first])
        await consumer.process_records([first])  # redelivered (offset not committed): dead-lettered once
        after_reset = Rec("metrics.ingested", 2, 5, 1_800_000_000_000, b"{another bad record, same offset")
        await consumer.process_records([after_reset])
        values = [r["value"] for r in await pool.fetch(
            "SELECT value FROM outbox WHERE topic = 'metrics.ingested.dlq' ORDER BY id")]
        assert values == [first.value, after_reset.value]
    finally:
        await pool.close()
