"""pool.members_changed: the pool's FULL current membership, written to the outbox in the transaction that changed it.

Every membership change (a pool created with members, a member added, re-activated or removed, a pool deleted)
calls ``publish_membership`` inside its transaction, with the pool row locked: it bumps the pool's
``membership_version`` and emits one event listing every active member (none once the pool is deleted). The
guardrails replace their view of the pool with it, so the ownership rule ("a pool member's budget belongs to its
pool") holds from the moment a member joins, not from the pool's first allocation.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.payloads import PoolMemberRef, PoolMembersChanged
from allot.contracts.registry import TOPICS
from allot.pools.adapters import postgres as db
from allot.pools.domain.stored import StoredMember
from allot.runtime.db import Conn

if TYPE_CHECKING:  # workflow calls publish_membership
    from allot.pools.workflow import Emit

TOPIC = "pool.members_changed"


def members_changed_envelope(pool_id: uuid.UUID | str, workspace_id: str,
                             members: Sequence[StoredMember], *,
                             version: int, deleted: bool, now: datetime) -> Envelope[PoolMembersChanged]:
    """The event for this state of the pool (pure): its active members, in a stable order; none when deleted.

    The id is derived from the pool and the version, so building the same state twice gives the same event."""
    listed = [] if deleted else sorted((m for m in members if m.is_active), key=lambda m: m.entity_id)
    payload = PoolMembersChanged(
        pool_id=str(pool_id), workspace_id=workspace_id, deleted=deleted, version=version, changed_at=now,
        members=[PoolMemberRef(entity_id=m.entity_id, entity_type=m.entity_type,  # type: ignore[arg-type]
                               platform=m.platform, ad_account_id=m.ad_account_id)  # type: ignore[arg-type]
                 for m in listed],
    )
    return new_envelope(event_type=TOPIC, schema_version=TOPICS[TOPIC].schema_version, payload=payload,
                        producer="pools", workspace_id=workspace_id, occurred_at=now,
                        step=f"{TOPIC}/{pool_id}/{version}")


async def publish_membership(conn: Conn, emit: Emit, pool_id: uuid.UUID, workspace_id: str, *,
                             deleted: bool = False, now: datetime) -> None:
    """Bump the pool's membership version and emit its full membership, in the caller's transaction (the caller
    holds the pool row: a new pool's insert, or ``FOR UPDATE``), so versions follow commit order per pool."""
    version = await db.bump_membership_version(conn, pool_id)
    members = [] if deleted else await db.members_of(conn, [pool_id], active_only=True)
    await emit(conn, [members_changed_envelope(pool_id, workspace_id, members, version=version, deleted=deleted,
                                               now=now)])
