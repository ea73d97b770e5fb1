"""The executor in-process against the real broker, real Postgres and the sandbox platform on a real socket."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from allot.contracts import decode, derive_event_id
from allot.executor.service import SPEC
from allot.sandbox.state import SandboxState
from tests.service.executor.executor_support import (
    approval,
    create_entity,
    executed,
    executor_settings,
    platform_budget,
    sandbox_fixture,  # noqa: F401  (the sandbox fixture)
    sandbox_http,
    writes_to,
)
from tests.support.kafka import eventually, publish, read_topic
from tests.support.service import api_keys, auth, running_service


async def test_an_approved_change_is_applied_once_even_when_the_approval_arrives_three_times(
    settings: Any, unique: str, sandbox: tuple[str, SandboxState]
) -> None:
    url, _ = sandbox
    entity = f"as-{unique}"
    create_entity(url, entity, 10_000)
    event = approval(unique, entity, 10_000, 11_500)
    async with running_service(SPEC, settings, **executor_settings(settings, url)):
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
    async with running_service(SPEC, settings, **executor_settings(settings, url)):
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
    async with running_service(SPEC, settings, **executor_settings(settings, url)):
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
    async with running_service(SPEC, settings, **executor_settings(settings, url)):
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
    async with running_service(SPEC, settings, **executor_settings(settings, url), max_attempts=1):
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
    async with running_service(SPEC, settings, **executor_settings(settings, url), api_keys=keys) as (client, _ctx):
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
