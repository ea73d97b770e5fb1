"""The executor's last line of tenancy (issue #14, point 2): an approved action on an ad account another workspace
has connected is rejected before any platform call; real broker, Postgres and the sandbox platform on a socket."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from allot.contracts import TOPICS, decode, new_envelope, sign_approval
from allot.contracts.payloads import BudgetAction, GuardrailApproved
from allot.executor.service import SPEC
from allot.sandbox.app import create_app as create_sandbox
from allot.sandbox.state import SandboxState
from allot.sandbox.testing import serve_app
from tests.support.accounts import connect_account
from tests.support.kafka import publish, read_topic
from tests.support.service import running_service

SECRET = "test-approval-secret"
TOKEN = "sandbox-test-token"


@pytest.fixture
def sandbox_url() -> Iterator[str]:
    with serve_app(create_sandbox(SandboxState(api_token=TOKEN))) as url:
        yield url


def _http(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)


def create_entity(url: str, entity_id: str, account: str) -> None:
    with _http(url) as http:
        r = http.post("/sandbox/entities", json={"id": entity_id, "platform": "sandbox", "ad_account_id": account,
                                                 "entity_type": "adset", "currency": "EUR",
                                                 "daily_budget_cents": 10_000})
        assert r.status_code in (200, 201), r.text


def budget_writes(url: str, entity_id: str) -> int:
    with _http(url) as http:
        body = http.get("/sandbox/calls", params={"entity_id": entity_id}).json()
    calls = body["calls"] if isinstance(body, dict) else body
    return len([c for c in calls if c.get("source", "allot") != "human"])


def approval(workspace: str, account: str, entity_id: str, to_cents: int) -> Any:
    now = datetime.now(UTC)
    action = BudgetAction(action_id=uuid.uuid4(), platform="sandbox", ad_account_id=account, entity_type="adset",
                          entity_id=entity_id, action_type="set_budget", currency="EUR", from_cents=10_000,
                          to_cents=to_cents, reason="test")
    unsigned = GuardrailApproved(decision_id=uuid.uuid4(), request_id=uuid.uuid4(), source="pool", source_id="pool_1",
                                 actions=[action], approved_at=now, expires_at=now + timedelta(seconds=900),
                                 signature="")
    signed = unsigned.model_copy(update={"signature": sign_approval(unsigned, workspace, SECRET.encode())})
    return new_envelope(event_type="guardrail.approved", schema_version=TOPICS["guardrail.approved"].schema_version,
                        payload=signed, producer="guardrails", workspace_id=workspace, occurred_at=now)


async def outcomes(settings: Any, entity_id: str, count: int) -> list[Any]:
    records = await read_topic(settings.kafka_bootstrap, "action.executed", min_count=count,
                               predicate=lambda r: r.key == entity_id.encode())
    return [decode("action.executed", r.value).payload for r in records]


def _overrides(url: str) -> dict[str, Any]:
    return {"sandbox_url": url, "sandbox_token": TOKEN, "approval_secret": SECRET, "retry_base_s": 0.05,
            "retry_cap_s": 0.2}


async def test_an_approval_for_another_workspaces_account_is_rejected_before_any_write(
        settings: Any, unique: str, sandbox_url: str) -> None:
    ws_a, ws_b = f"a-{unique}", f"b-{unique}"
    account, entity = f"act-{unique}", f"as-{unique}"
    create_entity(sandbox_url, entity, account)
    async with running_service(SPEC, settings, **_overrides(sandbox_url)) as (_client, ctx):
        await connect_account(settings.kafka_bootstrap, ctx, ws_a, account)
        await publish(settings.kafka_bootstrap, approval(ws_b, account, entity, 11_000))
        [refused] = await outcomes(settings, entity, 1)
        assert refused.outcome == "rejected"
        assert "connected to another workspace" in (refused.error or "") and ws_b in (refused.error or "")
        assert budget_writes(sandbox_url, entity) == 0

        await publish(settings.kafka_bootstrap, approval(ws_a, account, entity, 11_000))
        done = await outcomes(settings, entity, 2)
        assert sorted(o.outcome for o in done) == ["rejected", "succeeded"]


async def test_in_strict_mode_an_account_connected_to_no_workspace_is_not_written(
        settings: Any, unique: str, sandbox_url: str) -> None:
    account, entity = f"act-{unique}", f"as-{unique}"
    create_entity(sandbox_url, entity, account)
    async with running_service(SPEC, settings, require_connected_accounts=True, **_overrides(sandbox_url)):
        await publish(settings.kafka_bootstrap, approval(f"a-{unique}", account, entity, 11_000))
        [refused] = await outcomes(settings, entity, 1)
        assert refused.outcome == "rejected" and "not connected to this workspace" in (refused.error or "")
        assert budget_writes(sandbox_url, entity) == 0


async def test_an_entity_of_another_account_named_under_an_owned_one_is_not_written(
        settings: Any, unique: str, sandbox_url: str) -> None:
    ws_a = f"a-{unique}"
    mine, theirs, entity = f"act-{unique}", f"act-theirs-{unique}", f"as-{unique}"
    create_entity(sandbox_url, entity, theirs)
    async with running_service(SPEC, settings, **_overrides(sandbox_url)) as (_client, ctx):
        await connect_account(settings.kafka_bootstrap, ctx, ws_a, mine)
        await publish(settings.kafka_bootstrap, approval(ws_a, mine, entity, 11_000))
        [refused] = await outcomes(settings, entity, 1)
        assert refused.outcome == "rejected"
        assert f"belongs to ad account {theirs}" in (refused.error or "")
        assert budget_writes(sandbox_url, entity) == 0
