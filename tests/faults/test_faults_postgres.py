"""Postgres unreachable for 10 s under a running system: nothing lost, nothing applied twice, and the
services recover by themselves (readyz 503 during the outage, 200 after, same processes).

The session Postgres is shared, so this test runs its own embedded Postgres, stops it (pg_ctl stop -m fast)
while events flow, and starts it again on the same port and data directory.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from allot.runtime.embedded import EmbeddedPostgres, free_port, start_postgres
from allot.runtime.stack import RunningStack
from tests.support.faults import OutageScenario, restart_postgres, run_outage_scenario, start_fault_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pg_stack(kafka_bootstrap: str) -> Iterator[tuple[RunningStack, EmbeddedPostgres]]:
    root = Path(tempfile.mkdtemp(prefix="allot-faults-pg-"))
    pg = start_postgres(root / "pgdata", free_port())
    try:
        stack = start_fault_stack(root, ["sandbox", "guardrails", "executor", "rules"], bootstrap=kafka_bootstrap,
                                  database_url=pg.dsn)
        try:
            yield stack, pg
        finally:
            stack.stop()
    finally:
        pg.stop()


async def test_postgres_down_for_10s_loses_nothing_and_services_recover_by_themselves(
        pg_stack: tuple[RunningStack, EmbeddedPostgres]) -> None:
    stack, pg = pg_stack
    # Change sets are published every 1.2 s from t=0; the platform answers a write 0.4 s after applying it. Cutting
    # at 3.85 s (0.25 s after the 4th change set) aims at the executor holding its ledger transaction across
    # the platform call: the write has landed, the commit cannot, and the retry must see it, not write again.
    cfg = OutageScenario(watched=["guardrails", "executor", "rules"], consumers=["rules"], outage_s=10.0,
                         cut_at_s=3.85)
    result = await run_outage_scenario(stack, cfg, cut=pg.stop, restore=lambda: restart_postgres(pg), say=print)
    print(json.dumps({k: v for k, v in result.items() if k != "projections"}, default=str, indent=1))
    assert result["outage"]["held_s"] >= 10.0
    assert result["write_path"]["lost"] == 0 and result["write_path"]["duplicates_applied"] == 0
    assert result["write_path"]["platform_writes"] == cfg.n_changes
