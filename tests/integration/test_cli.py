"""The `allot` ops CLI against the real broker: tail, dlq list/show/redrive, replay (dry run and real), trace."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from allot.contracts import new_envelope
from allot.contracts.examples import EXAMPLES
from allot.runtime.kafka import ensure_topics
from tests.support.kafka import publish, publish_raw


async def allot(settings: Any, *args: str) -> Any:
    env = dict(os.environ, ALLOT_KAFKA_BOOTSTRAP=settings.kafka_bootstrap)
    proc = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "allot.runtime.cli", "--json", *args],
                                   env=env, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    text = proc.stdout.decode()
    try:
        return [orjson.loads(text)]
    except orjson.JSONDecodeError:
        return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def event(workspace: str, entity: str, correlation: Any = None) -> Any:
    payload = EXAMPLES["metrics.ingested"].model_copy(update={"entity_id": entity})
    return new_envelope(event_type="metrics.ingested", schema_version=1, payload=payload, producer="test",
                        workspace_id=workspace, occurred_at=datetime.now(UTC), correlation_id=correlation)


async def test_tail_filters_by_workspace_and_entity(settings: Any, unique: str) -> None:
    await ensure_topics(settings)
    await publish(settings.kafka_bootstrap, event(unique, "e1"), event(unique, "e2"), event("other", "e1"))
    rows = await allot(settings, "tail", "metrics.ingested", "--from-beginning", "--no-follow", "--workspace", unique)
    assert sorted(r["entity"] for r in rows) == ["e1", "e2"]
    rows = await allot(settings, "tail", "metrics.ingested", "--from-beginning", "--no-follow", "--workspace", unique,
                       "--entity", "e2")
    assert [r["entity"] for r in rows] == ["e2"]


async def test_dlq_list_show_and_redrive(settings: Any, unique: str) -> None:
    await ensure_topics(settings)
    good = event(unique, "fixed")
    headers = [("x-dlq-reason", b"validation_failed"), ("x-dlq-error", b"payload.x: bad"),
               ("x-dlq-source-topic", b"metrics.ingested"), ("x-dlq-partition", b"0"), ("x-dlq-offset", b"7"),
               ("x-dlq-consumer-group", unique.encode()), ("event_id", str(good.event_id).encode())]
    from allot.contracts import encode

    record = encode(good)
    original = [h for h in record.headers if h[0] != "event_id"]
    await publish_raw(settings.kafka_bootstrap, "metrics.ingested.dlq", record.value, key=b"fixed",
                      headers=original + headers)
    listed = await allot(settings, "dlq", "list", "metrics.ingested")
    mine = [r for r in listed[0] if r["group"] == unique]
    assert len(mine) == 1 and mine[0]["reason"] == "validation_failed" and "payload.x" in mine[0]["error"]
    shown = await allot(settings, "dlq", "show", "metrics.ingested", "--offset", str(mine[0]["offset"]))
    assert shown[0][0]["headers"]["x-dlq-consumer-group"] == unique
    await allot(settings, "dlq", "redrive", "metrics.ingested", "--offset", str(mine[0]["offset"]))
    rows = await allot(settings, "tail", "metrics.ingested", "--from-beginning", "--no-follow", "--workspace", unique)
    assert [r["event_id"] for r in rows] == [str(good.event_id)], "the record is back on its source topic"


async def test_replay_moves_a_stopped_group_back(settings: Any, unique: str) -> None:
    await ensure_topics(settings)
    group = f"replay-{unique}"
    await publish(settings.kafka_bootstrap, *(event(unique, f"r{i}") for i in range(5)))
    consumer = AIOKafkaConsumer("metrics.ingested", bootstrap_servers=settings.kafka_bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False, session_timeout_ms=3000,
                                heartbeat_interval_ms=500)
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while asyncio.get_running_loop().time() < deadline:
            if not await consumer.getmany(timeout_ms=500):
                break
        await consumer.commit()
    finally:
        await consumer.stop()
    dry = (await allot(settings, "replay", "metrics.ingested", "--group", group, "--any-group", "--from", "beginning",
                          "--dry-run"))[0]
    assert sum(r["to_reprocess"] for r in dry) >= 5 and all(r["committed"] == r["end"] for r in dry)
    moved = (await allot(settings, "replay", "metrics.ingested", "--group", group, "--any-group", "--from",
                          "beginning"))[0]
    assert all(r["new_offset"] == 0 for r in moved)
    check = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await check.start()
    try:
        for r in moved:
            assert await check.committed(TopicPartition("metrics.ingested", r["partition"])) == 0
    finally:
        await check.stop()


async def test_trace_follows_one_correlation_id_across_topics(settings: Any, unique: str) -> None:
    await ensure_topics(settings)
    metric = event(unique, "traced")
    request = new_envelope(event_type="allocation.requested", schema_version=1, payload=EXAMPLES["allocation.requested"],
                           producer="pools", workspace_id=unique, occurred_at=datetime.now(UTC), cause=metric,
                           step="s")
    await publish(settings.kafka_bootstrap, metric, request)
    rows = (await allot(settings, "trace", str(metric.correlation_id)))[0]
    assert [r["topic"] for r in rows] == ["metrics.ingested", "allocation.requested"]


def test_the_lag_table_names_every_consumer_group_the_services_declare() -> None:
    """`allot topics` reports lag per consumer group from CONSUMES: it must match what the services consume."""
    import importlib

    from allot.runtime.cli import CONSUMES

    declared: dict[str, set[str]] = {}
    for name in ("guardrails", "executor", "pools", "rules", "pacing", "connections", "ingest", "notify"):
        spec = importlib.import_module(f"allot.{name}.service").SPEC
        for topic in spec.consumes:
            declared.setdefault(topic, set()).add(spec.name)
    assert {t: set(groups) for t, groups in CONSUMES.items()} == declared
