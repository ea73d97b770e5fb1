"""Helpers of the guardrails service tests: change sets, envelopes, and reading decisions back from the bus."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.payloads import AllocationRequested, BudgetAction
from tests.support.kafka import eventually, read_topic
from tests.support.service import auth


def action(entity: str, frm: int | None = 10_000, to: int | None = 11_000, *, kind: str = "set_budget",
           platform: str = "meta", account: str = "act-1", currency: str = "EUR") -> BudgetAction:
    return BudgetAction.model_validate({
        "action_id": uuid.uuid4(), "platform": platform, "ad_account_id": account, "entity_type": "adset",
        "entity_id": entity, "action_type": kind, "currency": currency, "from_cents": frm, "to_cents": to,
    })


def request(*actions: BudgetAction, key: str | None = None, source: str = "rule", source_id: str = "r-1",
            **extra: Any) -> AllocationRequested:
    return AllocationRequested.model_validate({
        "request_id": uuid.uuid4(), "source": source, "source_id": source_id,
        "idempotency_key": key or uuid.uuid4().hex, "actions": list(actions), **extra,
    })


def envelope(workspace: str, req: AllocationRequested) -> Envelope[Any]:
    return new_envelope(event_type="allocation.requested", schema_version=1, payload=req, producer="test",
                        workspace_id=workspace, occurred_at=datetime.now(UTC))


async def decision_of(client: httpx.AsyncClient, key: str, request_id: uuid.UUID, *,
                      timeout: float = 15.0) -> dict[str, Any]:
    """Poll the API until the decision on ``request_id`` is stored."""
    async def check() -> dict[str, Any] | None:
        r = await client.get(f"/api/v1/guardrails/decisions/{request_id}", headers=auth(key))
        return r.json() if r.status_code == 200 else None

    return await eventually(check, timeout=timeout, what=f"decision on {request_id}")


def _header(record: Any, name: str) -> str | None:
    for k, v in record.headers or []:
        if k == name:
            return v.decode()
    return None


async def events_of(bootstrap: str, topic: str, workspace: str, min_count: int) -> list[dict[str, Any]]:
    """Envelopes (as dicts) of ``topic`` for ``workspace``, waiting for at least ``min_count``."""
    records = await read_topic(bootstrap, topic, min_count=min_count, timeout=15.0,
                               predicate=lambda r: _header(r, "workspace_id") == workspace)
    return [orjson.loads(r.value) for r in records]
