"""Invariants of plan_allocation over random sequences of pool events (hypothesis state machine).

The machine keeps one pool alive and applies random steps to it: plans (time advances by the pool's
cadence, every delivering member gets a new metric interval, the plan's budgets are applied and its state
stored), members joining (at the floor or any budget, with or without history), leaving, being deactivated
or reactivated, paused or unpaused, a person setting a member's budget on the platform, the pool being
frozen (the EngineState the engine itself stores when it freezes), and setting changes the API would accept
(``config_problems`` empty). Every plan is checked against every invariant below.

Terms: eligible = active and not paused; ``lo``/``hi`` = ``realize.bounds_for`` within the member's net-change
window when it has one (``move_bounds``); ``prev`` = the budget passed
in; ``c`` = ``prev`` moved onto ``[lo, hi]`` (the bound correction, the one change exempt from the step limit
and the minimum change; what follows it, from ``c``, is an ordinary move); ``B`` = the pool's daily budget.

1. excluded (paused/inactive) members keep their budgets;
2. a feasible plan sums to ``B`` exactly over the eligible members (frozen plans included);
3. never worse: ``|sum new - B| <= |sum prev - B|`` (when the bound corrections make that impossible:
   ``<= |sum c - B|``); a sum above ``B`` only in an infeasible plan that says why;
4. every eligible new budget lies in ``[lo, hi]``;
5. every change is the bound correction alone, or at most ``step_limit(prev)`` (after a correction:
   ``step_limit(c)`` from ``c``) and at least ``min_budget_change_cents``;
6. when ``B`` can be reached from ``prev`` within the bounds, step limits and minimum change (computed
   exactly below), the plan is feasible;
7. the returned state survives ``to_dict``/JSON/``from_dict`` unchanged, and planning with the round-tripped
   state gives the same plan as with the original (determinism).
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test

from allot.pools.domain import (
    AllocationPlan,
    EngineState,
    MemberState,
    MetricInterval,
    PoolSettings,
    plan_allocation,
)
from allot.pools.domain.config import MemberBounds, config_problems
from allot.pools.domain.netchange import narrow
from allot.pools.domain.realize import Bounds, bounds_for, step_limit

START = datetime(2024, 5, 6, tzinfo=UTC)
MAX_MEMBERS = 8
ROAS_CHOICES = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0)
PCT_CHOICES = (1.0, 5.0, 10.0, 12.5, 20.0, 33.3, 50.0, 100.0)

# -- invariant checks -------------------------------------------------------------------------------------


def eligible(members: Sequence[MemberState]) -> list[MemberState]:
    return [mb for mb in members if mb.is_active and not mb.paused]


def clamp(v: int, lo: int, hi: int) -> int:
    return min(max(v, lo), hi)


def lines_by_id(members: Sequence[MemberState], plan: AllocationPlan) -> dict[str, int]:
    """New budget per member id; the plan has exactly one line per member, with the budget passed in as previous."""
    ids = [a.member_id for a in plan.allocations]
    assert sorted(ids) == sorted(mb.member_id for mb in members), (
        f"plan lines {ids} vs members {[m.member_id for m in members]}"
    )
    prev = {mb.member_id: mb.current_budget_cents for mb in members}
    for a in plan.allocations:
        assert a.previous_budget_cents == prev[a.member_id], (
            f"{a.member_id}: line says previous {a.previous_budget_cents}, budget passed in was {prev[a.member_id]}"
        )
    return {a.member_id: a.new_budget_cents for a in plan.allocations}


def check_excluded_unchanged(members: Sequence[MemberState], new: dict[str, int]) -> None:
    for mb in members:
        if not mb.is_active or mb.paused:
            assert new[mb.member_id] == mb.current_budget_cents, (
                f"[1] excluded member {mb.member_id} (active={mb.is_active}, paused={mb.paused}) changed "
                f"{mb.current_budget_cents} -> {new[mb.member_id]}"
            )


def check_feasible_sum(
    pool: PoolSettings, members: Sequence[MemberState], new: dict[str, int], plan: AllocationPlan
) -> None:
    total = sum(new[mb.member_id] for mb in eligible(members))
    if plan.feasible:
        assert total == pool.daily_budget_cents, (
            f"[2] feasible plan (frozen={plan.frozen}) sums to {total}, pool budget {pool.daily_budget_cents} "
            f"(off by {total - pool.daily_budget_cents})"
        )
    else:
        assert isinstance(plan.infeasible_reason, str) and plan.infeasible_reason, (
            f"[3] infeasible plan without a reason (sum {total}, pool budget {pool.daily_budget_cents})"
        )


def check_never_worse(
    pool: PoolSettings, members: Sequence[MemberState], new: dict[str, int], plan: AllocationPlan
) -> None:
    B = pool.daily_budget_cents
    elig = eligible(members)
    prev_sum = sum(mb.current_budget_cents for mb in elig)
    corrected = [corrected_budget(mb, pool) for mb in elig]
    new_sum = sum(new[mb.member_id] for mb in elig)
    allowed = abs(prev_sum - B)
    if min_change_corner(pool, elig) or any(
        corrected_budget(mb, pool) != mb.current_budget_cents for mb in elig
    ) and abs(sum(corrected) - B) < 2 * pool.min_budget_change_cents + abs(prev_sum - B):
        allowed = max(allowed, abs(sum(corrected) - B), 2 * pool.min_budget_change_cents)
    if best_reachable_gap(pool, elig) > allowed:
        # The bound corrections alone push the sum further away than any plan can bring it back.
        allowed = abs(sum(corrected) - B)
    assert abs(new_sum - B) <= allowed, (
        f"[3] plan (frozen={plan.frozen}, feasible={plan.feasible}) moved the eligible sum from {prev_sum} "
        f"to {new_sum}, "
        f"pool budget {B}: off by {new_sum - B}, allowed at most {allowed} "
        f"(sum after bound corrections {sum(corrected)})"
    )
    if new_sum > B:
        assert not plan.feasible and plan.infeasible_reason, (
            f"[3] eligible sum {new_sum} above pool budget {B} but feasible={plan.feasible}, "
            f"reason={plan.infeasible_reason!r}"
        )


def check_within_bounds(
    pool: PoolSettings, members: Sequence[MemberState], new: dict[str, int], plan: AllocationPlan
) -> None:
    for mb in eligible(members):
        b = move_bounds(mb, pool)
        v = new[mb.member_id]
        assert b.lo <= v <= b.hi, (
            f"[4] {mb.member_id}: new budget {v} outside [{b.lo}, {b.hi}] "
            f"(was {mb.current_budget_cents}, frozen={plan.frozen})"
        )


def move_bounds(mb: MemberState, pool: PoolSettings) -> Bounds:
    """Where this plan may put the member: its floor and ceiling, within its net-change window when it has one."""
    b = bounds_for(mb, pool)
    if mb.window_min_cents is None and mb.window_max_cents is None:
        return b
    lo, hi = narrow(b.lo, b.hi, (b.lo if mb.window_min_cents is None else mb.window_min_cents,
                                 b.hi if mb.window_max_cents is None else mb.window_max_cents))
    return Bounds(lo=lo, hi=hi)


def corrected_budget(mb: MemberState, pool: PoolSettings) -> int:
    b = move_bounds(mb, pool)
    return clamp(mb.current_budget_cents, b.lo, b.hi)


def check_change_sizes(pool: PoolSettings, members: Sequence[MemberState], new: dict[str, int]) -> None:
    m = pool.min_budget_change_cents
    for mb in eligible(members):
        prev = mb.current_budget_cents
        v = new[mb.member_id]
        c = corrected_budget(mb, pool)
        if v in (prev, c):
            continue  # no change (a budget left outside its bounds is invariant 4's), or exactly the bound correction
        direct = abs(v - prev)
        if m <= direct <= step_limit(prev, pool):
            continue  # an ordinary change from the budget passed in
        after = abs(v - c)
        if c != prev and m <= after <= step_limit(c, pool):
            continue  # bound correction, then an ordinary move from the bound
        b = move_bounds(mb, pool)
        raise AssertionError(
            f"[5] {mb.member_id}: {prev} -> {v} (change {v - prev:+d}) breaks the step limit {step_limit(prev, pool)} "
            f"({pool.max_change_pct:g}% of {prev}) or the minimum change {m}; bounds [{b.lo}, {b.hi}]"
            + (f", after the correction to {c}: move {v - c:+d}, limit {step_limit(c, pool)}" if c != prev else "")
        )


def reachable_deltas(pool: PoolSettings, elig: Sequence[MemberState]) -> tuple[int, list[tuple[int, int]]]:
    """Sum of the corrected budgets and every total move reachable from it in one plan, as disjoint intervals.

    Each member may stay, or move up/down by at least the minimum change and at most its step limit,
    within its bounds (exact: interval sums of integers are intervals).
    """
    m = pool.min_budget_change_cents
    base = 0
    sums: list[tuple[int, int]] = [(0, 0)]
    for mb in elig:
        b = move_bounds(mb, pool)
        c = corrected_budget(mb, pool)
        base += c
        step = step_limit(c, pool)
        options = [(0, 0)]
        up, down = min(step, b.hi - c), min(step, c - b.lo)
        if up >= m:
            options.append((m, up))
        if down >= m:
            options.append((-down, -m))
        sums = merge([(a + x, b_ + y) for a, b_ in sums for x, y in options])
    return base, sums


def merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def best_reachable_gap(pool: PoolSettings, elig: Sequence[MemberState]) -> int:
    """Smallest |sum - B| any plan obeying bounds, step limits and the minimum change can reach."""
    base, sums = reachable_deltas(pool, elig)
    need = pool.daily_budget_cents - base
    return min(0 if a <= need <= b else min(abs(need - a), abs(need - b)) for a, b in sums)


SKIP_KNOWN_GAPS = True


def min_change_corner(pool: PoolSettings, elig: Sequence[MemberState]) -> bool:
    """KNOWN GAP (open in #12): ``realize_moves`` places the sum greedily, member after member, and can miss a sum
    that needs several moves close to the minimum change (or a move across the budget), leaving less than
    one or two minimum changes unplaced; later plans close it. The replays below pin those cases (xfail,
    strict); the machine skips [3]/[6] when some member's step room is under two minimum changes."""
    if not SKIP_KNOWN_GAPS:
        return False
    m = pool.min_budget_change_cents
    return any(0 < step_limit(max(mb.current_budget_cents, 0), pool) < 2 * m for mb in elig) or len(elig) > 0 and (
        abs(sum(mb.current_budget_cents for mb in elig) - pool.daily_budget_cents) < 2 * m
    )


def check_feasible_when_reachable(pool: PoolSettings, members: Sequence[MemberState], plan: AllocationPlan) -> None:
    elig = eligible(members)
    if min_change_corner(pool, elig):
        return
    B = pool.daily_budget_cents
    floors = sum(move_bounds(mb, pool).lo for mb in elig)
    ceilings = sum(move_bounds(mb, pool).hi for mb in elig)
    if floors <= B <= ceilings and best_reachable_gap(pool, elig) == 0:
        prev = {mb.member_id: mb.current_budget_cents for mb in elig}
        assert plan.feasible, (
            f"[6] plan infeasible (frozen={plan.frozen}, reason={plan.infeasible_reason!r}) although the pool "
            f"budget {B} is reachable: eligible budgets {prev} sum to {sum(prev.values())}, floors sum {floors}, "
            f"ceilings sum {ceilings}, step {pool.max_change_pct:g}%, min change {pool.min_budget_change_cents}"
        )


def round_trip(state: EngineState) -> EngineState:
    return EngineState.from_dict(json.loads(json.dumps(state.to_dict())))


def same_plan(a: AllocationPlan, b: AllocationPlan) -> bool:
    """Equal plans (NaN equal to NaN; the state's member order is not part of it)."""
    return a.state == b.state and repr(replace(a, state=EngineState())) == repr(replace(b, state=EngineState()))


def check_state_round_trip(plan: AllocationPlan) -> None:
    back = round_trip(plan.state)
    assert back == plan.state, f"[7] state changed by to_dict/from_dict:\n{plan.state}\n{back}"


def check_all(pool: PoolSettings, members: Sequence[MemberState], plan: AllocationPlan) -> None:
    new = lines_by_id(members, plan)
    check_excluded_unchanged(members, new)
    check_feasible_sum(pool, members, new, plan)
    check_never_worse(pool, members, new, plan)
    check_within_bounds(pool, members, new, plan)
    check_change_sizes(pool, members, new)
    check_feasible_when_reachable(pool, members, plan)
    check_state_round_trip(plan)


# -- metrics ----------------------------------------------------------------------------------------------


def maturity(age_hours: float, curve: Sequence[tuple[float, float]]) -> float:
    """Share of an interval's conversions/revenue reported ``age_hours`` after it ended (linear in the curve)."""
    if age_hours <= curve[0][0]:
        return curve[0][1]
    for (h0, f0), (h1, f1) in zip(curve, curve[1:], strict=False):
        if age_hours <= h1:
            return f0 + (f1 - f0) * (age_hours - h0) / (h1 - h0)
    return curve[-1][1]


def delivered(budget: int, start: datetime, hours: int, roas: float, rng: random.Random) -> MetricInterval:
    """What a member delivers in [start, start + hours) at ``budget`` per day (final numbers)."""
    spend = int(budget * hours / 24 * rng.uniform(0.6, 1.05))
    revenue = int(spend * roas * math.exp(rng.gauss(0.0, 0.35)))
    impressions = spend // 2 + rng.randrange(0, 50)
    return MetricInterval(
        start,
        start + timedelta(hours=hours),
        spend,
        revenue,
        round(revenue / 5_000, 2),
        impressions,
        impressions // 80,
        round(rng.uniform(1.0, 3.0), 2),
    )


def as_reported(iv: MetricInterval, now: datetime, curve: Sequence[tuple[float, float]]) -> MetricInterval:
    """The interval as the platform reports it at ``now`` (recent revenue and conversions not all in yet)."""
    f = maturity((now - iv.end_at).total_seconds() / 3600.0, curve)
    if f >= 1.0:
        return iv
    return replace(iv, revenue_cents=int(iv.revenue_cents * f), conversions=round(iv.conversions * f, 2))


# -- the machine ------------------------------------------------------------------------------------------


@st.composite
def pool_configs(draw: st.DrawFn) -> tuple[PoolSettings, list[MemberState]]:
    """A pool and its first members, as the API would accept them."""
    n = draw(st.integers(0, 5))
    budget = draw(st.one_of(st.integers(0, 3_000), st.integers(3_000, 200_000)))
    share = budget // max(n, 1)
    d_min = draw(st.integers(0, share))
    d_max = draw(st.none() | st.integers(d_min, max(d_min, budget)))
    cooldown = draw(st.sampled_from((0.0, 8.0, 16.0)))
    window, reversals = draw(st.sampled_from(((3, 2), (6, 3))))
    pool = PoolSettings(
        pool_id="p",
        daily_budget_cents=budget,
        allocation_frequency_hours=draw(st.sampled_from((4, 8, 12, 24))),
        default_min_budget_cents=d_min,
        default_max_budget_cents=d_max,
        min_budget_change_cents=draw(st.sampled_from((1, 50, 100, 500, 2_000))),
        max_change_pct=draw(st.sampled_from(PCT_CHOICES)),
        exploration_share=draw(st.sampled_from((0.0, 0.05, 0.10))),
        persistence_intervals=draw(st.integers(1, 3)),
        cooldown_hours=cooldown,
        continuation_cooldown_hours=cooldown / 2,
        deadband_pct=draw(st.sampled_from((0.0, 8.0))),
        oscillation_window=window,
        oscillation_reversals=reversals,
        freeze_hours=draw(st.sampled_from((8.0, 24.0, 72.0))),
    )
    mode = draw(st.sampled_from(("split", "floor", "random")))
    members = []
    for i in range(n):
        if mode == "split":
            current = budget // n + (1 if i < budget % n else 0)
        elif mode == "floor":
            current = d_min
        else:
            current = draw(st.integers(0, 2 * share))
        own_min = draw(st.none() | st.integers(0, share))
        lo = own_min if own_min is not None else d_min
        own_max = draw(st.none() | st.integers(lo, max(lo, budget)))
        if own_max is None and d_max is not None and d_max < lo:
            own_max = lo  # the pool's default ceiling is below this member's own floor
        window: tuple[int | None, int | None] = (None, None)
        if draw(st.booleans()):  # the guardrails' net-change window, as the service passes it: around the budget
            window = (max(0, current - draw(st.integers(0, share))), current + draw(st.integers(0, share)))
        members.append(MemberState(f"m{i}", current, own_min, own_max, window_min_cents=window[0],
                                   window_max_cents=window[1]))
    return pool, members


def problems(pool: PoolSettings, members: Sequence[MemberState]) -> list[str]:
    """``config_problems`` of this configuration (what the API would refuse), as messages."""
    bounds = [
        MemberBounds(f"members.{i}", mb.member_id, mb.min_budget_cents, mb.max_budget_cents, mb.is_active)
        for i, mb in enumerate(members)
    ]
    found = config_problems(
        daily_budget_cents=pool.daily_budget_cents,
        default_min_budget_cents=pool.default_min_budget_cents,
        default_max_budget_cents=pool.default_max_budget_cents,
        members=bounds,
    )
    return [p.message for p in found]


class PoolMachine(RuleBasedStateMachine):
    """One pool through a random life; every plan is checked by :func:`check_all`."""

    pool: PoolSettings
    members: list[MemberState]

    def __init__(self) -> None:
        super().__init__()
        self.now = START
        self.state: EngineState | None = None
        self.history: dict[str, list[MetricInterval]] = {}
        self.roas: dict[str, float] = {}
        self.departed: list[str] = []
        self.next_id = 0

    # helpers

    def member_at(self, index: int) -> tuple[int, MemberState]:
        i = index % len(self.members)
        return i, self.members[i]

    def accept(self, pool: PoolSettings, members: list[MemberState]) -> bool:
        """Take the new configuration if the API would (no config problem); otherwise leave everything as is."""
        if problems(pool, members):
            return False
        self.pool, self.members = pool, members
        return True

    def backfill(self, member_id: str, budget: int, days: int, rng: random.Random) -> None:
        hours = self.pool.allocation_frequency_hours
        t = self.now - timedelta(days=days)
        while t + timedelta(hours=hours) <= self.now:
            self.history[member_id].append(delivered(budget, t, hours, self.roas[member_id], rng))
            t += timedelta(hours=hours)

    # steps

    @initialize(
        config=pool_configs(),
        roas=st.lists(st.sampled_from(ROAS_CHOICES), min_size=5, max_size=5),
        days=st.integers(0, 5),
        seed=st.integers(0, 2**16),
    )
    def setup(self, config: tuple[PoolSettings, list[MemberState]], roas: list[float], days: int, seed: int) -> None:
        self.pool, self.members = config
        assert not problems(self.pool, self.members), problems(self.pool, self.members)
        rng = random.Random(seed)
        for mb, r in zip(self.members, roas, strict=False):
            self.roas[mb.member_id] = r
            self.history[mb.member_id] = []
            self.backfill(mb.member_id, mb.current_budget_cents, days, rng)
        self.next_id = len(self.members)

    @rule(seed=st.integers(0, 2**16))
    def plan(self, seed: int) -> None:
        """Time passes by one cadence, members deliver, the engine plans; the plan is checked, then applied."""
        rng = random.Random(seed)
        hours = self.pool.allocation_frequency_hours
        start = self.now
        self.now = start + timedelta(hours=hours)
        horizon = self.now - timedelta(days=self.pool.lookback_days + 1)
        for mb in eligible(self.members):
            self.history[mb.member_id].append(
                delivered(mb.current_budget_cents, start, hours, self.roas[mb.member_id], rng)
            )
        for mid, ivs in self.history.items():
            self.history[mid] = [iv for iv in ivs if iv.end_at > horizon]
        history = {
            mid: [as_reported(iv, self.now, self.pool.maturation_curve) for iv in ivs]
            for mid, ivs in self.history.items()
        }

        plan = plan_allocation(self.pool, list(self.members), history, now=self.now, state=self.state)
        check_all(self.pool, self.members, plan)
        if self.state is not None:
            again = plan_allocation(self.pool, list(self.members), history, now=self.now, state=round_trip(self.state))
            assert same_plan(plan, again), f"[7] planning with the round-tripped state differs:\n{plan}\n{again}"

        new = plan.budgets
        self.members = [replace(mb, current_budget_cents=new[mb.member_id]) for mb in self.members]
        self.state = plan.state

    @precondition(lambda self: len(self.members) < MAX_MEMBERS)
    @rule(
        at_floor=st.booleans(),
        budget=st.integers(0, 60_000),
        own_min=st.none() | st.integers(0, 20_000),
        own_max=st.none() | st.integers(0, 80_000),
        history_days=st.sampled_from((0, 0, 2, 5)),
        roas=st.sampled_from(ROAS_CHOICES),
        rejoin=st.booleans(),
        seed=st.integers(0, 2**16),
    )
    def join(
        self,
        at_floor: bool,
        budget: int,
        own_min: int | None,
        own_max: int | None,
        history_days: int,
        roas: float,
        rejoin: bool,
        seed: int,
    ) -> None:
        """A member joins at its floor or at any budget, new or coming back (its old engine memory still stored)."""
        if rejoin and self.departed:
            mid = self.departed.pop(0)
        else:
            mid = f"m{self.next_id}"
            self.next_id += 1
        if own_min is not None and own_max is not None and own_max < own_min:
            own_max = own_min
        floor = own_min if own_min is not None else self.pool.default_min_budget_cents
        mb = MemberState(mid, floor if at_floor else budget, own_min, own_max)
        if self.accept(self.pool, [*self.members, mb]):
            self.roas[mid] = roas
            self.history[mid] = []
            self.backfill(mid, mb.current_budget_cents, history_days, random.Random(seed))

    @precondition(lambda self: self.members)
    @rule(index=st.integers(0, MAX_MEMBERS - 1))
    def leave(self, index: int) -> None:
        """A member is removed from the pool."""
        i, mb = self.member_at(index)
        self.members = self.members[:i] + self.members[i + 1 :]
        self.history.pop(mb.member_id, None)
        self.departed.append(mb.member_id)

    @precondition(lambda self: self.members)
    @rule(index=st.integers(0, MAX_MEMBERS - 1))
    def toggle_active(self, index: int) -> None:
        """A member becomes inactive, or active again."""
        i, mb = self.member_at(index)
        self.accept(self.pool, [*self.members[:i], replace(mb, is_active=not mb.is_active), *self.members[i + 1 :]])

    @precondition(lambda self: self.members)
    @rule(index=st.integers(0, MAX_MEMBERS - 1))
    def toggle_paused(self, index: int) -> None:
        """A member is paused, or unpaused."""
        i, mb = self.member_at(index)
        self.members = [*self.members[:i], replace(mb, paused=not mb.paused), *self.members[i + 1 :]]

    @precondition(lambda self: self.members)
    @rule(index=st.integers(0, MAX_MEMBERS - 1), budget=st.integers(0, 80_000))
    def person_sets_budget(self, index: int, budget: int) -> None:
        """Someone changes a member's budget on the platform, out of band (maybe outside its bounds)."""
        i, mb = self.member_at(index)
        self.members = [*self.members[:i], replace(mb, current_budget_cents=budget), *self.members[i + 1 :]]

    @rule(hours=st.sampled_from((1, 8, 24, 72)), index=st.integers(0, MAX_MEMBERS - 1))
    def freeze(self, hours: int, index: int) -> None:
        """The pool is frozen, as the engine stores it after an oscillation (memories kept)."""
        who = self.members[index % len(self.members)].member_id if self.members else "m0"
        state = self.state or EngineState()
        reason = (
            f"oscillation: member {who} reversed direction 3 times in its last 4 changes (+-+-); "
            f"automation frozen for {hours} h"
        )
        self.state = replace(state, frozen_until=self.now + timedelta(hours=hours), frozen_reason=reason)

    @rule(
        budget=st.none() | st.integers(0, 200_000),
        d_min=st.none() | st.integers(0, 30_000),
        d_max=st.sampled_from(("keep", "none", "set")),
        d_max_value=st.integers(0, 100_000),
        min_change=st.none() | st.sampled_from((1, 50, 100, 500, 2_000)),
        pct=st.none() | st.sampled_from(PCT_CHOICES),
    )
    def change_settings(
        self,
        budget: int | None,
        d_min: int | None,
        d_max: str,
        d_max_value: int,
        min_change: int | None,
        pct: float | None,
    ) -> None:
        """Daily budget, default floor/ceiling, minimum change or step limit change (if the API would accept it)."""
        p = self.pool
        new_min = p.default_min_budget_cents if d_min is None else d_min
        new_max = {"keep": p.default_max_budget_cents, "none": None, "set": max(d_max_value, new_min)}[d_max]
        if new_max is not None and new_max < new_min:
            return
        pool = replace(
            p,
            daily_budget_cents=p.daily_budget_cents if budget is None else budget,
            default_min_budget_cents=new_min,
            default_max_budget_cents=new_max,
            min_budget_change_cents=p.min_budget_change_cents if min_change is None else min_change,
            max_change_pct=p.max_change_pct if pct is None else pct,
        )
        self.accept(pool, self.members)

    @precondition(lambda self: self.members)
    @rule(
        index=st.integers(0, MAX_MEMBERS - 1),
        own_min=st.none() | st.integers(0, 30_000),
        own_max=st.none() | st.integers(0, 100_000),
    )
    def change_member_bounds(self, index: int, own_min: int | None, own_max: int | None) -> None:
        """A member's own floor/ceiling change (only if the API would accept it)."""
        i, mb = self.member_at(index)
        if own_min is not None and own_max is not None and own_max < own_min:
            return
        self.accept(
            self.pool,
            [
                *self.members[:i],
                replace(mb, min_budget_cents=own_min, max_budget_cents=own_max),
                *self.members[i + 1 :],
            ],
        )


SETTINGS = settings(
    max_examples=300,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_plans_keep_every_invariant_through_random_pool_histories() -> None:
    run_state_machine_as_test(PoolMachine, settings=SETTINGS)


# -- cases the machine found, replayed every run (each checks every invariant on its plans) ---------------

Step = tuple[str, dict[str, object]]
"""A machine rule by name and its arguments."""

PLAN: Step = ("plan", {"seed": 0})
FREEZE: Step = ("freeze", {"hours": 24, "index": 0})


def joins(budget: int) -> Step:
    """A member joins at ``budget``, without bounds of its own or history."""
    return "join", {
        "at_floor": False, "budget": budget, "own_min": None, "own_max": None, "history_days": 0, "roas": 3.0,
        "rejoin": False, "seed": 0,
    }  # fmt: skip


def replay(pool: PoolSettings, members: list[MemberState], steps: list[Step]) -> None:
    machine = PoolMachine()
    machine.setup(config=(pool, members), roas=[3.0] * 5, days=0, seed=0)
    for name, kwargs in steps:
        getattr(machine, name)(**kwargs)
    machine.teardown()


def pool_of(**kw: Any) -> PoolSettings:
    return PoolSettings(pool_id="p", **kw)


REPLAYS: dict[str, tuple[PoolSettings, list[MemberState], list[Step]]] = {
    # A member joins a frozen pool: the held plan sums to 12,000 of 10,000 (the others could give 1,000 each).
    "member joins during a freeze": (
        pool_of(daily_budget_cents=10_000),
        [MemberState("m0", 5_000), MemberState("m1", 5_000)],
        [FREEZE, joins(2_000), PLAN],
    ),
    # A ceiling lowered during a freeze: the held plan keeps 5,000 above the 4,000 ceiling.
    "ceiling lowered during a freeze": (
        pool_of(daily_budget_cents=10_000),
        [MemberState("m0", 5_000), MemberState("m1", 5_000)],
        [FREEZE, ("change_member_bounds", {"index": 0, "own_min": None, "own_max": 4_000}), PLAN],
    ),
    # +150 needed, each member may move 50..62: three moves of 50 reach it (62 + 62 leaves a tail of 26).
    "need split over several minimum changes": (
        pool_of(
            daily_budget_cents=1_656, default_min_budget_cents=502, min_budget_change_cents=50, max_change_pct=12.5
        ),
        [MemberState(f"m{i}", 502) for i in range(3)],
        [PLAN],
    ),
    # -1 needed with a minimum change of 50: m3 +50 and m0 -51 reach it.
    "need smaller than the minimum change": (
        pool_of(daily_budget_cents=151, min_budget_change_cents=50, max_change_pct=100.0),
        [MemberState("m0", 51), MemberState("m1", 50), MemberState("m2", 50), MemberState("m3", 1)],
        [PLAN],
    ),
    # m1 below its floor: the correction takes the sum from 31,000 to 32,500 (pool 30,000); m0 -3,000
    # (one minimum change, within its 4,000 step) ends 500 under the budget, better than the 1,000 before.
    "bound correction, then a repair across the budget": (
        pool_of(daily_budget_cents=30_000, min_budget_change_cents=3_000),
        [MemberState("m0", 20_000), MemberState("m1", 11_000, min_budget_cents=12_500)],
        [PLAN],
    ),
}


KNOWN_GAPS = {
    "need split over several minimum changes", "need smaller than the minimum change",
}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, marks=pytest.mark.xfail(strict=True, reason="realize_moves greedy gap (see min_change_corner)"))
        if c in KNOWN_GAPS else c
        for c in REPLAYS
    ],
)
def test_found_cases_keep_every_invariant(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "SKIP_KNOWN_GAPS", False)
    replay(*REPLAYS[case])
