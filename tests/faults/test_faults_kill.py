"""SIGKILL every service, one at a time at seeded moments, while metrics and change sets stream in.

Real processes (allot.runtime.stack), the session's broker and Postgres. After the stream: every consumer's
metric projection holds exactly the (entity, interval) rows published with exactly the sums of their latest
reports; every change set got exactly one decision; every approved action has exactly one final outcome in the
executor's ledger and reached the sandbox platform exactly once (its call log is the witness).
The 100,000-event version of this is bench/faults_kill.py.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from allot.runtime.stack import RunningStack
from tests.support.faults import KillScenario, consumer_services, run_kill_scenario, start_fault_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def kill_stack(kafka_bootstrap: str, database_url: str) -> Iterator[RunningStack]:
    consumers = consumer_services()
    services = ["sandbox", "guardrails", "executor", *consumers]
    stack = start_fault_stack(Path(tempfile.mkdtemp(prefix="allot-faults-kill-")), services,
                              bootstrap=kafka_bootstrap, database_url=database_url)
    try:
        yield stack
    finally:
        stack.stop()


async def test_sigkill_of_each_service_mid_stream_loses_nothing_and_applies_nothing_twice(
        kill_stack: RunningStack) -> None:
    consumers = [s for s in ("rules", "pacing", "pools") if s in kill_stack.processes]
    cfg = KillScenario(n_events=10_000, n_entities=300, n_changes=30, stream_s=30.0, chunks=15,
                       services=["guardrails", "executor", *consumers], consumers=consumers)
    result = await run_kill_scenario(kill_stack, cfg, say=print)
    print(json.dumps({k: v for k, v in result.items() if k != "projections"}, default=str, indent=1))
    assert len(result["kills"]) == len(cfg.services)
    assert result["lost"] == 0
    assert result["duplicates_applied"] == 0
    assert result["write_path"]["platform_writes"] == cfg.n_changes
