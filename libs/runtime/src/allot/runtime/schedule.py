"""Claiming scheduled work in Postgres so N instances run each (job, slot) exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from allot.runtime.db import Conn


def slot_start(now: datetime, interval_s: int) -> datetime:
    """Start of the fixed slot (aligned to the Unix epoch) that contains ``now``."""
    ts = int(now.timestamp())
    return datetime.fromtimestamp(ts - ts % interval_s, UTC)


def next_slot(now: datetime, interval_s: int) -> datetime:
    return slot_start(now, interval_s) + timedelta(seconds=interval_s)


async def claim_slot(conn: Conn, job: str, slot: datetime, claimed_by: str) -> bool:
    """True for exactly one caller per (job, slot), across every instance of the service."""
    row = await conn.fetchrow(
        "INSERT INTO schedule_claims (job, slot_start, claimed_by) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING RETURNING job", job, slot, claimed_by)
    return row is not None
