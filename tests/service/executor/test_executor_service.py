"""The executor in-process against the real broker, real Postgres and the sandbox platform on a real socket."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from allot.contracts import decode, derive_event_id, new_envelope, sign_approval
from allot.contracts.payloads import BudgetAction, GuardrailApproved
from allot.executor.service import SPEC
from allot.sandbox.app import create_app as create_sandbox
from allot.sandbox.state import SandboxState
from allot.sandbox.testing import serve_app
from tests.support.kafka import eventually, publish, read_topic
from tests.support.service import api_keys, auth, running_service

SECRET = "test-approval-secret"
TOKEN = "sandbox-test-token"


@pytest.fixture
def sandbox() -> Iterator[tuple[str, SandboxState]]:
    state = SandboxState(api_token=TOKEN)
    with serve_app(create_sandbox(state)) as url:
        yield url, state


def sandbox_http(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)


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


def _settings(settings: Any, url: str) -> dict[str, Any]:
    return {"sandbox_url": url, "sandbox_token": TOKEN, "approval_secret": SECRET, "retry_base_s": 0.05,
            "retry_cap_s": 0.2}


async def test_an_approved_change_is_applied_once_even_when_the_approval_arrives_three_times(
    settings: Any, unique: str, sandbox: tuple[str, SandboxState]
) -> None:
    url, _ = sandbox
    entity = f"as-{unique}"
    create_entity(url, entity, 10_000)
    event = approval(unique, entity, 10_000, 11_500)
    async with running_service(SPEC, settings, **_settings(settings, url)):
        await publish(settings.kafka_bootstrap, event, event, event)
        outcomes = await executed(settings, entity)
        assert [o.outcome for o in outcomes] == ["succeeded"]
        assert (outcomes[0].before_cents, outcomes[0].after_cents) == (10_000, 11_500)
        assert outcomes[0].platform_response_id
        # the same approval re-issued under a new event id is reported, never re-sent
        again = event.model_copy(update={"event_id": uuid.uuid4()})
        await publish(settings.kafka_bootstrap, again)
        outcomes = await executed(settings, entity, count=2)
        assert sorted(o.outcome for o in outcomes) == ["already_applied", "succeeded"]
    assert platform_budget(url, entity) == 11_500
    assert len(writes_to(url, entity)) == 1


@pytest.mark.parametrize("forgery", ["wrong_secret", "tampered"])
async def test_forged_approvals_go_to_the_dlq_and_never_reach_the_platform(
    settings: Any, unique: str, sandbox: tuple[str, SandboxState], forgery: str
) -> None:
    url, _ = sandbox
    entity = f"as-{unique}"
    create_entity(url, entity, 10_000)
    if forgery == "wrong_secret":
        event = approval(unique, entity, 10_000, 99_000, secret="guessed")
    else:
        event = approval(unique, entity, 10_000, 11_000)
        bigger = event.payload.actions[0].model_copy(update={"to_cents": 99_000})
        event = event.model_copy(update={"payload": event.payload.model_copy(update={"actions": [bigger]})})
    async with running_service(SPEC, settings, **_settings(settings, url)):
        await publish(settings.kafka_bootstrap, event)
        dlq = await read_topic(settings.kafka_bootstrap, "guardrail.approved.dlq", min_count=1,
                               predicate=lambda r: dict(r.headers).get("event_id") == str(event.event_id).encode())
        assert len(dlq) == 1
        error = dict(dlq[0].headers)["x-dlq-error"].decode()
        assert "approval rejected" in error and "signature" in error
    assert writes_to(url, entity) == []
    assert platform_budget(url, entity) == 10_000


async def test_a_budget_moved_by_someone_else_is_a_conflict_with_the_observed_value(
    settings: Any, unique: str, sandbox: tuple[str, SandboxState]
) -> None:
    url, _ = sandbox
    entity = f"as-{unique}"
    create_entity(url, entity, 13_000)
    async with running_service(SPEC, settings, **_settings(settings, url)):
        await publish(settings.kafka_bootstrap, approval(unique, entity, 10_000, 11_000))
        [outcome] = await executed(settings, entity)
        # Beside it, in the same transaction, the notification telling people (the notifier delivers it).
        [notice] = await read_topic(settings.kafka_bootstrap, "notification.requested", min_count=1,
                                    predicate=lambda r: dict(r.headers).get("workspace_id") == unique.encode())
    assert outcome.outcome == "conflict" and outcome.observed_cents == 13_000
    assert writes_to(url, entity) == []
    n = decode("notification.requested", notice.value)
    assert (n.producer, n.payload.kind, n.payload.severity) == ("executor", "executor_conflict", "warning")
    assert n.payload.title == f"The budget of adset {entity} was changed outside Allot"
    assert n.payload.entities[0].amount_cents == 13_000 and n.payload.facts["observed_cents"] == 13_000
    assert n.causation_id == derive_event_id(outcome.action_id, "executed"), "caused by the action.executed"


async def test_transient_platform_errors_are_retried_with_backoff(
    settings: Any, unique: str, sandbox: tuple[str, SandboxState]
) -> None:
    url, _ = sandbox
    entity = f"as-{unique}"
    create_entity(url, entity, 10_000)
    with sandbox_http(url) as http:
        assert http.post("/sandbox/faults", json={"kind": "rate_limit", "count": 2, "entity_id": entity,
                                                  "retry_after_s": 0}).status_code in (200, 201)
    async with running_service(SPEC, settings, **_settings(settings, url)):
        await publish(settings.kafka_bootstrap, approval(unique, entity, 10_000, 11_000))
        [outcome] = await executed(settings, entity)
    assert outcome.outcome == "succeeded" and outcome.attempts == 3
    assert platform_budget(url, entity) == 11_000


async def test_an_entity_that_keeps_failing_is_backed_off_after_five_failures(
    settings: Any, unique: str, sandbox: tuple[str, SandboxState]
) -> None:
    url, _ = sandbox
    entity = f"as-{unique}"
    create_entity(url, entity, 10_000)
    with sandbox_http(url) as http:
        http.post("/sandbox/faults", json={"kind": "server_error", "count": 1_000, "entity_id": entity})
    async with running_service(SPEC, settings, **_settings(settings, url), max_attempts=1):
        for _ in range(6):
            await publish(settings.kafka_bootstrap, approval(unique, entity, 10_000, 11_000))
        outcomes = await executed(settings, entity, count=6)
    errors = [o.error for o in outcomes]
    assert [o.outcome for o in outcomes] == ["failed"] * 6
    assert sum("failure backoff" in (e or "") for e in errors) == 1
    assert "failure backoff" in (errors[-1] or "")


async def test_an_executed_change_set_can_be_undone_through_the_guardrails(
    settings: Any, unique: str, sandbox: tuple[str, SandboxState]
) -> None:
    url, _ = sandbox
    entity = f"as-{unique}"
    create_entity(url, entity, 10_000)
    (op_key, other_key), keys = api_keys((unique, "operator"), ("someone-else", "admin"))
    event = approval(unique, entity, 10_000, 12_000)
    request_id = event.payload.request_id
    async with running_service(SPEC, settings, **_settings(settings, url), api_keys=keys) as (client, _ctx):
        await publish(settings.kafka_bootstrap, event)
        await executed(settings, entity)

        async def applied() -> Any:
            r = await client.get(f"/api/v1/change-sets/{request_id}", headers=auth(op_key))
            return r.json() if r.status_code == 200 and r.json()["actions"][0]["status"] == "succeeded" else None

        view = await eventually(applied, what="ledger shows succeeded")
        assert view["actions"][0]["after_cents"] == 12_000
        assert (await client.get(f"/api/v1/change-sets/{request_id}", headers=auth(other_key))).status_code == 404
        r1 = await client.post(f"/api/v1/change-sets/{request_id}/undo", headers=auth(op_key))
        r2 = await client.post(f"/api/v1/change-sets/{request_id}/undo", headers=auth(op_key))
        assert r1.status_code == r2.status_code == 202 and r1.json()["undo_request_id"] == r2.json()["undo_request_id"]
        undo_id = r1.json()["undo_request_id"]
        records = await read_topic(settings.kafka_bootstrap, "allocation.requested", min_count=1,
                                   predicate=lambda r: dict(r.headers).get("event_id") == undo_id.encode())
        assert len(records) == 1, "a repeated undo issues one inverse change set"
        undo = decode("allocation.requested", records[0].value).payload
        assert undo.source == "undo" and str(undo.undo_of) == str(request_id)
        assert (undo.actions[0].from_cents, undo.actions[0].to_cents) == (12_000, 10_000)
        missing = await client.post(f"/api/v1/change-sets/{uuid.uuid4()}/undo", headers=auth(op_key))
        assert missing.status_code == 404 and "not found" in missing.json()["message"]
