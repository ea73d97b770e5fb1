"""Subscribers (thin): notification.requested queues deliveries for the workspace's subscribed channels; a guardrail
block, a critical pacing deviation and an executor conflict or failure become notifications here (domain.sources)
until their services publish notification.requested themselves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.payloads import (
    ActionExecuted,
    GuardrailBlocked,
    NotificationRequested,
    PacingDeviationDetected,
)
from allot.contracts.registry import TOPICS
from allot.notify.domain.sources import from_action_executed, from_guardrail_blocked, from_pacing_deviation
from allot.notify.settings import NotifySettings
from allot.notify.workflow import DELIVERY_CLOCK, TOPIC, enqueue
from allot.runtime.consumer import BatchContext, PoisonEvent
from allot.runtime.deps import settings_of

DERIVED: dict[str, Callable[[Envelope[Any]], NotificationRequested | None]] = {
    "guardrail.blocked": from_guardrail_blocked,
    "pacing.deviation_detected": from_pacing_deviation,
    "action.executed": from_action_executed,
}


def _settings(ctx: BatchContext) -> NotifySettings:
    return settings_of(ctx, NotifySettings)


async def on_notification_requested(ctx: BatchContext, events: list[Envelope[NotificationRequested]]) -> None:
    settings = _settings(ctx)
    now = DELIVERY_CLOCK.now()
    for event in events:
        n = event.payload
        if n.workspace_id != event.workspace_id:
            raise PoisonEvent(event.event_id, f"payload workspace_id {n.workspace_id!r} differs from the envelope's "
                                              f"{event.workspace_id!r}")
        await enqueue(ctx.conn, settings, n, event.model_dump(mode="json"), now=now)


async def on_source_event(
    ctx: BatchContext, events: list[Envelope[GuardrailBlocked | PacingDeviationDetected | ActionExecuted]]
) -> None:
    """guardrail.blocked, pacing.deviation_detected, action.executed: most say nothing; the rest are queued."""
    settings = _settings(ctx)
    derive = DERIVED[ctx.topic]
    now = DELIVERY_CLOCK.now()
    for event in events:
        n = derive(event)
        if n is None:
            continue
        # kept with the delivery as the record it would have been: a dead letter is a notification.requested
        record = new_envelope(event_type=TOPIC, schema_version=TOPICS[TOPIC].schema_version, payload=n,
                              producer="notify", workspace_id=event.workspace_id, occurred_at=event.occurred_at,
                              cause=cast("Envelope[Any]", event), step="notification")
        await enqueue(ctx.conn, settings, n, record.model_dump(mode="json"), now=now)
