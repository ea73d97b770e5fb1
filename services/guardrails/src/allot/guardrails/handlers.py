"""Consumes allocation.requested: decide each change set (in order), record it, emit exactly one decision event
(and, beside a block, the notification.requested telling people about it: domain.notices).
Consumes action.executed: an approval reported ``expired`` gives back what its decision had reserved.
Consumes account.profiled (allot.runtime.accounts): the accounts' time zones, so caps count local days.
Consumes pool.members_changed: replaces the pool's membership (who owns which budget) with the announced state."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.payloads import ActionExecuted, AllocationRequested, PoolMembersChanged
from allot.contracts.registry import TOPICS
from allot.guardrails.adapters import postgres as db
from allot.guardrails.domain import Decision, blocked_event, decide, ledger_zone, release_of, signed_approval
from allot.guardrails.domain.notices import block_notifications
from allot.guardrails.metrics import DECISIONS
from allot.runtime.accounts import directory_of
from allot.runtime.consumer import BatchContext, PoisonEvent
from allot.runtime.deps import settings_of
from allot.runtime.logging import get_logger
from allot.runtime.settings import Settings

log = get_logger(__name__)

#: Decision ids already counted in the metric: a batch retried after a rollback re-derives the same ids
#: and must not count them again (bounded, so memory stays flat).
_COUNTED: OrderedDict[Any, None] = OrderedDict()
_COUNTED_MAX = 50_000


def _count(decision: Decision) -> None:
    if decision.replayed or decision.decision_id in _COUNTED:
        return
    _COUNTED[decision.decision_id] = None
    if len(_COUNTED) > _COUNTED_MAX:
        _COUNTED.popitem(last=False)
    DECISIONS.labels(decision.check or "none", decision.status).inc()


async def on_allocation_requested(ctx: BatchContext, events: list[Envelope[AllocationRequested]]) -> None:
    """Decide every change set of the batch in order; each sees the ledger writes of the ones before it."""
    keys = settings_of(ctx, Settings).approval_keys()
    accounts = directory_of(ctx.extra)
    await db.lock_workspaces_for_decisions(ctx.conn, [e.workspace_id for e in events])
    for event in events:
        request: AllocationRequested = event.payload
        ws = event.workspace_id
        # Read per event (not per batch): a kill switch committed mid-batch applies to the next event.
        limits = await db.load_limits(ctx.conn, ws)
        now = ctx.clock.now()
        zone = ledger_zone([accounts.zone_for(ws, a.platform, a.ad_account_id) for a in request.actions])
        facts = await db.load_facts(ctx.conn, ws, request, limits, now=now, zone=zone)
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
        await db.record_decision(ctx.conn, ws, decision, request, event_id=envelope.event_id, now=now)
        ctx.emit(envelope, *([] if decision.approved else block_notifications(envelope)))
        _count(decision)
        log.info("guardrail_decision", workspace_id=ws, request_id=str(request.request_id),
                 decision_id=str(decision.decision_id), source=request.source, source_id=request.source_id,
                 status=decision.status, check=decision.check, observe_only=decision.observe_only,
                 replayed=decision.replayed, exposure_eur_cents=decision.exposure_eur_cents)


async def on_action_executed(ctx: BatchContext, events: list[Envelope[ActionExecuted]]) -> None:
    """An approval's actions reported ``expired``: release what its decision had reserved (once per decision)."""
    expired = [e for e in events if e.payload.outcome == "expired"]
    if not expired:
        return
    await db.lock_workspaces_for_decisions(ctx.conn, [e.workspace_id for e in expired])
    now = ctx.clock.now()
    for event in expired:
        p: ActionExecuted = event.payload
        decision = await db.approved_decision(ctx.conn, event.workspace_id, p.decision_id)
        release = None if decision is None else release_of(decision, now=now)
        if release is None:
            log.warning("guardrail_release_refused", reason="unknown, not approved or not yet expired",
                        workspace_id=event.workspace_id,
                        decision_id=str(p.decision_id), action_id=str(p.action_id))
            continue
        if await db.release(ctx.conn, event.workspace_id, release, reason=p.error or "expired", now=now):
            log.info("guardrail_reservation_released", workspace_id=event.workspace_id,
                     decision_id=str(p.decision_id), eur_cents=release.ledger.eur_cents, reason=p.error)


async def on_pool_members_changed(ctx: BatchContext, events: list[Envelope[PoolMembersChanged]]) -> None:
    """Replace each pool's membership with its announced state, in order; an older version changes nothing."""
    for event in events:
        p: PoolMembersChanged = event.payload
        if p.workspace_id != event.workspace_id:
            raise PoisonEvent(event.event_id, f"pool {p.pool_id}'s workspace {p.workspace_id!r} is not the "
                                              f"envelope's {event.workspace_id!r}")
        change = await db.replace_pool_membership(ctx.conn, event.workspace_id, p, now=ctx.clock.now())
        log.info("guardrail_pool_membership", workspace_id=event.workspace_id, pool_id=p.pool_id, version=p.version,
                 deleted=p.deleted, applied=change.applied, members=len(change.take), released=len(change.release))
