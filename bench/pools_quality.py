"""Allocation quality of the budget-pool engine against comparison policies, on a hard seeded market with held-out seeds.

Every policy (the engine's ``plan_allocation``, equal split, the trailing-ROAS
chaser, the literal seed-001 threshold heuristic and an honest Thompson-sampling
learner) runs on the SAME scenarios from ``bench/market.py`` (read its docstring
for what the market contains): 28 days, a plan every 4/8/12/24 h, 2-20 members,
families stable / fatigue / newcomer / low_volume, S-shaped response curves,
seasonality, drift, delivery caps, Poisson counts and late-reported conversions,
only 3 days of warm-up history. Policies see the data only as reported at the
moment they plan, and identical budgets give identical data (common random
numbers).

Score: the TRUE expected value over the 28 days at the budgets in force, as a %
of the oracle's (per day the global optimum of the true curves under the same
floors and pool total, knowing caps and events, not step-limited; see
``market.oracle_day``). Also per policy and family: p10 of that %, budget
changes per member per day, constraint violations (counted after every plan:
eligible budgets summing above B, a budget below the floor or above the
ceiling, a change above max_change_pct of the previous budget that does not
land on a bound, a non-zero change below the minimum change), frozen plans, and
the share of B budgeted above members' delivery caps (money that cannot be
spent).

Two references that are not allocators put the numbers in context:
``clairvoyant`` knows the market (the oracle's budgets of the day) and moves
toward them within the same step limits and minimum change, and
``clairvoyant_service`` does so also within the service's net-change window.
They are the ceilings that learning, and then the guardrails' window, leave.

History format: by default policies see the market's rows (one per plan
interval, delivery even within it). ``--hourly`` gives every policy the history
as the pools service hands it over from Meta's hourly insights instead: hours
with an intraday delivery profile, the last 7 days summed per UTC 4-hour block,
older days per UTC day (``bench/hourly.py``; the truth and the oracle do not
change). Results then
go to ``pools_quality_hourly.json`` / ``pools_quality_tune_hourly.json``.

Two disjoint seed sets: ``TUNE_SEEDS`` (40 scenarios, for tuning) and
``HELDOUT_SEEDS`` (200 scenarios in a separate range, never to be tuned on);
families and cadences are spread evenly over each. Only a full held-out run
writes ``bench/results/pools_quality.json``; a full tune run writes
``bench/results/pools_quality_tune.json``; ``--quick`` only prints.

Run (from the repository root):
    .venv/bin/python bench/pools_quality.py [--set tune|heldout] [--hourly] [--quick] [--policies engine,equal_split] [--jobs 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from allot.pools.domain import AllocationPlan, EngineState, MemberState, PoolSettings, plan_allocation  # noqa: E402
from allot.pools.domain.netchange import narrow, net_change_bounds  # noqa: E402
from bench.baselines import (  # noqa: E402
    plan_equal_split,
    plan_toward,
    plan_roas_chaser,
    plan_thompson_learner,
    plan_threshold_heuristic,
)
from bench.hourly import HourlyView  # noqa: E402
from bench.market import CADENCES_H, DAY0, DAYS, FAMILIES, Market, OracleDay, Scenario, make_scenario, oracle  # noqa: E402

Policy = Callable[..., AllocationPlan]
POLICIES: dict[str, Policy] = {
    "engine": plan_allocation,
    "engine_service": plan_allocation,
    "equal_split": plan_equal_split,
    "roas_chaser": plan_roas_chaser,
    "threshold_seed001": plan_threshold_heuristic,
    "learner_ts": plan_thompson_learner,
}
#: References that know the market (built per scenario from its oracle): not allocators, ceilings.
CLAIRVOYANT = ("clairvoyant", "clairvoyant_service")
POLICY_NOTES = {
    "engine": "allot.pools.domain.plan_allocation (the engine under test)",
    "engine_service": "the engine as the pools service runs it: each member moved only within what the guardrails' "
                      "rolling net-change limit still allows (20 % within 72 h), its target planned on its floor and "
                      "ceiling (MemberState.window_*, as workflow.load_inputs passes them)",
    "equal_split": "equal split, approached within the step limits; ignores history",
    "roas_chaser": "moves every plan toward shares proportional to trailing 3-day reported ROAS",
    "threshold_seed001": "seed-001 threshold heuristic, literally",
    "learner_ts": "honest learner (bench baseline, not the engine): Thompson sampling on per-member Bayesian log-log "
                  "regressions of value on spend, step-limited",
    "clairvoyant": "reference, not an allocator: knows the true optimum of each day (the oracle's budgets) and moves "
                   "toward it every plan within the step limit and minimum change",
    "clairvoyant_service": "the clairvoyant reference within the service's net-change window as well (20 % within "
                           "72 h): the best any allocator can do on the service path",
}
TUNE_SEEDS: tuple[int, ...] = tuple(range(1_000, 1_040))
#: The guardrails' default rolling net-change limit, within which the pools service moves members.
NET_CHANGE_PCT = 20
NET_CHANGE_WINDOW = timedelta(hours=72)
HELDOUT_SEEDS: tuple[int, ...] = tuple(range(700_000, 700_200))
QUICK_SCENARIOS = 8
RESULTS = ROOT / "bench" / "results"
VIOLATION_KINDS = ("sum_above_budget", "outside_bounds", "step_above_max_change", "change_below_min")


def scenario_specs(seeds: Sequence[int]) -> list[tuple[int, str, int]]:
    """(seed, family, cadence) for a seed set: family cycles fastest, then cadence, so both are spread evenly."""
    return [(seed, FAMILIES[k % len(FAMILIES)], CADENCES_H[(k // len(FAMILIES)) % len(CADENCES_H)]) for k, seed in enumerate(seeds)]


def check_plan(plan: AllocationPlan, before: Mapping[str, int], pool: PoolSettings) -> Counter[str]:
    """Hard-constraint violations of one plan against the budgets it started from (no member ceilings in this market)."""
    out: Counter[str] = Counter()
    lo = pool.default_min_budget_cents
    hi = pool.default_max_budget_cents if pool.default_max_budget_cents is not None else pool.daily_budget_cents
    total = 0
    seen = set()
    for a in plan.allocations:
        if a.action == "excluded" or a.member_id not in before:
            continue
        seen.add(a.member_id)
        prev, new = before[a.member_id], a.new_budget_cents
        total += new
        if new < lo or new > hi:
            out["outside_bounds"] += 1
        change = abs(new - prev)
        if 0 < change < pool.min_budget_change_cents:
            out["change_below_min"] += 1
        if change > math.floor(prev * pool.max_change_pct / 100.0 + 1e-9) and new not in (lo, hi):
            out["step_above_max_change"] += 1
    total += sum(v for k, v in before.items() if k not in seen)  # a member the plan left out keeps its budget
    if total > pool.daily_budget_cents:
        out["sum_above_budget"] += 1
    return out


class PolicyRun:
    """One policy over one scenario, one plan at a time: its own market, budgets, state and counters."""

    def __init__(self, scn: Scenario, name: str, engine_params: Mapping[str, Any] | None = None,
                 days: Sequence[OracleDay] = (), hourly: HourlyView | None = None) -> None:
        self.scn = scn
        self.hourly = hourly
        self.name = name
        self.policy = clairvoyant(scn, days) if name in CLAIRVOYANT else POLICIES[name]
        self.pool = scn.pool()
        if name in ("engine", "engine_service") and engine_params:
            self.pool = dataclasses.replace(self.pool, **engine_params)
        self.market = Market(scn)
        self.budgets = scn.initial_budgets()
        self.state: EngineState | None = None
        self.value = 0.0
        self.changes = 0
        self.member_days = 0.0
        self.frozen = 0
        self.infeasible = 0
        self.violations: Counter[str] = Counter()
        self.above_cap = 0.0
        self.plan_seconds = 0.0
        #: engine_service: every change (at, before, after) per member, for the net-change window
        self.changes_log: dict[str, list[tuple[Any, int, int]]] = {}

    def step(self, step: int, shared: dict[tuple[object, ...], Any]) -> None:
        """Plan at the start of interval ``step``, check the plan, then deliver the interval at the new budgets."""
        scn = self.scn
        hours = scn.cadence_h
        now = DAY0 + timedelta(hours=step * hours)
        day = scn.day_of(now)
        active = scn.active(day)
        for i in active:
            self.budgets.setdefault(scn.members[i].member_id, scn.floor_cents)  # a newcomer joins at the floor
        before = {scn.members[i].member_id: self.budgets[scn.members[i].member_id] for i in active}
        members = [MemberState(mid, b) for mid, b in before.items()]
        if self.name.endswith("_service"):
            members = [self._in_window(mid, b, now) for mid, b in before.items()]
        history = self.market.history(now, shared)
        if self.hourly is not None:
            history = self.hourly(history, now)
        t0 = time.perf_counter()
        plan = self.policy(self.pool, members, history, now=now, state=self.state)
        self.plan_seconds += time.perf_counter() - t0
        self.state = plan.state
        self.frozen += plan.frozen
        self.infeasible += not plan.feasible
        self.violations += check_plan(plan, before, self.pool)
        for a in plan.allocations:
            if a.member_id in before and a.action != "excluded" and a.new_budget_cents != before[a.member_id]:
                self.changes += 1
                self.changes_log.setdefault(a.member_id, []).append((now, before[a.member_id], a.new_budget_cents))
                self.budgets[a.member_id] = a.new_budget_cents
        self.market.deliver(now, {mid: self.budgets[mid] for mid in before})
        self.member_days += len(active) * hours / 24.0
        over = 0.0
        for i in active:
            b = self.budgets[scn.members[i].member_id]
            self.value += scn.value_per_day(i, b, day) * hours / 24.0
            over += max(0.0, b - scn.cap(i, day))
        self.above_cap += over / scn.budget_cents

    def _in_window(self, member_id: str, budget: int, now: Any) -> MemberState:
        """The member within the net-change window: for the engine as the service hands it over
        (``workflow.load_inputs``: the window bounds this plan's move, the target stays planned on the floor and
        ceiling); for the clairvoyant reference, which moves straight toward the day's optimum, as its floor and
        ceiling."""
        window = [c for c in self.changes_log.get(member_id, []) if now - c[0] < NET_CHANGE_WINDOW]
        w_lo, w_hi = net_change_bounds(budget, window, NET_CHANGE_PCT)
        if self.name == "engine_service":
            return MemberState(member_id, budget, window_min_cents=w_lo, window_max_cents=w_hi)
        lo, hi = narrow(self.pool.default_min_budget_cents, self.pool.default_max_budget_cents, (w_lo, w_hi))
        return MemberState(member_id, budget, min_budget_cents=lo, max_budget_cents=hi)

    def result(self, oracle_value: float) -> dict[str, Any]:
        """The run's score and counters."""
        steps = self.scn.steps
        return {
            "pct_of_optimum": 100.0 * self.value / oracle_value,
            "changes_per_member_day": self.changes / self.member_days,
            "violations": sum(self.violations.values()),
            "violations_by_kind": dict(self.violations),
            "frozen_plans": self.frozen,
            "infeasible_plans": self.infeasible,
            "budget_above_caps_pct": 100.0 * self.above_cap / steps,
            "plan_ms": 1000.0 * self.plan_seconds / steps,
        }


def clairvoyant(scn: Scenario, days: Sequence[OracleDay]) -> Policy:
    """The clairvoyant reference on ``scn``: toward the oracle's budgets of the day, within the hard limits."""

    def plan(pool: PoolSettings, members: Sequence[MemberState], history: Any, *, now: Any,
             state: EngineState | None = None) -> AllocationPlan:
        day = days[min(scn.day_of(now), len(days) - 1)]
        return plan_toward(pool, members, day.budgets, now=now, state=state)

    return plan


def run_scenario(task: tuple[int, str, int, tuple[str, ...], Mapping[str, Any], bool]) -> dict[str, Any]:
    """Every requested policy on one scenario, in lockstep (the oracle is computed once; identical reported
    intervals are built once for all policies)."""
    seed, family, cadence, names, engine_params, hourly = task
    t0 = time.perf_counter()
    scn = make_scenario(seed, family, cadence)
    days = oracle(scn)
    oracle_value = sum(d.value for d in days)
    oracle_seconds = time.perf_counter() - t0
    view = HourlyView() if hourly else None
    runs = [PolicyRun(scn, name, engine_params, days, view) for name in names]
    for step in range(scn.steps):
        shared: dict[tuple[object, ...], Any] = {}
        for run in runs:
            run.step(step, shared)
    return {
        "seed": seed, "family": family, "cadence_h": cadence, "members": len(scn.members), "metric": str(scn.metric),
        "share_cents": scn.share_cents, "oracle_seconds": round(oracle_seconds, 3),
        "seconds": round(time.perf_counter() - t0, 3), "policies": {run.name: run.result(oracle_value) for run in runs},
    }


def _p10(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return min(xs)
    return statistics.quantiles(xs, n=10, method="inclusive")[0]


def summarise(runs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Per policy: the aggregate over all runs ("all") and over each family."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in names:
        groups: dict[str, list[Mapping[str, Any]]] = {"all": [r["policies"][name] for r in runs]}
        for fam in FAMILIES:
            rows = [r["policies"][name] for r in runs if r["family"] == fam]
            if rows:
                groups[fam] = rows
        out[name] = {}
        for group, rows in groups.items():
            pct = [r["pct_of_optimum"] for r in rows]
            kinds: Counter[str] = Counter()
            for r in rows:
                kinds.update(r["violations_by_kind"])
            out[name][group] = {
                "scenarios": len(rows),
                "mean_pct_of_optimum": round(statistics.fmean(pct), 2),
                "p10_pct_of_optimum": round(_p10(pct), 2),
                "min_pct_of_optimum": round(min(pct), 2),
                "changes_per_member_day": round(statistics.fmean(r["changes_per_member_day"] for r in rows), 3),
                "violations": sum(r["violations"] for r in rows),
                **{f"violations_{k}": kinds.get(k, 0) for k in VIOLATION_KINDS},
                "frozen_plans": sum(r["frozen_plans"] for r in rows),
                "infeasible_plans": sum(r["infeasible_plans"] for r in rows),
                "budget_above_caps_pct": round(statistics.fmean(r["budget_above_caps_pct"] for r in rows), 2),
                "plan_ms": round(statistics.fmean(r["plan_ms"] for r in rows), 3),
            }
    return out


def print_table(summary: Mapping[str, Mapping[str, Mapping[str, float]]]) -> None:
    """One line per policy and family."""
    head = f"{'policy':<18} {'family':<11} {'n':>3} {'mean %':>7} {'p10 %':>7} {'min %':>7} {'chg/m/d':>8} {'viol':>5} {'frozen':>6} {'>cap %':>7} {'ms/plan':>8}"
    print(head)
    print("-" * len(head))
    for name, groups in summary.items():
        for group, s in groups.items():
            print(f"{name:<18} {group:<11} {s['scenarios']:>3} {s['mean_pct_of_optimum']:>7.2f} {s['p10_pct_of_optimum']:>7.2f} "
                  f"{s['min_pct_of_optimum']:>7.2f} {s['changes_per_member_day']:>8.3f} {s['violations']:>5} {s['frozen_plans']:>6} "
                  f"{s['budget_above_caps_pct']:>7.2f} {s['plan_ms']:>8.2f}")


def engine_provenance() -> dict[str, Any]:
    """Which engine ran: the module file, the git commit and whether the pools domain had uncommitted changes."""
    import allot.pools.domain as domain

    module = Path(domain.__file__).resolve()
    out: dict[str, Any] = {"module": str(module)}
    if not module.is_relative_to(ROOT):
        out["outside_repository"] = True  # e.g. a snapshot on PYTHONPATH: the repository's git state says nothing about it
        return out
    try:
        out["git_head"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "services/pools/src/allot/pools/domain"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout
        out["domain_uncommitted_changes"] = bool(dirty.strip())
    except (OSError, subprocess.CalledProcessError):
        out["git_head"] = None  # no git (e.g. an exported tree): the module path above is all that is known
    return out


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", dest="seed_set", choices=("tune", "heldout"), default="heldout",
                        help="seed set: heldout (default; reported, never tuned on) or tune")
    parser.add_argument("--quick", action="store_true", help=f"only the first {QUICK_SCENARIOS} scenarios of the set; prints, writes nothing")
    every = (*POLICIES, *CLAIRVOYANT)
    parser.add_argument("--policies", default=",".join(every), help=f"comma-separated subset of {','.join(every)}")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="tuning: override one PoolSettings field for the engine (tune set only; prints, writes "
                             "nothing)")
    parser.add_argument("--hourly", action="store_true",
                        help="every policy sees the history as the pools service reads Meta's hourly rows: hours with "
                             "an intraday delivery profile, the last 7 days per UTC 4-hour block, older days per UTC day "
                             "(bench/hourly.py); writes pools_quality_hourly*.json")
    args = parser.parse_args(argv)
    engine_params = _params(parser, args.param)
    if engine_params and args.seed_set != "tune":
        parser.error("--param is for tuning: use it with --set tune (held-out seeds are never tuned on)")
    names = tuple(p for p in args.policies.split(",") if p)
    unknown = [p for p in names if p not in every]
    if unknown or not names:
        parser.error(f"unknown policies {unknown}; choose from {list(every)}")
    seeds = TUNE_SEEDS if args.seed_set == "tune" else HELDOUT_SEEDS
    specs = scenario_specs(seeds)
    if args.quick:
        specs = specs[:QUICK_SCENARIOS]
    # Longest first (plans x members), so the workers finish together.
    tasks = sorted(((s, f, c, names, engine_params, args.hourly) for s, f, c in specs), key=lambda t: -(24 // t[2]) ** 2 * len(make_scenario(t[0], t[1], t[2]).members))
    started = time.perf_counter()
    cpu0 = time.process_time()
    runs: list[dict[str, Any]] = []
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            for res in pool.imap_unordered(run_scenario, tasks):
                runs.append(res)
                _progress(res, len(runs), len(tasks))
    else:
        for task in tasks:
            res = run_scenario(task)
            runs.append(res)
            _progress(res, len(runs), len(tasks))
    wall = time.perf_counter() - started
    runs.sort(key=lambda r: seeds.index(r["seed"]))
    summary = summarise(runs, names)
    print()
    print_table(summary)
    worker_seconds = sum(r["seconds"] for r in runs)
    print(f"\n{len(runs)} scenarios x {len(names)} policies on the {args.seed_set} set in {wall:.1f} s wall "
          f"({worker_seconds:.1f} s in workers, {args.jobs} jobs; oracle {sum(r['oracle_seconds'] for r in runs):.1f} s)")
    if args.quick or engine_params:
        return 0
    out = {
        "benchmark": "pools_quality",
        "market": "bench/market.py (seeded, independent of the sandbox the engine was tuned on)",
        "set": args.seed_set,
        "history": ("hourly: hours with an intraday delivery profile, the last 7 days summed per UTC 4-hour block, older "
                    "days per UTC day, as the pools service reads Meta hourly insights (bench/hourly.py)") if args.hourly else
                   "as the market reports it: one row per plan interval, delivery even within it",
        "seeds": [s for s, _, _ in specs],
        "tuned_on_seeds": list(TUNE_SEEDS),
        "note": ("held-out set: these seeds were never used for tuning (tuning uses --set tune, seeds "
                 f"{TUNE_SEEDS[0]}-{TUNE_SEEDS[-1]})" if args.seed_set == "heldout"
                 else "tune set: seeds available for tuning; the reported numbers are the held-out ones"),
        "days": DAYS,
        "policies": {n: POLICY_NOTES[n] for n in names},
        "engine": engine_provenance(),
        "score": "true expected value at the budgets in force as % of the daily global optimum (oracle) over 28 days",
        "summary": summary,
        "runs": runs,
        "wall_seconds": round(wall, 1),
        "worker_seconds": round(worker_seconds, 1),
        "jobs": args.jobs,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "parent_cpu_seconds": round(time.process_time() - cpu0, 1),
    }
    path = RESULTS / (("pools_quality" if args.seed_set == "heldout" else "pools_quality_tune")
                      + ("_hourly" if args.hourly else "") + ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


def _params(parser: argparse.ArgumentParser, pairs: Sequence[str]) -> dict[str, Any]:
    """``--param`` values typed like the PoolSettings field they override."""
    fields = {f.name: f for f in dataclasses.fields(PoolSettings)}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, _, raw = pair.partition("=")
        if name not in fields or not raw:
            parser.error(f"--param {pair!r}: expected NAME=VALUE with NAME a PoolSettings field")
        kind = type(getattr(PoolSettings(pool_id="x", daily_budget_cents=1), name))
        out[name] = kind(raw) if kind in (int, float) else raw
    return out


def _progress(res: Mapping[str, Any], done: int, total: int) -> None:
    line = "  ".join(f"{p}={r['pct_of_optimum']:.1f}%/{r['changes_per_member_day']:.2f}" for p, r in res["policies"].items())
    print(f"[{done:>3}/{total}] seed={res['seed']} {res['family']:<10} every {res['cadence_h']:>2}h n={res['members']:>2} "
          f"{res['seconds']:6.1f}s  {line}", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
