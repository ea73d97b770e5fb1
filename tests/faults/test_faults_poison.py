"""Poison of every kind reaches <topic>.dlq with its reason, per (service, consumed topic), as processes.

For each topic a running service consumes, the test publishes on ONE partition (one key): a valid event, then
invalid JSON, a newer schema version, an unknown event type, an event type of another topic, an oversized
record, a record failing validation, a tombstone (and, for the executor, a forged approval its handler
rejects), then another valid event. Each consumer must dead-letter every poison record (original bytes,
``x-dlq-reason`` and the consumer group in headers) and still apply both valid events: the partition keeps
flowing. The in-process version of this is tests/integration/test_runtime_consumer.py.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from allot.contracts import examples, sign_approval
from allot.contracts.codec import MAX_RECORD_BYTES, encode
from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.payloads import AllocationRequested, BudgetAction, GuardrailApproved
from allot.contracts.registry import TOPICS
from allot.runtime.stack import RunningStack
from tests.support.faults import (
    APPROVAL_SECRET,
    create_sandbox_entities,
    header,
    read_all,
    sandbox_writes,
    start_fault_stack,
)
from tests.support.kafka import eventually

pytestmark = pytest.mark.e2e

CONSUMED: list[tuple[str, str]] = [
    ("guardrails", "allocation.requested"),
    ("executor", "guardrail.approved"),
    ("rules", "metrics.ingested"),
    ("rules", "guardrail.blocked"),
    ("rules", "action.executed"),
    ("pacing", "metrics.ingested"),
    ("pacing", "action.executed"),
    ("pools", "metrics.ingested"),
    ("pools", "guardrail.blocked"),
    ("pools", "action.executed"),
    ("pools", "pacing.reallocation_recommended"),
]
POISON_KINDS = ["invalid_json", "unsupported_schema_version", "unknown_event_type", "wrong_topic", "oversized",
                "validation_failed", "empty"]
OTHER_TOPIC = {"metrics.ingested": "action.executed"}


@dataclass
class Published:
    topic: str
    key: str
    workspace: str
    valid: list[Envelope[Any]]
    poison: dict[str, bytes | None] = field(default_factory=dict)  # reason -> original value
    sandbox_entities: list[str] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(UTC)


def _env(topic: str, payload: Any, ws: str) -> Envelope[Any]:
    return new_envelope(event_type=topic, schema_version=TOPICS[topic].schema_version, payload=payload,
                        producer="faults", workspace_id=ws, occurred_at=_now())


def _action(ws: str, entity_id: str) -> BudgetAction:
    return BudgetAction(action_id=uuid.uuid4(), platform="sandbox", ad_account_id=f"act-{ws}", entity_type="adset",
                        entity_id=entity_id, action_type="set_budget", currency="EUR", from_cents=10_000,
                        to_cents=11_000, reason="poison test")


def _approval(ws: str, key: str, entity_id: str, secret: str) -> Envelope[Any]:
    now = _now()
    unsigned = GuardrailApproved(decision_id=uuid.uuid4(), request_id=uuid.uuid4(), source="manual", source_id=key,
                                 actions=[_action(ws, entity_id)], approved_at=now,
                                 expires_at=now + timedelta(minutes=10), signature="")
    signed = unsigned.model_copy(update={"signature": sign_approval(unsigned, ws, secret.encode())})
    return _env("guardrail.approved", signed, ws)


def valid_events(topic: str, ws: str, key: str, entities: list[str]) -> list[Envelope[Any]]:
    """Two valid events of ``topic`` keyed by ``key`` (the registry's key field set to it)."""
    if topic == "allocation.requested":
        return [_env(topic, AllocationRequested(request_id=uuid.uuid4(), source="manual", source_id=key,
                                                idempotency_key=str(uuid.uuid4()), actions=[_action(ws, eid)],
                                                requested_by="faults"), ws) for eid in entities]
    if topic == "guardrail.approved":
        return [_approval(ws, key, eid, APPROVAL_SECRET) for eid in entities]
    example = examples.EXAMPLES[topic]
    out = []
    for i in range(2):
        update: dict[str, Any] = {TOPICS[topic].key_field: key}
        if topic == "metrics.ingested":
            update["interval_start"] = examples.T0 + timedelta(hours=i)
            update["interval_end"] = examples.T0 + timedelta(hours=i + 1)
        if hasattr(example, "request_id"):
            update["request_id"] = uuid.uuid4()
        if hasattr(example, "action_id"):
            update["action_id"] = uuid.uuid4()
        out.append(_env(topic, example.model_copy(update=update), ws))
    return out


def poison_records(topic: str, valid: Envelope[Any], ws: str, key: str, entity: str) -> dict[str, bytes | None]:
    good = orjson.loads(encode(valid).value)
    key_field = TOPICS[topic].key_field

    def variant(**changes: Any) -> bytes:
        return orjson.dumps({**good, "event_id": str(uuid.uuid4()), **changes})

    payload_missing_key = {k: v for k, v in good["payload"].items() if k != key_field}
    out: dict[str, bytes | None] = {
        "invalid_json": b'{"event_type": "' + topic.encode() + b'", not json',
        "unsupported_schema_version": variant(schema_version=TOPICS[topic].schema_version + 98),
        "unknown_event_type": variant(event_type="budget.exploded"),
        "wrong_topic": variant(event_type=OTHER_TOPIC.get(topic, "metrics.ingested")),
        "oversized": variant(padding="x" * (MAX_RECORD_BYTES + 50_000)),
        "validation_failed": variant(payload=payload_missing_key),
        "empty": None,
    }
    if topic == "guardrail.approved":  # well-formed, but signed with the wrong secret: the handler refuses it
        out["rejected_by_handler"] = encode(_approval(ws, key, entity, "not-the-secret")).value
    return out


async def publish_poisoned(bootstrap: str, pub: Published) -> None:
    """valid[0], every poison record, valid[1]: all with the same key, so all on one partition, in order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=4_000_000)
    await producer.start()
    try:
        key = pub.key.encode()
        first, second = (encode(e) for e in pub.valid)
        await producer.send_and_wait(pub.topic, first.value, key=key, headers=first.headers)
        for reason, value in pub.poison.items():
            await producer.send_and_wait(pub.topic, value, key=key, headers=[("poison", reason.encode())])
        await producer.send_and_wait(pub.topic, second.value, key=key, headers=second.headers)
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def poisoned(kafka_bootstrap: str, database_url: str) -> Iterator[tuple[RunningStack, dict[str, Published]]]:
    services = ["sandbox", "guardrails", "executor", "rules", "pacing", "pools"]
    stack = start_fault_stack(Path(tempfile.mkdtemp(prefix="allot-faults-poison-")), services,
                              bootstrap=kafka_bootstrap, database_url=database_url)
    try:
        ws = f"poison-{uuid.uuid4().hex[:10]}"
        published: dict[str, Published] = {}
        for topic in sorted({t for _, t in CONSUMED}):
            key = f"{ws}-{topic.replace('.', '-')}"
            entities: list[str] = []
            if topic in ("allocation.requested", "guardrail.approved"):
                # in the account the actions name (act-<ws>, see _action)
                entities = create_sandbox_entities(stack.url("sandbox"), key, 2, ad_account_id=f"act-{ws}")
            valid = valid_events(topic, ws, key, entities)
            pub = Published(topic, key, ws, valid, sandbox_entities=entities)
            pub.poison = poison_records(topic, valid[0], ws, key, entities[0] if entities else key)
            published[topic] = pub
            asyncio.run(publish_poisoned(kafka_bootstrap, pub))
        yield stack, published
    finally:
        stack.stop()


def _params() -> list[Any]:
    return [pytest.param(s, t, id=f"{s}:{t}") for s, t in CONSUMED]


@pytest.mark.parametrize(("service", "topic"), _params())
async def test_poison_reaches_the_dlq_and_valid_events_behind_it_are_applied(
        poisoned: tuple[RunningStack, dict[str, Published]], service: str, topic: str) -> None:
    stack, published = poisoned
    pub = published[topic]
    conn = await asyncpg.connect(stack.database_url)
    try:
        ids = [e.event_id for e in pub.valid]

        async def both_applied() -> bool:
            n = await conn.fetchval(f'SELECT count(*) FROM "{service}".processed_events WHERE event_id = ANY($1)', ids)
            return n == len(ids)

        await eventually(both_applied, timeout=60, interval=0.3,
                         what=f"{service} applying the valid events around the poison on {topic}")
        await _check_effects(conn, stack, service, pub)
    finally:
        await conn.close()

    group, key = service.encode(), pub.key.encode()
    want = sorted(pub.poison)

    async def dead_lettered() -> list[Any]:
        recs = await read_all(stack.bootstrap, f"{topic}.dlq",
                              lambda r: r.key == key and header(r, "x-dlq-consumer-group") == group)
        return recs if len(recs) >= len(want) else []

    dlq = await eventually(dead_lettered, timeout=60, interval=0.5, what=f"{service}'s DLQ records on {topic}.dlq")
    reasons = sorted(header(r, "x-dlq-reason").decode() for r in dlq)  # type: ignore[union-attr]
    assert reasons == want, f"{service} on {topic}: DLQ reasons {reasons}, want {want}"
    for r in dlq:
        reason = header(r, "x-dlq-reason").decode()  # type: ignore[union-attr]
        assert header(r, "x-dlq-source-topic") == topic.encode()
        assert header(r, "x-dlq-error"), f"{reason}: no error detail"
        assert header(r, "poison") == reason.encode() or reason == "empty", "the original headers travel along"
        assert r.value == (pub.poison[reason] or b""), f"{reason}: the original bytes must travel to the DLQ"


async def _check_effects(conn: asyncpg.Connection, stack: RunningStack, service: str, pub: Published) -> None:
    """Beyond processed_events: the valid events' domain effect is there."""
    ws = pub.workspace
    if pub.topic == "metrics.ingested":
        table = {"rules": "metric_intervals", "pacing": "metric_reports", "pools": "member_metrics"}[service]
        n = await conn.fetchval(f'SELECT count(*) FROM "{service}".{table} WHERE workspace_id = $1 AND entity_id = $2',
                                ws, pub.key)
        assert n == 2, f"{service}: {n} metric rows for {pub.key}, want 2"
    elif service == "guardrails":
        n = await conn.fetchval("SELECT count(*) FROM guardrails.decision_requests WHERE workspace_id = $1 "
                                "AND request_id = ANY($2)", ws, [e.payload.request_id for e in pub.valid])
        assert n == 2, f"guardrails decided {n} of the 2 valid change sets"
    elif service == "executor":
        actions = [e.payload.actions[0].action_id for e in pub.valid]

        async def executed() -> bool:
            rows = await conn.fetch("SELECT status FROM executor.actions WHERE action_id = ANY($1)", actions)
            return len(rows) == 2 and all(r["status"] == "succeeded" for r in rows)

        await eventually(executed, timeout=30, what="the two valid approvals executed")
        writes = sandbox_writes(stack.url("sandbox"), pub.sandbox_entities)
        assert [len(w) for w in writes.values()] == [1, 1], writes
