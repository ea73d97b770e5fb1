"""bench/pools_path.py: seeding + the timed run_slot path on 2 small pools really plans and writes to the outbox."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(ROOT))

from allot.pools.adapters.postgres import HISTORY_BLOCK  # noqa: E402
from bench import pools_path  # noqa: E402


def test_two_pools_short_history_measure_something() -> None:
    result = asyncio.run(pools_path.run(2, 2, 7))
    path = result["path"]
    assert result["seeding"]["metric_rows"] == 2 * pools_path.MEMBERS * 2 * 24
    assert result["seeding"]["member_metrics_bytes"]["total"] > 0
    # Two days of hours, read back per UTC block (the last week's grain).
    assert path["history_rows_per_pool"] == pools_path.MEMBERS * 2 * 24 // round(HISTORY_BLOCK.total_seconds() / 3600)
    for phase in ("load", "plan", "write", "load_inputs_part_of_load"):
        assert path[phase]["seconds"] > 0 and path[phase]["per_pool_ms"] > 0
    assert sum(path["statuses"].values()) == 2
    assert path["outbox_events"].get("allocation.requested", 0) >= 1
    assert result["extrapolation_to_aim"]["pools"] == 10_000 and result["extrapolation_to_aim"]["seconds"] > 0
