"""The snapshot scheduler: every plan's current slot is snapshotted once across all instances.

Why it polls in real time: the service clock may be a ``ManualClock`` (tests) whose ``sleep`` moves
time forward, so sleeping on it would make time run away.  The task therefore wakes every
``pacing_scan_interval_s`` REAL seconds and asks Postgres which plans have a slot (on the service
clock: real, simulated or manual) without a snapshot yet; that query is cheap (one indexed scan) and
each (plan, slot) is then claimed with ``schedule.claim_slot`` inside the snapshot transaction, so N
instances never double-snapshot and a crash rolls the claim back with the snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from allot.contracts.envelope import Envelope
from allot.pacing import workflow
from allot.pacing.adapters import postgres as db
from allot.pacing.metrics import DEVIATIONS, PROPOSALS, SNAPSHOTS_TAKEN, TRANSITIONS
from allot.pacing.settings import PacingSettings
from allot.runtime.accounts import directory_of
from allot.runtime.db import Conn
from allot.runtime.deps import settings_of
from allot.runtime.logging import get_logger
from allot.runtime.service import ServiceContext

log = get_logger(__name__)

Emit = Callable[[Conn, Sequence[Envelope[Any]]], Awaitable[None]]


def observe(result: workflow.SnapshotPass, trigger: str) -> None:
    """Count a committed pass in Prometheus."""
    if result.snapshot_ids:
        SNAPSHOTS_TAKEN.labels("pacing", trigger).inc(len(result.snapshot_ids))
    for level in result.deviations:
        DEVIATIONS.labels("pacing", level).inc()
    for status in result.proposal_statuses:
        PROPOSALS.labels("pacing", status).inc()
    for state in result.transitions:
        TRANSITIONS.labels("pacing", state).inc()


async def snapshot_due_plans(pool: asyncpg.Pool, emit: Emit, *, now: datetime, claimed_by: str,
                             batch: int, max_batches: int = 1000, zones: workflow.ZoneLookup | None = None) -> int:
    """Snapshot every plan whose slot is due at ``now``, ``batch`` plans per transaction; returns snapshots taken."""
    taken = 0
    for _ in range(max_batches):
        async with pool.acquire() as conn:
            due = await db.due_plans(conn, now, batch)
            if not due:
                break
            async with conn.transaction():
                result = await workflow.take_snapshots(conn, [(d.plan_id, d.slot) for d in due], now=now,
                                                       claimed_by=claimed_by, trigger="schedule", zones=zones)
                await emit(conn, result.envelopes)
        observe(result, "schedule")
        taken += len(result.snapshot_ids)
        if result.snapshot_ids or result.failed:
            log.info("pacing_snapshots_taken", count=len(result.snapshot_ids), failed=len(result.failed),
                     skipped=len(result.skipped), events=len(result.envelopes))
        if len(due) < batch:
            break
        if not result.snapshot_ids and not result.failed:
            break  # all claimed elsewhere: the other instance is on it
    return taken


async def snapshot_scheduler(ctx: ServiceContext) -> None:
    """Background task: take due snapshots, then wait ``pacing_scan_interval_s`` real seconds; forever."""
    settings = settings_of(ctx, PacingSettings)

    async def emit(conn: Conn, envelopes: Sequence[Envelope[Any]]) -> None:
        await ctx.emit(conn, *envelopes)

    while True:
        taken = await snapshot_due_plans(ctx.pool, emit, now=ctx.clock.now(), claimed_by=ctx.instance_id,
                                         batch=settings.pacing_scan_batch, zones=directory_of(ctx.extra).zone_for)
        if taken:
            ctx.flush()
        await asyncio.sleep(settings.pacing_scan_interval_s)
