"""Consumes allocation.requested: decide each change set (in order), record it, emit exactly one decision event
(and, beside a block, the notification.requested telling people about it: domain.notices).
Consumes action.executed: an approval reported ``expired`` gives back what its decision had reserved.
Consumes account.profiled (allot.runtime.accounts): the accounts' time zones, so caps count local days.
Consumes pool.members_changed: replaces the pool's membership (who owns which budget) with the announced state."""

from __future__ import annotations

from allot.contracts.envelope import Envelope
from allot.contracts.payloads import ActionExecuted, AllocationRequested, PoolMembersChanged
from allot.guardrails import workflow
from allot.runtime.accounts import directory_of
from allot.runtime.consumer import BatchContext
from allot.runtime.deps import settings_of
from allot.runtime.settings import Settings


async def on_allocation_requested(ctx: BatchContext, events: list[Envelope[AllocationRequested]]) -> None:
    """Decide every change set of the batch in order; each sees the ledger writes of the ones before it."""
    keys = settings_of(ctx, Settings).approval_keys()
    await workflow.decide_change_sets(ctx.conn, events, clock=ctx.clock, keys=keys, accounts=directory_of(ctx.extra),
                                      emit=ctx.emit)


async def on_action_executed(ctx: BatchContext, events: list[Envelope[ActionExecuted]]) -> None:
    """An approval's actions reported ``expired``: release what its decision had reserved (once per decision)."""
    await workflow.release_expired(ctx.conn, events, clock=ctx.clock)


async def on_pool_members_changed(ctx: BatchContext, events: list[Envelope[PoolMembersChanged]]) -> None:
    """Replace each pool's membership with its announced state, in order; an older version changes nothing."""
    await workflow.replace_memberships(ctx.conn, events, clock=ctx.clock)
