"""Pacing reallocation end to end (#16): pacing, guardrails, executor and the sandbox as processes.

A flight goes off pace, a proposal appears, a person approves it, and the budgets move on the sandbox by one
step the guardrails allow (20 % of the smaller budget, the source never below the platform minimum)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from allot.contracts import new_envelope
from allot.contracts.payloads import MetricsIngested
from tests.e2e.conftest import E2E, make_stack
from tests.support.kafka import eventually, publish

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pacing_stack(kafka_bootstrap: str, database_url: str) -> Iterator[E2E]:
    stack, workspaces, keys = make_stack(kafka_bootstrap, database_url,
                                         ["sandbox", "guardrails", "executor", "pacing"], n_workspaces=1)
    try:
        yield E2E(stack, workspaces, keys)
    finally:
        stack.stop()


def _report(ws: str, account: str, entity_id: str, start: datetime, spend: int, budget: int) -> Any:
    payload = MetricsIngested(platform="sandbox", ad_account_id=account, entity_type="adset", entity_id=entity_id,
                              currency="EUR", daily_budget_cents=budget, interval_start=start,
                              interval_end=start + timedelta(days=1), reported_at=start + timedelta(days=1),
                              spend_cents=spend, impressions=10_000)
    return new_envelope(event_type="metrics.ingested", schema_version=1, payload=payload, producer="e2e",
                        workspace_id=ws, occurred_at=payload.reported_at)


def _budgets(e2e: E2E, ids: list[str]) -> dict[str, int]:
    with e2e.sandbox() as sb:
        return {i: int(sb.get(f"/v1/entities/{i}").json()["daily_budget_cents"]) for i in ids}


async def test_an_approved_pacing_proposal_moves_budgets_on_the_sandbox(pacing_stack: E2E) -> None:
    e2e = pacing_stack
    ws = e2e.workspaces[0]
    account = f"act-{uuid.uuid4().hex[:6]}"
    ctv, display = f"{account}-ctv", f"{account}-display"
    with e2e.sandbox() as sb:
        for eid in (ctv, display):
            r = sb.post("/sandbox/entities", json={"id": eid, "ad_account_id": account, "entity_type": "adset",
                                                   "currency": "EUR", "daily_budget_cents": 3000, "status": "paused"})
            assert r.status_code in (200, 201), r.text

    # A 10-day flight half gone: CTV spent 100,000 of ~300,000 expected, DISPLAY 320,000 of ~200,000.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = today - timedelta(days=5), today + timedelta(days=5)
    reports = [_report(ws, account, eid, start + timedelta(days=d), spend, 3000)
               for d in range(5) for eid, spend in ((ctv, 20_000), (display, 64_000))]
    await publish(e2e.stack.bootstrap, *reports)

    def ent(eid: str) -> dict[str, str]:
        return {"platform": "sandbox", "ad_account_id": account, "entity_type": "adset", "entity_id": eid}

    with e2e.api("pacing", ws) as api:
        r = api.post("/api/v1/pacing/plans", json={
            "campaign_id": f"cmp-{account}", "name": "e2e flight", "currency": "EUR",
            "total_budget_cents": 1_000_000, "flight_start": start.isoformat(), "flight_end": end.isoformat(),
            "channels": [
                {"name": "CTV", "allocated_budget_cents": 600_000, "entities": [ent(ctv)], "budget_entity": ent(ctv)},
                {"name": "DISPLAY", "allocated_budget_cents": 400_000, "entities": [ent(display)],
                 "budget_entity": ent(display)}],
            "approval_config": {"PACING_ADJUSTMENT": True}})
        assert r.status_code == 201, r.text
        pid = r.json()["plan_id"]

        async def projected() -> bool:
            conn = await asyncpg.connect(e2e.stack.database_url)
            try:
                n = await conn.fetchval("SELECT count(*) FROM pacing.metric_reports WHERE workspace_id = $1", ws)
            finally:
                await conn.close()
            return bool(n == len(reports))

        await eventually(projected, timeout=30, what="pacing projected the reports")
        snap = api.post(f"/api/v1/pacing/plans/{pid}/snapshots")
        assert snap.status_code == 201, snap.text
        (proposal_id,) = snap.json()["proposal_ids"]
        proposal = api.get(f"/api/v1/pacing/plans/{pid}/proposals/{proposal_id}").json()
        assert (proposal["source_channel"], proposal["target_channel"], proposal["status"]) == (
            "CTV", "DISPLAY", "pending_approval")
        assert proposal["reason"].startswith("Move €") and "$" not in proposal["reason"]

        r = api.post(f"/api/v1/pacing/plans/{pid}/proposals/{proposal_id}/approve")
        assert r.status_code == 200 and r.json()["status"] == "requested", r.text
        assert {(a["entity_id"], a["from_cents"], a["to_cents"]) for a in r.json()["actions"]} == {
            (display, 3000, 3600), (ctv, 3000, 2400)}

        async def moved() -> bool:
            return _budgets(e2e, [ctv, display]) == {ctv: 2400, display: 3600}

        await eventually(moved, timeout=60, interval=0.3, what="the sandbox budgets moved by one 20 % step")

        async def applied() -> bool:
            got = api.get(f"/api/v1/pacing/plans/{pid}/proposals/{proposal_id}").json()
            return bool(got["status"] == "applied")

        await eventually(applied, timeout=30, what="pacing saw both actions executed")
