"""Turning desired budget moves into integer budgets that satisfy every hard constraint.

Shared by the engine and the comparison policies so that all of them obey the
same rules: floors and ceilings, the per-change step limit (max_change_pct),
the minimum change, and an exact pool sum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from allot.pools.domain.models import MemberState, PoolSettings

__all__ = ["Bounds", "bounds_for", "largest_remainder", "realize_moves", "step_limit"]

@dataclass(frozen=True, slots=True)
class Bounds:
    """Effective floor and ceiling of one member, in cents."""

    lo: int
    hi: int


def bounds_for(member: MemberState, pool: PoolSettings) -> Bounds:
    """Member bounds, falling back to the pool defaults; the ceiling defaults to the whole pool budget and is never
    below the floor."""
    lo = member.min_budget_cents if member.min_budget_cents is not None else pool.default_min_budget_cents
    if member.max_budget_cents is not None:
        hi = member.max_budget_cents
    elif pool.default_max_budget_cents is not None:
        hi = pool.default_max_budget_cents
    else:
        hi = max(pool.daily_budget_cents, lo)
    return Bounds(lo=lo, hi=max(hi, lo))


def step_limit(current_cents: int, pool: PoolSettings) -> int:
    """Largest allowed single change: floor(max_change_pct% of the current budget); a member at zero may be started
    with one min-change step."""
    if current_cents <= 0:
        return pool.min_budget_change_cents
    return int(math.floor(current_cents * pool.max_change_pct / 100.0 + 1e-9))


def largest_remainder(shares: Sequence[float], total: int) -> list[int]:
    """Integers proportional to ``shares`` that sum exactly to ``total`` (Hamilton / largest-remainder; ties go to the
    lower index)."""
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
        list(current), total, list(up_wanted), list(down_wanted), list(up_room), list(down_room), list(up_order),
        list(down_order), min_change,
    )


def fill(entries: list[tuple[int, int]], amount: int, min_change: int) -> tuple[dict[int, int], int]:
    """Greedily place ``amount`` over (index, capacity) entries in order, never giving anyone less than
    ``min_change``; returns takes and the unplaced rest.

    An index may appear twice (its wanted move first, its extra room later);
    the second entry only tops up what it already took.
    """
    takes: dict[int, int] = {}
    rem = amount
    for idx, cap in entries:
        if rem <= 0:
            break
        if cap <= 0:
            continue
        t = cap if cap < rem else rem
        if idx in takes:
            takes[idx] += t
            rem -= t
        elif t >= min_change:
            takes[idx] = t
            rem -= t
        elif t == rem:
            # A tail smaller than the minimum change can only join a member already moving.
            break
    if 0 < rem < min_change and takes:
        used = {i: 0 for i in takes}
        for idx, cap in entries:
            if idx in used:
                used[idx] += cap if cap > 0 else 0
        for j in takes:
            add = used[j] - takes[j]
            add = add if add < rem else rem
            if add > 0:
                takes[j] += add
                rem -= add
            if rem == 0:
                break
    if 0 < rem < min_change and takes:
        # Everyone moving is full: hand a fresh entry one minimum change and give back what that overshoots from
        # a take that stays at or above the minimum change (exact: the rest is placed, nobody moves below it).
        short = min_change - rem
        fresh = next((idx for idx, cap in entries if idx not in takes and cap >= min_change), None)
        donor = next((j for j, t in takes.items() if t - short >= min_change), None)
        if fresh is not None and donor is not None:
            takes[donor] -= short
            takes[fresh] = min_change
            rem = 0
    return takes, rem


def _realize(
    current: list[int], total: int, up_wanted: list[int], down_wanted: list[int], up_room: list[int],
    down_room: list[int], up_order: list[int], down_order: list[int], min_change: int,
) -> tuple[list[int], int]:
    """:func:`realize_moves` with positional arguments."""
    n = len(current)
    need = total - sum(current)
    want_up = sum(up_wanted)
    want_down = sum(down_wanted)
    # Both sides get what they asked for; the side that asked less is topped up by balancing members.
    inc = max(want_up, want_down + need, need, 0)
    dec = inc - need

    up_entries = [(i, up_wanted[i]) for i in up_order if up_wanted[i] > 0]
    up_entries += [(i, up_room[i]) for i in up_order if up_wanted[i] == 0 and down_wanted[i] == 0]
    up_entries += [(i, up_room[i] - up_wanted[i]) for i in up_order if up_wanted[i] > 0]
    down_entries = [(i, down_wanted[i]) for i in down_order if down_wanted[i] > 0]
    down_entries += [(i, down_room[i]) for i in down_order if down_wanted[i] == 0 and up_wanted[i] == 0]
    down_entries += [(i, down_room[i] - down_wanted[i]) for i in down_order if down_wanted[i] > 0]

    ups: dict[int, int] = {}
    downs: dict[int, int] = {}
    for _ in range(8):
        ups, rem_up = fill(up_entries, inc, min_change)
        downs, rem_down = fill([e for e in down_entries if e[0] not in ups], dec, min_change)
        got_up, got_down = inc - rem_up, dec - rem_down
        if got_up - got_down == need:
            break
        if got_up - got_down > need:
            inc = got_down + need
            if inc < 0:
                inc, dec = 0, -need
        else:
            dec = got_up - need
            if dec < 0:
                inc, dec = need, 0
    if sum(ups.values()) - sum(downs.values()) != need:
        if need == 0:
            ups, downs = {}, {}
        elif any(up_wanted) or any(down_wanted):
            # The pool sum comes first: drop the optional moves and repair the sum alone.
            zeros = [0] * n
            return _realize(current, total, zeros, zeros, up_room, down_room, up_order, down_order, min_change)
    out = list(current)
    for i, v in ups.items():
        out[i] += v
    for i, v in downs.items():
        out[i] -= v
    return out, total - sum(out)
