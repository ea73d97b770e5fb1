"""Shared by the executor's service tests (test_executor_service.py, test_executor_service_change_sets.py): the
sandbox platform on a real socket (the ``sandbox`` fixture, imported by the test modules as ``sandbox_fixture``),
entities and writes on it, signed approvals, the executed outcomes and the service's settings."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from allot.contracts import decode, new_envelope, sign_approval
from allot.contracts.payloads import BudgetAction, GuardrailApproved
from allot.sandbox.state import SandboxState
from tests.support.kafka import read_topic
from tests.support.sandbox import sandbox_client, sandbox_server

SECRET = "test-approval-secret"
TOKEN = "sandbox-test-token"


@pytest.fixture(name="sandbox")
def sandbox_fixture() -> Iterator[tuple[str, SandboxState]]:
    with sandbox_server(TOKEN) as running:
        yield running


def sandbox_http(url: str) -> httpx.Client:
    return sandbox_client(url, TOKEN)


def create_entity(url: str, entity_id: str, budget: int, platform: str = "sandbox") -> None:
    with sandbox_http(url) as http:
        r = http.post("/sandbox/entities", json={"id": entity_id, "platform": platform, "ad_account_id": "act_1",
                                                 "entity_type": "adset", "currency": "EUR",
                                                 "daily_budget_cents": budget})
        assert r.status_code in (200, 201), r.text


def platform_budget(url: str, entity_id: str) -> int:
    with sandbox_http(url) as http:
        return int(http.get(f"/v1/entities/{entity_id}").json()["daily_budget_cents"])


def writes_to(url: str, entity_id: str) -> list[dict[str, Any]]:
    with sandbox_http(url) as http:
        body = http.get("/sandbox/calls", params={"entity_id": entity_id}).json()
    calls = body["calls"] if isinstance(body, dict) else body
    return [c for c in calls if c.get("source", "allot") != "human"]


def approval(workspace: str, entity_id: str, from_cents: int, to_cents: int, *, secret: str = SECRET,
             expires_in_s: int = 900, request_id: uuid.UUID | None = None) -> Any:
    now = datetime.now(UTC)
    action = BudgetAction(action_id=uuid.uuid4(), platform="sandbox", ad_account_id="act_1", entity_type="adset",
                          entity_id=entity_id, action_type="set_budget", currency="EUR", from_cents=from_cents,
                          to_cents=to_cents, reason="test")
    unsigned = GuardrailApproved(decision_id=uuid.uuid4(), request_id=request_id or uuid.uuid4(), source="pool",
                                 source_id="pool_1", actions=[action], approved_at=now,
                                 expires_at=now + timedelta(seconds=expires_in_s), signature="")
    signed = unsigned.model_copy(update={"signature": sign_approval(unsigned, workspace, secret.encode())})
    return new_envelope(event_type="guardrail.approved", schema_version=1, payload=signed, producer="guardrails",
                        workspace_id=workspace, occurred_at=now)


async def executed(settings: Any, entity_id: str, count: int = 1) -> list[Any]:
    records = await read_topic(settings.kafka_bootstrap, "action.executed", min_count=count,
                               predicate=lambda r: r.key == entity_id.encode())
    return [decode("action.executed", r.value).payload for r in records]


def executor_settings(settings: Any, url: str) -> dict[str, Any]:
    return {"sandbox_url": url, "sandbox_token": TOKEN, "approval_secret": SECRET, "retry_base_s": 0.05,
            "retry_cap_s": 0.2}
