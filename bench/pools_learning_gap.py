"""Where the pool engine loses against the optimum: learning or deciding? A diagnostic on the TUNE seeds.

Runs the engine (``plan_allocation``, pool defaults) on the scenarios of ``bench/pools_quality.py`` several
times, each time replacing one part of what it learns with the market's truth, and reports the % of the optimum
per family and per week of the 28 days:

- ``engine``: as shipped;
- ``true_curves``: every member's response curve is the market's true curve of the day (shape and level); what
  is left is the cost of the engine's decision rules (dead band, persistence, cooldowns, step limit, caps);
- ``true_shapes``: the true Hill shape (exponent and half-saturation), scaled to the level the engine learned at
  the pool's equal share;
- ``true_levels``: the engine's own shape, scaled to the true value at the equal share;
- ``clairvoyant``: the oracle's budgets of each day approached within the step limit (the ceiling).

Also the calibration of the engine's learned elasticity at each member's spend against the true one (RMSE,
posterior standard deviation, mean |z|, correlation), per family and week.

The replacement is done by wrapping ``allot.pools.domain.engine.fit_responses`` for the duration of one plan
(``_with_truth``), in this process only; nothing here is used by the service. The seeds are the tune seeds: this
says where to look, it is not a result to report (those come from the held-out seeds of ``pools_quality.py``).

    .venv/bin/python bench/pools_learning_gap.py [--jobs 2] [--quick]

Writes ``bench/results/pools_learning_gap.json`` (not with ``--quick``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "services" / "pools" / "src"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import allot.pools.domain.engine as engine_module  # noqa: E402
from allot.pools.domain import AllocationPlan, EngineState, MemberState, PoolSettings  # noqa: E402
from allot.pools.domain.learn import Curve, hill  # noqa: E402
from bench.market import DAY0, DAYS, Scenario, _day_curves, make_scenario, oracle  # noqa: E402
from bench.pools_quality import TUNE_SEEDS, PolicyRun, scenario_specs  # noqa: E402

VARIANTS = ("engine", "true_curves", "true_shapes", "true_levels", "clairvoyant")
WEEKS = DAYS // 7
RESULTS = ROOT / "bench" / "results" / "pools_learning_gap.json"
_FIT = engine_module.fit_responses


def _true_curve(scn: Scenario, member_id: str, day: int) -> tuple[float, float, float]:
    """(value scale per day, K, h) of the member's true curve on ``day`` (the cap is left to the engine)."""
    i = next(j for j, m in enumerate(scn.members) if m.member_id == member_id)
    scale, k, h, _cap = _day_curves(scn, [i], min(day, DAYS - 1))[0]
    return scale, k, h


def _point(scale: float, k: float, h: float, counts: float) -> Curve:
    """A posterior that is certain: one shape, a scale with (practically) no spread."""
    return Curve((1.0,), (h,), (k,), (1e9,), (1e9 / scale if scale > 0 else 1.0,), 1.0, counts, (scale,))


def _planning_with(fit: Callable[..., Any]) -> Callable[..., AllocationPlan]:
    """``plan_allocation`` with ``fit`` in place of the engine's ``fit_responses`` for the duration of each plan."""

    def plan(pool: PoolSettings, members: Sequence[MemberState], history: Any, *, now: Any,
             state: EngineState | None = None) -> AllocationPlan:
        engine_module.fit_responses = fit
        try:
            return engine_module.plan_allocation(pool, members, history, now=now, state=state)
        finally:
            engine_module.fit_responses = _FIT

    return plan


def _with_truth(scn: Scenario, mode: str) -> Callable[..., AllocationPlan]:
    """``plan_allocation`` whose response fits are replaced by the truth as ``mode`` says."""

    def fit(pool: PoolSettings, members: Sequence[MemberState], history: Any, *, now: Any,
            state: EngineState | None = None) -> Any:
        fits = _FIT(pool, members, history, now=now, state=state)
        day = scn.day_of(now)
        curves = []
        for mb, learned in zip(members, fits.curves, strict=True):
            scale, k, h = _true_curve(scn, mb.member_id, day)
            at_ref = hill(fits.x_ref, h, k)
            if mode == "true_curves":
                curves.append(_point(scale, k, h, learned.counts))
            elif mode == "true_shapes":  # the true shape at the level the engine learned at the equal share
                level = learned.value_at(fits.x_ref)
                curves.append(_point(level / at_ref if at_ref > 0 else scale, k, h, learned.counts))
            else:  # true_levels: the engine's shape at the true value at the equal share
                own = learned.value_at(fits.x_ref)
                curves.append(learned.scaled(scale * at_ref / own) if own > 0 else learned)
        return dataclasses.replace(fits, curves=tuple(curves))

    return _planning_with(fit)


def _elasticity_rows(scn: Scenario, run: PolicyRun) -> Callable[..., AllocationPlan]:
    """The shipped engine, recording (week, true elasticity, posterior mean, posterior sd) per member and plan."""
    rows: list[tuple[int, float, float, float]] = []

    def fit(pool: PoolSettings, members: Sequence[MemberState], history: Any, *, now: Any,
            state: EngineState | None = None) -> Any:
        fits = _FIT(pool, members, history, now=now, state=state)
        day = scn.day_of(now)
        for mb, curve in zip(members, fits.curves, strict=True):
            scale, k, h = _true_curve(scn, mb.member_id, day)
            i = next(j for j, m in enumerate(scn.members) if m.member_id == mb.member_id)
            x = min(float(mb.current_budget_cents), scn.cap(i, min(day, DAYS - 1)))
            true_el = h * (1.0 - hill(x, h, k))
            els = [hh * (1.0 - hill(x, hh, kk)) for hh, kk in zip(curve.hs, curve.ks, strict=True)]
            mean = sum(w * e for w, e in zip(curve.weights, els, strict=True))
            sd = math.sqrt(max(0.0, sum(w * e * e for w, e in zip(curve.weights, els, strict=True)) - mean * mean))
            rows.append((min(day // 7, WEEKS - 1), true_el, mean, sd))
        return fits

    run.elasticity = rows  # type: ignore[attr-defined]
    return _planning_with(fit)


def run_scenario(task: tuple[int, str, int]) -> dict[str, Any]:
    seed, family, cadence = task
    scn = make_scenario(seed, family, cadence)
    days = oracle(scn)
    runs = {}
    for v in VARIANTS:
        run = PolicyRun(scn, "clairvoyant" if v == "clairvoyant" else "engine", None, days)
        if v == "engine":
            run.policy = _elasticity_rows(scn, run)
        elif v != "clairvoyant":
            run.policy = _with_truth(scn, v)
        runs[v] = run
    per_day = {v: [0.0] * DAYS for v in VARIANTS}
    for step in range(scn.steps):
        shared: dict[tuple[object, ...], Any] = {}
        day = min(scn.day_of(DAY0 + timedelta(hours=step * cadence)), DAYS - 1)
        for v, run in runs.items():
            before = run.value
            run.step(step, shared)
            per_day[v][day] += run.value - before
    best = [d.value for d in days]
    weekly = {v: [100.0 * sum(per_day[v][w * 7:(w + 1) * 7]) / sum(best[w * 7:(w + 1) * 7]) for w in range(WEEKS)]
              for v in VARIANTS}
    return {"seed": seed, "family": family, "cadence_h": cadence, "weekly_pct": weekly,
            "elasticity": runs["engine"].elasticity}  # type: ignore[attr-defined]


def summarise(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    by_family: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        by_family[r["family"]].append(r)
        by_family["all"].append(r)
    out: dict[str, Any] = {}
    for fam, rs in sorted(by_family.items()):
        weekly = {v: [round(sum(r["weekly_pct"][v][w] for r in rs) / len(rs), 2) for w in range(WEEKS)]
                  for v in VARIANTS}
        mean = {v: round(sum(weekly[v]) / WEEKS, 2) for v in VARIANTS}
        calib = []
        for w in range(WEEKS):
            rows = [(t, m, s) for r in rs for wk, t, m, s in r["elasticity"] if wk == w]
            n = len(rows)
            mt, mm = sum(t for t, _, _ in rows) / n, sum(m for _, m, _ in rows) / n
            st = math.sqrt(sum((t - mt) ** 2 for t, _, _ in rows) / n)
            sm = math.sqrt(sum((m - mm) ** 2 for _, m, _ in rows) / n)
            cov = sum((t - mt) * (m - mm) for t, m, _ in rows) / n
            calib.append({
                "week": w + 1,
                "true_elasticity_sd": round(st, 3),
                "rmse": round(math.sqrt(sum((t - m) ** 2 for t, m, _ in rows) / n), 3),
                "posterior_sd": round(math.sqrt(sum(s * s for _, _, s in rows) / n), 3),
                "mean_abs_z": round(sum(abs(t - m) / max(s, 1e-3) for t, m, s in rows) / n, 3),
                "correlation": round(cov / (st * sm), 3) if st * sm > 0 else None,
            })
        out[fam] = {"scenarios": len(rs), "mean_pct": mean, "weekly_pct": weekly, "elasticity_calibration": calib}
    return out


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="8 scenarios; prints, writes nothing")
    args = parser.parse_args(argv)
    specs = scenario_specs(TUNE_SEEDS)
    if args.quick:
        specs = specs[:8]
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        results = list(pool.imap_unordered(run_scenario, specs))
    summary = summarise(results)
    for fam, s in summary.items():
        for v in VARIANTS:
            print(f"{fam:11s} {v:12s} {s['mean_pct'][v]:6.2f}  weeks " + " ".join(f"{x:6.2f}" for x in s["weekly_pct"][v]))
        print(f"{fam:11s} elasticity  " + "  ".join(
            f"w{c['week']}: rmse {c['rmse']:.2f} sd {c['posterior_sd']:.2f} corr {c['correlation']}"
            for c in s["elasticity_calibration"]))
    wall = time.perf_counter() - started
    print(f"{len(results)} scenarios in {wall:.0f} s")
    if not args.quick:
        RESULTS.write_text(json.dumps({
            "benchmark": "pools_learning_gap",
            "set": "tune",
            "seeds": [s for s, _, _ in specs],
            "note": "diagnostic on the TUNE seeds (where the engine loses), not a result to report",
            "variants": list(VARIANTS),
            "summary": summary,
            "wall_seconds": round(wall, 1),
        }, indent=1, sort_keys=True) + "\n")
        print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
