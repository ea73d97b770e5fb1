"""The one idempotent-consumer helper: batch in, one transaction, processed ids with the state, DLQ for poison.

Delivery semantics (why it is safe to replay any topic from any offset):
- A batch is applied in ONE Postgres transaction that also records every applied ``event_id`` in
  ``processed_events``; events already recorded are skipped. Offsets are committed (by FastStream's
  ack) only after that transaction commits, so a crash anywhere re-delivers, and re-delivery is a no-op.
- Events the handler produces go to the outbox in the same transaction (see outbox.py).
- Records that can never be processed (bad JSON, unknown type, newer schema, failed validation,
  oversized, or a handler's ``PoisonEvent``) go to ``<topic>.dlq`` through the same outbox, with the
  reason in headers, and are marked processed: the partition keeps flowing and nothing is lost.
- Errors that may pass (database or network down) roll back and retry with backoff, never DLQ.
- A topic registered with ``by_key=True`` (its handler writes only rows owned by the record's key) has
  each batch split by key into ``parallelism`` groups, applied concurrently in their own transactions:
  one group's Python work overlaps the other's database work. A key's events stay in one group, in
  order; the batch is acknowledged only when every group has committed, and a group that committed
  before another failed is skipped on re-delivery by its processed ids.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
import types
import typing
import uuid
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from allot.contracts.codec import EncodedRecord, PoisonMessage, decode
from allot.contracts.envelope import EVENT_NAMESPACE, Envelope
from allot.runtime.clock import Clock
from allot.runtime.db import Conn
from allot.runtime.logging import bound, get_logger
from allot.runtime.metrics import (
    BATCH_SIZE,
    CONSUMER_LAG,
    DLQ_EVENTS,
    EVENTS_CONSUMED,
    EVENTS_DUPLICATE,
    EVENTS_FAILED,
    HANDLER_LATENCY,
)
from allot.runtime.outbox import add_events, add_records

log = get_logger(__name__)

#: Only batches of at least twice this many records are split into key groups (small ones stay whole).
MIN_GROUP_SIZE = 50

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ConnectionError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)


class PoisonEvent(Exception):
    """Raised by a handler for an event that can never be applied; it goes to the DLQ with ``reason``."""

    def __init__(self, event_id: uuid.UUID, reason: str) -> None:
        super().__init__(reason)
        self.event_id = event_id
        self.reason = reason


@dataclass
class BatchContext:
    """What a handler gets: the open transaction's connection, the clock, and a place to emit events."""

    conn: Conn
    clock: Clock
    service: str
    topic: str
    extra: dict[Any, Any] = field(default_factory=dict)
    emitted: list[Envelope[Any]] = field(default_factory=list)
    committed: list[Callable[[], None]] = field(default_factory=list)

    def emit(self, *envelopes: Envelope[Any]) -> None:
        """Queue events for the outbox; they are written in this transaction."""
        self.emitted.extend(envelopes)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once this transaction has committed (never if it rolls back), e.g. to wake a worker
        that polls for the rows it wrote."""
        self.committed.append(callback)


Handler = Callable[[BatchContext, list[Envelope[Any]]], Awaitable[None]]


def handler_payloads(handler: Handler) -> tuple[type[Any], ...]:
    """The payload classes a handler declares in its signature, ``events: list[Envelope[P]]`` (``P`` may be a
    union of payloads for a handler shared by several topics); ``()`` when it declares none (``Any``)."""
    params = list(inspect.signature(handler).parameters.values())
    if len(params) < 2:
        raise TypeError(f"{handler.__qualname__}: a handler takes (ctx, events)")
    hint = typing.get_type_hints(handler).get(params[1].name)
    (envelope,) = typing.get_args(hint) or (None,)
    meta = getattr(envelope, "__pydantic_generic_metadata__", None)
    if hint is None or typing.get_origin(hint) is not list or not meta or meta.get("origin") is not Envelope:
        raise TypeError(f"{handler.__qualname__}: events must be annotated list[Envelope[Payload]], not {hint!r}")
    (payload,) = meta["args"]
    if payload is Any:
        return ()
    union = isinstance(payload, types.UnionType) or typing.get_origin(payload) is typing.Union
    return tuple(typing.get_args(payload)) if union else (payload,)


@dataclass
class _Item:
    record: Any
    envelope: Envelope[Any] | None = None
    poison: tuple[str, str] | None = None


def _dlq_record(item: _Item, topic: str, group: str, reason: str, detail: str, now: datetime) -> EncodedRecord:
    rec = item.record
    headers = list(rec.headers or [])
    headers += [
        ("x-dlq-reason", reason.encode()),
        ("x-dlq-error", detail[:2000].encode("utf-8", "replace")),
        ("x-dlq-source-topic", topic.encode()),
        ("x-dlq-partition", str(rec.partition).encode()),
        ("x-dlq-offset", str(rec.offset).encode()),
        ("x-dlq-consumer-group", group.encode()),
        ("x-dlq-failed-at", now.isoformat().encode()),
    ]
    return EncodedRecord(f"{topic}.dlq", rec.key or b"", rec.value or b"", headers)


def _poison_id(group: str, rec: Any) -> uuid.UUID:
    """Same record → same id (a redelivery is not dead-lettered twice). The record's timestamp and a checksum
    of its bytes are part of it because offsets repeat: a broker that keeps topics in memory restarts every
    partition at 0, and a re-created topic does too, while the processed ids in Postgres live on."""
    fingerprint = f"{getattr(rec, 'timestamp', None)}/{zlib.crc32(rec.value or b'')}"
    return uuid.uuid5(EVENT_NAMESPACE, f"dlq/{group}/{rec.topic}/{rec.partition}/{rec.offset}/{fingerprint}")


class IdempotentConsumer:
    """Applies batches of one service's topics exactly once per event id (see module docstring)."""

    def __init__(self, *, service: str, group: str, pool: asyncpg.Pool, clock: Clock,
                 on_commit: Callable[[], None] | None = None, max_isolation_attempts: int = 2,
                 extra: dict[Any, Any] | None = None, parallelism: int = 2) -> None:
        self.service = service
        self.group = group
        self.pool = pool
        self.clock = clock
        self.on_commit = on_commit or (lambda: None)
        self.handlers: dict[str, Handler] = {}
        self.by_key: set[str] = set()
        self.parallelism = max(1, parallelism)
        self.max_isolation_attempts = max_isolation_attempts
        self.extra = extra if extra is not None else {}
        #: how long transient errors (database/network down) are retried before the batch is re-delivered
        self.transient_deadline_s = 30.0

    def handle(self, topic: str, handler: Handler, *, by_key: bool = False) -> None:
        """Register ``handler`` for ``topic``; ``by_key=True`` promises it writes only rows owned by the
        record key (e.g. per-entity projections), so a batch may be applied as concurrent key groups."""
        self.handlers[topic] = handler
        if by_key:
            self.by_key.add(topic)
        else:
            self.by_key.discard(topic)

    async def process_records(self, records: Sequence[Any]) -> None:
        """Apply a fetched batch (possibly several topics) in order of topic; raise only to get it re-delivered."""
        BATCH_SIZE.labels(self.service).observe(len(records))
        by_topic: dict[str, list[_Item]] = {}
        for rec in records:
            by_topic.setdefault(rec.topic, []).append(_Item(rec))
        for topic, items in by_topic.items():
            handler = self.handlers.get(topic, _noop)
            started = time.perf_counter()
            groups = self._key_groups(items) if topic in self.by_key else [items]
            if len(groups) == 1:
                await self._decode_and_apply(topic, handler, items)
            else:
                results = await asyncio.gather(*(self._decode_and_apply(topic, handler, g) for g in groups),
                                               return_exceptions=True)
                for result in results:
                    if isinstance(result, BaseException):
                        raise result  # every group has finished; the batch comes again, committed groups skip
            HANDLER_LATENCY.labels(self.service, topic).observe(time.perf_counter() - started)

    def _key_groups(self, items: list[_Item]) -> list[list[_Item]]:
        """Split by record key (a key's events stay together, in order); small batches stay whole."""
        n = self.parallelism if len(items) >= MIN_GROUP_SIZE * 2 else 1
        if n == 1:
            return [items]
        groups: list[list[_Item]] = [[] for _ in range(n)]
        for it in items:
            groups[zlib.crc32(it.record.key or b"") % n].append(it)
        return [g for g in groups if g]

    async def _decode_and_apply(self, topic: str, handler: Handler, items: list[_Item]) -> None:
        """Decode here, not up front: a group's decoding then runs while another group waits on Postgres."""
        known = topic in self.handlers
        for it in items:
            try:
                it.envelope = decode(topic, it.record.value)
            except PoisonMessage as exc:
                it.poison = (exc.reason, exc.detail)
            if not known:
                it.poison = it.poison or ("no_handler", f"{self.service} has no handler for {topic}")
        await self._apply_with_retry(topic, handler, items)

    async def _apply_with_retry(self, topic: str, handler: Handler, items: list[_Item]) -> None:
        failures = 0
        backoff = 0.1
        deadline = time.monotonic() + self.transient_deadline_s
        while True:
            try:
                await self._apply(topic, handler, items)
                self.on_commit()
                return
            except PoisonEvent as exc:
                for it in items:
                    if it.envelope is not None and it.envelope.event_id == exc.event_id and it.poison is None:
                        it.poison = ("rejected_by_handler", exc.reason)
                        break
                else:
                    raise RuntimeError(f"PoisonEvent for unknown event {exc.event_id}") from exc
            except TRANSIENT_ERRORS as exc:
                EVENTS_FAILED.labels(self.service, topic, "transient").inc()
                log.warning("batch_retry_transient", topic=topic, error=repr(exc), retry_in_s=backoff)
                if time.monotonic() > deadline:
                    raise  # NACK: FastStream seeks back; the batch comes again
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 3.0)
            except Exception as exc:  # noqa: BLE001 - a handler bug or bad data: isolate, then DLQ
                EVENTS_FAILED.labels(self.service, topic, "handler").inc()
                failures += 1
                live = [it for it in items if it.poison is None]
                log.error("batch_failed", topic=topic, error=repr(exc), attempt=failures, size=len(live))
                if failures < self.max_isolation_attempts:
                    await asyncio.sleep(0.05)
                    continue
                if len(live) <= 1:
                    for it in live:
                        it.poison = ("handler_error", f"{type(exc).__name__}: {exc}")
                    continue
                # Apply one by one so only the failing events reach the DLQ.
                for it in items:
                    await self._apply_with_retry(topic, handler, [it])
                return

    async def _apply(self, topic: str, handler: Handler, items: list[_Item]) -> None:
        now = self.clock.now()
        committed: list[Callable[[], None]] = []
        async with self.pool.acquire() as conn, conn.transaction():
            poison = [(it, it.poison) for it in items if it.poison is not None]
            if poison:
                ids = [_poison_id(self.group, it.record) for it, _ in poison]
                new = await conn.fetch(
                    "INSERT INTO processed_events (event_id, topic) SELECT unnest($1::uuid[]), $2 "
                    "ON CONFLICT DO NOTHING RETURNING event_id", ids, topic)
                fresh_ids = {r["event_id"] for r in new}
                dlq = [(it, why, pid) for (it, why), pid in zip(poison, ids, strict=True) if pid in fresh_ids]
                await add_records(conn, [_dlq_record(it, topic, self.group, *why, now) for it, why, _ in dlq],
                                  [pid for _, _, pid in dlq])
                dead_lettered = [it for it, _, _ in dlq]
            else:
                dead_lettered = []
            todo = await self._apply_good(conn, topic, handler, items, committed)
        for callback in committed:
            callback()
        for it in dead_lettered:
            assert it.poison is not None
            DLQ_EVENTS.labels(self.service, topic, it.poison[0]).inc()
            log.warning("event_dead_lettered", topic=topic, reason=it.poison[0], error=it.poison[1][:300],
                        partition=it.record.partition, offset=it.record.offset)
        if todo:
            EVENTS_CONSUMED.labels(self.service, topic).inc(todo)

    async def _apply_good(self, conn: Conn, topic: str, handler: Handler, items: list[_Item],
                          committed: list[Callable[[], None]]) -> int:
        """Skip already-processed ids, run the handler on the rest, write its events and hand over its after-commit
        callbacks (to ``committed``); returns how many ran."""
        good = [it.envelope for it in items if it.poison is None and it.envelope is not None]
        if not good:
            return 0
        new = await conn.fetch(
            "INSERT INTO processed_events (event_id, topic) SELECT unnest($1::uuid[]), $2 "
            "ON CONFLICT DO NOTHING RETURNING event_id", [e.event_id for e in good], topic)
        fresh = {r["event_id"] for r in new}
        seen: set[uuid.UUID] = set()
        todo: list[Envelope[Any]] = []
        for env in good:
            if env.event_id in fresh and env.event_id not in seen:
                seen.add(env.event_id)
                todo.append(env)
        if len(todo) < len(good):
            EVENTS_DUPLICATE.labels(self.service, topic).inc(len(good) - len(todo))
        if not todo:
            return 0
        ctx = BatchContext(conn=conn, clock=self.clock, service=self.service, topic=topic, extra=self.extra)
        if len(todo) == 1:
            with bound(correlation_id=str(todo[0].correlation_id), event_id=str(todo[0].event_id),
                       workspace_id=todo[0].workspace_id):
                await handler(ctx, todo)
        else:
            await handler(ctx, todo)
        await add_events(conn, ctx.emitted)
        committed.extend(ctx.committed)
        return len(todo)

    def subscribe(self, broker: KafkaBroker, topics: Sequence[str], *, max_records: int = 500,
                  session_timeout_ms: int = 6000, heartbeat_interval_ms: int = 1500) -> None:
        """Register ONE FastStream batch subscriber for all of the service's topics (one group join)."""
        consumer = self

        async def _raw(msg: Any) -> Any:
            return list(msg.raw_message)

        async def on_batch(records: list[Any], message: KafkaMessage) -> None:
            await consumer.process_records(records)
            _observe_lag(consumer.service, message, records)

        on_batch.__name__ = f"{self.service}_consumer"
        subscriber = broker.subscriber(
            *topics,
            group_id=self.group,
            batch=True,
            max_records=max_records,
            batch_timeout_ms=50,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=_raw,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            max_poll_interval_ms=300_000,
            fetch_max_wait_ms=50,
            title=f"{self.service}:consumer",
        )
        subscriber(on_batch)
        _no_pause_after_empty_poll(subscriber)


def _no_pause_after_empty_poll(subscriber: Any) -> None:
    """FastStream's batch subscriber (0.7) sleeps ``batch_timeout_ms`` after a poll that found nothing, on top of the
    poll's own wait, so a record that arrives in that pause waits for it (up to 50 ms per hop of a chain of services).
    aiokafka's ``getmany`` already waits up to ``timeout_ms`` and returns as soon as records are there: here an empty
    poll only sleeps what is left of its ``timeout_ms`` (a poll that comes back early and empty cannot spin)."""
    if not (hasattr(subscriber, "get_msg") and hasattr(subscriber, "batch_timeout_ms")):
        return  # not the batch subscriber this was written for: keep its own loop
    timeout_s = subscriber.batch_timeout_ms / 1000
    max_records = subscriber.max_records

    async def get_msg(consumer: Any) -> tuple[Any, ...]:
        started = time.monotonic()
        batch = await consumer.getmany(timeout_ms=subscriber.batch_timeout_ms, max_records=max_records)
        if batch:
            return tuple(itertools.chain.from_iterable(batch.values()))
        left = timeout_s - (time.monotonic() - started)
        if left > 0:
            await asyncio.sleep(left)
        return ()

    subscriber.get_msg = get_msg


async def _noop(ctx: BatchContext, events: list[Envelope[Any]]) -> None:
    return None


def _observe_lag(service: str, message: Any, records: Sequence[Any]) -> None:
    consumer = getattr(message, "consumer", None)
    highwater = getattr(consumer, "highwater", None)
    if highwater is None:
        return
    last: dict[tuple[str, int], int] = {}
    for rec in records:
        last[(rec.topic, rec.partition)] = max(rec.offset, last.get((rec.topic, rec.partition), -1))
    from aiokafka import TopicPartition

    for (topic, partition), offset in last.items():
        try:
            hw = highwater(TopicPartition(topic, partition))
        except Exception:  # noqa: BLE001 - metrics must never break consumption
            continue
        if hw is not None:
            CONSUMER_LAG.labels(service, topic, str(partition)).set(max(0, hw - offset - 1))

