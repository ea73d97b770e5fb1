"""The generated documents (`make schemas`): JSON Schemas carry $schema and $id and accept the real records; the
AsyncAPI documents name the headers and key the code really writes, each channel's partitions and retention, and a
DLQ channel per consumed topic; the committed files are what the generator writes today."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from allot.contracts.codec import encode
from allot.contracts.envelope import new_envelope
from allot.contracts.examples import EXAMPLES
from allot.contracts.registry import DLQ_PARTITIONS, DLQ_RETENTION_MS, TOPICS
from allot.runtime import consumer
from allot.runtime.docs import asyncapi_document, service_specs, topic_schema, write_all

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 12, 6, tzinfo=UTC)


def _record(topic: str) -> Any:
    envelope = new_envelope(event_type=topic, schema_version=TOPICS[topic].schema_version, payload=EXAMPLES[topic],
                            producer="test", workspace_id="ws-1", occurred_at=NOW)
    return encode(envelope)


@pytest.mark.parametrize("topic", list(TOPICS))
def test_each_topic_schema_declares_its_dialect_and_id_and_accepts_a_real_record(topic: str) -> None:
    schema = topic_schema(topic)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f"/docs/schemas/{topic}.json")
    Draft202012Validator.check_schema(schema)
    errors = list(Draft202012Validator(schema).iter_errors(orjson.loads(_record(topic).value)))
    assert not errors, [e.message for e in errors]


def _message(document: dict[str, Any], channel: dict[str, Any]) -> dict[str, Any]:
    (ref,) = channel["messages"].values()
    return document["components"]["messages"][ref["$ref"].rsplit("/", 1)[-1]]


def test_asyncapi_names_the_headers_key_partitions_and_dlq_the_code_really_uses() -> None:
    record = _record("metrics.ingested")
    written = {name for name, _ in record.headers}
    rec = SimpleNamespace(headers=record.headers, partition=2, offset=7, key=record.key, value=record.value)
    dead = consumer._dlq_record(consumer._Item(rec), "metrics.ingested", "pools", "poison", "boom", NOW)
    dlq_written = {name for name, _ in dead.headers}
    for spec in service_specs():
        document = asyncapi_document(spec)
        for channel in document["channels"].values():
            topic, message = channel["address"], _message(document, channel)
            kafka = channel["bindings"]["kafka"]
            if topic.endswith(".dlq"):
                assert (kafka["partitions"], kafka["topicConfiguration"]["retention.ms"]) == (
                    DLQ_PARTITIONS, DLQ_RETENTION_MS)
                assert set(message["headers"]["properties"]) == dlq_written, (spec.name, topic)
                continue
            spec_of = TOPICS[topic]
            assert (kafka["partitions"], kafka["topicConfiguration"]["retention.ms"]) == (
                spec_of.partitions, spec_of.retention_ms)
            assert set(message["headers"]["properties"]) == written, (spec.name, topic)
            assert spec_of.key_field in message["bindings"]["kafka"]["key"]["description"]
        for topic in spec.consumes:
            name = f"{spec.name}:{topic}.dlq:publish"
            assert document["channels"][name]["address"] == f"{topic}.dlq"
            assert document["operations"][name]["action"] == "send"


def test_the_committed_documents_are_what_make_schemas_writes(tmp_path: Path) -> None:
    stale = []
    for path in write_all(tmp_path):
        committed = ROOT / "docs" / path.relative_to(tmp_path)
        if not committed.exists() or committed.read_bytes() != path.read_bytes():
            stale.append(str(committed.relative_to(ROOT)))
    assert not stale, f"run `make schemas` and commit: {stale}"
