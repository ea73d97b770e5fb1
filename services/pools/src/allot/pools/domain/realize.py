"""Turning desired budget moves into integer budgets that satisfy every hard constraint.

Shared by the engine and the comparison policies so that all of them obey the
same rules: floors and ceilings, the per-change step limit (max_change_pct),
the minimum change, and an exact pool sum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from allot.pools.domain.estimate import kernels
from allot.pools.domain.models import MemberState, PoolSettings

__all__ = ["Bounds", "bounds_for", "largest_remainder", "realize_moves", "step_limit"]

_realize = kernels.realize_moves


@dataclass(frozen=True, slots=True)
class Bounds:
    """Effective floor and ceiling of one member, in cents."""

    lo: int
    hi: int


def bounds_for(member: MemberState, pool: PoolSettings) -> Bounds:
    """Member bounds, falling back to the pool defaults; the ceiling defaults to the whole pool budget and is never below the floor."""
    lo = member.min_budget_cents if member.min_budget_cents is not None else pool.default_min_budget_cents
    if member.max_budget_cents is not None:
        hi = member.max_budget_cents
    elif pool.default_max_budget_cents is not None:
        hi = pool.default_max_budget_cents
    else:
        hi = max(pool.daily_budget_cents, lo)
    return Bounds(lo=lo, hi=max(hi, lo))


def step_limit(current_cents: int, pool: PoolSettings) -> int:
    """Largest allowed single change: floor(max_change_pct% of the current budget); a member at zero may be started with one min-change step."""
    if current_cents <= 0:
        return pool.min_budget_change_cents
    return int(math.floor(current_cents * pool.max_change_pct / 100.0 + 1e-9))


def largest_remainder(shares: Sequence[float], total: int) -> list[int]:
    """Integers proportional to ``shares`` that sum exactly to ``total`` (Hamilton / largest-remainder; ties go to the lower index)."""
    s = float(sum(shares))
    if total <= 0 or s <= 0:
        out = [0] * len(shares)
        if shares and total > 0:
            out[0] = total
        return out
    raw = [x * total / s for x in shares]
    base = [int(math.floor(r)) for r in raw]
    rest = total - sum(base)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - base[i]), i))
    for i in order[:rest]:
        base[i] += 1
    return base


def realize_moves(
    current: Sequence[int],
    total: int,
    *,
    up_wanted: Sequence[int],
    down_wanted: Sequence[int],
    up_room: Sequence[int],
    down_room: Sequence[int],
    up_order: Sequence[int],
    down_order: Sequence[int],
    min_change: int,
) -> tuple[list[int], int]:
    """New integer budgets and the cents still missing to reach ``total`` (0 when exact).

    ``up_wanted``/``down_wanted`` are the moves members asked for (already
    within their rooms); ``up_room``/``down_room`` are what any member may move
    at most this plan (step limit and bounds; 0 for members that must not
    move). Wanted moves are placed first, in ``up_order``/``down_order``
    priority; balancing members are recruited from the same orders when the
    sum requires it. Guarantees: every change is 0 or at least ``min_change``
    and within the rooms; increases minus decreases equal ``total -
    sum(current)`` unless that is impossible (then the rest is returned and as
    much as possible of it is placed).
    """
    return _realize(
        list(current), total, list(up_wanted), list(down_wanted), list(up_room), list(down_room), list(up_order), list(down_order), min_change,
    )
