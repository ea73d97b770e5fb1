"""Contracts: strict on what matters, tolerant of extra fields; deterministic ids; signatures; compatibility."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from allot.contracts import (
    TOPICS,
    ApprovalRejected,
    GuardrailApproved,
    PoisonMessage,
    decode,
    derive_event_id,
    encode,
    new_envelope,
    sign_approval,
    verify_approval,
)
from allot.contracts.compat import breaking_changes
from allot.contracts.examples import EXAMPLES
from allot.runtime.docs import topic_schema

NOW = datetime(2026, 8, 15, 12, tzinfo=UTC)
SCHEMAS = Path(__file__).resolve().parents[3] / "docs" / "schemas"


def envelope_for(topic: str, **kw: object):  # noqa: ANN201
    return new_envelope(event_type=topic, schema_version=1, payload=EXAMPLES[topic], producer="test",
                        workspace_id="ws", occurred_at=NOW, **kw)  # type: ignore[arg-type]


def test_every_registered_topic_has_an_example() -> None:
    assert set(EXAMPLES) == set(TOPICS)


@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_every_contract_round_trips_through_the_codec(topic: str) -> None:
    env = envelope_for(topic)
    record = encode(env)
    assert record.topic == topic
    assert record.key == str(getattr(env.payload, TOPICS[topic].key_field)).encode()
    assert dict(record.headers)["event_type"] == topic.encode()
    assert decode(topic, record.value) == env


def test_unknown_extra_fields_are_ignored_not_rejected() -> None:
    raw = orjson.loads(encode(envelope_for("metrics.ingested")).value)
    raw["new_top_level"] = 1
    raw["payload"]["new_payload_field"] = {"x": 1}
    assert decode("metrics.ingested", orjson.dumps(raw)).payload.entity_id == "as_1"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r: r.update(event_type="nope"), "unknown_event_type"),
        (lambda r: r.update(event_type="action.executed"), "wrong_topic"),
        (lambda r: r.update(schema_version=2), "unsupported_schema_version"),
        (lambda r: r.update(schema_version="1"), "invalid_envelope"),
        (lambda r: r["payload"].update(spend_cents=1.5), "validation_failed"),
        (lambda r: r["payload"].update(currency="euro"), "validation_failed"),
        (lambda r: r.update(occurred_at="2026-01-01T00:00:00"), "validation_failed"),
    ],
)
def test_bad_records_are_classified_for_the_dlq(mutate, reason: str) -> None:  # noqa: ANN001
    raw = orjson.loads(encode(envelope_for("metrics.ingested")).value)
    mutate(raw)
    with pytest.raises(PoisonMessage) as info:
        decode("metrics.ingested", orjson.dumps(raw))
    assert info.value.reason == reason


@pytest.mark.parametrize(("value", "reason"), [(b"{", "invalid_json"), (b"[1]", "invalid_envelope"),
                                                (None, "empty"), (b" " * 1_000_001, "oversized")])
def test_unparseable_bodies_are_poison(value: bytes | None, reason: str) -> None:
    with pytest.raises(PoisonMessage) as info:
        decode("metrics.ingested", value)
    assert info.value.reason == reason


def test_money_is_integer_cents_never_float() -> None:
    raw = orjson.loads(encode(envelope_for("allocation.requested")).value)
    raw["payload"]["actions"][0]["to_cents"] = 115.5
    with pytest.raises(PoisonMessage):
        decode("allocation.requested", orjson.dumps(raw))


def test_derived_event_ids_are_deterministic_and_inherit_correlation() -> None:
    cause = envelope_for("metrics.ingested")
    a = envelope_for("allocation.requested", cause=cause, step="pool_1/2026-08-15T12")
    b = envelope_for("allocation.requested", cause=cause, step="pool_1/2026-08-15T12")
    c = envelope_for("allocation.requested", cause=cause, step="pool_1/2026-08-15T16")
    assert a.event_id == b.event_id == derive_event_id(cause.event_id, "pool_1/2026-08-15T12")
    assert c.event_id != a.event_id
    assert a.correlation_id == cause.correlation_id and a.causation_id == cause.event_id


def _approval(expires: datetime) -> GuardrailApproved:
    base = EXAMPLES["guardrail.approved"]
    assert isinstance(base, GuardrailApproved)
    unsigned = base.model_copy(update={"expires_at": expires, "signature": ""})
    return unsigned.model_copy(update={"signature": sign_approval(unsigned, "ws", b"secret")})


def test_a_valid_signature_verifies_until_expiry() -> None:
    approval = _approval(NOW + timedelta(minutes=15))
    verify_approval(approval, "ws", b"secret", now=NOW + timedelta(minutes=14, seconds=59))
    with pytest.raises(ApprovalRejected, match="expired"):
        verify_approval(approval, "ws", b"secret", now=NOW + timedelta(minutes=15))


@pytest.mark.parametrize("tamper", ["amount", "workspace", "secret", "unsigned"])
def test_forged_or_altered_approvals_are_rejected(tamper: str) -> None:
    approval = _approval(NOW + timedelta(minutes=15))
    workspace, secret = "ws", b"secret"
    if tamper == "amount":
        action = approval.actions[0].model_copy(update={"to_cents": 999_999})
        approval = approval.model_copy(update={"actions": [action]})
    elif tamper == "workspace":
        workspace = "other"
    elif tamper == "secret":
        secret = b"guess"
    else:
        approval = approval.model_copy(update={"signature": ""})
    with pytest.raises(ApprovalRejected):
        verify_approval(approval, workspace, secret, now=NOW)


def test_compat_flags_removed_fields_changed_types_and_new_required_fields() -> None:
    old = {"title": "x", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "required": ["a"]}
    assert breaking_changes(old, old) == []
    added_optional = {**old, "properties": {**old["properties"], "c": {"type": "string"}}}
    assert breaking_changes(old, added_optional) == []
    assert breaking_changes(old, {**old, "properties": {"a": {"type": "integer"}}}) == ["x.b: field removed"]
    changed = {**old, "properties": {"a": {"type": "number"}, "b": {"type": "string"}}}
    assert "x.a: type changed" in breaking_changes(old, changed)[0]
    required = {**added_optional, "required": ["a", "c"]}
    assert breaking_changes(old, required) == ["x.c: new required field"]


@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_committed_schemas_have_no_backward_incompatible_change(topic: str) -> None:
    committed = SCHEMAS / f"{topic}.json"
    assert committed.exists(), f"run `make schemas` and commit {committed}"
    assert breaking_changes(orjson.loads(committed.read_bytes()), topic_schema(topic)) == []


def test_request_ids_are_uuids() -> None:
    assert isinstance(EXAMPLES["allocation.requested"].request_id, uuid.UUID)  # type: ignore[attr-defined]
