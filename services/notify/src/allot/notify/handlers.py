"""The notification.requested subscriber: queue deliveries for the workspace's subscribed channels (thin)."""

from __future__ import annotations

from typing import Any

from allot.contracts.envelope import Envelope
from allot.notify.settings import NotifySettings
from allot.notify.workflow import DELIVERY_CLOCK, enqueue
from allot.runtime.consumer import BatchContext, PoisonEvent


async def on_notification_requested(ctx: BatchContext, events: list[Envelope[Any]]) -> None:
    settings = ctx.extra["settings"]
    assert isinstance(settings, NotifySettings)
    now = DELIVERY_CLOCK.now()
    for event in events:
        n = event.payload
        if n.workspace_id != event.workspace_id:
            raise PoisonEvent(event.event_id, f"payload workspace_id {n.workspace_id!r} differs from the envelope's "
                                              f"{event.workspace_id!r}")
        await enqueue(ctx.conn, settings, n, event.model_dump(mode="json"), now=now)
