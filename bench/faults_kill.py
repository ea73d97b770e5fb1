"""Benchmark / soak: SIGKILL every service at seeded moments while 100,000 metrics stream in.

The same scenario as tests/faults/test_faults_kill.py (shared code: tests/support/faults.py), at full scale:
an embedded broker and Postgres, every service as its own process (pools only when it imports), N
metrics.ingested events for a few hundred entities of one workspace (published in bursts with a raw aiokafka
producer, ~15 % of them re-reports of an interval) and a trickle of small allocation.requested change sets on
sandbox entities. While they flow, guardrails, executor, rules, pacing (and pools) are each SIGKILLed
(``--rounds`` times, in a seeded order at seeded moments) and restarted. Then:

- every consumer's metric projection (its own Postgres schema) holds exactly the distinct (entity, interval)
  rows published and exactly the sums of their latest reports;
- every change set got exactly one decision, every approved action exactly one final ledger outcome and
  exactly one write on the sandbox platform (its call log is the witness).

Run:   .venv/bin/python bench/faults_kill.py [--events 100000] [--entities 500] [--changes 100] [--rounds 1]
       (or ALLOT_BENCH_FAULT_EVENTS=... ; ALLOT_BENCH_FAULT_SEED=...)
Writes bench/results/faults_kill.json (events, kills, lost, duplicates_applied, duration, ...); exits 1 when
anything was lost or applied twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from allot.runtime.stack import start_stack  # noqa: E402
from tests.support.faults import (  # noqa: E402
    FAULT_ENV,
    KillScenario,
    consumer_services,
    run_kill_scenario,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=int(os.environ.get("ALLOT_BENCH_FAULT_EVENTS", "100000")))
    parser.add_argument("--entities", type=int, default=500)
    parser.add_argument("--changes", type=int, default=100, help="allocation.requested change sets")
    parser.add_argument("--rounds", type=int, default=1, help="how many times each service is killed")
    parser.add_argument("--stream-s", type=float, default=None,
                        help="seconds over which the events are published (default: scales with the kills)")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("ALLOT_BENCH_FAULT_SEED", "20261101")))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "faults_kill.json"))
    args = parser.parse_args(argv)

    consumers = consumer_services()
    services = ["sandbox", "guardrails", "executor", *consumers]
    killed = ["guardrails", "executor", *consumers] * args.rounds
    stream_s = args.stream_s or max(30.0, 9.0 * len(killed), args.events / 1_500)
    cfg = KillScenario(n_events=args.events, n_entities=args.entities, n_changes=args.changes, seed=args.seed,
                       stream_s=stream_s, chunks=max(30, int(stream_s)), services=killed, consumers=consumers,
                       settle_timeout_s=max(180.0, args.events / 200))
    root = Path(tempfile.mkdtemp(prefix="allot-bench-faults-"))
    print(f"faults_kill: {args.events} events, {args.entities} entities, {args.changes} change sets, "
          f"{len(killed)} kills over {stream_s:.0f} s; logs in {root / 'logs'}")
    started = time.monotonic()
    stack = start_stack(root, services=services, extra_env=FAULT_ENV, quiet=True, random_ports=True)
    stack_s = time.monotonic() - started
    failure = None
    try:
        result = asyncio.run(run_kill_scenario(stack, cfg, say=print))
    except AssertionError as exc:  # a violation: still write what happened
        failure = str(exc)
        result = {"events": args.events, "lost": None, "duplicates_applied": None, "error": failure[:4000]}
    finally:
        stack.stop()
    result.update({
        "stack_start_s": round(stack_s, 2), "killed_services": sorted(set(killed)), "rounds": args.rounds,
        "stream_s": stream_s, "python": platform.python_version(), "machine": platform.machine(),
        "cpus": os.cpu_count(), "broker": "embedded Tansu", "postgres": "embedded PostgreSQL",
    })
    result.pop("workspace", None)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("kills", "projections")}, indent=1, default=str))
    print(f"wrote {out}")
    return 1 if failure or result["lost"] or result["duplicates_applied"] else 0


if __name__ == "__main__":
    sys.exit(main())
