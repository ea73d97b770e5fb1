"""Background work: prune history rows no window can reach any more (once per hour across instances), and keep
the kill-switch gauge current (every instance, from the database).

Polls in REAL time, like the rules and pools schedulers: the service clock may be a ``ManualClock`` (tests)
whose ``sleep`` moves time forward, so sleeping on it would make the clock that dates every decision run away.
Which hour is due is computed on the SERVICE clock; ``claim_slot`` runs each hour once across instances.
"""

from __future__ import annotations

import asyncio

from allot.guardrails import workflow
from allot.runtime.service import ServiceContext

#: Real seconds between two looks at whether this hour's pruning is due.
PRUNE_POLL_S = 60.0
#: Real seconds between two reads of the kill switches for the gauge (a switch flipped here shows at once).
KILL_SWITCH_POLL_S = 15.0


async def watch_kill_switches(ctx: ServiceContext) -> None:
    """Keep ``allot_guardrail_kill_switches_on`` current: another replica may have flipped a switch."""
    while True:
        await workflow.refresh_kill_switch_gauge(ctx.pool)
        await asyncio.sleep(KILL_SWITCH_POLL_S)


async def prune_history(ctx: ServiceContext) -> None:
    while True:
        await workflow.prune_if_due(ctx.pool, now=ctx.clock.now(), instance_id=ctx.instance_id)
        await asyncio.sleep(PRUNE_POLL_S)
