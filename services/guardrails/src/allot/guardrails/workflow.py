"""The guardrails' application layer: load from the adapters → call the pure domain → record and emit.

The consumers (``handlers.py``), the routes (``api.py``) and the timers (``scheduler.py``) call these and do no
more than parse what they were given and render what comes back.

- ``decide_change_sets``: each change set of a batch in order (each sees the ledger writes of the ones before it),
  one decision recorded and one event emitted per change set (and, beside a block, its notification.requested:
  ``domain.notices``).
- ``release_expired``: an approval reported ``expired`` gives back what its decision had reserved, once.
- ``replace_memberships``: a pool's announced membership replaces what was held (an older version changes nothing).
- ``change_limits``: read-modify-write of a workspace's limits under its lock, audited; no diff, nothing written.
- ``dry_run``: the whole check chain on a proposed change set, now, in a read-only transaction.
- ``prune_if_due`` / ``refresh_kill_switch_gauge``: the hourly pruning (once across instances) and the gauge.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson

from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.payloads import ActionExecuted, AllocationRequested, PoolMembersChanged
from allot.contracts.registry import TOPICS
from allot.guardrails.adapters import postgres as db
from allot.guardrails.domain import (
    Decision,
    WorkspaceLimits,
    blocked_event,
    decide,
    diff_settings,
    ledger_zone,
    release_of,
    signed_approval,
)
from allot.guardrails.domain.notices import block_notifications
from allot.guardrails.domain.patch import added_accounts
from allot.guardrails.metrics import DECISIONS, show_kill_switches
from allot.runtime.accounts import AccountDirectory, account_refusals
from allot.runtime.auth import Principal
from allot.runtime.clock import Clock
from allot.runtime.consumer import PoisonEvent
from allot.runtime.db import Conn
from allot.runtime.logging import get_logger
from allot.runtime.schedule import claim_slot, slot_start
from allot.runtime.service import ServiceContext
from allot.runtime.settings import ApprovalKeys

log = get_logger(__name__)

Emit = Callable[..., None]

#: Decision ids already counted in the metric: a batch retried after a rollback re-derives the same ids
#: and must not count them again (bounded, so memory stays flat).
_COUNTED: OrderedDict[Any, None] = OrderedDict()
_COUNTED_MAX = 50_000

PRUNE_INTERVAL_S = 3600
#: Longest net-change window (WorkspaceLimits.net_change_window_h ≤ 744) and rate-limit window (≤ 86 400 s).
MAX_CHANGE_WINDOW = timedelta(hours=744)
MAX_MANUAL_WINDOW = timedelta(seconds=86_400)


def _count(decision: Decision) -> None:
    if decision.replayed or decision.decision_id in _COUNTED:
        return
    _COUNTED[decision.decision_id] = None
    if len(_COUNTED) > _COUNTED_MAX:
        _COUNTED.popitem(last=False)
    DECISIONS.labels(decision.check or "none", decision.status).inc()


async def decide_change_sets(conn: Conn, events: Sequence[Envelope[AllocationRequested]], *, clock: Clock,
                             keys: ApprovalKeys, accounts: AccountDirectory, emit: Emit) -> None:
    """Decide every change set in order; each sees the ledger writes of the ones before it."""
    await db.lock_workspaces_for_decisions(conn, [e.workspace_id for e in events])
    for event in events:
        request: AllocationRequested = event.payload
        ws = event.workspace_id
        # Read per event (not per batch): a kill switch committed mid-batch applies to the next event.
        limits = await db.load_limits(conn, ws)
        now = clock.now()
        zone = ledger_zone([accounts.zone_for(ws, a.platform, a.ad_account_id) for a in request.actions])
        facts = await db.load_facts(conn, ws, request, limits, now=now, zone=zone)
        existing = facts.existing_decision
        if existing is not None and existing.source_id != request.source_id:
            raise PoisonEvent(event.event_id, (
                f"idempotency key {request.idempotency_key!r} of source {request.source} was already used today by "
                f"{existing.source} {existing.source_id} (request {existing.request_id}), not {request.source_id}"))
        decision = decide(request, limits, facts, now=now, zone=zone)
        if decision.approved:
            topic = "guardrail.approved"
            payload: Any = signed_approval(decision, request, ws, keys.current, key_id=keys.current_id)
        else:
            topic = "guardrail.blocked"
            payload = blocked_event(decision, request)
        envelope = new_envelope(event_type=topic, schema_version=TOPICS[topic].schema_version, payload=payload,
                                producer="guardrails", workspace_id=ws, occurred_at=now, cause=event,
                                step="decision")
        await db.record_decision(conn, ws, decision, request, event_id=envelope.event_id, now=now)
        emit(envelope, *([] if decision.approved else block_notifications(envelope)))
        _count(decision)
        log.info("guardrail_decision", workspace_id=ws, request_id=str(request.request_id),
                 decision_id=str(decision.decision_id), source=request.source, source_id=request.source_id,
                 status=decision.status, check=decision.check, observe_only=decision.observe_only,
                 replayed=decision.replayed, exposure_eur_cents=decision.exposure_eur_cents)


async def release_expired(conn: Conn, events: Sequence[Envelope[ActionExecuted]], *, clock: Clock) -> None:
    """Release what each ``expired`` approval's decision had reserved (once per decision); other outcomes pass."""
    expired = [e for e in events if e.payload.outcome == "expired"]
    if not expired:
        return
    await db.lock_workspaces_for_decisions(conn, [e.workspace_id for e in expired])
    now = clock.now()
    for event in expired:
        p: ActionExecuted = event.payload
        decision = await db.approved_decision(conn, event.workspace_id, p.decision_id)
        release = None if decision is None else release_of(decision, now=now)
        if release is None:
            log.warning("guardrail_release_refused", reason="unknown, not approved or not yet expired",
                        workspace_id=event.workspace_id,
                        decision_id=str(p.decision_id), action_id=str(p.action_id))
            continue
        if await db.release(conn, event.workspace_id, release, reason=p.error or "expired", now=now):
            log.info("guardrail_reservation_released", workspace_id=event.workspace_id,
                     decision_id=str(p.decision_id), eur_cents=release.ledger.eur_cents, reason=p.error)


async def replace_memberships(conn: Conn, events: Sequence[Envelope[PoolMembersChanged]], *, clock: Clock) -> None:
    """Replace each pool's membership with its announced state, in order; an older version changes nothing."""
    for event in events:
        p: PoolMembersChanged = event.payload
        if p.workspace_id != event.workspace_id:
            raise PoisonEvent(event.event_id, f"pool {p.pool_id}'s workspace {p.workspace_id!r} is not the "
                                              f"envelope's {event.workspace_id!r}")
        change = await db.replace_pool_membership(conn, event.workspace_id, p, now=clock.now())
        log.info("guardrail_pool_membership", workspace_id=event.workspace_id, pool_id=p.pool_id, version=p.version,
                 deleted=p.deleted, applied=change.applied, members=len(change.take), released=len(change.release))


class LimitsRefused(Exception):
    """Limits that cannot be stored (``nul``: a field holding U+0000, which jsonb cannot store) or that name ad
    accounts this workspace may not reference (``accounts``); ``refusals`` are (field, reason)."""

    def __init__(self, kind: str, refusals: list[tuple[str, str]]) -> None:
        super().__init__(f"{kind}: {refusals}")
        self.kind = kind
        self.refusals = refusals


@dataclass(frozen=True)
class LimitsChange:
    """The limits now in force, their stored row (None while the defaults apply) and the fields changed."""

    limits: WorkspaceLimits
    row: asyncpg.Record | None
    changed: list[str]


def _refuse_nul(limits: WorkspaceLimits) -> None:
    for name, value in limits.model_dump(mode="json").items():
        if b"\\u0000" in orjson.dumps(value):
            raise LimitsRefused("nul", [(name, "must not contain NUL (U+0000) characters")])


async def _refuse_foreign_accounts(ctx: ServiceContext, conn: Conn, workspace_id: str, before: WorkspaceLimits,
                                   after: WorkspaceLimits, fields: dict[str, str]) -> None:
    """An ad account newly named that this workspace may not reference: one another workspace has connected, or
    (require_connected_accounts) any not connected to this one."""
    refs = [(fields.get(name, name), None, account) for name, account in added_accounts(before, after)]
    refusals = await account_refusals(ctx.extra, conn, workspace_id, refs,
                                      strict=ctx.settings.require_connected_accounts)
    if refusals:
        raise LimitsRefused("accounts", refusals)


async def change_limits(ctx: ServiceContext, principal: Principal, action: str,
                        change: Callable[[WorkspaceLimits], WorkspaceLimits], *,
                        fields: dict[str, str] | None = None) -> LimitsChange:
    """Read-modify-write the limits under a per-workspace lock; audit the diff; no diff = nothing written.
    ``fields`` renames a limits field in refusals (the kill switch's ``ad_account_id``); LimitsRefused."""
    now = ctx.clock.now()
    ws = principal.workspace_id
    async with ctx.pool.acquire() as conn, conn.transaction():
        await db.lock_workspace_limits(conn, ws)
        before = await db.load_limits(conn, ws)
        after = change(before)
        _refuse_nul(after)
        await _refuse_foreign_accounts(ctx, conn, ws, before, after, fields or {})
        changes = diff_settings(before, after)
        if changes:
            await db.save_limits(conn, ws, after, key_id=principal.key_id, role=principal.role, action=action,
                                 changes=changes, now=now)
            log.info("guardrail_limits_changed", workspace_id=ws, key_id=principal.key_id, action=action,
                     fields=sorted(changes))
        row = await db.load_limits_row(conn, ws)
        switched = "kill_switch" in changes or "killed_ad_accounts" in changes
    if switched:  # after the commit: the gauge shows what is now in force
        await refresh_kill_switch_gauge(ctx.pool)
    return LimitsChange(limits=after, row=row, changed=sorted(changes))


async def dry_run(ctx: ServiceContext, workspace_id: str, request: AllocationRequested, *,
                  accounts: AccountDirectory) -> tuple[Decision, datetime]:
    """The decision the guardrails would take on ``request`` now, and that now; nothing recorded or reserved."""
    zone = ledger_zone([accounts.zone_for(workspace_id, a.platform, a.ad_account_id) for a in request.actions])
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn, conn.transaction(readonly=True):
        limits = await db.load_limits(conn, workspace_id)
        facts = await db.load_facts(conn, workspace_id, request, limits, now=now, zone=zone)
    return decide(request, limits, facts, now=now, zone=zone), now


async def refresh_kill_switch_gauge(pool: asyncpg.Pool) -> None:
    """Set ``allot_guardrail_kill_switches_on`` from the database (another replica may have flipped a switch)."""
    async with pool.acquire() as conn:
        show_kill_switches(await db.kill_switches_on(conn))


async def prune_if_due(pool: asyncpg.Pool, *, now: datetime, instance_id: str) -> None:
    """Prune history rows no window can reach any more, when this hour's pruning is not yet claimed."""
    async with pool.acquire() as conn, conn.transaction():
        if await claim_slot(conn, "guardrails.prune_history", slot_start(now, PRUNE_INTERVAL_S), instance_id):
            changes, manual = await db.prune_history(conn, changes_before=now - MAX_CHANGE_WINDOW,
                                                     manual_before=now - MAX_MANUAL_WINDOW)
            log.info("guardrail_history_pruned", entity_changes=changes, manual_requests=manual)
