"""The notification.requested a critical pacing deviation gives, published beside the pacing.deviation_detected.

Pure: same deviation event, same notification (its id is derived from the event's id, so a replay is the same
notification and the notifier delivers it once). Warnings stay on the dashboard.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.payloads import NotificationRequested, NotifiedEntity, PacingDeviationDetected
from allot.contracts.registry import TOPICS

TOPIC = "notification.requested"


def deviation_notification(event: Envelope[PacingDeviationDetected]) -> NotificationRequested | None:
    """A flight plan past its critical threshold; None for any other alert level."""
    p = event.payload
    if p.alert_level != "critical":
        return None
    return NotificationRequested(
        notification_id=uuid.uuid5(event.event_id, "notification"), workspace_id=event.workspace_id,
        kind="pacing_critical", severity="critical",
        title=f"Pacing plan {p.plan_id} is {p.direction} by {p.deviation_pct:+.1f}%"[:200], summary=p.message[:2000],
        condition=f"deviation {p.deviation_pct:+.2f}% beyond the critical threshold {p.threshold_pct:+.2f}%",
        facts={"deviation_pct": p.deviation_pct, "threshold_pct": p.threshold_pct, "campaign_id": p.campaign_id,
               "state_before": p.state_before, "state_after": p.state_after},
        entities=[NotifiedEntity(entity_type="plan", entity_id=p.plan_id[:128], detail=p.message[:300])],
        source="pacing", source_id=p.plan_id[:128], dedupe_key=f"pacing_critical/{p.plan_id}/{p.direction}"[:200],
        console_path=f"/pacing/plans/{p.plan_id}"[:300], occurred_at=event.occurred_at)


def deviation_notifications(event: Envelope[PacingDeviationDetected]) -> list[Envelope[NotificationRequested]]:
    """The notification.requested envelope of a critical deviation (none otherwise), caused by its event."""
    n = deviation_notification(event)
    if n is None:
        return []
    return [new_envelope(event_type=TOPIC, schema_version=TOPICS[TOPIC].schema_version, payload=n,
                         producer="pacing", workspace_id=event.workspace_id, occurred_at=event.occurred_at,
                         cause=cast("Envelope[Any]", event), step="notification")]
