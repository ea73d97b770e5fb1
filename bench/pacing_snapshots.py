"""Benchmark of pacing snapshots: the pure engine, and the service's snapshot pass with Postgres writes.

1. Pure: 10,000 active flight plans (2-5 channels, 0-3 deals each, fixed seed) evaluated in memory with
   ``evaluate_plan`` (engine + cents boundary + state decision + proposal ids), one ``now``.
2. Service pass: an embedded PostgreSQL on a temp dir, the pacing migrations, 1,000 plans with their
   entity mappings and 30 daily metric reports per entity; then the scheduler's ``snapshot_due_plans``
   (claim per (plan, slot), lock plans, one spend aggregation per batch, evaluate, insert snapshots,
   transitions, proposals, change sets and outbox rows, all per-batch transactions) is timed end to end.
   The metrics projection upsert (500-report batches, as the consumer receives them) is timed while seeding.

Run:  .venv/bin/python bench/pacing_snapshots.py
Writes bench/results/pacing_snapshots.json.
"""

from __future__ import annotations

import asyncio
import json
import platform as py_platform
import random
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "services" / "pacing" / "src"))

from allot.pacing.domain import (
    ChannelPlan,
    DealPlan,
    Delivery,
    EntityRef,
    FlightPlan,
    evaluate_plan,
)

SEED = 20260806
N_PURE = 10_000
N_DB = 1_000
DAYS = 30
FLIGHT_START = datetime(2026, 7, 15, tzinfo=UTC)
FLIGHT_END = datetime(2026, 9, 15, tzinfo=UTC)
NOW = datetime(2026, 8, 14, 0, 0, 30, tzinfo=UTC)
CHANNELS = ["CTV", "DISPLAY", "AUDIO", "SOCIAL", "SEARCH"]


def make_plan_spec(rng: random.Random, i: int) -> dict[str, Any]:
    """A random plan: budgets, channels with 1-3 entities each, deals over the channel entities, spend levels."""
    total = rng.randrange(1_000_000, 100_000_000)
    n_ch = rng.randint(2, 5)
    shares = [rng.random() + 0.2 for _ in range(n_ch)]
    scale = sum(shares)
    channels = []
    for c in range(n_ch):
        ents = [f"p{i}-c{c}-e{k}" for k in range(rng.randint(1, 3))]
        channels.append({"name": CHANNELS[c], "allocated": int(total * shares[c] / scale * 0.98), "entities": ents,
                         "pace": rng.uniform(0.4, 1.6)})
    deals = []
    # Each deal sits on a different channel (an entity may count toward at most one deal, as the API enforces).
    for d, ch in enumerate(rng.sample(channels, min(rng.randint(0, 3), n_ch))):
        deals.append({"deal_id": f"p{i}-deal{d}", "allocated": ch["allocated"] // 2, "entities": ch["entities"][:1]})
    return {"plan_id": f"plan-{i:05d}", "total": total, "channels": channels, "deals": deals}


def to_domain(spec: dict[str, Any]) -> FlightPlan:
    def ref(e: str) -> EntityRef:
        return EntityRef("sandbox", "act-1", "campaign", e)

    return FlightPlan(
        plan_id=spec["plan_id"], workspace_id="ws-bench", campaign_id=f"cmp-{spec['plan_id']}", currency="USD",
        total_budget_cents=spec["total"], flight_start=FLIGHT_START, flight_end=FLIGHT_END,
        channels=tuple(ChannelPlan(c["name"], c["allocated"], tuple(ref(e) for e in c["entities"]),
                                   ref(c["entities"][0])) for c in spec["channels"]),
        deals=tuple(DealPlan(d["deal_id"], d["allocated"], tuple(ref(e) for e in d["entities"]))
                    for d in spec["deals"]),
    )


def daily_spend(spec: dict[str, Any], channel: dict[str, Any]) -> int:
    """Cents per entity per day so that the channel runs at its pace factor."""
    flight_days = (FLIGHT_END - FLIGHT_START).days
    return int(channel["allocated"] / flight_days * channel["pace"] / len(channel["entities"]))


def bench_pure(specs: list[dict[str, Any]]) -> dict[str, Any]:
    plans = [to_domain(s) for s in specs]
    elapsed_days = DAYS
    deliveries = []
    for spec in specs:
        ch = {c["name"]: Delivery(daily_spend(spec, c) * len(c["entities"]) * elapsed_days, 1000) for c in
              spec["channels"]}
        deals = {d["deal_id"]: Delivery(d["allocated"] // 3, 10) for d in spec["deals"]}
        deliveries.append((ch, deals))
    key = NOW.isoformat()
    started = time.perf_counter()
    proposals = alerts = 0
    for plan, (ch, deals) in zip(plans, deliveries, strict=True):
        ev = evaluate_plan(plan, ch, deals, now=NOW, slot_key=key)
        proposals += len(ev.proposals)
        alerts += ev.alert is not None
    seconds = time.perf_counter() - started
    return {"plans": len(plans), "seconds": round(seconds, 3), "snapshots_per_second": round(len(plans) / seconds),
            "proposals": proposals, "campaign_alerts": alerts,
            "what": "evaluate_plan per plan (engine.generate_snapshot + cents + decide_pacing_state + ids)"}


async def bench_db(specs: list[dict[str, Any]]) -> dict[str, Any]:
    from allot.contracts.envelope import Envelope
    from allot.pacing import workflow
    from allot.pacing.adapters import postgres as db
    from allot.pacing.scheduler import snapshot_due_plans
    from allot.runtime.db import open_database
    from allot.runtime.embedded import start_postgres
    from allot.runtime.outbox import add_events

    tmp = Path(tempfile.mkdtemp(prefix="allot-bench-pacing-"))
    server = start_postgres(tmp / "data")
    try:
        pool = await open_database(server.dsn, "pacing_bench", "allot.pacing.migrations", "pacing",
                                   min_size=2, max_size=4)
        created = NOW - timedelta(hours=3)
        plan_rows, entity_rows, reports = [], [], []
        for spec in specs:
            channels = [{"name": c["name"], "allocated_budget_cents": c["allocated"],
                         "entities": [{"platform": "sandbox", "ad_account_id": "act-1", "entity_type": "campaign",
                                       "entity_id": e} for e in c["entities"]],
                         "budget_entity": {"platform": "sandbox", "ad_account_id": "act-1",
                                           "entity_type": "campaign", "entity_id": c["entities"][0]}}
                        for c in spec["channels"]]
            deals = [{"deal_id": d["deal_id"], "allocated_budget_cents": d["allocated"],
                      "entities": [{"platform": "sandbox", "ad_account_id": "act-1", "entity_type": "campaign",
                                    "entity_id": e} for e in d["entities"]]} for d in spec["deals"]]
            plan_rows.append({
                "plan_id": spec["plan_id"], "workspace_id": "ws-bench", "campaign_id": f"cmp-{spec['plan_id']}",
                "name": "", "currency": "USD", "total_budget_cents": spec["total"], "flight_start": FLIGHT_START,
                "flight_end": FLIGHT_END, "channels": channels, "deals": deals,
                "curve": {"kind": "linear", "exponent": 2.0, "weekday_weights": None},
                "thresholds": {"underpacing_warning_pct": 10.0, "underpacing_critical_pct": 25.0,
                               "overpacing_warning_pct": 10.0, "overpacing_critical_pct": 25.0,
                               "min_reallocation_amount_cents": 10_000, "max_reallocation_pct": 30.0},
                "requires_approval": False, "snapshot_interval_s": 3600, "escalate_after_s": 86_400,
                "state": "ACTIVE", "held_since": None, "last_slot_at": None, "created_at": created,
                "updated_at": created, "created_by": "bench"})
            for c in spec["channels"]:
                per_day = daily_spend(spec, c)
                for e in c["entities"]:
                    entity_rows.append((spec["plan_id"], "channel", c["name"], e))
                    for day in range(DAYS):
                        start = FLIGHT_START + timedelta(days=day)
                        reports.append(("ws-bench", "sandbox", e, start, start + timedelta(days=1),
                                        start + timedelta(days=1, hours=3), uuid.uuid4(), "act-1", "campaign",
                                        "USD", per_day, 1000, per_day * 2))
            for d in spec["deals"]:
                for e in d["entities"]:
                    entity_rows.append((spec["plan_id"], "deal", d["deal_id"], e))
        async with pool.acquire() as conn, conn.transaction():
            for row in plan_rows:
                await db.insert_plan(conn, row)
            await conn.executemany(
                "INSERT INTO plan_entities VALUES ($1, 'ws-bench', $2, $3, 'sandbox', 'act-1', 'campaign', $4)",
                entity_rows)
        started = time.perf_counter()
        for i in range(0, len(reports), 500):
            async with pool.acquire() as conn, conn.transaction():
                await db.upsert_metric_reports(conn, reports[i:i + 500])
        upsert_s = time.perf_counter() - started
        async with pool.acquire() as conn:
            await conn.execute("ANALYZE")

        async def emit(conn: Any, envelopes: list[Envelope[Any]]) -> None:
            await add_events(conn, envelopes)

        started = time.perf_counter()
        taken = await snapshot_due_plans(pool, emit, now=NOW, claimed_by="bench", batch=200)
        seconds = time.perf_counter() - started
        async with pool.acquire() as conn:
            outbox = await conn.fetch("SELECT topic, count(*) AS n FROM outbox GROUP BY topic ORDER BY topic")
            snapshots = await conn.fetchval("SELECT count(*) FROM pacing_snapshots")
            statuses = await conn.fetch("SELECT status, count(*) AS n FROM pacing_proposals GROUP BY status")
            # Second pass in the same slot: everything is claimed, nothing is taken twice.
            again = await snapshot_due_plans(pool, emit, now=NOW + timedelta(seconds=5), claimed_by="bench-2",
                                             batch=200)
            await conn.execute("SELECT 1")
        await pool.close()
        return {
            "plans": len(specs), "snapshots_taken": taken, "snapshots_persisted": snapshots,
            "seconds": round(seconds, 3), "snapshots_per_second": round(taken / seconds),
            "batch_size": 200, "entities": len({r[2] for r in reports}), "metric_reports": len(reports),
            "outbox_events": {r["topic"]: r["n"] for r in outbox},
            "proposal_statuses": {r["status"]: r["n"] for r in statuses},
            "second_pass_same_slot_taken": again,
            "metrics_upsert_reports_per_second": round(len(reports) / upsert_s),
            "what": "scheduler pass: claim_slot per plan, lock, spend aggregation, evaluate, insert snapshots/"
                    "proposals/actions, outbox rows; per-batch transactions on embedded PostgreSQL (fsync off)",
            "uses": workflow.__name__,
        }
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    rng = random.Random(SEED)
    specs = [make_plan_spec(rng, i) for i in range(N_PURE)]
    pure = bench_pure(specs)
    print(json.dumps({"pure": pure}, indent=2))
    db = asyncio.run(bench_db(specs[:N_DB]))
    print(json.dumps({"service_pass": db}, indent=2))
    result = {
        "pure_engine": pure,
        "service_pass_postgres": db,
        "seed": SEED,
        "now": NOW.isoformat(),
        "python": py_platform.python_version(),
        "machine": py_platform.machine(),
    }
    out = ROOT / "bench" / "results" / "pacing_snapshots.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
