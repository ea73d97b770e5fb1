"""orjson encoding of envelopes, and strict decoding that classifies every bad record for the DLQ."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from allot.contracts.envelope import Envelope, envelope_model
from allot.contracts.registry import TOPICS, topic

#: Records larger than this are poison (Kafka's default max message size is 1 MiB).
MAX_RECORD_BYTES = 1_000_000

Headers = list[tuple[str, bytes]]


class PoisonMessage(Exception):
    """A record that retrying cannot fix; it belongs in the DLQ with ``reason`` and ``detail``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class EncodedRecord:
    """A record ready for Kafka: key, value and headers."""

    topic: str
    key: bytes
    value: bytes
    headers: Headers


_ENVELOPE_TYPES: dict[str, type[Envelope[Any]]] = {
    name: envelope_model(spec.payload) for name, spec in TOPICS.items()
}


def envelope_type(topic_name: str) -> type[Envelope[Any]]:
    """The concrete Envelope[Payload] model of a topic."""
    return _ENVELOPE_TYPES[topic(topic_name).name]


def encode(envelope: Envelope[Any]) -> EncodedRecord:
    """Serialise an envelope with orjson; key = the registry's partition key field of its payload."""
    spec = topic(envelope.event_type)
    key = str(getattr(envelope.payload, spec.key_field))
    value = orjson.dumps(envelope.model_dump(mode="json"))
    headers: Headers = [
        ("event_type", envelope.event_type.encode()),
        ("schema_version", str(envelope.schema_version).encode()),
        ("correlation_id", str(envelope.correlation_id).encode()),
        ("workspace_id", envelope.workspace_id.encode()),
        ("event_id", str(envelope.event_id).encode()),
    ]
    return EncodedRecord(spec.name, key.encode(), value, headers)


def decode(topic_name: str, value: bytes | None) -> Envelope[Any]:
    """Parse and validate one record of ``topic_name``; raise PoisonMessage for anything unusable.

    Strict where it matters (unknown event_type, an event_type that does not belong on this topic,
    a newer major schema_version, failed validation, oversized or non-JSON bodies) and tolerant of
    unknown extra fields, which are ignored.
    """
    if value is None:
        raise PoisonMessage("empty", "record has no value (tombstone)")
    if len(value) > MAX_RECORD_BYTES:
        raise PoisonMessage("oversized", f"{len(value)} bytes > {MAX_RECORD_BYTES}")
    envelope = _decode_fast(topic_name, value)
    if envelope is not None:
        return envelope
    try:
        raw = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise PoisonMessage("invalid_json", str(exc)) from None
    if not isinstance(raw, dict):
        raise PoisonMessage("invalid_envelope", "body is not a JSON object")
    event_type = raw.get("event_type")
    if event_type not in TOPICS:
        raise PoisonMessage("unknown_event_type", f"event_type {event_type!r} is not registered")
    if event_type != topic_name:
        raise PoisonMessage("wrong_topic", f"event_type {event_type!r} does not belong on {topic_name!r}")
    spec = TOPICS[event_type]
    version = raw.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise PoisonMessage("invalid_envelope", f"schema_version {version!r} is not an integer")
    if version > spec.schema_version:
        raise PoisonMessage(
            "unsupported_schema_version", f"schema_version {version} is newer than supported {spec.schema_version}"
        )
    try:
        return _ENVELOPE_TYPES[event_type].model_validate(raw)
    except ValidationError as exc:
        raise PoisonMessage("validation_failed", _summarise(exc)) from None


def _decode_fast(topic_name: str, value: bytes) -> Envelope[Any] | None:
    """The usual case in one pass (parse + validate); None sends the record to the precise classification.

    A record that validates but carries another topic's type or a newer version also returns None.
    """
    model = _ENVELOPE_TYPES.get(topic_name)
    if model is None:
        return None
    try:
        envelope = model.model_validate_json(value)
    except ValidationError:
        return None
    if envelope.event_type != topic_name or envelope.schema_version > TOPICS[topic_name].schema_version:
        return None
    return envelope


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """JSON Schema of a payload model (validation mode)."""
    return model.model_json_schema()
