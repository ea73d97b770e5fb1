"""Independent scheduling: every account is read when its own interval is due, in its own task."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from allot.ingest.adapters import postgres as db
from allot.ingest.workflow import IngestState, read_account
from allot.runtime.deps import need
from allot.runtime.logging import get_logger
from allot.runtime.service import ServiceContext

log = get_logger(__name__)


async def ingest_scheduler(ctx: ServiceContext) -> None:
    """Start a read for each due account not already being read; a slow account never holds up another."""
    st = need(ctx, IngestState)
    started = True
    while True:
        now = ctx.clock.now()
        # at start every account is read once (its token checked first), then each on its own interval
        due_before = now if started else now - timedelta(seconds=st.settings.ingest_interval_s)
        started = False
        async with ctx.pool.acquire() as conn:
            due = await db.accounts_to_read(conn, due_before=due_before)
            for a in due:
                key = f"{a.connection_id}/act_{a.ad_account_id}"
                task = st.running.get(key)
                if (task is not None and not task.done()) or not await db.claim(conn, a, now, due_before):
                    continue
                st.running[key] = asyncio.create_task(read_account(ctx, st, a), name=f"ingest-{key}")
        await asyncio.sleep(st.settings.ingest_scan_interval_s)
