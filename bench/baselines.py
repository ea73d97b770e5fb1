"""Comparison policies for the pools benchmark (bench/pools_quality.py); none of them is the engine.

Equal split, a literal seed-001 threshold heuristic, a trailing-ROAS chaser,
the clairvoyant reference's mover (``plan_toward``: toward given targets) and
an honest learner (Thompson sampling on per-member Bayesian log-log
regressions). They share the engine's signature and its constraint machinery
from ``allot.pools.domain.realize`` (``bounds_for``, ``largest_remainder``,
``realize_moves``, ``step_limit``: floors, ceilings, step limit, minimum change,
exact sum), so a comparison measures decisions, not rule-breaking.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from allot.pools.domain.models import (
    AllocationPlan,
    EngineState,
    MemberAllocation,
    MemberMemory,
    MemberState,
    MetricInterval,
    OptimizationMetric,
    PoolSettings,
    hours_between,
)
from allot.pools.domain.realize import bounds_for, largest_remainder, realize_moves, step_limit

__all__ = ["plan_equal_split", "plan_roas_chaser", "plan_thompson_learner", "plan_threshold_heuristic", "plan_toward"]


def _apply(
    pool: PoolSettings,
    members: Sequence[MemberState],
    targets: Mapping[str, float],
    *,
    now: datetime,
    state: EngineState,
    allowed: Mapping[str, bool] | None = None,
    why: Mapping[str, str] | None = None,
) -> AllocationPlan:
    """Move every allowed member toward its target within the hard constraints; others only balance the sum."""
    eligible = [mb for mb in members if mb.is_active and not mb.paused]
    bnds = [bounds_for(mb, pool) for mb in eligible]
    current = [min(max(mb.current_budget_cents, b.lo), b.hi) for mb, b in zip(eligible, bnds)]
    n = len(eligible)
    m = pool.min_budget_change_cents
    up_w, down_w, up_r, down_r = [0] * n, [0] * n, [0] * n, [0] * n
    for i, (mb, b, c) in enumerate(zip(eligible, bnds, current)):
        step = step_limit(c, pool)
        up_r[i] = max(0, min(step, b.hi - c))
        down_r[i] = max(0, min(step, c - b.lo))
        gap = targets.get(mb.member_id, c) - c
        if pool.daily_budget_cents == sum(current):
            up_r[i] = up_r[i] if gap >= 0 else 0
            down_r[i] = down_r[i] if gap <= 0 else 0
        if allowed is not None and not allowed.get(mb.member_id, False):
            continue
        amt = int(min(abs(gap), up_r[i] if gap > 0 else down_r[i]))
        if amt >= m:
            if gap > 0:
                up_w[i] = amt
            else:
                down_w[i] = amt
    prio = [(targets.get(mb.member_id, c) - c) / max(c, 1) for mb, c in zip(eligible, current)]
    up_order = sorted(range(n), key=lambda i: -prio[i])
    down_order = sorted(range(n), key=lambda i: prio[i])
    new, missing = realize_moves(
        current, pool.daily_budget_cents, up_wanted=up_w, down_wanted=down_w, up_room=up_r, down_room=down_r,
        up_order=up_order, down_order=down_order, min_change=m,
    )
    new_by_id = {mb.member_id: v for mb, v in zip(eligible, new)}
    mems = dict(state.members)
    allocs = []
    for mb in members:
        if mb.member_id not in new_by_id:
            allocs.append(MemberAllocation(mb.member_id, mb.current_budget_cents, mb.current_budget_cents, "excluded", "excluded: paused/inactive"))
            continue
        v = new_by_id[mb.member_id]
        prev = mb.current_budget_cents
        action = "increase" if v > prev else "decrease" if v < prev else "hold"
        if v != prev:
            old = mems.get(mb.member_id) or MemberMemory()
            mems[mb.member_id] = MemberMemory(old.pending_direction, old.pending_count, now, old.recent_directions)
        text = (why or {}).get(mb.member_id, "") or f"target {targets.get(mb.member_id, prev):.0f} cents"
        allocs.append(MemberAllocation(mb.member_id, prev, v, action, text, target_cents=int(targets.get(mb.member_id, prev))))
    return AllocationPlan(
        pool_id=pool.pool_id, planned_at=now, currency=pool.currency, daily_budget_cents=pool.daily_budget_cents,
        allocations=tuple(allocs), feasible=missing == 0, infeasible_reason=None if missing == 0 else f"{missing} cents unplaced",
        frozen=False, frozen_reason=None, state=EngineState(members=mems, last_plan_at=now),
    )


def plan_toward(
    pool: PoolSettings,
    members: Sequence[MemberState],
    targets: Mapping[str, float],
    *,
    now: datetime,
    state: EngineState | None = None,
) -> AllocationPlan:
    """Every member toward a given target budget (the clairvoyant reference's targets), within the hard limits."""
    return _apply(pool, members, targets, now=now, state=state or EngineState())


def plan_equal_split(
    pool: PoolSettings,
    members: Sequence[MemberState],
    history: Mapping[str, Sequence[MetricInterval]],
    *,
    now: datetime,
    state: EngineState | None = None,
) -> AllocationPlan:
    """Weight-proportional equal split of the pool budget (largest remainder), approached within the step limits; ignores history."""
    eligible = [mb for mb in members if mb.is_active and not mb.paused]
    shares = largest_remainder([mb.weight for mb in eligible], pool.daily_budget_cents)
    targets = {}
    for mb, s in zip(eligible, shares):
        b = bounds_for(mb, pool)
        targets[mb.member_id] = float(min(max(s, b.lo), b.hi))
    return _apply(pool, members, targets, now=now, state=state or EngineState())


def _window(ivs: Sequence[MetricInterval], now: datetime, hours: float) -> tuple[float, float, float, float, float, float]:
    """Raw (uncorrected) spend, revenue, conversions, impressions, clicks, frequency*impressions over the last ``hours``."""
    start = now - timedelta(hours=hours)
    s = r = c = imp = clk = fq = 0.0
    for iv in ivs:
        if iv.end_at <= now and iv.end_at > start:
            s += iv.spend_cents
            r += iv.revenue_cents
            c += iv.conversions
            imp += iv.impressions
            clk += iv.clicks
            fq += (iv.frequency or 0.0) * iv.impressions
    return s, r, c, imp, clk, fq


def plan_threshold_heuristic(
    pool: PoolSettings,
    members: Sequence[MemberState],
    history: Mapping[str, Sequence[MetricInterval]],
    *,
    now: datetime,
    state: EngineState | None = None,
) -> AllocationPlan:
    """Seed 001 implemented literally: composite score vs own 30-day baseline; >0.85 for 3 plans +15%, <0.55 for 2 plans -25% (step-capped), <0.35 to the floor; 6 h cooldown.

    The composite (ROAS 40%, CPA 30%, frequency 20%, engagement 10%) scores
    each signal as 0.7 x (3-day value / own 30-day baseline), capped at 1, on
    the data as reported (no maturity correction). Other members absorb the
    difference so the pool sum holds.
    """
    state = state or EngineState()
    mems = dict(state.members)
    targets: dict[str, float] = {}
    allowed: dict[str, bool] = {}
    why: dict[str, str] = {}
    for mb in members:
        if not mb.is_active or mb.paused:
            continue
        ivs = history.get(mb.member_id, ())
        s3, r3, c3, i3, k3, f3 = _window(ivs, now, 72)
        s30, r30, c30, i30, k30, f30 = _window(ivs, now, 720)
        score = 0.7
        if s3 > 0 and s30 > 0 and r30 > 0 and c30 > 0:
            roas_ratio = (r3 / s3) / (r30 / s30)
            cpa_ratio = ((s30 / c30) / (s3 / c3)) if c3 > 0 else 0.0
            freq_ratio = ((f30 / i30) / (f3 / i3)) if i3 > 0 and f3 > 0 and i30 > 0 else 1.0
            ctr_ratio = ((k3 / i3) / (k30 / i30)) if i3 > 0 and k30 > 0 else 1.0
            score = (
                0.4 * min(1.0, 0.7 * roas_ratio)
                + 0.3 * min(1.0, 0.7 * cpa_ratio)
                + 0.2 * min(1.0, 0.7 * freq_ratio)
                + 0.1 * min(1.0, 0.7 * ctr_ratio)
            )
        old = mems.get(mb.member_id) or MemberMemory()
        band = 1 if score > 0.85 else (-2 if score < 0.35 else (-1 if score < 0.55 else 0))
        count = old.pending_count + 1 if band != 0 and band == old.pending_direction else (1 if band else 0)
        mems[mb.member_id] = MemberMemory(band, count, old.last_change_at, old.recent_directions)
        cooling = old.last_change_at is not None and hours_between(old.last_change_at, now) < 6.0
        c = mb.current_budget_cents
        target = float(c)
        if not cooling:
            if band == 1 and count >= 3:
                target = c * 1.15
            elif band == -1 and count >= 2:
                target = c * 0.75
            elif band == -2:
                target = float(bounds_for(mb, pool).lo)
        targets[mb.member_id] = target
        allowed[mb.member_id] = target != c
        why[mb.member_id] = f"composite score {score:.2f} (band {band}, held {count})"
    return _apply(pool, members, targets, now=now, state=EngineState(members=mems), allowed=allowed, why=why)


def plan_roas_chaser(
    pool: PoolSettings,
    members: Sequence[MemberState],
    history: Mapping[str, Sequence[MetricInterval]],
    *,
    now: datetime,
    state: EngineState | None = None,
) -> AllocationPlan:
    """Every plan, move each budget toward a share proportional to its trailing 3-day ROAS as reported (no persistence, no maturity correction)."""
    eligible = [mb for mb in members if mb.is_active and not mb.paused]
    roas = []
    for mb in eligible:
        s, r, *_ = _window(history.get(mb.member_id, ()), now, 72)
        roas.append(r / s if s > 0 else 0.0)
    mean = sum(roas) / len(roas) if roas else 0.0
    roas = [x if x > 0 else mean for x in roas]
    total = sum(roas)
    targets = {}
    for mb, x in zip(eligible, roas):
        b = bounds_for(mb, pool)
        t = pool.daily_budget_cents * x / total if total > 0 else mb.current_budget_cents
        targets[mb.member_id] = min(max(t, b.lo), b.hi)
    return _apply(pool, members, targets, now=now, state=state or EngineState())


# -- honest learner ------------------------------------------------------------------------------------------

#: Intervals younger than this are not used by the learner (it does not know the platform's reporting delays).
LEARNER_MIN_AGE_H = 48.0
LEARNER_LOOKBACK_DAYS = 14.0
#: Prior of the log-log slope b (elasticity of value to spend) and of the level a (around the pool's level).
LEARNER_PRIOR_B = (0.5, 0.25)
LEARNER_PRIOR_A_SD = 1.0
LEARNER_B_RANGE = (0.05, 0.85)
#: A member is only moved when its target differs from its budget by more than this share.
LEARNER_DEADBAND = 0.10


def _daily_points(ivs: Sequence[MetricInterval], now: datetime, by_revenue: bool) -> list[tuple[float, float, float]]:
    """(spend per day, value per day, conversions per day) of each calendar day with usable intervals (``ivs`` oldest first)."""
    newest = now - timedelta(hours=LEARNER_MIN_AGE_H)
    oldest = now - timedelta(days=LEARNER_LOOKBACK_DAYS)
    days: dict[object, list[float]] = {}
    for iv in reversed(ivs):
        if iv.end_at > newest:
            continue
        if iv.end_at <= oldest:
            break
        hours = (iv.end_at - iv.start_at).total_seconds() / 3600.0
        if hours <= 0:
            continue
        acc = days.setdefault(iv.start_at.date(), [0.0, 0.0, 0.0, 0.0])
        acc[0] += iv.spend_cents
        acc[1] += iv.revenue_cents if by_revenue else iv.conversions
        acc[2] += iv.conversions
        acc[3] += hours
    return [(s * 24.0 / h, v * 24.0 / h, c * 24.0 / h) for s, v, c, h in days.values() if s > 0 and h > 0]


def plan_thompson_learner(
    pool: PoolSettings,
    members: Sequence[MemberState],
    history: Mapping[str, Sequence[MetricInterval]],
    *,
    now: datetime,
    state: EngineState | None = None,
) -> AllocationPlan:
    """HONEST LEARNER (a benchmark baseline, not the engine): Thompson sampling over per-member log-log regressions.

    Per member, daily points from intervals that ended at least 48 h before
    ``now`` within the last 14 days (it does not know the reporting delays, so
    it waits), fitted as ``log(value/day + half a unit) = a + b log(spend/day /
    equal share)`` by Bayesian linear regression: prior ``a ~ N(pool level,
    1)``, ``b ~ N(0.5, 0.25)``, each day weighted by its conversions (variance
    ~ 1.3 / (conversions + 1)). Each plan draws (a, b) from every posterior
    (deterministically, from the pool id and ``now``), clips b to [0.05, 0.85],
    allocates the pool budget to maximise the sum of ``exp(a) (x/share)^b``
    over the members' bounds, and moves every member whose target differs by
    more than 10 % toward it within the step limit.
    """
    state = state or EngineState()
    eligible = [mb for mb in members if mb.is_active and not mb.paused]
    if not eligible:
        return _apply(pool, members, {}, now=now, state=state)
    by_revenue = pool.optimization_metric in (OptimizationMetric.ROAS, OptimizationMetric.REVENUE)
    share = pool.daily_budget_cents / len(eligible)
    points = {mb.member_id: _daily_points(history.get(mb.member_id, ()), now, by_revenue) for mb in eligible}
    all_pts = [p for pts in points.values() for p in pts]
    conv = sum(p[2] for p in all_pts)
    unit = 0.5 * (sum(p[1] for p in all_pts) / conv if by_revenue and conv > 0 else 1.0)
    b0, b_sd = LEARNER_PRIOR_B
    level = [math.log(v + unit) - b0 * math.log(s / share) for s, v, _ in all_pts]
    a0 = sum(level) / len(level) if level else math.log(unit)
    rng = random.Random(f"{pool.pool_id}|{now.isoformat()}")
    coef: dict[str, tuple[float, float]] = {}
    for mb in eligible:
        # Posterior of (a, b): precision P = P0 + sum w x x', mean = P^-1 (P0 m0 + sum w x y).
        p11, p12, p22 = 1.0 / LEARNER_PRIOR_A_SD**2, 0.0, 1.0 / b_sd**2
        r1, r2 = a0 * p11, b0 * p22
        for s, v, c in points[mb.member_id]:
            z = math.log(s / share)
            y = math.log(v + unit)
            w = (c + 1.0) / 1.3
            p11 += w
            p12 += w * z
            p22 += w * z * z
            r1 += w * y
            r2 += w * z * y
        det = p11 * p22 - p12 * p12
        c11, c12, c22 = p22 / det, -p12 / det, p11 / det  # covariance
        m1, m2 = c11 * r1 + c12 * r2, c12 * r1 + c22 * r2
        l11 = math.sqrt(c11)
        l21 = c12 / l11
        l22 = math.sqrt(max(c22 - l21 * l21, 0.0))
        g1, g2 = rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0)
        a = m1 + l11 * g1
        b = min(max(m2 + l21 * g1 + l22 * g2, LEARNER_B_RANGE[0]), LEARNER_B_RANGE[1])
        coef[mb.member_id] = (a, b)
    bnds = {mb.member_id: bounds_for(mb, pool) for mb in eligible}
    # Stationary point of exp(a) (x/share)^b - exp(mu) x: x = share exp(c - mu e), c = (a + log b - log share) / (1 - b), e = 1 / (1 - b).
    terms = [(mid, (a + math.log(b) - math.log(share)) / (1.0 - b), 1.0 / (1.0 - b), bnds[mid].lo, bnds[mid].hi)
             for mid, (a, b) in coef.items()]

    def demand(mu: float) -> dict[str, float]:
        out = {}
        for mid, c, e, lo_b, hi_b in terms:
            x = share * math.exp(min(c - mu * e, 300.0))
            out[mid] = lo_b if x < lo_b else hi_b if x > hi_b else x
        return out

    lo, hi = -60.0, 60.0
    while hi - lo > 1e-7:
        mid = 0.5 * (lo + hi)
        if sum(demand(mid).values()) > pool.daily_budget_cents:
            lo = mid
        else:
            hi = mid
    targets = demand(0.5 * (lo + hi))
    allowed = {}
    why = {}
    for mb in eligible:
        c = mb.current_budget_cents
        t = targets[mb.member_id]
        allowed[mb.member_id] = abs(t - c) > max(LEARNER_DEADBAND * c, pool.min_budget_change_cents)
        a, b = coef[mb.member_id]
        why[mb.member_id] = f"learner: sampled level {a:.2f}, elasticity {b:.2f}, target {t:.0f} cents"
    return _apply(pool, members, targets, now=now, state=state, allowed=allowed, why=why)
