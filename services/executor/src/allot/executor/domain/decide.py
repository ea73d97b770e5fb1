"""What the executor does with one approved action: pure, so every branch is unit-tested.

Budget writes are compare-and-set: the action carries the budget the requester saw (``from_cents``)
and the absolute target (``to_cents``). The executor reads the platform first and writes only if the
platform still shows ``from_cents``. If it already shows ``to_cents`` the change is in place (e.g. our
own write before a crash) and is never sent again.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from allot.contracts.payloads import BudgetAction

FAILURE_BACKOFF_COUNT = 5
FAILURE_BACKOFF_WINDOW = timedelta(hours=24)

PlanKind = Literal["write", "already_applied", "conflict", "rejected"]


@dataclass(frozen=True)
class Observed:
    """What the platform reports right now."""

    budget_cents: int | None
    status: str


@dataclass(frozen=True)
class EntityMemory:
    """What Allot last applied to an entity, and its failure streak."""

    last_budget_cents: int | None = None
    last_status: str | None = None
    consecutive_failures: int = 0
    first_failure_at: datetime | None = None


@dataclass(frozen=True)
class WritePlan:
    """The decision for one action: write, or report without calling the platform's write API."""

    kind: PlanKind
    reason: str = ""
    out_of_band: bool = False


_TARGET_STATUS = {"pause": "paused", "activate": "active"}


def plan_write(action: BudgetAction, observed: Observed, memory: EntityMemory, *, min_budget_cents: int) -> WritePlan:
    """Decide how to apply ``action`` given the platform's current state and what Allot last applied."""
    if action.action_type == "set_budget":
        assert action.to_cents is not None and action.from_cents is not None
        if action.to_cents < min_budget_cents:
            return WritePlan("rejected", f"to_cents {action.to_cents} is below the platform minimum "
                                         f"{min_budget_cents} for {action.platform} {action.entity_type}")
        if observed.budget_cents is None:
            return WritePlan("rejected", "entity has no daily budget of its own (budget lives on its parent)")
        if observed.budget_cents == action.to_cents:
            return WritePlan("already_applied", f"platform already shows {action.to_cents}")
        if observed.budget_cents != action.from_cents:
            oob = memory.last_budget_cents is not None and memory.last_budget_cents != observed.budget_cents
            who = (f"out-of-band edit: Allot last set {memory.last_budget_cents}, platform now shows "
                   f"{observed.budget_cents}" if oob else f"platform shows {observed.budget_cents}")
            return WritePlan("conflict", f"{who}, change expected {action.from_cents}", out_of_band=oob)
        return WritePlan("write")
    if action.action_type in _TARGET_STATUS:
        target = _TARGET_STATUS[action.action_type]
        if observed.status == "deleted":
            return WritePlan("rejected", "entity is deleted")
        if observed.status == target:
            return WritePlan("already_applied", f"platform already shows {target}")
        if memory.last_status is not None and memory.last_status != observed.status:
            return WritePlan("conflict", f"out-of-band edit: Allot last set {memory.last_status}, platform now "
                                         f"shows {observed.status}", out_of_band=True)
        return WritePlan("write")
    if action.action_type == "relaunch":
        if action.platform != "meta" and action.platform != "sandbox":
            return WritePlan("rejected", f"relaunch is Meta-only, not available on {action.platform}")
        return WritePlan("write")
    return WritePlan("rejected", f"unknown action_type {action.action_type!r}")


def entity_outside_account(action: BudgetAction, platform_account_id: str | None) -> str | None:
    """Why the entity may not be written for ``action``: the platform says it belongs to another ad account than
    the one the action names (and whose ownership was checked), or None (same account, or not reported)."""
    if platform_account_id is None:
        return None
    if platform_account_id.removeprefix("act_") == action.ad_account_id.removeprefix("act_"):
        return None
    return (f"entity {action.entity_id} belongs to ad account {platform_account_id} on {action.platform}, not to "
            f"{action.ad_account_id} named by the action")


def failure_backoff_active(memory: EntityMemory, now: datetime) -> bool:
    """True when the entity failed FAILURE_BACKOFF_COUNT times in a row within the last 24 h: stop trying it."""
    return (memory.consecutive_failures >= FAILURE_BACKOFF_COUNT and memory.first_failure_at is not None
            and now - memory.first_failure_at <= FAILURE_BACKOFF_WINDOW)


def backoff_delay_s(action_id: uuid.UUID, attempt: int, *, base_s: float = 1.0, cap_s: float = 60.0,
                    retry_after_s: float | None = None) -> float:
    """Exponential backoff with 'full jitter' that is deterministic per (action, attempt); honours Retry-After."""
    ceiling = min(cap_s, base_s * (2 ** max(0, attempt - 1)))
    digest = hashlib.sha256(f"{action_id}/{attempt}".encode()).digest()
    jitter = int.from_bytes(digest[:8], "big") / 2**64
    delay = ceiling / 2 + jitter * ceiling / 2
    return max(delay, retry_after_s or 0.0)


def inverse_action(action: BudgetAction, *, applied_before_cents: int | None, applied_after_cents: int | None,
                   undo_of: uuid.UUID) -> BudgetAction | None:
    """The change that reverts an executed action (None when it cannot be reverted, e.g. a relaunch)."""
    new_id = uuid.uuid5(undo_of, f"undo/{action.action_id}")
    if action.action_type == "set_budget" and applied_before_cents is not None and applied_after_cents is not None:
        return action.model_copy(update={"action_id": new_id, "from_cents": applied_after_cents,
                                         "to_cents": applied_before_cents, "reason": f"undo of {action.action_id}"})
    if action.action_type in ("pause", "activate"):
        flipped = "activate" if action.action_type == "pause" else "pause"
        return action.model_copy(update={"action_id": new_id, "action_type": flipped,
                                         "reason": f"undo of {action.action_id}"})
    return None
