"""Keeping plans inside the guardrails' rolling net-change budget per entity (pure).

The guardrails refuse a change that would move an entity's budget more than ``pct`` % (default 20)
away from what it was at the start of a rolling window (default 72 h), counting every source. A pool
that ignores this proposes moves that are blocked again and again (and a blocked change set blocks
its other members' moves too). So each member carries what the window still allows
(``MemberState.window_min_cents`` / ``window_max_cents``, from :func:`net_change_bounds`): the engine moves it
only within that, while its target stays planned on its floor and ceiling (money that must wait for the
window is not parked on other members meanwhile, to be taken back three days later).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime


def budget_at_window_start(current_cents: int, changes: Sequence[tuple[datetime, int, int]]) -> int:
    """The entity's budget when the window opened: the 'before' of its earliest change in the window, else now."""
    if not changes:
        return current_cents
    return min(changes, key=lambda c: c[0])[1]


def net_change_bounds(current_cents: int, changes: Sequence[tuple[datetime, int, int]], pct: int) -> tuple[int, int]:
    """(floor, ceiling) the entity may reach without exceeding ``pct`` % net change in the window.

    ``changes`` are (executed_at, before_cents, after_cents) inside the window. The limit is rounded down
    to the cent (as the guardrails do). The bounds always contain the current budget, so a budget that
    someone else already moved further is held, never yanked back.
    """
    start = budget_at_window_start(current_cents, changes)
    allowed = start * pct // 100
    return min(start - allowed, current_cents), max(start + allowed, current_cents)


def narrow(lo: int | None, hi: int | None, bounds: tuple[int, int]) -> tuple[int, int]:
    """Intersect a member's configured floor/ceiling (None = none) with the net-change bounds."""
    net_lo, net_hi = bounds
    new_lo = max(lo, net_lo) if lo is not None else net_lo
    new_hi = min(hi, net_hi) if hi is not None else net_hi
    if new_hi < new_lo:  # configured bounds outside what the window allows: hold within the window
        new_lo, new_hi = net_lo, net_hi
    return new_lo, new_hi
