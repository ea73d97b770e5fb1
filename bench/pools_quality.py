"""Allocation quality benchmark on the sandbox delivery model.

For several seeds, a pool of 8-12 members (make_portfolio: strong, weak, a
strong newcomer, a fader) runs 28 days with an allocation every 8 hours under
four policies: our engine, equal split, the literal seed-001 threshold
heuristic and a trailing-ROAS chaser. All policies see the same 14-day warm-up
history, data as the platform reports it (immature for the last ~3 days) and
obey the same floors, ceilings, step limit and minimum change.

Scored on TRUE expected revenue (noise-free curves at the budgets in force) as
a % of the best possible allocation: an oracle that knows the true curves and
re-allocates greedily by marginal revenue every day under the same floors and
ceilings (but without step limits). Also reports budget changes per member per
day. Writes bench/results/pools_quality.json.

Run: PYTHONPATH=services/pools/src:services/sandbox/src python bench/pools_quality.py
"""

from __future__ import annotations

import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from allot.pools.domain import EngineState, MemberState, MetricInterval, PoolSettings, plan_allocation
from allot.pools.domain.baselines import plan_equal_split, plan_roas_chaser, plan_threshold_heuristic
from allot.pools.domain.models import AllocationPlan
from allot.sandbox.delivery import (
    EntityCurve,
    IntervalDelivery,
    expected_revenue_cents,
    make_portfolio,
    maturation_fraction,
    simulate_interval,
)

Policy = Callable[..., AllocationPlan]
POLICIES: dict[str, Policy] = {
    "engine": plan_allocation,
    "equal_split": plan_equal_split,
    "threshold_seed001": plan_threshold_heuristic,
    "roas_chaser": plan_roas_chaser,
}
SEEDS = (11, 22, 33, 44, 55, 66)
DAYS = 28
WARMUP_DAYS = 14
SHARE_CENTS = 15_000
FLOOR_CENTS = 3_000
CEILING_CENTS = 60_000
ORIGIN = datetime(2024, 1, 1, tzinfo=UTC)


def to_metric(d: IntervalDelivery, now: datetime) -> MetricInterval:
    """The delivery as reported at ``now`` (immature conversions/revenue scaled down)."""
    age_h = (now - d.end_at).total_seconds() / 3600.0
    f = maturation_fraction(age_h)
    conv = d.conversions if f >= 1.0 else math.floor(d.conversions * f + 1e-9)
    rev = d.revenue_cents if f >= 1.0 else math.floor(d.revenue_cents * f + 1e-9)
    return MetricInterval(d.start_at, d.end_at, d.spend_cents, int(rev), float(conv), d.impressions, d.clicks, d.frequency)


def oracle_budgets(curves: Sequence[EntityCurve], total: int, day: datetime) -> list[float]:
    """Greedy marginal allocation on the true curves: equal marginal revenue under floors/ceilings (bisection on the marginal)."""
    def alloc(lam: float) -> list[float]:
        out = []
        for c in curves:
            level = c.saturation_conversions_per_day * c.level_multiplier(day) * c.seasonality[day.weekday()]
            m0 = level * c.aov_cents / c.scale_cents
            x = c.scale_cents * math.log(m0 / lam) if m0 > lam else 0.0
            out.append(min(max(x, FLOOR_CENTS), CEILING_CENTS))
        return out

    lo, hi = 1e-9, 1e3
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        if sum(alloc(mid)) > total:
            lo = mid
        else:
            hi = mid
    return alloc(math.sqrt(lo * hi))


def run(seed: int, n: int, freq_h: int, policy_names: Sequence[str]) -> dict[str, dict[str, float]]:
    curves = make_portfolio(seed, n, origin_at=ORIGIN)
    total = SHARE_CENTS * n
    start = ORIGIN + timedelta(days=WARMUP_DAYS)
    initial = {}
    newcomer_budget = SHARE_CENTS // 2
    rest = total - newcomer_budget
    others = [c for c in curves if c.role != "newcomer"]
    for i, c in enumerate(others):
        initial[c.entity_id] = rest // len(others) + (1 if i < rest % len(others) else 0)
    for c in curves:
        if c.role == "newcomer":
            initial[c.entity_id] = newcomer_budget
    # Shared warm-up history at the initial budgets.
    warm: dict[str, list[IntervalDelivery]] = {c.entity_id: [] for c in curves}
    wrng = random.Random(seed)
    t = ORIGIN
    while t < start:
        for c in curves:
            if c.origin_at is not None and t < c.origin_at:
                continue
            warm[c.entity_id].append(simulate_interval(c, initial[c.entity_id], t, freq_h, wrng))
        t += timedelta(hours=freq_h)
    pool = PoolSettings(
        pool_id=f"bench-{seed}", daily_budget_cents=total, allocation_frequency_hours=freq_h,
        default_min_budget_cents=FLOOR_CENTS, default_max_budget_cents=CEILING_CENTS,
        min_budget_change_cents=500, max_change_pct=20.0,
    )
    steps = DAYS * 24 // freq_h
    # Oracle per day.
    oracle_total = 0.0
    oracle_by_day: dict[int, list[float]] = {}
    for s in range(steps):
        ts = start + timedelta(hours=s * freq_h)
        day = s * freq_h // 24
        if day not in oracle_by_day:
            oracle_by_day[day] = oracle_budgets(curves, total, start + timedelta(days=day, hours=12))
        mid = ts + timedelta(hours=freq_h / 2)
        oracle_total += sum(expected_revenue_cents(c, x, mid) for c, x in zip(curves, oracle_by_day[day])) * freq_h / 24
    results: dict[str, dict[str, float]] = {}
    for name in policy_names:
        policy = POLICIES[name]
        budgets = dict(initial)
        deliveries = {k: list(v) for k, v in warm.items()}
        state: EngineState | None = None
        changes = 0
        true_rev = 0.0
        frozen = 0
        infeasible = 0
        elapsed = 0.0
        for s in range(steps):
            now = start + timedelta(hours=s * freq_h)
            horizon = now - timedelta(days=30)
            history = {k: [to_metric(d, now) for d in v if d.end_at > horizon] for k, v in deliveries.items()}
            members = [MemberState(c.entity_id, budgets[c.entity_id]) for c in curves]
            t0 = time.perf_counter()
            plan = policy(pool, members, history, now=now, state=state)
            elapsed += time.perf_counter() - t0
            state = plan.state
            frozen += plan.frozen
            infeasible += not plan.feasible
            for a in plan.allocations:
                if a.new_budget_cents != budgets[a.member_id]:
                    changes += 1
                    budgets[a.member_id] = a.new_budget_cents
            assert sum(budgets.values()) == total or not plan.feasible
            mid = now + timedelta(hours=freq_h / 2)
            for c in curves:
                rng = random.Random(seed * 1_000_003 + s * 7919 + int(c.entity_id[1:]))
                deliveries[c.entity_id].append(simulate_interval(c, budgets[c.entity_id], now, freq_h, rng))
                true_rev += expected_revenue_cents(c, budgets[c.entity_id], mid) * freq_h / 24
        results[name] = {
            "pct_of_best": 100.0 * true_rev / oracle_total,
            "changes_per_member_day": changes / (n * DAYS),
            "frozen_plans": frozen,
            "infeasible_plans": infeasible,
            "plan_ms": 1000 * elapsed / steps,
            "final_budgets": {k: budgets[k] for k in sorted(budgets)},
            "oracle_last_day": {c.entity_id: round(x) for c, x in zip(curves, oracle_by_day[DAYS - 1])},
            "roles": {c.entity_id: c.role for c in curves},
        }
    return results


def main(argv: Sequence[str]) -> None:
    quick = "--quick" in argv
    freqs = (8,) if quick else (8, 4)
    policy_names = ["engine"] if quick else list(POLICIES)
    t0 = time.perf_counter()
    runs = []
    for freq_h in freqs:
        for i, seed in enumerate(SEEDS):
            n = (8, 10, 12)[i % 3]
            res = run(seed, n, freq_h, policy_names)
            runs.append({"seed": seed, "members": n, "frequency_h": freq_h, "policies": res})
            line = "  ".join(f"{p}={r['pct_of_best']:.1f}%/{r['changes_per_member_day']:.2f}" for p, r in res.items())
            print(f"seed={seed} n={n} every {freq_h}h: {line}", flush=True)
    summary: dict[str, dict[str, float]] = {}
    for p in policy_names:
        pcts = [r["policies"][p]["pct_of_best"] for r in runs]
        chg = [r["policies"][p]["changes_per_member_day"] for r in runs]
        summary[p] = {
            "mean_pct_of_best": round(statistics.fmean(pcts), 2),
            "min_pct_of_best": round(min(pcts), 2),
            "mean_changes_per_member_day": round(statistics.fmean(chg), 3),
            "max_changes_per_member_day": round(max(chg), 3),
        }
    out = {
        "benchmark": "pools_quality",
        "days": DAYS,
        "seeds": list(SEEDS),
        "frequencies_h": list(freqs),
        "targets": {"engine_pct_of_best": ">= 95", "engine_changes_per_member_day": "< 1"},
        "summary": summary,
        "runs": runs,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if quick:
        print(summary)
        return
    path = Path(__file__).resolve().parent / "results" / "pools_quality.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, sort_keys=True))
    print("\npolicy               mean %best   min %best   changes/member/day (mean, max)")
    for p, s in summary.items():
        print(f"{p:20s} {s['mean_pct_of_best']:9.2f}   {s['min_pct_of_best']:9.2f}   {s['mean_changes_per_member_day']:.3f}, {s['max_changes_per_member_day']:.3f}")
    print(f"wrote {path} in {out['seconds']} s")


if __name__ == "__main__":
    main(sys.argv[1:])
