"""The budget-pool allocation engine: one pure function, :func:`plan_allocation`.

``simulate``, ``allocate``, the scheduler and the backtest all call it. It reads
no clock (``now`` is an argument), does no I/O and uses no randomness: the same
inputs always give the same plan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from allot.pools.domain._kernels import E_BASE, E_ELAST, E_POSTVAR, E_RECENT, E_SHRINK
from allot.pools.domain.estimate import evidence_rows, kernels, shrink_tuples
from allot.pools.domain.models import (
    AllocationPlan,
    CompositeWeights,
    EngineState,
    MemberAllocation,
    MemberMemory,
    MemberState,
    MetricInterval,
    PoolSettings,
    hours_between,
)
from allot.pools.domain.oscillation import count_reversals, is_oscillating

__all__ = ["plan_allocation", "EXPLORATION_KAPPA"]

#: A continuing move (same direction as the member's last change) may use the short cooldown when its evidence is this many times the usual bar.
CONTINUATION_Z_FACTOR = 1.0
#: Optimism (posterior standard deviations) used to place the exploration share.
EXPLORATION_KAPPA = 1.5

_solve = kernels.solve
_explain = kernels.explain
_curve_inputs = kernels.curve_inputs
_explore_targets = kernels.explore_targets
_moves = kernels.moves
_move_orders = kernels.move_orders
_realize_moves = kernels.realize_moves
_signals_kernel = kernels.signals
_EMPTY_MEMORY = MemberMemory()

_EXCLUDED_TEXT = "excluded: {why}; budget left as is and not counted in the pool sum"


# Positional constructors for the two frozen, slotted models the engine builds once per member per plan
# (neither has a __post_init__): setting the slots directly gives the same object as the generated frozen
# __init__ (which goes through object.__setattr__ field by field) at about half the cost.
_new_object = object.__new__
assert MemberAllocation.__slots__ == (
    "member_id", "previous_budget_cents", "new_budget_cents", "action", "explanation", "baseline_roas", "recent_roas",
    "marginal_return", "elasticity", "shrinkage", "target_cents", "evidence_count", "reasons",
) and MemberMemory.__slots__ == ("pending_direction", "pending_count", "last_change_at", "recent_directions"), "update the builders below"
(_a0, _a1, _a2, _a3, _a4, _a5, _a6, _a7, _a8, _a9, _a10, _a11, _a12) = (getattr(MemberAllocation, f).__set__ for f in MemberAllocation.__slots__)
(_m0, _m1, _m2, _m3) = (getattr(MemberMemory, f).__set__ for f in MemberMemory.__slots__)


def _new_allocation(member_id, previous, new, action, explanation, baseline_roas, recent_roas, marginal_return,  # type: ignore[no-untyped-def]
                    elasticity, shrinkage, target_cents, evidence_count, reasons) -> MemberAllocation:
    """``MemberAllocation(...)`` with every field given in declaration order."""
    o = _new_object(MemberAllocation)
    _a0(o, member_id); _a1(o, previous); _a2(o, new); _a3(o, action); _a4(o, explanation)  # noqa: E702
    _a5(o, baseline_roas); _a6(o, recent_roas); _a7(o, marginal_return); _a8(o, elasticity); _a9(o, shrinkage)  # noqa: E702
    _a10(o, target_cents); _a11(o, evidence_count); _a12(o, reasons)  # noqa: E702
    return o


def _new_memory(pending_direction, pending_count, last_change_at, recent_directions) -> MemberMemory:  # type: ignore[no-untyped-def]
    """``MemberMemory(...)`` with every field given in declaration order."""
    o = _new_object(MemberMemory)
    _m0(o, pending_direction); _m1(o, pending_count); _m2(o, last_change_at); _m3(o, recent_directions)  # noqa: E702
    return o


def _pool_conversion_value(
    history: Mapping[str, Sequence[MetricInterval]], ids: Sequence[str], pool: PoolSettings, cw: CompositeWeights | None = None
) -> float:
    """Revenue per conversion across the pool (only needed when a composite mixes revenue and conversions)."""
    cw = cw or pool.composite
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
    osc_window = pool.oscillation_window
    osc_reversals = pool.oscillation_reversals

    # Freeze handling: an expired freeze clears the direction history it was based on.
    frozen_until = state.frozen_until
    frozen_reason = state.frozen_reason
    if frozen_until is not None and now >= frozen_until:
        frozen_until, frozen_reason = None, None
        memories = {k: MemberMemory(v.pending_direction, v.pending_count, v.last_change_at, ()) for k, v in memories.items()}
    if frozen_until is None and memories:
        for mb in eligible:
            mem = memories.get(mb.member_id)
            # Fewer remembered directions than the reversals needed cannot hold that many reversals.
            if mem and len(mem.recent_directions) > osc_reversals and is_oscillating(mem.recent_directions, window=osc_window, reversals=osc_reversals):
                frozen_until = now + timedelta(hours=pool.freeze_hours)
                frozen_reason = _osc_reason(mb.member_id, mem.recent_directions, pool)
                break
    if frozen_until is not None:
        new_state = EngineState(members=memories, frozen_until=frozen_until, frozen_reason=frozen_reason, last_plan_at=now)
        return _held_plan(pool, members, now, new_state, frozen_reason or "frozen")

    # Bounds (as realize.bounds_for) and current budgets moved onto them.
    d_lo = pool.default_min_budget_cents
    d_hi = pool.default_max_budget_cents
    los: list[int] = []
    his: list[int] = []
    current: list[int] = []
    ids: list[str] = []
    weights: list[float] = []
    for mb in eligible:
        lo = mb.min_budget_cents if mb.min_budget_cents is not None else d_lo
        if mb.max_budget_cents is not None:
            hi = mb.max_budget_cents
        elif d_hi is not None:
            hi = d_hi
        else:
            hi = lo if lo > B else B  # max(B, lo)
        if lo > hi:  # hi = max(hi, lo)
            hi = lo
        los.append(lo)
        his.append(hi)
        v = mb.current_budget_cents
        v = lo if lo > v else v  # min(max(v, lo), hi)
        current.append(hi if hi < v else v)
        ids.append(mb.member_id)
        weights.append(mb.weight)
    n = len(eligible)
    cw = pool.composite
    conv_value = _pool_conversion_value(history, ids, pool, cw)
    hget = history.get
    evidence = evidence_rows([hget(i, ()) for i in ids], pool, now, conv_value, cw)
    ref_spend = B / n if n else 1.0
    estimates = shrink_tuples(evidence, current, pool, ref_spend, cw)

    mem_empty = _EMPTY_MEMORY
    mems = [memories.get(i) or mem_empty for i in ids]
    targets: list[float] = [0.0] * n
    greedy: list[float] = [0.0] * n
    zs = [0.0] * n
    dirs_ = [0] * n
    counts = [0] * n
    cooling = [False] * n
    explore = [False] * n
    ready = [False] * n
    reason = [""] * n
    mu_now: list[float] = []  # marginal return at the current budget
    pool_lambda: float | None = None
    if n:
        c0, k, mu_now = _curve_inputs(estimates, weights, current)
        lo_f = [float(x) for x in los]
        hi_f = [float(x) for x in his]
        greedy, lam = _solve(c0, k, lo_f, hi_f, B, None)
        pool_lambda = lam if math.isfinite(lam) else None
        targets = greedy
        if pool.exploration_share > 0:
            boosts = [EXPLORATION_KAPPA * math.sqrt(e[E_POSTVAR]) for e in estimates]
            optimistic, _ = _solve(c0, k, lo_f, hi_f, B, boosts)
            targets = _explore_targets(greedy, optimistic, pool.exploration_share * B)
        _signals(pool, now, pool_lambda, estimates, current, targets, greedy, mems, mu_now, zs, dirs_, counts, cooling, explore, ready, reason)

    # Moves: wanted amounts for ready members, balancing room for everybody else not cooling down.
    need = B - sum(current)
    steps, up_w, down_w, up_room, down_room = _moves(current, targets, los, his, cooling, ready, reason, need, m, pool.max_change_pct)
    up_order, down_order = _move_orders(targets, current, ids)
    new_budgets, missing = _realize_moves(current, B, up_w, down_w, up_room, down_room, up_order, down_order, m)

    # Oscillation check on the moves about to be made: refuse to make the reversal that completes the pattern.
    new_memories: dict[str, MemberMemory] = dict(memories)
    for i in range(n):
        new = new_budgets[i]
        c = current[i]
        mid = ids[i]
        mem = mems[i]
        if new != c:
            direction = 1 if new > c else -1
            dirs = (mem.recent_directions + (direction,))[-osc_window:] if need == 0 else mem.recent_directions
            keep = counts[i] if dirs_[i] == direction else 0
            new_memories[mid] = _new_memory(direction if keep else 0, keep, now, dirs)
            if need == 0 and len(dirs) > osc_reversals and is_oscillating(dirs, window=osc_window, reversals=osc_reversals):
                reason_txt = _osc_reason(mid, dirs, pool)
                # The reversal is refused, but remembered so the freeze holds until it expires.
                held_state = EngineState(
                    members={**memories, mid: MemberMemory(0, 0, mem.last_change_at, dirs)},
                    frozen_until=now + timedelta(hours=pool.freeze_hours), frozen_reason=reason_txt, last_plan_at=now,
                )
                return _held_plan(pool, members, now, held_state, reason_txt)
        elif new != eligible[i].current_budget_cents:
            new_memories[mid] = _new_memory(0, 0, now, mem.recent_directions)
        else:
            new_memories[mid] = _new_memory(dirs_[i], counts[i], mem.last_change_at, mem.recent_directions)

    feasible = missing == 0
    infeasible_reason = None
    if not feasible:
        sum_lo = sum(los)
        sum_hi = sum(his)
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
    append = allocations.append
    index = {mid: i for i, mid in enumerate(ids)}
    lam_txt = f"{pool_lambda:.2f}" if pool_lambda is not None else "n/a"
    capped_txt = f"capped by the {pool.max_change_pct:g}% step limit"
    isfinite = math.isfinite
    prevs = [mb.current_budget_cents for mb in eligible]
    lines = _explain(
        prevs, new_budgets, current, targets, los, his, steps, ready, explore, counts, reason, zs, estimates, mu_now, weights,
        need, cur, lam_txt, capped_txt,
    )
    for mb in members:
        j = index.get(mb.member_id)
        if j is None:
            why = "paused" if mb.paused else "inactive"
            append(
                MemberAllocation(mb.member_id, mb.current_budget_cents, mb.current_budget_cents, "excluded", _EXCLUDED_TEXT.format(why=why))
            )
            continue
        # The line of the (last) eligible member with this id.
        e = estimates[j]
        action, text, reasons, mu = lines[j]
        append(
            _new_allocation(
                mb.member_id, prevs[j], new_budgets[j], action, text, e[E_BASE], e[E_RECENT], mu if isfinite(mu) else None,
                e[E_ELAST], e[E_SHRINK], int(round(targets[j])), counts[j], reasons,
            )
        )
    new_state = EngineState(members=new_memories, frozen_until=None, frozen_reason=None, last_plan_at=now)
    return AllocationPlan(
        pool_id=pool.pool_id, planned_at=now, currency=cur, daily_budget_cents=B, allocations=tuple(allocations),
        feasible=feasible, infeasible_reason=infeasible_reason, frozen=False, frozen_reason=None, state=new_state,
        pool_marginal_return=pool_lambda,
    )


def _signals(
    pool: PoolSettings, now: datetime, lam: float | None, estimates: list[tuple], current: list[int],
    targets: list[float], greedy: list[float], mems: Sequence[MemberMemory], mu_now: list[float],
    zs: list[float], dirs_: list[int], counts: list[int], cooling: list[bool], explore: list[bool], ready: list[bool], reason: list[str],
) -> None:
    """Direction, evidence, persistence and cooldown of each member's pull toward its target (fills the per-member lists).

    Exploration (an increase without the usual evidence) is reserved for members that are new or
    starved: own-estimate variance at least twice the pool median, or a budget at most 60% of an
    equal share. The arithmetic is ``kernels.signals``; this passes it the pool's rules and the memories.
    """
    evidence_z = pool.evidence_z
    _signals_kernel(
        pool.min_budget_change_cents, pool.deadband_pct / 100.0, evidence_z, CONTINUATION_Z_FACTOR * evidence_z,
        pool.persistence_intervals, pool.cooldown_hours, pool.continuation_cooldown_hours, lam, estimates, current, targets,
        greedy, mu_now, [mm.pending_direction for mm in mems], [mm.pending_count for mm in mems],
        [hours_between(mm.last_change_at, now) if mm.last_change_at is not None else None for mm in mems],
        [mm.recent_directions[-1] if mm.recent_directions else 0 for mm in mems],
        zs, dirs_, counts, cooling, explore, ready, reason,
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
