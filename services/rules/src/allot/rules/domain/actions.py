"""Action planning: turn a rule's actions into absolute, clamped changes for one entity.

Budget arithmetic is exact: ``to = from × (100 ± pct) / 100`` in ``Decimal``,
rounded half-even to a whole cent (the unit every platform adapter receives;
any coarser platform rounding is the executor's concern) — except that a
change never exceeds ``budget_change_limit_pct``: if half-even rounding would
cross the limit, the result is rounded toward the current budget instead. Limits are applied
in this order, each recorded as a :class:`Clamp` when it shortens the change:

1. ``budget_change_limit_pct``: the percentage is cut to the limit;
2. increases: ``budget_daily_cap_cents`` — never raised above the cap; an
   entity already at/above the cap is skipped (``at_daily_cap``);
3. decreases: the platform minimum daily budget — never lowered below it; an
   entity already at/below it is skipped (``at_platform_minimum``).

Platform minimums are in the account's currency and the platform's units of it
(``allot.contracts.currencies.min_budget_minor``): the seed's dollar figures —
Google $1, TikTok $50 per campaign and $20 per ad group/ad, every other
platform $2 — converted, so USD/EUR on Meta 200, JPY 300, HUF 700. An entity
whose currency has no known minimum is skipped (``unknown_currency``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Final, Literal

from allot.contracts.currencies import UnknownCurrency, min_budget_minor
from allot.contracts.platforms import DEFAULT_MIN_BUDGET_CENTS
from allot.rules.domain.entities import Entity
from allot.rules.domain.models import (
    META_ONLY_ACTIONS,
    Action,
    ActionType,
    DecreaseBudgetAction,
    IncreaseBudgetAction,
    Protections,
    RelaunchAction,
)
from allot.rules.domain.reasons import Clamp, SkipReason

DEFAULT_MIN_DAILY_BUDGET_CENTS: Final[int] = DEFAULT_MIN_BUDGET_CENTS


def platform_min_daily_budget_cents(platform: str, entity_level: str, currency: str = "USD") -> int:
    """Smallest daily budget the platform accepts for an entity of ``entity_level``, in the platform's units
    of ``currency`` (raises :class:`~allot.contracts.currencies.UnknownCurrency` for an unknown one)."""
    return min_budget_minor(platform, entity_level, currency)


@dataclass(frozen=True, slots=True)
class PlannedAction:
    """An absolute change for one entity: status from → to, or budget from_cents → to_cents."""

    type: ActionType
    entity_id: str
    from_cents: int | None = None
    to_cents: int | None = None
    currency: str | None = None
    requested_pct: float | None = None
    applied_pct: float | None = None
    clamps: tuple[Clamp, ...] = ()
    from_status: str | None = None
    to_status: str | None = None
    creative_id: str | None = None


@dataclass(frozen=True, slots=True)
class ActionSkip:
    """An action that will not be issued for this entity, with a stable reason code."""

    type: ActionType
    reason: SkipReason
    detail: str


@dataclass(frozen=True, slots=True)
class BudgetPlan:
    """Result of :func:`plan_budget_change` when a change remains after clamping."""

    from_cents: int
    to_cents: int
    applied_pct: float
    clamps: tuple[Clamp, ...]


@lru_cache(maxsize=1024)
def _decimal(value: float) -> Decimal:
    # Through str so 33.3 means 33.3, not its binary approximation; a handful of distinct pcts per run.
    return Decimal(str(value))


def _round_cents(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def plan_budget_change(
    *,
    direction: Literal["increase", "decrease"],
    from_cents: int,
    pct: float,
    change_limit_pct: float,
    daily_cap_cents: int | None,
    minimum_cents: int,
) -> BudgetPlan | tuple[SkipReason, str]:
    """The clamped absolute target for a percentage change, or ``(reason, detail)`` if nothing should change."""
    clamps: list[Clamp] = []
    effective = _decimal(pct)
    limit = _decimal(change_limit_pct)
    if effective > limit:
        effective = limit
        clamps.append(Clamp.BUDGET_CHANGE_LIMIT)
    sign = 1 if direction == "increase" else -1
    to_cents = _round_cents(Decimal(from_cents) * (Decimal(100) + sign * effective) / Decimal(100))
    if abs(to_cents - from_cents) * 100 > limit * from_cents:
        to_cents -= sign  # half-even rounded past the limit: round toward the current budget instead

    if direction == "increase" and daily_cap_cents is not None:
        if from_cents >= daily_cap_cents:
            return SkipReason.AT_DAILY_CAP, f"daily budget {from_cents} is at or above the cap {daily_cap_cents}"
        if to_cents > daily_cap_cents:
            to_cents = daily_cap_cents
            clamps.append(Clamp.BUDGET_DAILY_CAP)
    if direction == "decrease":
        if from_cents <= minimum_cents:
            return (
                SkipReason.AT_PLATFORM_MINIMUM,
                f"daily budget {from_cents} is at or below the platform minimum {minimum_cents}",
            )
        if to_cents < minimum_cents:
            to_cents = minimum_cents
            clamps.append(Clamp.PLATFORM_MINIMUM)
    if to_cents == from_cents:
        return SkipReason.NO_BUDGET_CHANGE, f"a {effective}% change of {from_cents} rounds to no change"
    applied = float((Decimal(to_cents - from_cents) * 100 / Decimal(from_cents)).quantize(Decimal("0.0001")))
    return BudgetPlan(from_cents=from_cents, to_cents=to_cents, applied_pct=applied, clamps=tuple(clamps))


def plan_action(action: Action, entity: Entity, protections: Protections) -> PlannedAction | ActionSkip:
    """The absolute change ``action`` makes to ``entity`` under ``protections``, or why it is skipped."""
    if action.type in META_ONLY_ACTIONS and entity.platform != "meta":
        return ActionSkip(
            action.type,
            SkipReason.ACTION_NOT_SUPPORTED_ON_PLATFORM,
            f"{action.type} is Meta-only; entity is on {entity.platform}",
        )
    if isinstance(action, (IncreaseBudgetAction, DecreaseBudgetAction)):
        if entity.daily_budget_cents is None:
            return ActionSkip(action.type, SkipReason.NO_DAILY_BUDGET, "entity has no daily budget of its own")
        try:
            minimum = platform_min_daily_budget_cents(entity.platform, entity.entity_level, entity.currency)
        except UnknownCurrency as exc:
            return ActionSkip(action.type, SkipReason.UNKNOWN_CURRENCY, str(exc))
        plan = plan_budget_change(
            direction="increase" if isinstance(action, IncreaseBudgetAction) else "decrease",
            from_cents=entity.daily_budget_cents,
            pct=action.pct,
            change_limit_pct=protections.budget_change_limit_pct,
            daily_cap_cents=protections.budget_daily_cap_cents,
            minimum_cents=minimum,
        )
        if isinstance(plan, tuple):
            return ActionSkip(action.type, plan[0], plan[1])
        return PlannedAction(
            type=action.type,
            entity_id=entity.entity_id,
            from_cents=plan.from_cents,
            to_cents=plan.to_cents,
            currency=entity.currency,
            requested_pct=action.pct,
            applied_pct=plan.applied_pct,
            clamps=plan.clamps,
        )
    if action.type in ("pause", "activate"):
        target = "paused" if action.type == "pause" else "active"
        if entity.status == target:
            return ActionSkip(action.type, SkipReason.ALREADY_IN_STATUS, f"entity is already {target}")
        return PlannedAction(type=action.type, entity_id=entity.entity_id, from_status=entity.status, to_status=target)
    if isinstance(action, RelaunchAction):
        return PlannedAction(type=action.type, entity_id=entity.entity_id, creative_id=action.creative_id)
    return PlannedAction(type=action.type, entity_id=entity.entity_id)
