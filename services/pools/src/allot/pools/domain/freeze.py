"""When a plan starts a freeze, so that people hear about it once: a pool-wide freeze that begins with this plan,
or members the oscillation detector holds from this plan on (their budgets kept reversing direction).

A freeze that merely continues (the same ``frozen_until`` or ``held_until`` as in the state before the plan) is
not a start: a pool or member that stays frozen over several plans starts its freeze once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from allot.pools.domain.models import AllocationPlan, EngineState


@dataclass(frozen=True, slots=True)
class HeldMember:
    """A member the oscillation detector held in this plan, with the budget change that was its last move."""

    member_id: str
    previous_budget_cents: int
    new_budget_cents: int


@dataclass(frozen=True, slots=True)
class FreezeStart:
    """A freeze that starts with a plan: pool-wide (``reason`` says why) or of the ``held`` members."""

    until: datetime
    pool_wide: bool
    reason: str = ""
    held: tuple[HeldMember, ...] = ()


def _active(until: datetime | None, now: datetime) -> datetime | None:
    return until if until is not None and now < until else None


def freeze_started(before: EngineState, plan: AllocationPlan) -> FreezeStart | None:
    """The freeze ``plan`` starts, given the state it was planned from; None when it starts none (no freeze, or
    one that was already active before it)."""
    now = plan.planned_at
    after = plan.state
    until = _active(after.frozen_until, now)
    if plan.frozen and until is not None and until != _active(before.frozen_until, now):
        return FreezeStart(until=until, pool_wide=True, reason=plan.frozen_reason or "")
    held: list[HeldMember] = []
    hold_until: datetime | None = None
    for line in plan.allocations:
        mem = after.members.get(line.member_id)
        held_until = None if mem is None else _active(mem.held_until, now)
        if held_until is None or held_until == before.memory(line.member_id).held_until:
            continue
        held.append(HeldMember(line.member_id, line.previous_budget_cents, line.new_budget_cents))
        hold_until = held_until if hold_until is None else max(hold_until, held_until)
    if hold_until is None:
        return None
    return FreezeStart(until=hold_until, pool_wide=False, held=tuple(held))
