"""Background work: prune history rows no window can reach any more (once per hour across instances), and keep
the kill-switch gauge current (every instance, from the database).

Polls in REAL time, like the rules and pools schedulers: the service clock may be a ``ManualClock`` (tests)
whose ``sleep`` moves time forward, so sleeping on it would make the clock that dates every decision run away.
Which hour is due is computed on the SERVICE clock; ``claim_slot`` runs each hour once across instances.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from allot.guardrails.adapters import postgres as db
from allot.guardrails.metrics import show_kill_switches
from allot.runtime.logging import get_logger
from allot.runtime.schedule import claim_slot, slot_start
from allot.runtime.service import ServiceContext

log = get_logger(__name__)

PRUNE_INTERVAL_S = 3600
#: Real seconds between two looks at whether this hour's pruning is due.
PRUNE_POLL_S = 60.0
#: Longest net-change window (WorkspaceLimits.net_change_window_h ≤ 744) and rate-limit window (≤ 86 400 s).
MAX_CHANGE_WINDOW = timedelta(hours=744)
MAX_MANUAL_WINDOW = timedelta(seconds=86_400)
#: Real seconds between two reads of the kill switches for the gauge (a switch flipped here shows at once).
KILL_SWITCH_POLL_S = 15.0


async def watch_kill_switches(ctx: ServiceContext) -> None:
    """Keep ``allot_guardrail_kill_switches_on`` current: another replica may have flipped a switch."""
    while True:
        async with ctx.pool.acquire() as conn:
            show_kill_switches(await db.kill_switches_on(conn))
        await asyncio.sleep(KILL_SWITCH_POLL_S)


async def prune_history(ctx: ServiceContext) -> None:
    while True:
        now = ctx.clock.now()
        async with ctx.pool.acquire() as conn, conn.transaction():
            if await claim_slot(conn, "guardrails.prune_history", slot_start(now, PRUNE_INTERVAL_S),
                                ctx.instance_id):
                changes, manual = await db.prune_history(conn, changes_before=now - MAX_CHANGE_WINDOW,
                                                         manual_before=now - MAX_MANUAL_WINDOW)
                log.info("guardrail_history_pruned", entity_changes=changes, manual_requests=manual)
        await asyncio.sleep(PRUNE_POLL_S)
