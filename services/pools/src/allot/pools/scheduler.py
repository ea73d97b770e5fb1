"""Background work: the allocation worker (queued async allocations) and the pool scheduler.

Both poll in REAL time: the service clock may be a ``ManualClock`` (tests) whose ``sleep`` moves time
forward, so sleeping on it would make time run away. Due work is computed on the SERVICE clock.

- Worker: every ``pools_worker_interval_s`` (or at once when the API wakes it) it takes the oldest
  queued allocation with ``FOR UPDATE SKIP LOCKED`` and plans it (``workflow.run_allocation``) in that
  transaction: N instances never plan one allocation twice, and a crash rolls back to queued.
- Scheduler: every ``pools_scan_interval_s`` it asks Postgres which active pools have not run their
  current slot (epoch-aligned at the pool's frequency on the service clock; a pool's first slot is the
  first one starting at/after its creation), and runs each in its own transaction that claims
  ``(f"pool:{id}", slot_start)`` in ``schedule_claims``, queues the allocation under the idempotency key
  ``pool:{id}:{slot_iso}`` and plans it at once.  Nothing runs while AI-native features are disabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime
from typing import Any

from allot.pools import workflow
from allot.pools.adapters import postgres as db
from allot.pools.domain.changeset import scheduled_key
from allot.pools.settings import PoolsSettings
from allot.pools.workflow import AllocationWake, emitter, observe
from allot.runtime.deps import need, settings_of
from allot.runtime.logging import get_logger
from allot.runtime.schedule import claim_slot
from allot.runtime.service import ServiceContext

log = get_logger(__name__)


async def run_queued(ctx: ServiceContext, *, limit: int = 1000) -> int:
    """Plan queued allocations one per transaction until none is left; returns how many ran here."""
    ran = 0
    history_days = settings_of(ctx, PoolsSettings).pools_history_days
    for _ in range(limit):
        async with ctx.pool.acquire() as conn, conn.transaction():
            alloc = await db.claim_queued(conn)
            if alloc is None:
                break
            result = await workflow.run_allocation(
                conn, emitter(ctx), alloc, now=ctx.clock.now(), history_days=history_days
            )
        observe(result)
        if result.emitted:
            ctx.flush()
        ran += 1
    return ran


async def allocation_worker(ctx: ServiceContext) -> None:
    """Background task: plan queued allocations; wake on the API's signal or every pools_worker_interval_s."""
    settings = settings_of(ctx, PoolsSettings)
    if not settings.pools_worker_enabled:
        log.info("pool_worker_disabled")
        return
    wake = need(ctx, AllocationWake)
    while True:
        try:
            await run_queued(ctx)
        except Exception as exc:  # noqa: BLE001 - keep serving; the row stays queued and is retried
            log.error("pool_worker_failed", error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=settings.pools_worker_interval_s)
        wake.clear()


async def run_slot(ctx: ServiceContext, pool_id: uuid.UUID, slot: datetime) -> workflow.RunResult | None:
    """Run one pool's scheduled allocation for ``slot`` (once across instances)."""
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await claim_slot(conn, f"pool:{pool_id}", slot, ctx.instance_id):
            return None
        pool = await db.lock_pool(conn, pool_id)
        await db.set_scheduled_slot(conn, pool_id, slot)
        if pool is None or pool.deleted_at is not None or pool.status != "active":
            return None
        members = await db.members_of(conn, [pool_id], active_only=True)
        key, label = scheduled_key(pool_id, slot)
        alloc, created = await workflow.queue_allocation(
            conn, pool, members, trigger="scheduled", key=key, slot=label, requested_by="pools-scheduler", now=now
        )
        if not created:
            return None
        history_days = settings_of(ctx, PoolsSettings).pools_history_days
        result = await workflow.run_allocation(
            conn, emitter(ctx), alloc, now=now, history_days=history_days, locked_pool=pool
        )
    observe(result)
    if result.emitted:
        ctx.flush()
    return result


async def run_due_pools(ctx: ServiceContext) -> int:
    """Run every pool whose current slot is due; returns how many allocations ran here."""
    settings = settings_of(ctx, PoolsSettings)
    ran = 0
    seen: set[tuple[Any, Any]] = set()
    for _ in range(100):
        async with ctx.pool.acquire() as conn:
            due = [
                r
                for r in await db.due_pools(conn, ctx.clock.now(), settings.pools_scan_batch)
                if (r.pool_id, r.slot) not in seen
            ]
        if not due:
            break
        for r in due:
            seen.add((r.pool_id, r.slot))
            try:
                ran += await run_slot(ctx, r.pool_id, r.slot) is not None
            except Exception as exc:  # noqa: BLE001 - one broken pool must not stop the others
                log.error(
                    "pool_schedule_failed", pool_id=str(r.pool_id), slot=r.slot.isoformat(), error=repr(exc)
                )
        if len(due) < settings.pools_scan_batch:
            break
    return ran


async def pool_scheduler(ctx: ServiceContext) -> None:
    """Background task: run due pools, then wait pools_scan_interval_s real seconds; forever."""
    settings = settings_of(ctx, PoolsSettings)
    if not settings.pools_scheduler_enabled:
        log.info("pool_scheduler_disabled")
        return
    while True:
        if settings.ai_native_enabled:
            await run_due_pools(ctx)
        await asyncio.sleep(settings.pools_scan_interval_s)
