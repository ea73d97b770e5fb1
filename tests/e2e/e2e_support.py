"""Shared by the pools and rules end-to-end tests (test_e2e_pools_rules.py, test_e2e_pool_ownership.py): sandbox
entities and their budgets, and the sentinel change set after which absence is checked."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg

from allot.contracts import new_envelope
from allot.contracts.payloads import AllocationRequested, BudgetAction
from tests.support.kafka import eventually, publish

if TYPE_CHECKING:
    from tests.e2e.conftest import E2E


def sandbox_entity(e2e: E2E, account: str, entity_id: str, budget: int) -> None:
    with e2e.sandbox() as sb:
        r = sb.post("/sandbox/entities", json={"id": entity_id, "ad_account_id": account, "entity_type": "adset",
                                               "currency": "EUR", "daily_budget_cents": budget, "status": "paused"})
        assert r.status_code in (200, 201), r.text


def budgets(e2e: E2E, ids: list[str]) -> dict[str, int]:
    with e2e.sandbox() as sb:
        return {i: int(sb.get(f"/v1/entities/{i}").json()["daily_budget_cents"]) for i in ids}


async def sentinel(e2e: E2E, ws: str, account: str, *, producer: str, source_id: str) -> None:
    """Absence is checked after this, never after a fixed wait. Once ``producer``'s outbox is empty, every change
    set it decided is on allocation.requested; a later change set with the same source_id (the key of
    allocation.requested and guardrail.approved: the same partitions, consumed in order) on a sandbox entity of its
    own is then published, and its write on the sandbox proves guardrails and the executor processed everything
    before it."""
    async def drained() -> bool:
        conn = await asyncpg.connect(e2e.stack.database_url)
        try:
            return await conn.fetchval(f'SELECT count(*) FROM "{producer}".outbox') == 0
        finally:
            await conn.close()

    await eventually(drained, timeout=30, what=f"the {producer} outbox relayed")
    eid = f"{account}-sentinel"
    sandbox_entity(e2e, account, eid, 10_000)
    action = BudgetAction(action_id=uuid.uuid4(), platform="sandbox", ad_account_id=account, entity_type="adset",
                          entity_id=eid, action_type="set_budget", currency="EUR", from_cents=10_000,
                          to_cents=10_100, reason="e2e sentinel")
    payload = AllocationRequested(request_id=uuid.uuid4(), source="manual", source_id=source_id,
                                  idempotency_key=str(uuid.uuid4()), actions=[action], requested_by="e2e")
    await publish(e2e.stack.bootstrap, new_envelope(event_type="allocation.requested", schema_version=1,
                                                    payload=payload, producer="e2e", workspace_id=ws,
                                                    occurred_at=datetime.now(UTC)))

    async def written() -> bool:
        return budgets(e2e, [eid])[eid] == 10_100

    await eventually(written, timeout=40, interval=0.2, what="the sentinel change set written")
