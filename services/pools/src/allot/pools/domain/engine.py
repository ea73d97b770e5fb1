"""The budget-pool allocation engine: one pure function, :func:`plan_allocation`.

``simulate``, ``allocate``, the scheduler and the backtest all call it. It reads
no clock (``now`` is an argument), does no I/O and uses no randomness: the same
inputs always give the same plan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from allot.pools.domain.estimate import MemberEstimate, gather_evidence, shrink_to_pool
from allot.pools.domain.models import (
    AllocationPlan,
    EngineState,
    MemberAllocation,
    MemberMemory,
    MemberState,
    MetricInterval,
    PoolSettings,
    hours_between,
)
from allot.pools.domain.oscillation import count_reversals, is_oscillating
from allot.pools.domain.realize import Bounds, bounds_for, realize_moves, step_limit

__all__ = ["plan_allocation", "solve_targets", "EXPLORATION_KAPPA"]

#: A continuing move (same direction as the member's last change) may use the short cooldown when its evidence is this many times the usual bar.
CONTINUATION_Z_FACTOR = 1.0
#: Optimism (posterior standard deviations) used to place the exploration share.
EXPLORATION_KAPPA = 1.5

_EXCLUDED_TEXT = "excluded: {why}; budget left as is and not counted in the pool sum"


def _pool_conversion_value(history: Mapping[str, Sequence[MetricInterval]], ids: Sequence[str], pool: PoolSettings) -> float:
    """Revenue per conversion across the pool (only needed when a composite mixes revenue and conversions)."""
    cw = pool.composite
    if cw.cpa <= 0:
        return 0.0
    if cw.roas <= 0:
        return 1.0
    rev = 0.0
    conv = 0.0
    for mid in ids:
        for iv in history.get(mid, ()):
            rev += iv.revenue_cents
            conv += iv.conversions
    return rev / conv if conv > 0 else 1.0


def solve_targets(
    estimates: Sequence[MemberEstimate],
    weights: Sequence[float],
    bounds: Sequence[Bounds],
    total: int,
    *,
    optimism: Sequence[float] | None = None,
) -> tuple[list[float], float]:
    """Budgets (floats) that equalise estimated marginal returns under floors/ceilings and sum to ``total``, plus the common marginal.

    On each member's calibrated curve A (1 - exp(-x / s)) the budget at marginal
    ``lam`` is ``w * s * (log(A / s) - log(lam))`` clipped to its bounds: linear
    in log(lam), so Newton steps on log(lam) land exactly after a few
    clip-set changes. ``optimism`` adds to log(A / s) (exploration). When the
    bounds cannot meet ``total`` all members sit at their floors (or ceilings).
    """
    n = len(estimates)
    lo = [float(b.lo) for b in bounds]
    hi = [float(b.hi) for b in bounds]
    if sum(lo) >= total:
        return lo, math.inf
    if sum(hi) <= total:
        return hi, 0.0
    c: list[float] = []
    k: list[float] = []
    for i, e in enumerate(estimates):
        a, s = e.saturation()
        c.append(math.log(max(a / s, 1e-300)) + (optimism[i] if optimism is not None else 0.0))
        k.append(weights[i] * s)
    # Start from the unclipped solution, then Newton on the piecewise-linear sum.
    ks = sum(k)
    lg = (sum(ki * ci for ki, ci in zip(k, c)) - total) / ks
    xs: list[float] = lo
    a_, b_ = math.inf, -math.inf
    for _ in range(60):
        s_ = 0.0
        d = 0.0
        xs = []
        for i in range(n):
            x = k[i] * (c[i] - lg)
            if x <= lo[i]:
                x = lo[i]
            elif x >= hi[i]:
                x = hi[i]
            else:
                d += k[i]
            s_ += x
            xs.append(x)
        err = s_ - total
        if abs(err) <= 0.01:
            break
        if err > 0:
            b_ = lg
        else:
            a_ = lg
        nxt = lg + err / d if d > 0 else lg + (1.0 if err > 0 else -1.0)
        if not (b_ < nxt < a_):
            nxt = 0.5 * (a_ + b_) if math.isfinite(a_) and math.isfinite(b_) else lg + (1.0 if err > 0 else -1.0)
        lg = nxt
    return xs, math.exp(lg) if lg < 700 else math.inf


@dataclass(slots=True)
class _Line:
    member: MemberState
    bounds: Bounds
    current: int
    estimate: MemberEstimate
    memory: MemberMemory
    greedy_target: float = 0.0
    target: float = 0.0
    z: float = 0.0
    direction: int = 0
    count: int = 0
    in_cooldown: bool = False
    explore: bool = False
    ready: bool = False
    reason: str = ""


def _fmt_money(cents: float, currency: str) -> str:
    return f"{cents / 100:,.2f} {currency}"


def plan_allocation(
    pool: PoolSettings,
    members: Sequence[MemberState],
    history: Mapping[str, Sequence[MetricInterval]],
    *,
    now: datetime,
    state: EngineState | None = None,
) -> AllocationPlan:
    """Plan new daily budgets for a pool; same inputs, same plan (no clock, no I/O, no randomness).

    Inputs:
      * ``pool``: the pool's rules (budget, bounds, step limits, persistence,
        cooldown, exploration share, maturation curve, ...).
      * ``members``: every member with its current daily budget. Paused or
        inactive members are left exactly as they are and excluded from the
        pool: ``pool.daily_budget_cents`` is shared among the others only.
      * ``history``: per member id, metric intervals as loaded now (recent ones
        may be immature; they are corrected, see ``allot.pools.domain.estimate``).
      * ``now``: aware datetime of the decision; ``state``: what the previous
        plan returned (``None`` for a new pool).

    Output (:class:`AllocationPlan`): a line per member with the new budget
    (integer cents), the action and an explanation with its numbers; the flags
    ``feasible``/``infeasible_reason`` and ``frozen``/``frozen_reason``; and the
    new :class:`EngineState` to store.

    Guarantees: budgets of participating members sum to the pool budget to the
    cent unless floors, ceilings or the step limit make that impossible
    (``feasible=False`` with the reason); every budget lies within its floor and
    ceiling (a budget found outside them is moved onto the bound first: that
    bound correction is the only change exempt from the step limit); no change
    exceeds ``max_change_pct`` of the current budget; no change is smaller than
    ``min_budget_change_cents``; an engine-initiated move needs a signal that
    held for ``persistence_intervals`` consecutive plans, at least ``pool.evidence_z``
    posterior standard deviations of marginal-return evidence (or an
    exploration reason) and a member outside its ``cooldown_hours``. A member
    whose engine moves reverse ``oscillation_reversals`` times within its last
    ``oscillation_window`` changes freezes the pool for ``freeze_hours``: the
    plan then changes nothing and says why.
    """
    state = state or EngineState()
    B = pool.daily_budget_cents
    m = pool.min_budget_change_cents
    cur = pool.currency
    eligible = [mb for mb in members if mb.is_active and not mb.paused]
    memories = dict(state.members)

    # Freeze handling: an expired freeze clears the direction history it was based on.
    frozen_until = state.frozen_until
    frozen_reason = state.frozen_reason
    if frozen_until is not None and now >= frozen_until:
        frozen_until, frozen_reason = None, None
        memories = {k: MemberMemory(v.pending_direction, v.pending_count, v.last_change_at, ()) for k, v in memories.items()}
    if frozen_until is None:
        for mb in eligible:
            mem = memories.get(mb.member_id)
            if mem and is_oscillating(mem.recent_directions, window=pool.oscillation_window, reversals=pool.oscillation_reversals):
                frozen_until = now + timedelta(hours=pool.freeze_hours)
                frozen_reason = _osc_reason(mb.member_id, mem.recent_directions, pool)
                break
    if frozen_until is not None:
        new_state = EngineState(members=memories, frozen_until=frozen_until, frozen_reason=frozen_reason, last_plan_at=now)
        return _held_plan(pool, members, now, new_state, frozen_reason or "frozen")

    bounds = [bounds_for(mb, pool) for mb in eligible]
    current = [min(max(mb.current_budget_cents, bd.lo), bd.hi) for mb, bd in zip(eligible, bounds)]
    n = len(eligible)
    ids = [mb.member_id for mb in eligible]
    conv_value = _pool_conversion_value(history, ids, pool)
    evidence = [gather_evidence(history.get(i, ()), pool, now, conv_value) for i in ids]
    ref_spend = B / n if n else 1.0
    estimates = shrink_to_pool(evidence, current, pool, ref_spend)
    weights = [mb.weight for mb in eligible]

    lines = [
        _Line(member=mb, bounds=bd, current=c, estimate=e, memory=memories.get(mb.member_id) or MemberMemory())
        for mb, bd, c, e in zip(eligible, bounds, current, estimates)
    ]
    pool_lambda: float | None = None
    if n:
        greedy, lam = solve_targets(estimates, weights, bounds, B)
        pool_lambda = lam if math.isfinite(lam) else None
        targets = greedy
        if pool.exploration_share > 0:
            boosts = [EXPLORATION_KAPPA * math.sqrt(e.post_var) for e in estimates]
            optimistic, _ = solve_targets(estimates, weights, bounds, B, optimism=boosts)
            delta = [o - g for o, g in zip(optimistic, greedy)]
            pos = sum(d for d in delta if d > 0)
            alpha = min(1.0, pool.exploration_share * B / pos) if pos > 0 else 0.0
            targets = [g + alpha * d for g, d in zip(greedy, delta)]
        for ln, g, t in zip(lines, greedy, targets):
            ln.greedy_target = g
            ln.target = t
        _signals(lines, pool, now, pool_lambda)

    # Moves: wanted amounts for ready members, balancing room for everybody else not cooling down.
    need = B - sum(current)
    up_w = [0] * n
    down_w = [0] * n
    up_room = [0] * n
    down_room = [0] * n
    for i, ln in enumerate(lines):
        step = step_limit(ln.current, pool)
        ur = max(0, min(step, ln.bounds.hi - ln.current))
        dr = max(0, min(step, ln.current - ln.bounds.lo))
        movable = not ln.in_cooldown or need != 0
        # Balancing never pushes a member away from its own target (unless the pool sum itself must be repaired).
        up_room[i] = ur if movable and (need != 0 or ln.target > ln.current) else 0
        down_room[i] = dr if movable and (need != 0 or ln.target < ln.current) else 0
        if ln.ready:
            gap = ln.target - ln.current
            amt = int(min(abs(gap), ur if gap > 0 else dr))
            if amt >= m:
                if gap > 0:
                    up_w[i] = amt
                else:
                    down_w[i] = amt
            else:
                ln.ready = False
                ln.reason = "signal held but the possible move is below the minimum change or blocked by a bound"
    prio = [(ln.target - ln.current) / max(ln.current, 1) for ln in lines]
    up_order = sorted(range(n), key=lambda i: (-prio[i], ids[i]))
    down_order = sorted(range(n), key=lambda i: (prio[i], ids[i]))
    new_budgets, missing = realize_moves(
        current, B, up_wanted=up_w, down_wanted=down_w, up_room=up_room, down_room=down_room,
        up_order=up_order, down_order=down_order, min_change=m,
    )

    # Oscillation check on the moves about to be made: refuse to make the reversal that completes the pattern.
    new_memories: dict[str, MemberMemory] = dict(memories)
    for ln, new in zip(lines, new_budgets):
        mb = ln.member
        prev = mb.current_budget_cents
        mem = ln.memory
        if new != ln.current:
            direction = 1 if new > ln.current else -1
            dirs = (mem.recent_directions + (direction,))[-pool.oscillation_window:] if need == 0 else mem.recent_directions
            keep = ln.count if ln.direction == direction else 0
            new_memories[mb.member_id] = MemberMemory(direction if keep else 0, keep, now, dirs)
            if need == 0 and is_oscillating(dirs, window=pool.oscillation_window, reversals=pool.oscillation_reversals):
                reason = _osc_reason(mb.member_id, dirs, pool)
                # The reversal is refused, but remembered so the freeze holds until it expires.
                held_state = EngineState(
                    members={**memories, mb.member_id: MemberMemory(0, 0, mem.last_change_at, dirs)},
                    frozen_until=now + timedelta(hours=pool.freeze_hours), frozen_reason=reason, last_plan_at=now,
                )
                return _held_plan(pool, members, now, held_state, reason)
        elif new != prev:
            new_memories[mb.member_id] = MemberMemory(0, 0, now, mem.recent_directions)
        else:
            new_memories[mb.member_id] = MemberMemory(ln.direction, ln.count, mem.last_change_at, mem.recent_directions)

    feasible = missing == 0
    infeasible_reason = None
    if not feasible:
        sum_lo = sum(bd.lo for bd in bounds)
        sum_hi = sum(bd.hi for bd in bounds)
        if sum_lo > B:
            infeasible_reason = f"member floors sum to {sum_lo} cents, above the pool budget of {B} cents"
        elif sum_hi < B:
            infeasible_reason = f"member ceilings sum to {sum_hi} cents, below the pool budget of {B} cents"
        else:
            infeasible_reason = (
                f"the {pool.max_change_pct:g}% step limit / minimum change leave {missing} cents unplaced this plan; "
                "later plans close the gap"
            )
        if not n:
            infeasible_reason = "no active members to hold the pool budget"

    allocations: list[MemberAllocation] = []
    new_by_id = dict(zip(ids, new_budgets))
    line_by_id = {ln.member.member_id: ln for ln in lines}
    for mb in members:
        if mb.member_id not in new_by_id:
            why = "paused" if mb.paused else "inactive"
            allocations.append(
                MemberAllocation(mb.member_id, mb.current_budget_cents, mb.current_budget_cents, "excluded", _EXCLUDED_TEXT.format(why=why))
            )
            continue
        ln = line_by_id[mb.member_id]
        new = new_by_id[mb.member_id]
        allocations.append(_explain(ln, new, pool, pool_lambda, need))
    new_state = EngineState(members=new_memories, frozen_until=None, frozen_reason=None, last_plan_at=now)
    return AllocationPlan(
        pool_id=pool.pool_id, planned_at=now, currency=cur, daily_budget_cents=B, allocations=tuple(allocations),
        feasible=feasible, infeasible_reason=infeasible_reason, frozen=False, frozen_reason=None, state=new_state,
        pool_marginal_return=pool_lambda,
    )


def _signals(lines: list[_Line], pool: PoolSettings, now: datetime, lam: float | None) -> None:
    """Direction, evidence, persistence and cooldown of each member's pull toward its target.

    Exploration (an increase without the usual evidence) is reserved for members that are new or
    starved: own-estimate variance at least twice the pool median, or a budget at most 60% of an
    equal share.
    """
    m = pool.min_budget_change_cents
    # Evidence is judged at CURRENT budgets: "holding" is right when marginal returns are equal now,
    # so a move needs this member's marginal to differ from the pool's current (precision-weighted) one.
    num = den = 0.0
    for ln in lines:
        mu0 = ln.estimate.marginal(ln.current, ln.member.weight)
        if 0 < mu0 < math.inf:
            p = 1.0 / max(ln.estimate.log_var, 1e-9)
            num += p * math.log(mu0)
            den += p
    if den > 0:
        lam = math.exp(num / den)
    variances = sorted(ln.estimate.log_var for ln in lines)
    median_var = variances[len(variances) // 2] if variances else 0.0
    equal_share = sum(ln.current for ln in lines) / len(lines) if lines else 0.0
    log_lam = math.log(lam) if lam and lam > 0 and math.isfinite(lam) else None
    for ln in lines:
        e = ln.estimate
        c = ln.current
        gap = ln.target - c
        thr = max(m, pool.deadband_pct / 100.0 * c)
        direction = 0
        if abs(gap) >= thr:
            direction = 1 if gap > 0 else -1
        mu = e.marginal(c, ln.member.weight)
        if log_lam is None:
            z = 0.0
        elif math.isinf(mu):
            z = math.inf
        else:
            z = (math.log(max(mu, 1e-12)) - log_lam) / math.sqrt(max(e.post_var, 1e-9))
        ln.z = z
        if direction != 0:
            greedy_gap = ln.greedy_target - c
            supported = z * direction >= pool.evidence_z and greedy_gap * direction >= thr
            uncertain = e.log_var >= 2.0 * median_var or c <= 0.6 * equal_share
            explore = direction > 0 and not supported and gap >= thr and uncertain
            if not supported and not explore:
                ln.reason = f"gap not backed by evidence (z={z:+.1f}, needs {pool.evidence_z:g})"
                direction = 0
            ln.explore = explore
        mem = ln.memory
        if direction != 0 and direction == mem.pending_direction:
            count = mem.pending_count + 1
        else:
            count = 1 if direction != 0 else 0
        ln.direction = direction
        ln.count = count
        cooldown = pool.cooldown_hours
        if (
            direction != 0
            and mem.recent_directions
            and mem.recent_directions[-1] == direction
            and z * direction >= CONTINUATION_Z_FACTOR * pool.evidence_z
            and abs(gap) >= 2 * thr
        ):
            cooldown = pool.continuation_cooldown_hours
        ln.in_cooldown = mem.last_change_at is not None and hours_between(mem.last_change_at, now) < cooldown
        ln.ready = direction != 0 and count >= pool.persistence_intervals and not ln.in_cooldown
        if direction != 0 and not ln.ready:
            if ln.in_cooldown:
                ln.reason = f"cooldown: last change {hours_between(mem.last_change_at, now):.0f} h ago (< {cooldown:g} h)"  # type: ignore[arg-type]
            else:
                ln.reason = f"signal held {count}/{pool.persistence_intervals} consecutive plans"
        elif direction == 0 and not ln.reason:
            ln.reason = f"within deadband (target {ln.target / 100:,.2f} vs current {c / 100:,.2f})"


def _explain(ln: _Line, new: int, pool: PoolSettings, lam: float | None, need: int) -> MemberAllocation:
    e = ln.estimate
    mb = ln.member
    prev = mb.current_budget_cents
    cur = pool.currency
    action = "increase" if new > prev else "decrease" if new < prev else "hold"
    parts: list[str] = []
    base = f"{e.baseline_roas:.2f}" if e.baseline_roas is not None else "n/a"
    recent = f"{e.recent_roas:.2f}" if e.recent_roas is not None else "n/a"
    parts.append(f"own baseline {base}, last 3 d {recent} (maturity-corrected)")
    mu = e.marginal(max(ln.current, 1), mb.weight)
    lam_txt = f"{lam:.2f}" if lam is not None else "n/a"
    parts.append(f"marginal return {mu:.2f} per extra cent vs pool {lam_txt} (elasticity {e.elasticity:.2f}, z {ln.z:+.1f})")
    parts.append(f"shrinkage {e.shrinkage:.0%} toward pool" + ("" if e.has_data else " (no usable history)"))
    if e.risk_penalty < 1.0:
        parts.append(f"risk penalty {1 - e.risk_penalty:.0%} (frequency {e.frequency_risk:.2f}, engagement decay {e.engagement_decay:.2f})")
    parts.append(f"target {_fmt_money(ln.target, cur)}")
    reasons: list[str] = []
    if ln.current != prev:
        reasons.append(f"moved onto its {'floor' if ln.current > prev else 'ceiling'} {_fmt_money(ln.current, cur)}")
    if new != ln.current:
        if ln.ready:
            why = "exploration of an uncertain member" if ln.explore else "marginal return held above/below the pool"
            reasons.append(f"{action} {_fmt_money(new - prev, cur)}: {why} for {ln.count} plans")
        elif need != 0:
            reasons.append(f"{action} {_fmt_money(new - prev, cur)} to bring the pool sum to the daily budget")
        else:
            reasons.append(f"{action} {_fmt_money(new - prev, cur)} to fund/absorb moves of stronger evidence (lowest/highest marginal first)")
        step = step_limit(ln.current, pool)
        if abs(new - ln.current) == step:
            reasons.append(f"capped by the {pool.max_change_pct:g}% step limit")
    else:
        if new >= ln.bounds.hi and ln.target >= ln.bounds.hi - 0.5:
            reasons.append("held at its ceiling")
        elif new <= ln.bounds.lo and ln.target <= ln.bounds.lo + 0.5:
            reasons.append("held at its floor")
        reasons.append("held: " + (ln.reason or "no qualifying signal"))
    text = f"{_fmt_money(prev, cur)} -> {_fmt_money(new, cur)}; " + "; ".join(parts) + ". " + "; ".join(reasons)
    return MemberAllocation(
        member_id=mb.member_id, previous_budget_cents=prev, new_budget_cents=new, action=action, explanation=text,
        baseline_roas=e.baseline_roas, recent_roas=e.recent_roas, marginal_return=mu if math.isfinite(mu) else None,
        elasticity=e.elasticity, shrinkage=e.shrinkage, target_cents=int(round(ln.target)), evidence_count=ln.count,
        reasons=tuple(reasons),
    )


def _osc_reason(member_id: str, directions: Sequence[int], pool: PoolSettings) -> str:
    last = list(directions)[-pool.oscillation_window:]
    signs = "".join("+" if d > 0 else "-" for d in last)
    return (
        f"oscillation: member {member_id} reversed direction {count_reversals(last)} times in its last "
        f"{len(last)} changes ({signs}); automation frozen for {pool.freeze_hours:g} h"
    )


def _held_plan(pool: PoolSettings, members: Sequence[MemberState], now: datetime, state: EngineState, reason: str) -> AllocationPlan:
    allocations = []
    for mb in members:
        if mb.is_active and not mb.paused:
            allocations.append(MemberAllocation(mb.member_id, mb.current_budget_cents, mb.current_budget_cents, "hold", f"held: pool frozen ({reason})"))
        else:
            why = "paused" if mb.paused else "inactive"
            allocations.append(MemberAllocation(mb.member_id, mb.current_budget_cents, mb.current_budget_cents, "excluded", _EXCLUDED_TEXT.format(why=why)))
    total = sum(a.new_budget_cents for a in allocations if a.action != "excluded")
    feasible = total == pool.daily_budget_cents
    return AllocationPlan(
        pool_id=pool.pool_id, planned_at=now, currency=pool.currency, daily_budget_cents=pool.daily_budget_cents,
        allocations=tuple(allocations), feasible=feasible,
        infeasible_reason=None if feasible else f"frozen: budgets held at {total} cents vs pool budget {pool.daily_budget_cents}",
        frozen=True, frozen_reason=reason, state=state,
    )
