"""Cross-field validation of a pool's configuration (pure): bounds, floors against the budget, member count."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MAX_ACTIVE_MEMBERS", "MemberBounds", "Problem", "config_problems"]

MAX_ACTIVE_MEMBERS = 20


@dataclass(frozen=True, slots=True)
class MemberBounds:
    """What validation needs of one member; ``field`` is how the API names it (e.g. ``members.3``)."""

    field: str
    entity_id: str
    min_budget_cents: int | None
    max_budget_cents: int | None
    is_active: bool = True


@dataclass(frozen=True, slots=True)
class Problem:
    """One refusal: the offending field (API name) and a message with the numbers."""

    field: str
    message: str


def config_problems(
    *,
    daily_budget_cents: int,
    default_min_budget_cents: int,
    default_max_budget_cents: int | None,
    members: Sequence[MemberBounds],
    budget_field: str = "dailyBudgetCents",
    members_field: str = "members",
    max_active_members: int = MAX_ACTIVE_MEMBERS,
) -> list[Problem]:
    """Every problem of a (whole) pool configuration; empty when it is valid.

    Checks: pool default floor <= default ceiling; each member's effective floor (its own or the pool
    default) <= its effective ceiling; at most ``max_active_members`` active members; no entity twice;
    active members' floors sum to at most the daily budget.
    """
    out: list[Problem] = []
    if default_max_budget_cents is not None and default_max_budget_cents < default_min_budget_cents:
        out.append(
            Problem(
                "defaultMaxBudgetCents",
                (
                    f"default ceiling {default_max_budget_cents} cents is below the default floor "
                    f"{default_min_budget_cents} cents"
                ),
            )
        )
    seen: dict[str, str] = {}
    floors = 0
    active = 0
    for mb in members:
        if mb.entity_id in seen:
            out.append(
                Problem(f"{mb.field}.entityId", f"entity {mb.entity_id} is already a member ({seen[mb.entity_id]})")
            )
            continue
        seen[mb.entity_id] = mb.field
        lo = mb.min_budget_cents if mb.min_budget_cents is not None else default_min_budget_cents
        hi = mb.max_budget_cents if mb.max_budget_cents is not None else default_max_budget_cents
        if hi is not None and lo > hi:
            which = "minBudgetCents" if mb.min_budget_cents is not None else "maxBudgetCents"
            out.append(
                Problem(
                    f"{mb.field}.{which}", (f"member {mb.entity_id}: floor {lo} cents is above its ceiling {hi} cents")
                )
            )
        if mb.is_active:
            active += 1
            floors += lo
            if active == max_active_members + 1:
                out.append(
                    Problem(
                        members_field,
                        (
                            f"a pool has at most {max_active_members} active members; {mb.entity_id} would be number "
                            f"{active}"
                        ),
                    )
                )
    if floors > daily_budget_cents:
        out.append(
            Problem(
                budget_field,
                (
                    f"active members' floors (minBudgetCents) sum to {floors} cents, above the pool's daily budget of "
                    f"{daily_budget_cents} cents"
                ),
            )
        )
    return out
