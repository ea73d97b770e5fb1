"""From a plan to the change set a pool requests (pure): deterministic ids, absolute actions, outcome roll-up."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from allot.contracts.payloads import EntityType, Platform
from allot.pools.domain.models import AllocationPlan

__all__ = [
    "ActionTarget",
    "PlannedAction",
    "action_id_for",
    "allocation_status",
    "manual_key",
    "planned_actions",
    "request_id_for",
    "scheduled_key",
]

SUCCESS_OUTCOMES = frozenset({"succeeded", "already_applied"})


def manual_key(pool_id: uuid.UUID, now: datetime) -> tuple[str, str]:
    """(idempotency key, slot label) of a manual allocation: one per pool per UTC day."""
    day = now.astimezone(UTC).date().isoformat()
    return f"pool:{pool_id}:{day}", day


def scheduled_key(pool_id: uuid.UUID, slot_start: datetime) -> tuple[str, str]:
    """(idempotency key, slot label) of the scheduled allocation of ``slot_start``."""
    iso = slot_start.isoformat()
    return f"pool:{pool_id}:{iso}", iso


def request_id_for(pool_id: uuid.UUID, idempotency_key: str) -> uuid.UUID:
    """The change set's id: deterministic in the pool and its idempotency key."""
    return uuid.uuid5(pool_id, f"request/{idempotency_key}")


def action_id_for(pool_id: uuid.UUID, slot: str, member_id: str) -> uuid.UUID:
    """uuid5(pool_id, slot/member): the executor's ledger key for one member's change in one slot."""
    return uuid.uuid5(pool_id, f"{slot}/{member_id}")


@dataclass(frozen=True, slots=True)
class ActionTarget:
    """Where a member's budget lives on the platform."""

    platform: Platform
    ad_account_id: str
    entity_type: EntityType
    entity_id: str
    currency: str


@dataclass(frozen=True, slots=True)
class PlannedAction:
    """One absolute budget change of a pool's change set."""

    action_id: uuid.UUID
    member_id: str
    target: ActionTarget
    from_cents: int
    to_cents: int
    reason: str


def planned_actions(
    plan: AllocationPlan, targets: Mapping[str, ActionTarget], *, pool_id: uuid.UUID, slot: str
) -> list[PlannedAction]:
    """set_budget actions for the members whose budget changes (none when the plan is frozen).

    ``from_cents`` is the member's current budget as last reported (the plan's previous budget),
    ``to_cents`` the plan's new budget; members without a target are skipped.
    """
    if plan.frozen:
        return []
    out = []
    for a in plan.changes:
        target = targets.get(a.member_id)
        if target is None or a.action == "excluded":
            continue
        reason = a.reasons[0] if a.reasons else a.action
        out.append(
            PlannedAction(
                action_id_for(pool_id, slot, a.member_id),
                a.member_id,
                target,
                a.previous_budget_cents,
                a.new_budget_cents,
                f"pool {pool_id}: {reason}"[:500],
            )
        )
    return out


def allocation_status(action_count: int, outcomes: Sequence[str]) -> str:
    """Roll executed outcomes up: executing (some missing), executed, partially_failed or failed."""
    if len(outcomes) < action_count:
        return "executing"
    ok = sum(o in SUCCESS_OUTCOMES for o in outcomes)
    if ok == len(outcomes):
        return "executed"
    return "partially_failed" if ok else "failed"
