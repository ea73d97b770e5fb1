"""The pools allocation path production runs, from stored rows to the outbox: load / plan / write split.

Seeds an embedded PostgreSQL (allot.runtime.embedded, fsync off) with N pools x 20 members and 28 days of
HOURLY member_metrics history (20 x 672 rows per pool) as the pools service stores metrics.ingested reports
(the entities projection through the adapter's ``upsert_entities``; pools and members through ``insert_pool`` /
``upsert_member``; the metric rows with COPY into ``member_metrics`` using the columns ``upsert_metrics``
writes, because the JSON upsert is too slow to seed millions of rows). Values come from a seeded
``random.Random``: per member an hourly budget share with a daily shape, a ROAS of 0.8-4.0, conversions
drawn around revenue / order value, impressions, clicks and reach. Every pool is ``active`` and ``live``
(so a plan with actions emits allocation.requested) with an empty engine state: each pool's FIRST scheduled plan.

Timed: ``allot.pools.scheduler.run_slot`` itself, one pool per call (its own transaction, as the scheduler
runs it), with a minimal stand-in ServiceContext whose ``emit`` is ``allot.runtime.outbox.add_events`` (what
ServiceContext.emit does, without the relay wake-up) and whose ``flush`` does nothing (no Kafka here).
The split is taken by MONKEYPATCHING, in this process only, ``allot.pools.workflow.plan_allocation`` and
``allot.pools.workflow.load_inputs`` with timing wrappers, and ``allot.pools.adapters.postgres.history_of``
to count rows:
- load  = start of run_slot → plan_allocation called (claim_slot, lock_pool, set_scheduled_slot, members_of,
          queue_allocation's insert, engine state, load_inputs: entities, history rows → MetricInterval,
          budget changes, floors/ceilings). ``load_inputs_ms`` is the load_inputs part of it.
- plan  = plan_allocation.
- write = plan_allocation returned → run_slot returned (set_engine_state, planned actions, change set +
          envelope, outbox insert, inputs/plan views, save_plan, log line, COMMIT).
Not measured: the outbox relay to Kafka, the executor, the scan query (due_pools) that picks pools, metric
ingestion. Pools run one after another on one connection pool in one process (as one scheduler instance does).

    .venv/bin/python bench/pools_path.py [--pools N] [--seed S]

Writes bench/results/pools_path.json (a non-default --pools/--days prints only, unless --write).
The 10,000-pool figure is an EXTRAPOLATION: per-pool time measured on N pools x 10,000.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform as py_platform
import random
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
POOLS = 300
MEMBERS = 20
DAYS = 28
SEED = 12
AIM_POOLS = 10_000
AIM_SECONDS = 30.0
NOW = datetime(2024, 3, 1, 8, tzinfo=UTC)  # on an 8-hour slot boundary
WS = "ws-bench"

_METRIC_COPY_COLUMNS = ["workspace_id", "entity_id", "interval_start", "interval_end", "reported_at", "event_id",
                        "spend_cents", "revenue_cents", "conversions", "impressions", "clicks", "reach"]
#: hour-of-day delivery shape (sums to 24)
_SHAPE = [0.3, 0.2, 0.15, 0.15, 0.2, 0.4, 0.7, 1.0, 1.2, 1.3, 1.35, 1.4, 1.4, 1.35, 1.3, 1.3, 1.35, 1.45, 1.6,
          1.7, 1.6, 1.3, 0.9, 0.55]
_SHAPE = [s * 24 / sum(_SHAPE) for s in _SHAPE]


def pool_spec(rng: random.Random, i: int) -> dict[str, Any]:
    members = []
    for j in range(MEMBERS):
        members.append({"entity_id": f"as-{i:05d}-{j:02d}", "budget": rng.randrange(3_000, 60_000),
                        "roas": rng.uniform(0.8, 4.0), "aov": rng.uniform(1_500, 9_000),
                        "deliver": rng.uniform(0.6, 1.0)})
    return {"pool_id": uuid.UUID(int=rng.getrandbits(128), version=4), "i": i, "members": members}


def metric_rows(rng: random.Random, spec: dict[str, Any], days: int) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    start0 = NOW - timedelta(days=days)
    for m in spec["members"]:
        hourly = m["budget"] * m["deliver"] / 24
        for h in range(days * 24):
            start = start0 + timedelta(hours=h)
            end = start + timedelta(hours=1)
            spend = max(0, round(hourly * _SHAPE[start.hour] * rng.uniform(0.7, 1.3)))
            revenue = max(0, round(spend * m["roas"] * rng.lognormvariate(0, 0.5))) if spend else 0
            conv = round(revenue / m["aov"] + rng.uniform(-0.5, 0.5)) if revenue else 0
            impressions = round(spend * rng.uniform(0.8, 1.6))  # ~ CPM of 6-12 EUR
            clicks = round(impressions * rng.uniform(0.005, 0.02))
            reach = max(1, round(impressions / rng.uniform(1.1, 1.8))) if impressions else 0
            reported = min(end + timedelta(hours=3), NOW)
            rows.append((WS, m["entity_id"], start, end, reported, uuid.UUID(int=rng.getrandbits(128), version=4),
                         spend, revenue, max(0, conv), impressions, clicks, reach))
    return rows


async def seed(pg: Any, specs: list[dict[str, Any]], *, days: int, seed_: int) -> dict[str, Any]:
    from allot.pools.adapters import postgres as db

    rng = random.Random(seed_ + 1)
    created = NOW - timedelta(days=days + 1)
    started = time.perf_counter()
    async with pg.acquire() as conn, conn.transaction():
        entity_rows = []
        for spec in specs:
            total = sum(m["budget"] for m in spec["members"])
            await db.insert_pool(conn, spec["pool_id"], WS, {
                "name": f"pool {spec['i']}", "optimization_metric": "roas", "daily_budget_cents": total,
                "currency": "EUR", "allocation_frequency_hours": 8, "default_min_budget_cents": 1_000,
                "default_max_budget_cents": None, "min_budget_change_cents": 500, "status": "active",
                "autonomy": "live", "persistence_intervals": None, "cooldown_hours": None, "deadband_pct": None,
                "exploration_share": None, "composite_weights": None}, created)
            for m in spec["members"]:
                await db.upsert_member(conn, spec["pool_id"], WS, {
                    "entity_type": "adset", "entity_id": m["entity_id"], "ad_account_id": "act-1",
                    "entity_name": m["entity_id"], "platform": "sandbox", "currency": "EUR",
                    "min_budget_cents": None, "max_budget_cents": None, "weight": 1.0, "is_active": True}, created)
                entity_rows.append((WS, m["entity_id"], "sandbox", "act-1", "adset", m["entity_id"], "active",
                                    m["budget"], "EUR", NOW - timedelta(hours=1), NOW - timedelta(hours=2),
                                    uuid.uuid4()))
        await db.upsert_entities(conn, entity_rows)
    setup_s = time.perf_counter() - started
    started = time.perf_counter()
    n_rows = 0
    for k in range(0, len(specs), 25):  # ~336k rows per COPY
        rows = [r for spec in specs[k:k + 25] for r in metric_rows(rng, spec, days)]
        async with pg.acquire() as conn, conn.transaction():
            await conn.copy_records_to_table("member_metrics", records=rows, columns=_METRIC_COPY_COLUMNS)
        n_rows += len(rows)
    copy_s = time.perf_counter() - started
    async with pg.acquire() as conn:
        await conn.execute("VACUUM ANALYZE member_metrics")
        await conn.execute("ANALYZE")
        size = await conn.fetchrow(
            "SELECT pg_total_relation_size('member_metrics') AS total, pg_relation_size('member_metrics') AS heap, "
            "pg_indexes_size('member_metrics') AS indexes")
    return {"pools_members_entities_seconds": round(setup_s, 2), "metric_rows": n_rows,
            "metric_copy_seconds": round(copy_s, 2),
            "member_metrics_bytes": {"total": size["total"], "heap": size["heap"], "indexes": size["indexes"]}}


async def time_path(pg: Any, specs: list[dict[str, Any]]) -> dict[str, Any]:
    """run_slot per pool, timed by phase (see the module docstring)."""
    from allot.pools import scheduler, workflow
    from allot.pools.adapters import postgres as db
    from allot.pools.settings import PoolsSettings
    from allot.runtime.outbox import add_events
    from allot.runtime.settings import Settings

    marks: dict[str, float] = {}
    counts = {"history_rows": 0}
    orig_plan, orig_load, orig_hist = workflow.plan_allocation, workflow.load_inputs, db.history_of

    def timed_plan(*a: Any, **kw: Any) -> Any:
        marks["plan_start"] = time.perf_counter()
        try:
            return orig_plan(*a, **kw)
        finally:
            marks["plan_end"] = time.perf_counter()

    async def timed_load(*a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return await orig_load(*a, **kw)
        finally:
            marks["load_inputs"] = time.perf_counter() - t

    async def counted_history(*a: Any, **kw: Any) -> Any:
        rows = await orig_hist(*a, **kw)
        counts["history_rows"] += len(rows)
        return rows

    async def emit(conn: Any, *envelopes: Any) -> None:
        await add_events(conn, list(envelopes))

    ctx = SimpleNamespace(pool=pg, clock=SimpleNamespace(now=lambda: NOW), instance_id="bench", emit=emit,
                          flush=lambda: None, extra={Settings: PoolsSettings()})
    slot = NOW  # on the 8-hour boundary
    load = plan = write = load_inputs = 0.0
    statuses: dict[str, int] = {}
    actions = 0
    workflow.plan_allocation, workflow.load_inputs, db.history_of = timed_plan, timed_load, counted_history
    try:
        wall = time.perf_counter()
        for spec in specs:
            marks.clear()
            t0 = time.perf_counter()
            result = await scheduler.run_slot(ctx, spec["pool_id"], slot)  # type: ignore[arg-type]
            t1 = time.perf_counter()
            if result is None or "plan_start" not in marks:
                raise RuntimeError(f"pool {spec['pool_id']} did not plan: {result}")
            load += marks["plan_start"] - t0
            plan += marks["plan_end"] - marks["plan_start"]
            write += t1 - marks["plan_end"]
            load_inputs += marks["load_inputs"]
            statuses[result.status] = statuses.get(result.status, 0) + 1
            actions += result.actions
        wall = time.perf_counter() - wall
    finally:
        workflow.plan_allocation, workflow.load_inputs, db.history_of = orig_plan, orig_load, orig_hist
    async with pg.acquire() as conn:
        outbox = await conn.fetch("SELECT topic, count(*) AS n FROM outbox GROUP BY topic ORDER BY topic")
    n = len(specs)

    def phase(s: float) -> dict[str, float]:
        return {"seconds": round(s, 3), "per_pool_ms": round(1000 * s / n, 3)}

    return {"wall_seconds": round(wall, 3), "per_pool_ms": round(1000 * wall / n, 3),
            "load": phase(load), "plan": phase(plan), "write": phase(write),
            "load_inputs_part_of_load": phase(load_inputs),
            "history_rows_loaded": counts["history_rows"], "history_rows_per_pool": counts["history_rows"] / n,
            "statuses": statuses, "actions": actions, "outbox_events": {r["topic"]: r["n"] for r in outbox}}


async def run(pools: int, days: int, seed_: int) -> dict[str, Any]:
    from allot.runtime.db import open_database
    from allot.runtime.embedded import start_postgres

    rng = random.Random(seed_)
    specs = [pool_spec(rng, i) for i in range(pools)]
    tmp = Path(tempfile.mkdtemp(prefix="allot-bench-pools-path-"))
    server = start_postgres(tmp / "data")
    try:
        pg = await open_database(server.dsn, "pools_bench", "allot.pools.migrations", "pools", min_size=2, max_size=4)
        try:
            seeded = await seed(pg, specs, days=days, seed_=seed_)
            timed = await time_path(pg, specs)
        finally:
            await pg.close()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    per_pool_s = timed["wall_seconds"] / pools
    bytes_per_pool = seeded["member_metrics_bytes"]["total"] / pools
    return {
        "benchmark": "pools_path",
        "pools": pools, "members_per_pool": MEMBERS, "history_days": days, "history_grain": "hourly",
        "seed": seed_, "now": NOW.isoformat(),
        "seeding": seeded, "path": timed,
        "extrapolation_to_aim": {
            "note": f"EXTRAPOLATED linearly from {pools} pools measured one after another (per-pool time x "
                    f"{AIM_POOLS}); not measured at {AIM_POOLS} pools",
            "pools": AIM_POOLS, "aim_seconds": AIM_SECONDS,
            "seconds": round(per_pool_s * AIM_POOLS, 1),
            "load_seconds": round(timed["load"]["seconds"] / pools * AIM_POOLS, 1),
            "plan_seconds": round(timed["plan"]["seconds"] / pools * AIM_POOLS, 1),
            "write_seconds": round(timed["write"]["seconds"] / pools * AIM_POOLS, 1),
            "meets_aim": per_pool_s * AIM_POOLS < AIM_SECONDS,
            "member_metrics_gb": round(bytes_per_pool * AIM_POOLS / 1e9, 2),
        },
        "what": "scheduler.run_slot per pool (own transaction) on embedded PostgreSQL (fsync off); split by "
                "monkeypatched timers around workflow.load_inputs / workflow.plan_allocation (see docstring)",
        "python": py_platform.python_version(), "machine": py_platform.machine(), "cpu_count": os.cpu_count(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pools", type=int, default=POOLS)
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--write", action="store_true", help="write the results file even for a non-default run")
    args = parser.parse_args()
    result = asyncio.run(run(args.pools, args.days, args.seed))
    print(json.dumps(result, indent=2))
    if args.write or (args.pools == POOLS and args.days == DAYS):
        out = ROOT / "bench" / "results" / "pools_path.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
    return 0 if math.isfinite(result["path"]["wall_seconds"]) else 1


if __name__ == "__main__":
    sys.exit(main())
