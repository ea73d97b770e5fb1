"""The delivery scheduler: sends what is due, on every instance; each delivery is claimed with a lease in Postgres,
so N instances never send one delivery at once and a killed instance's claims are taken over when they expire.

It polls on the real clock (``notify_poll_interval_s``), at once again while there is work.
"""

from __future__ import annotations

import asyncio

from allot.notify.workflow import Deps, deliver_due
from allot.runtime.deps import need
from allot.runtime.service import ServiceContext


async def delivery_worker(ctx: ServiceContext) -> None:
    """Send due deliveries until stopped."""
    deps = need(ctx, Deps)
    while True:
        sent = await deliver_due(ctx.pool, deps)
        ctx.flush()  # DLQ records and channel_disabled notifications written by the worker
        if not sent:
            await asyncio.sleep(deps.settings.notify_poll_interval_s)
