"""Shared by the idempotent consumer tests on the real broker and Postgres: the topic they consume and a
metrics event on it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from allot.contracts import examples
from allot.contracts.envelope import Envelope, new_envelope

TOPIC = "metrics.ingested"


def metric_event(workspace: str, entity: str, spend: int) -> Envelope[Any]:
    payload = examples.EXAMPLES[TOPIC].model_copy(update={"entity_id": entity, "spend_cents": spend})
    return new_envelope(event_type=TOPIC, schema_version=1, payload=payload, producer="test",
                        workspace_id=workspace, occurred_at=datetime.now(UTC))
