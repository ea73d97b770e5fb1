"""Backtest: replay stored metric intervals through the engine and compare its moves with what actually happened
(pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo

from allot.contracts.localday import local_days_between
from allot.pools.domain.engine import plan_allocation
from allot.pools.domain.learn import maturation_at
from allot.pools.domain.models import EngineState, MemberState, MetricInterval, PoolSettings

__all__ = ["BacktestMove", "BacktestReport", "backtest"]


@dataclass(frozen=True, slots=True)
class BacktestMove:
    """One budget change the engine would have made."""

    at: datetime
    member_id: str
    from_cents: int
    to_cents: int
    explanation: str


@dataclass(frozen=True, slots=True)
class BacktestReport:
    """What the engine would have moved over the range and the estimated outcome against what happened."""

    start: datetime
    end: datetime
    plans: int
    frozen_plans: int
    moves: tuple[BacktestMove, ...]
    actual_spend_cents: int
    actual_value_cents: int
    estimated_value_cents: int
    """Value had the engine's budgets been in force (each interval's actual value rescaled along a concave response
    with the pool's prior elasticity)."""
    estimated_uplift_pct: float
    changes_per_member_per_day: float
    final_budgets: Mapping[str, int]


def _as_seen(iv: MetricInterval, at: datetime, pool: PoolSettings) -> MetricInterval:
    """The stored (matured) interval as it would have been reported at ``at``."""
    f = maturation_at((at - iv.end_at).total_seconds() / 3600.0, pool.maturation_curve)
    if f >= 1.0:
        return iv
    return replace(iv, revenue_cents=int(math.floor(iv.revenue_cents * f)), conversions=math.floor(iv.conversions * f))


def backtest(
    pool: PoolSettings,
    members: Sequence[MemberState],
    intervals: Mapping[str, Sequence[MetricInterval]],
    *,
    start: datetime,
    end: datetime,
    state: EngineState | None = None,
    zone: tzinfo = UTC,
) -> BacktestReport:
    """Replay [start, end) at the pool's allocation frequency through :func:`plan_allocation`; pure and deterministic.

    At each plan time the engine sees only intervals that had ended, with
    conversions/revenue scaled down to what the maturation curve says was
    reported then (stored data is assumed matured). The engine's budgets carry
    forward plan to plan (starting from ``members``' budgets). The estimated
    outcome rescales each interval after a plan by (planned budget / actual
    daily spend) ** prior_elasticity: a local, concave counterfactual, not a
    measurement. Value is revenue for roas/revenue pools, conversions
    otherwise. Changes per member per day count the pool's ad account's local
    days in ``zone`` (a 23 h or 25 h day is one day).
    """
    step = timedelta(hours=pool.allocation_frequency_hours)
    budgets = {m.member_id: m.current_budget_cents for m in members}
    by_id = {m.member_id: m for m in members}
    use_revenue = pool.composite.roas > 0
    b = pool.prior_elasticity
    moves: list[BacktestMove] = []
    plans = frozen = 0
    actual_spend = 0
    actual_value = 0.0
    est_value = 0.0
    t = start
    while t < end:
        seen = {k: [_as_seen(iv, t, pool) for iv in v if iv.end_at <= t] for k, v in intervals.items()}
        current = [replace(by_id[k], current_budget_cents=budgets[k]) for k in budgets]
        plan = plan_allocation(pool, current, seen, now=t, state=state)
        state = plan.state
        plans += 1
        frozen += plan.frozen
        for a in plan.allocations:
            if a.new_budget_cents != a.previous_budget_cents:
                moves.append(BacktestMove(t, a.member_id, a.previous_budget_cents, a.new_budget_cents, a.explanation))
            budgets[a.member_id] = a.new_budget_cents
        nxt = min(t + step, end)
        for k, ivs in intervals.items():
            for iv in ivs:
                if not (t <= iv.start_at < nxt) or iv.hours <= 0:
                    continue
                value = iv.revenue_cents if use_revenue else iv.conversions
                actual_spend += iv.spend_cents
                actual_value += value
                daily_spend = iv.spend_cents * 24.0 / iv.hours
                if daily_spend > 0 and k in budgets:
                    est_value += value * (budgets[k] / daily_spend) ** b
                else:
                    est_value += value
        t = nxt
    days = max(local_days_between(start, end, zone), 1e-9)
    return BacktestReport(
        start=start, end=end, plans=plans, frozen_plans=frozen, moves=tuple(moves),
        actual_spend_cents=actual_spend, actual_value_cents=round(actual_value), estimated_value_cents=round(est_value),
        estimated_uplift_pct=100.0 * (est_value / actual_value - 1.0) if actual_value > 0 else 0.0,
        changes_per_member_per_day=len(moves) / (max(len(budgets), 1) * days),
        final_budgets=dict(budgets),
    )
