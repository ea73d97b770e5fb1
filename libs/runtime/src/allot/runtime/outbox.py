"""Transactional outbox: events are written with the state change, and one relay per schema sends them."""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Sequence
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from allot.contracts.codec import EncodedRecord, encode
from allot.contracts.envelope import Envelope
from allot.runtime.db import Conn
from allot.runtime.logging import get_logger
from allot.runtime.metrics import EVENTS_PRODUCED, OUTBOX_PENDING

log = get_logger(__name__)


async def add_records(conn: Conn, records: Sequence[EncodedRecord], event_ids: Sequence[Any]) -> None:
    """Insert encoded records into the outbox inside the caller's transaction."""
    if not records:
        return
    await conn.executemany(
        "INSERT INTO outbox (topic, key, value, headers, event_id) VALUES ($1, $2, $3, $4, $5)",
        [
            (r.topic, r.key, r.value, [[k, v.decode("utf-8", "replace")] for k, v in r.headers], eid)
            for r, eid in zip(records, event_ids, strict=True)
        ],
    )


async def add_events(conn: Conn, envelopes: Sequence[Envelope[Any]]) -> None:
    """Encode envelopes and insert them into the outbox inside the caller's transaction."""
    await add_records(conn, [encode(e) for e in envelopes], [e.event_id for e in envelopes])


class OutboxRelay:
    """Moves outbox rows to Kafka in id order; rows are deleted only after the broker acknowledged them.

    One relay per schema works at a time (transaction-scoped advisory lock), which keeps per-key order.
    A crash between the broker's ack and the delete re-sends those rows with the same event ids;
    consumers drop them as duplicates, so the effect is exactly once.
    """

    def __init__(self, pool: asyncpg.Pool, producer: AIOKafkaProducer, *, service: str, schema: str,
                 batch_size: int = 1000, poll_interval_s: float = 0.5) -> None:
        self.pool = pool
        self.producer = producer
        self.service = service
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self._lock_key = zlib.crc32(f"allot-outbox:{schema}".encode())
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        """Wake the relay now (after a commit) instead of at the next poll."""
        self._wake.set()

    async def relay_once(self) -> int:
        """Send one batch; returns the number of rows relayed."""
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", self._lock_key):
                return 0
            rows = await conn.fetch(
                "SELECT id, topic, key, value, headers FROM outbox ORDER BY id LIMIT $1", self.batch_size
            )
            if not rows:
                OUTBOX_PENDING.labels(self.service).set(0)
                return 0
            futures = []
            for row in rows:
                headers = [(k, v.encode()) for k, v in row["headers"]]
                futures.append(
                    await self.producer.send(row["topic"], value=row["value"], key=row["key"], headers=headers)
                )
            await asyncio.gather(*futures)
            await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
            for row in rows:
                EVENTS_PRODUCED.labels(self.service, row["topic"]).inc()
            return len(rows)

    async def run(self) -> None:
        """Relay until stopped; on stop, finish the batch in flight."""
        backoff = 0.2
        while not self._stopping:
            # Cleared before the batch is read, not after: a commit that notifies while this batch is being sent
            # (its rows not in the batch) keeps the relay awake instead of waiting for the next poll.
            self._wake.clear()
            try:
                sent = await asyncio.shield(self.relay_once())
                backoff = 0.2
                if sent >= self.batch_size:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - DB or broker down: keep the rows, retry later
                log.warning("outbox_relay_failed", error=str(exc), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"outbox-relay-{self.service}")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout=10)
