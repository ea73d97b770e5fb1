"""Oscillation detection: a member whose budget keeps reversing direction freezes the pool's automation."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["count_reversals", "is_oscillating"]


def count_reversals(directions: Sequence[int]) -> int:
    """Number of sign changes between consecutive non-zero directions."""
    last = 0
    reversals = 0
    for d in directions:
        if d == 0:
            continue
        if last != 0 and d != last:
            reversals += 1
        last = d
    return reversals


def is_oscillating(directions: Sequence[int], *, window: int, reversals: int) -> bool:
    """True when the last ``window`` changes contain at least ``reversals`` direction reversals."""
    return count_reversals(list(directions)[-window:]) >= reversals
