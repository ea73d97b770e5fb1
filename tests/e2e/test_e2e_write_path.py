"""The safe write path as processes: allocation.requested → guardrails → executor → sandbox, exactly once."""

from __future__ import annotations

import os
import signal
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from allot.contracts import decode, new_envelope, sign_approval
from allot.contracts.payloads import AllocationRequested, BudgetAction, GuardrailApproved
from allot.runtime.stack import wait_ready
from tests.e2e.conftest import E2E, SECRET
from tests.support.kafka import eventually, publish, read_topic

pytestmark = pytest.mark.e2e


def entity(e2e: E2E, workspace: str, budget: int) -> str:
    entity_id = f"as-{uuid.uuid4().hex[:10]}"
    with e2e.sandbox() as sb:
        r = sb.post("/sandbox/entities", json={"id": entity_id, "ad_account_id": f"act-{workspace}",
                                               "entity_type": "adset", "currency": "EUR",
                                               "daily_budget_cents": budget, "status": "paused"})
        assert r.status_code in (200, 201), r.text
    return entity_id


def budget_of(e2e: E2E, entity_id: str) -> int:
    with e2e.sandbox() as sb:
        return int(sb.get(f"/v1/entities/{entity_id}").json()["daily_budget_cents"])


def writes(e2e: E2E, entity_id: str) -> list[dict[str, Any]]:
    with e2e.sandbox() as sb:
        body = sb.get("/sandbox/calls", params={"entity_id": entity_id}).json()
    calls = body["calls"] if isinstance(body, dict) else body
    return [c for c in calls if c.get("source") != "human"]


def request(workspace: str, entity_id: str, from_cents: int, to_cents: int, source: str = "manual",
            source_id: str | None = None) -> Any:
    action = BudgetAction(action_id=uuid.uuid4(), platform="sandbox", ad_account_id=f"act-{workspace}",
                          entity_type="adset", entity_id=entity_id, action_type="set_budget", currency="EUR",
                          from_cents=from_cents, to_cents=to_cents, reason="e2e")
    payload = AllocationRequested(request_id=uuid.uuid4(), source=source,  # type: ignore[arg-type]
                                  source_id=source_id or f"src-{entity_id}",
                                  idempotency_key=str(uuid.uuid4()), actions=[action], requested_by="e2e")
    return new_envelope(event_type="allocation.requested", schema_version=1, payload=payload, producer="e2e",
                        workspace_id=workspace, occurred_at=datetime.now(UTC))


async def outcome(e2e: E2E, entity_id: str, count: int = 1) -> list[Any]:
    recs = await read_topic(e2e.stack.bootstrap, "action.executed", min_count=count, timeout=40,
                            predicate=lambda r: r.key == entity_id.encode())
    return [decode("action.executed", r.value).payload for r in recs]


async def blocked(e2e: E2E, request_id: uuid.UUID) -> Any:
    recs = await read_topic(e2e.stack.bootstrap, "guardrail.blocked", min_count=1, timeout=40,
                            predicate=lambda r: str(request_id).encode() in r.value)
    assert recs, "no guardrail.blocked decision"
    return decode("guardrail.blocked", recs[0].value).payload


# Absence ("no write", "one write only", "one outcome only") is checked after a SENTINEL, never after a fixed wait: a
# later event with the same source_id as the one under test (the key of allocation.requested and guardrail.approved,
# so the same partitions, consumed in order) on an entity of its own. Once the sentinel's outcome is on
# action.executed, guardrails and the executor have processed everything before it on those partitions, including
# what a decision put in the guardrails' outbox before it.


def sentinel_request(e2e: E2E, workspace: str, source_id: str) -> tuple[Any, str]:
    """A small change set (+100 cents) on a new sandbox entity, keyed like the change set under test."""
    eid = entity(e2e, workspace, 10_000)
    return request(workspace, eid, 10_000, 10_100, source_id=source_id), eid


def sentinel_approval(e2e: E2E, workspace: str) -> tuple[Any, str]:
    """A correctly signed approval keyed like those published straight to guardrail.approved (``forged``)."""
    eid = entity(e2e, workspace, 10_000)
    return forged(workspace, eid, SECRET), eid


async def sentinel_done(e2e: E2E, sentinel_entity: str) -> None:
    [done] = await outcome(e2e, sentinel_entity)
    assert done.outcome == "succeeded", done


async def outcomes_before_sentinel(e2e: E2E, entity_id: str, sentinel_entity: str, count: int = 1) -> list[Any]:
    """Every outcome of ``entity_id``, read once the sentinel's outcome is on the topic (one read when there are
    ``count``; with more, the read may stop before the sentinel: then wait for it and read again)."""
    keys = {entity_id.encode(), sentinel_entity.encode()}
    recs = await read_topic(e2e.stack.bootstrap, "action.executed", min_count=count + 1, timeout=40,
                            predicate=lambda r: r.key in keys)
    done = [decode("action.executed", r.value).payload for r in recs if r.key == sentinel_entity.encode()]
    if not done:
        await sentinel_done(e2e, sentinel_entity)
        return await outcome(e2e, entity_id, count)
    assert [d.outcome for d in done] == ["succeeded"], done
    return [decode("action.executed", r.value).payload for r in recs if r.key == entity_id.encode()]


async def test_a_change_within_limits_is_executed_once_on_the_sandbox(write_path: E2E) -> None:
    ws = write_path.workspaces[0]
    eid = entity(write_path, ws, 10_000)
    sentinel, sentinel_eid = sentinel_request(write_path, ws, f"src-{eid}")
    await publish(write_path.stack.bootstrap, request(ws, eid, 10_000, 11_500), sentinel)
    [result] = await outcomes_before_sentinel(write_path, eid, sentinel_eid)
    assert result.outcome == "succeeded" and (result.before_cents, result.after_cents) == (10_000, 11_500)
    assert budget_of(write_path, eid) == 11_500 and len(writes(write_path, eid)) == 1


async def test_a_change_over_the_daily_cap_is_blocked_with_the_numbers(write_path: E2E) -> None:
    ws = write_path.workspaces[1]
    with write_path.api("guardrails", ws) as api:
        r = api.patch("/api/v1/guardrails/limits", json={"daily_cap_eur_cents": 2_000})
        assert r.status_code == 200, r.text
    eid = entity(write_path, ws, 10_000)
    event = request(ws, eid, 10_000, 12_000)
    sentinel, sentinel_eid = sentinel_request(write_path, ws, f"src-{eid}")  # +100 (125 at worst): within the cap
    await publish(write_path.stack.bootstrap, event, sentinel)
    decision = await blocked(write_path, event.payload.request_id)
    assert decision.check == "daily_cap"
    # +2000 cents on the sandbox counts at its worst-case overdelivery (x1.25): 2500 > the 2000 cap
    assert 2_500 in decision.details.values() and 2_000 in decision.details.values(), decision.details
    await sentinel_done(write_path, sentinel_eid)
    assert writes(write_path, eid) == [] and budget_of(write_path, eid) == 10_000


async def test_the_kill_switch_blocks_everything(write_path: E2E) -> None:
    ws = write_path.workspaces[2]
    with write_path.api("guardrails", ws) as api:
        assert api.post("/api/v1/guardrails/kill-switch", json={"enabled": True}).status_code == 200
    eid = entity(write_path, ws, 10_000)
    event = request(ws, eid, 10_000, 10_500)
    await publish(write_path.stack.bootstrap, event)
    decision = await blocked(write_path, event.payload.request_id)
    assert decision.check == "kill_switch"
    with write_path.api("guardrails", ws) as api:  # off again (after the decision) so that the sentinel goes through
        assert api.post("/api/v1/guardrails/kill-switch", json={"enabled": False}).status_code == 200
    sentinel, sentinel_eid = sentinel_request(write_path, ws, f"src-{eid}")
    await publish(write_path.stack.bootstrap, sentinel)
    await sentinel_done(write_path, sentinel_eid)
    assert writes(write_path, eid) == []


def forged(workspace: str, entity_id: str, secret: str) -> Any:
    now = datetime.now(UTC)
    action = BudgetAction(action_id=uuid.uuid4(), platform="sandbox", ad_account_id=f"act-{workspace}",
                          entity_type="adset", entity_id=entity_id, action_type="set_budget", currency="EUR",
                          from_cents=10_000, to_cents=90_000)
    unsigned = GuardrailApproved(decision_id=uuid.uuid4(), request_id=uuid.uuid4(), source="manual",
                                 source_id="attacker", actions=[action], approved_at=now,
                                 expires_at=now + timedelta(minutes=10), signature="")
    signed = unsigned.model_copy(update={"signature": sign_approval(unsigned, workspace, secret.encode())})
    return new_envelope(event_type="guardrail.approved", schema_version=1, payload=signed, producer="attacker",
                        workspace_id=workspace, occurred_at=now)


async def test_a_forged_approval_published_straight_to_the_topic_is_rejected(write_path: E2E) -> None:
    ws = write_path.workspaces[3]
    eid = entity(write_path, ws, 10_000)
    event = forged(ws, eid, "not-the-secret")
    sentinel, sentinel_eid = sentinel_approval(write_path, ws)
    await publish(write_path.stack.bootstrap, event, sentinel)
    await sentinel_done(write_path, sentinel_eid)
    dlq = await read_topic(write_path.stack.bootstrap, "guardrail.approved.dlq", min_count=1, timeout=40,
                           predicate=lambda r: dict(r.headers).get("event_id") == str(event.event_id).encode())
    assert len(dlq) == 1 and b"signature" in dict(dlq[0].headers)["x-dlq-error"]
    assert writes(write_path, eid) == [] and budget_of(write_path, eid) == 10_000


async def test_the_same_approval_published_three_times_changes_the_budget_once(write_path: E2E) -> None:
    ws = write_path.workspaces[4]
    eid = entity(write_path, ws, 10_000)
    approval = forged(ws, eid, SECRET)  # correctly signed with the real secret
    action = approval.payload.actions[0].model_copy(update={"to_cents": 11_000})
    payload = approval.payload.model_copy(update={"actions": [action], "signature": ""})
    payload = payload.model_copy(update={"signature": sign_approval(payload, ws, SECRET.encode())})
    first = approval.model_copy(update={"payload": payload})
    again = first.model_copy(update={"event_id": uuid.uuid4()})
    sentinel, sentinel_eid = sentinel_approval(write_path, ws)
    await publish(write_path.stack.bootstrap, first, first, again, sentinel)
    results = await outcomes_before_sentinel(write_path, eid, sentinel_eid, count=2)
    assert len(results) == 2, results
    # the duplicate reports `pending` when it arrives while the original is being applied, else already_applied
    assert sorted(r.outcome for r in results) in (["already_applied", "succeeded"], ["pending", "succeeded"])
    assert budget_of(write_path, eid) == 11_000 and len(writes(write_path, eid)) == 1


async def test_executor_killed_between_platform_call_and_commit_does_not_apply_twice(write_path: E2E) -> None:
    """The sandbox applies the write and then stalls its answer; the executor is SIGKILLed while waiting,
    restarted, and must not send the write again (the compare-and-set sees the target already there)."""
    ws = write_path.workspaces[5]
    eid = entity(write_path, ws, 10_000)
    with write_path.sandbox() as sb:
        r = sb.post("/sandbox/faults", json={"kind": "timeout", "count": 1, "entity_id": eid, "on": "write",
                                             "applied": True, "delay_s": 120})
        assert r.status_code in (200, 201), r.text
    await publish(write_path.stack.bootstrap, request(ws, eid, 10_000, 11_800))

    async def write_landed() -> bool:
        return len(writes(write_path, eid)) == 1

    await eventually(write_landed, timeout=40, what="the write reaching the sandbox")
    executor = write_path.stack.processes["executor"]
    os.kill(executor.pid, signal.SIGKILL)
    executor.wait(10)
    with write_path.sandbox() as sb:
        sb.delete("/sandbox/faults")
    write_path.stack.start_service("executor")
    wait_ready(write_path.stack, "executor")
    # published after the restart: behind the redelivered approval and anything the restarted executor queues
    sentinel, sentinel_eid = sentinel_request(write_path, ws, f"src-{eid}")
    await publish(write_path.stack.bootstrap, sentinel)
    [result] = await outcomes_before_sentinel(write_path, eid, sentinel_eid)
    assert result.outcome == "already_applied", result
    assert budget_of(write_path, eid) == 11_800
    assert len(writes(write_path, eid)) == 1, "the platform saw exactly one write"
