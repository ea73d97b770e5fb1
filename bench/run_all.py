"""`make bench`: run every benchmark in turn (each writes bench/results/<name>.json) and print a summary.

    python bench/run_all.py [--only load,pools_quality] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

#: name → (script, full arguments, quick arguments)
BENCHES: dict[str, tuple[str, list[str], list[str]]] = {
    "load": ("load.py", [], ["--entities", "1000", "--intervals", "3", "--trials", "20"]),
    # Full: the 200 held-out scenarios (writes pools_quality.json); quick: 8 of them, printed only.
    "pools_quality": ("pools_quality.py", [], ["--quick"]),
    # The same with the history as the pools service reads Meta's hourly rows (writes pools_quality_hourly.json).
    "pools_quality_hourly": ("pools_quality.py", ["--hourly"], ["--quick", "--hourly"]),
    # Where the engine loses, on the tune seeds (writes pools_learning_gap.json; quick: 8 scenarios, printed only).
    "pools_learning_gap": ("pools_learning_gap.py", [], ["--quick"]),
    "pools_speed": ("pools_speed.py", [], []),
    "rules_eval": ("rules_eval.py", [], []),
    "pacing_snapshots": ("pacing_snapshots.py", [], []),
    # Stored rows in Postgres → run_slot → outbox, split load / plan / write (quick: 20 pools, printed only).
    "pools_path": ("pools_path.py", [], ["--pools", "20"]),
    "faults_kill": ("faults_kill.py", [], []),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="")
    parser.add_argument("--quick", action="store_true", help="smaller load and pools_quality runs (for a smoke check)")
    args = parser.parse_args()
    wanted = [b for b in BENCHES if not args.only or b in args.only.split(",")]
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary: dict[str, dict[str, object]] = {}
    failed = 0
    for name in wanted:
        script, full, quick = BENCHES[name]
        path = ROOT / "bench" / script
        if not path.exists():
            summary[name] = {"status": "missing", "script": script}
            continue
        print(f"== {name}: python bench/{script} {' '.join(quick if args.quick else full)}", flush=True)
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, str(path), *(quick if args.quick else full)], cwd=ROOT)
        summary[name] = {"status": "ok" if proc.returncode == 0 else f"exit {proc.returncode}",
                         "seconds": round(time.perf_counter() - started, 1),
                         "result": f"bench/results/{name}.json"}
        failed += proc.returncode != 0
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for name, row in summary.items():
        print(f"{name:<18} {row['status']:<10} {row.get('seconds', '')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
