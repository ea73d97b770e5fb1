"""Subscribers (thin): notification.requested queues deliveries for the workspace's subscribed channels. Every
service publishes its own notification.requested, in the same transaction as the fact it explains (rules, pools,
guardrails, pacing, the executor); the notifier derives none."""

from __future__ import annotations

from allot.contracts.envelope import Envelope
from allot.contracts.payloads import NotificationRequested
from allot.notify.settings import NotifySettings
from allot.notify.workflow import DELIVERY_CLOCK, enqueue
from allot.runtime.consumer import BatchContext, PoisonEvent
from allot.runtime.deps import settings_of


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
