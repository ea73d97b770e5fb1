"""The notification.requested beside a pacing.deviation_detected: only a critical deviation notifies; same
deviation event, same notification id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from allot.contracts import new_envelope
from allot.contracts.envelope import derive_event_id
from allot.contracts.examples import EXAMPLES
from allot.pacing.domain.notices import deviation_notification, deviation_notifications

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def deviation(**changes: Any) -> Any:
    payload = EXAMPLES["pacing.deviation_detected"].model_copy(update=changes)
    return new_envelope(event_type="pacing.deviation_detected", schema_version=1, payload=payload,
                        producer="pacing", workspace_id="ws_1", occurred_at=T0,
                        step=f"plan_1/slot/deviation_detected/{sorted(changes.items())}")


def test_a_critical_deviation_notifies_with_its_numbers() -> None:
    event = deviation()
    n = deviation_notification(event)
    assert n is not None and n == deviation_notification(event), "deterministic"
    assert n.notification_id == uuid.uuid5(event.event_id, "notification")
    assert (n.kind, n.severity, n.source, n.source_id) == ("pacing_critical", "critical", "pacing", "plan_1")
    assert n.title == "Pacing plan plan_1 is underpacing by -32.2%"
    assert n.summary == "Critical underpacing: -32.2% deviation (threshold: -25.0%)"
    assert n.condition == "deviation -32.20% beyond the critical threshold -25.00%"
    assert n.facts == {"deviation_pct": -32.2, "threshold_pct": -25.0, "campaign_id": "campaign-abc",
                       "state_before": "ACTIVE", "state_after": "PACING_HOLD"}
    assert n.console_path == "/pacing/plans/plan_1" and n.dedupe_key == "pacing_critical/plan_1/underpacing"
    assert [(e.entity_type, e.entity_id) for e in n.entities] == [("plan", "plan_1")]
    over = deviation_notification(deviation(direction="overpacing", deviation_pct=41.0, threshold_pct=25.0))
    assert over is not None and over.title == "Pacing plan plan_1 is overpacing by +41.0%"


def test_a_warning_deviation_says_nothing() -> None:
    assert deviation_notification(deviation(alert_level="warning")) is None
    assert deviation_notifications(deviation(alert_level="warning")) == []


def test_the_envelope_is_caused_by_the_deviation() -> None:
    event = deviation()
    (envelope,) = deviation_notifications(event)
    assert (envelope.event_type, envelope.producer, envelope.workspace_id) == (
        "notification.requested", "pacing", "ws_1")
    assert envelope.event_id == derive_event_id(event.event_id, "notification")
    assert envelope.causation_id == event.event_id and envelope.correlation_id == event.correlation_id
    assert deviation_notifications(event) == [envelope]
