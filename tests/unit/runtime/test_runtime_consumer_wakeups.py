"""The consumer's wake-ups: after-commit callbacks run only once the batch's transaction committed, and an empty
poll of the batch subscriber does not pause on top of its own wait."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from allot.contracts import encode, examples
from allot.contracts.envelope import Envelope, new_envelope
from allot.runtime.clock import RealClock
from allot.runtime.consumer import BatchContext, IdempotentConsumer, _no_pause_after_empty_poll

TOPIC = "metrics.ingested"


class FakeConn:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        try:
            yield
        except BaseException:
            self.log.append("rollback")
            raise
        self.log.append("commit")

    async def fetch(self, sql: str, ids: list[Any], topic: str) -> list[dict[str, Any]]:
        return [{"event_id": i} for i in ids]  # every id is new

    async def executemany(self, sql: str, rows: list[Any]) -> None:
        return None


class FakePool:
    def __init__(self, log: list[str]) -> None:
        self.conn = FakeConn(log)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[FakeConn]:
        yield self.conn


def _record() -> Any:
    env = new_envelope(event_type=TOPIC, schema_version=1, payload=examples.EXAMPLES[TOPIC], producer="test",
                       workspace_id="ws", occurred_at=datetime.now(UTC))
    rec = encode(env)
    return SimpleNamespace(topic=TOPIC, key=rec.key, value=rec.value, headers=rec.headers, partition=0, offset=0,
                           timestamp=0)


async def test_after_commit_callbacks_run_after_the_commit_and_never_after_a_rollback() -> None:
    log: list[str] = []
    consumer = IdempotentConsumer(service="test", group="g", pool=FakePool(log), clock=RealClock())  # type: ignore[arg-type]
    consumer.transient_deadline_s = 0

    async def handler(ctx: BatchContext, events: list[Envelope[Any]]) -> None:
        ctx.after_commit(lambda: log.append("woken"))

    consumer.handle(TOPIC, handler)
    await consumer.process_records([_record()])
    assert log == ["commit", "woken"]

    log.clear()

    async def failing(ctx: BatchContext, events: list[Envelope[Any]]) -> None:
        ctx.after_commit(lambda: log.append("woken"))
        raise OSError("database went away")  # transient: rolled back, retried until the deadline, then raised

    consumer.handle(TOPIC, failing)
    with pytest.raises(OSError):
        await consumer.process_records([_record()])
    assert "woken" not in log and "rollback" in log


class FakeKafkaConsumer:
    def __init__(self, batches: list[dict[str, list[str]]], *, wait_s: float) -> None:
        self.batches = batches
        self.wait_s = wait_s

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[str, list[str]]:
        if self.batches:
            return self.batches.pop(0)
        await asyncio.sleep(self.wait_s)
        return {}


async def test_an_empty_poll_only_waits_out_its_own_timeout() -> None:
    subscriber = SimpleNamespace(get_msg=None, batch_timeout_ms=50, max_records=10)
    _no_pause_after_empty_poll(subscriber)
    assert await subscriber.get_msg(FakeKafkaConsumer([{"tp": ["a", "b"]}], wait_s=0)) == ("a", "b")
    # a poll that waited its timeout returns at once (no second pause)
    started = time.monotonic()
    assert await subscriber.get_msg(FakeKafkaConsumer([], wait_s=0.05)) == ()
    assert time.monotonic() - started < 0.09
    # a poll that came back early and empty waits out the rest of the timeout (the loop cannot spin)
    started = time.monotonic()
    assert await subscriber.get_msg(FakeKafkaConsumer([], wait_s=0)) == ()
    assert time.monotonic() - started >= 0.045
