"""Test helpers for reading topics and polling with a deadline (never bare sleeps)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from allot.contracts.codec import encode
from allot.contracts.envelope import Envelope

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], *, timeout: float = 30.0, interval: float = 0.1,
                     what: str = "condition") -> T:
    """Poll ``check`` until it returns a truthy value or the deadline passes (then fail with ``what``)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


async def read_topic(bootstrap: str, topic: str, *, min_count: int = 0, timeout: float = 20.0,
                     predicate: Callable[[Any], bool] = lambda r: True) -> list[Any]:
    """All records of ``topic`` from the beginning that match ``predicate``; waits for ``min_count``."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300, max_records=5000)
            for records in batch.values():
                found.extend(r for r in records if _matches(predicate, r))
            if min_count and len(found) >= min_count and not batch:
                break
            if not min_count and not batch and time.monotonic() > deadline - timeout + 2:
                break
    finally:
        await consumer.stop()
    return found


def _matches(predicate: Callable[[Any], bool], record: Any) -> bool:
    """Other tests share these topics and some publish poison on purpose: a record the predicate cannot
    even read is simply not ours."""
    try:
        return bool(predicate(record))
    except Exception:  # noqa: BLE001
        return False


async def publish(bootstrap: str, *envelopes: Envelope[Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for env in envelopes:
            rec = encode(env)
            await producer.send_and_wait(rec.topic, rec.value, key=rec.key, headers=rec.headers)
    finally:
        await producer.stop()


async def publish_raw(bootstrap: str, topic: str, value: bytes, key: bytes = b"k",
                      headers: list[tuple[str, bytes]] | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=4_000_000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, headers=headers or [])
    finally:
        await producer.stop()
