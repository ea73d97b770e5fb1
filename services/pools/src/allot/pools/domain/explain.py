"""Plan lines in plain language (pure): built when a line is read, never in the engine's hot path.

The engine gives every line a reason code and its numbers (:class:`~allot.pools.domain.models.MemberAllocation`);
:func:`describe` turns them into what a media buyer reads, e.g. "raised 100.00 → 120.00 EUR/day: returns
2.10 EUR per extra EUR at its spend, the pool's other members 1.30".
"""

from __future__ import annotations

from allot.pools.domain.models import MemberAllocation

__all__ = ["REASONS", "describe", "money"]

#: Every reason code the engine writes, with what it means.
REASONS: dict[str, str] = {
    "evidence": "its estimated return per extra {cur} differs from the pool's",
    "explore": "a bounded experiment: its response at another budget is still uncertain",
    "cap": "it spends only {cap} {cur}/day of its budget (delivery cap); the rest goes where it can be spent",
    "bound": "its budget was outside its floor/ceiling and was moved onto the bound",
    "balance": "moved to keep the pool total while other members moved",
    "repair": "moved to bring the pool total back to its daily budget (members joined, left or were changed)",
    "ceiling": "it would return more than the pool's balance point but sits at its ceiling",
    "floor": "it returns less than the pool's balance point but sits at its floor",
    "deadband": "its target is within the dead band of its budget",
    "persistence": "the signal has not held for enough consecutive plans yet",
    "cooldown": "changed recently; the cooldown has not passed",
    "held": "held after its changes kept reversing (oscillation)",
    "frozen": "the pool is frozen",
    "blocked": "a move was wanted but the step limit, a bound or the minimum change allow none this plan",
    "excluded_paused": "paused: left as is and not counted in the pool total",
    "excluded_inactive": "inactive: left as is and not counted in the pool total",
}
_EXTRA = {
    "capped": "delivery-capped",
    "no_history": "no history yet (pool prior)",
    "risk": "value shaved for rising frequency / falling CTR",
}


def money(cents: int) -> str:
    """Integer cents as ``1,234.56`` (exact, no float)."""
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    return f"{sign}{units:,}.{rest:02d}"


def describe(a: MemberAllocation) -> str:
    """One sentence: what happened to the member's budget and why, with the numbers."""
    cur = a.currency
    if a.action == "excluded":
        return REASONS.get(a.reason, a.reason).format(cur=cur, cap="")
    if a.new_budget_cents != a.previous_budget_cents:
        verb = "raised" if a.new_budget_cents > a.previous_budget_cents else "lowered"
        head = f"{verb} {money(a.previous_budget_cents)} → {money(a.new_budget_cents)} {cur}/day"
    else:
        head = f"kept at {money(a.previous_budget_cents)} {cur}/day"
    why = REASONS.get(a.reason)
    if why is None:
        return f"{head}: {a.reason}" if a.reason else head
    text = why.format(cur=cur, cap=money(a.cap_cents) if a.cap_cents is not None else "?")
    numbers = []
    if a.marginal_return is not None:
        mr = f"returns {a.marginal_return:.2f} {cur} per extra {cur} at its spend"
        if a.pool_marginal_return is not None:
            mr += f", the pool's balance point {a.pool_marginal_return:.2f}"
        numbers.append(mr)
    if a.target_cents is not None:
        numbers.append(f"target {money(a.target_cents)} {cur}/day")
    if a.baseline_roas is not None:
        numbers.append(f"ROAS {a.baseline_roas:.2f} over its look-back")
    if a.elasticity is not None:
        numbers.append(f"+10% spend ≈ +{(1.1 ** a.elasticity - 1) * 100:.1f}% value")
    extras = [_EXTRA.get(e, e) for e in a.reasons]
    tail = "; ".join(numbers + extras)
    return f"{head}: {text}" + (f" ({tail})" if tail else "")
