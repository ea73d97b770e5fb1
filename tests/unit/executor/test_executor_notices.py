"""The notification.requested beside an action.executed: a conflict (a budget changed in the ad manager) or a
failure notifies, every other outcome says nothing; same event, same notification id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from allot.contracts import new_envelope
from allot.contracts.envelope import derive_event_id
from allot.contracts.examples import EXAMPLES
from allot.executor.domain.notices import executed_notification, executed_notifications

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def executed(**changes: Any) -> Any:
    payload = EXAMPLES["action.executed"].model_copy(update=changes)
    return new_envelope(event_type="action.executed", schema_version=1, payload=payload, producer="executor",
                        workspace_id="ws_1", occurred_at=T0, step=f"executed/{sorted(changes.items())}")


def test_a_conflict_names_the_entity_and_the_budget_found_on_the_platform() -> None:
    event = executed(outcome="conflict", observed_cents=20_000)
    n = executed_notification(event)
    assert n is not None and n == executed_notification(event), "deterministic"
    assert n.notification_id == uuid.uuid5(event.event_id, "notification")
    assert (n.kind, n.severity, n.source, n.source_id) == ("executor_conflict", "warning", "executor", "pool_1")
    assert n.title == "The budget of adset as_1 was changed outside Allot"
    assert "someone changed it in the ad manager" in n.summary
    assert n.condition == "set_budget: conflict" and n.dedupe_key == "executor_conflict/as_1"
    assert n.entities[0].amount_cents == 20_000 and n.entities[0].currency == "EUR"
    assert n.facts["observed_cents"] == 20_000 and n.facts["before_cents"] == 10_000 and n.currency == "EUR"


def test_a_failure_is_critical_and_says_why() -> None:
    n = executed_notification(executed(outcome="failed", error="platform refused (500)", attempts=3))
    assert n is not None and (n.kind, n.severity) == ("executor_failed", "critical")
    assert n.title == "A change to adset as_1 failed on the platform"
    assert n.summary == "The platform refused or did not answer after 3 attempts: platform refused (500)"
    assert n.entities[0].amount_cents == 11_500 and n.entities[0].detail == "platform refused (500)"


@pytest.mark.parametrize("outcome", ["succeeded", "already_applied", "expired", "pending", "rejected"])
def test_other_outcomes_say_nothing(outcome: str) -> None:
    assert executed_notification(executed(outcome=outcome)) is None
    assert executed_notifications(executed(outcome=outcome)) == []


def test_the_envelope_is_caused_by_the_executed_action() -> None:
    event = executed(outcome="failed", error="x", attempts=1)
    (envelope,) = executed_notifications(event)
    assert (envelope.event_type, envelope.producer, envelope.workspace_id) == (
        "notification.requested", "executor", "ws_1")
    assert envelope.event_id == derive_event_id(event.event_id, "notification")
    assert envelope.causation_id == event.event_id and envelope.correlation_id == event.correlation_id
