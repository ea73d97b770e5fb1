"""Allocating a live pool: one allocation.requested (absolute budgets, the pool's daily budget), idempotent per
UTC day, a local manual rate limit, PATCH never changing a queued/running allocation, and the synchronous
outcomes (423 guardrail block, 429 guardrail rate limit, 200 executed)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from allot.contracts.envelope import new_envelope
from allot.contracts.payloads import ActionExecuted, GuardrailBlocked
from allot.pools.scheduler import run_queued
from allot.pools.workflow import knob_default
from tests.service.pools.pools_support import BASE, TODAY, PoolsCase, action_id, auth
from tests.support.kafka import publish


async def test_pools_allocate_async_idempotent_rate_limited_and_snapshot(
    settings: Any, unique: str, kafka_bootstrap: str
) -> None:
    P = PoolsCase(settings, unique)
    # The worker is off so the test decides when the queued allocation runs (after the PATCH below).
    async with P.service(pools_worker_enabled=False) as (client, ctx, clock):
        op = auth(P.operator)
        await P.publish_history(kafka_bootstrap, ctx, P.history(10))
        pool = await P.create_pool(client)  # 44 000/day over 4 members at 10 000 each: +4 000 to place
        pid = pool["id"]

        r = await client.post(f"{BASE}/{pid}/allocate", headers=op)
        assert r.status_code == 202, r.text
        queued = r.json()
        rid = queued["requestId"]
        assert queued["status"] == "queued" and queued["replayed"] is False
        assert queued["idempotencyKey"] == f"pool:{pid}:{TODAY}"

        # PATCH while the allocation is queued: the pool changes, the allocation keeps its snapshot.
        r = await client.patch(f"{BASE}/{pid}", json={"dailyBudgetCents": 60_000, "cooldownHours": 4}, headers=op)
        assert r.status_code == 200 and r.json()["dailyBudgetCents"] == 60_000 and r.json()["cooldownHours"] == 4
        assert await run_queued(ctx) == 1

        [env] = await P.requests_for(kafka_bootstrap, pid)
        req = env["payload"]
        assert env["producer"] == "pools" and env["workspace_id"] == P.ws
        assert req["request_id"] == rid and req["source"] == "pool" and req["source_id"] == pid
        assert req["idempotency_key"] == f"pool:{pid}:{TODAY}" and req["manual"] is True
        assert req["pool_daily_budget_cents"] == 44_000 and req["currency"] == "EUR"  # the snapshot, not 60 000
        moves = {a["entity_id"]: (a["from_cents"], a["to_cents"]) for a in req["actions"]}
        # the budget to place goes to two members at the 20 % step (never the clearly worst); unchanged members get no
        # action
        assert sorted(moves.values()) == [(10_000, 12_000), (10_000, 12_000)] and P.entity["m4"] not in moves
        for a in req["actions"]:
            assert a["action_type"] == "set_budget" and a["platform"] == "sandbox" and a["ad_account_id"] == P.account
            assert a["action_id"] == action_id(pid, TODAY, a["entity_id"]) and a["currency"] == "EUR"

        [log] = await P.allocations(client, pid)
        assert log["status"] == "requested" and log["kind"] == "allocation" and log["trigger"] == "manual"
        assert log["settings"]["dailyBudgetCents"] == 44_000 and log["eventId"] == env["event_id"]
        # the engine settings in force when it was queued, unset ones as the engine's defaults
        assert log["settings"]["cooldownHours"] == knob_default("cooldown_hours") != 4
        assert log["settings"]["persistenceIntervals"] == knob_default("persistence_intervals")
        assert log["settings"]["explorationShare"] == knob_default("exploration_share")
        assert log["settings"]["deadbandPct"] == knob_default("deadband_pct")
        assert log["settings"]["compositeWeights"] is None and "tier" not in log["settings"]
        lines = {m["entityId"]: m for m in log["plan"]["members"]}
        assert len(lines) == 4 and log["plan"]["poolTotalCents"] == 44_000 and log["plan"]["feasible"] is True
        assert sum(line["afterCents"] - line["beforeCents"] for line in lines.values()) == 4_000
        assert lines[P.entity["m4"]]["action"] == "hold" and "kept at 100.00 EUR/day" in lines[P.entity["m4"]]["why"]
        assert "per extra EUR" in lines[P.entity["m1"]]["why"] and "ROAS" in lines[P.entity["m1"]]["why"]
        assert lines[P.entity["m1"]]["baselineRoas"] > lines[P.entity["m4"]]["baselineRoas"]
        assert {m["intervals"] for m in log["inputs"]["members"]} == {10}

        # A repeated manual allocate within the local window: 429 + Retry-After, naming today's request.
        r = await client.post(f"{BASE}/{pid}/allocate", json={"async": False}, headers=op)
        assert r.status_code == 429, r.text
        assert r.headers["Retry-After"] == "60" and r.json()["existingRequestId"] == rid
        clock.advance(30)
        r = await client.post(f"{BASE}/{pid}/allocate", headers=op)
        assert r.status_code == 429 and r.headers["Retry-After"] == "30"

        # After the window, same UTC day: the existing allocation comes back, nothing is published again.
        clock.advance(31)
        r = await client.post(f"{BASE}/{pid}/allocate", headers=op)
        assert r.status_code == 202, r.text
        assert r.json()["requestId"] == rid and r.json()["replayed"] is True and r.json()["status"] == "requested"
        assert await run_queued(ctx) == 0
        async with ctx.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM allocations WHERE pool_id = $1::uuid", pid) == 1
        assert len(await P.requests_for(kafka_bootstrap, pid, min_count=0, timeout=3)) == 1

        metrics = (await client.get("/metrics")).text
        for outcome in ("requested", "rate_limited", "replayed"):
            assert f'allot_pool_allocations_total{{outcome="{outcome}"}}' in metrics


def _blocked(P: PoolsCase, env: dict[str, Any], check: str, reason: str, **extra: Any) -> Any:
    req = env["payload"]
    payload = GuardrailBlocked(
        decision_id=uuid.uuid4(),
        request_id=uuid.UUID(req["request_id"]),
        source="pool",
        source_id=req["source_id"],
        check=check,
        reason=reason,
        details={"cap_eur_cents": 10_000},
        **extra,
    )
    return new_envelope(
        event_type="guardrail.blocked",
        schema_version=1,
        payload=payload,
        producer="test-guardrails",
        workspace_id=P.ws,
        occurred_at=datetime.now(UTC),
    )


def _executed(P: PoolsCase, env: dict[str, Any]) -> list[Any]:
    req = env["payload"]
    out = []
    for a in req["actions"]:
        payload = ActionExecuted(
            action_id=uuid.UUID(a["action_id"]),
            request_id=uuid.UUID(req["request_id"]),
            decision_id=uuid.uuid4(),
            source="pool",
            source_id=req["source_id"],
            platform=a["platform"],
            ad_account_id=a["ad_account_id"],
            entity_type=a["entity_type"],
            entity_id=a["entity_id"],
            action_type="set_budget",
            outcome="succeeded",
            currency=a["currency"],
            before_cents=a["from_cents"],
            after_cents=a["to_cents"],
            executed_at=datetime.now(UTC),
        )
        out.append(
            new_envelope(
                event_type="action.executed",
                schema_version=1,
                payload=payload,
                producer="test-executor",
                workspace_id=P.ws,
                occurred_at=datetime.now(UTC),
            )
        )
    return out


async def test_pools_sync_allocate_blocked_rate_limited_and_executed(
    settings: Any, unique: str, kafka_bootstrap: str
) -> None:
    P = PoolsCase(settings, unique)
    async with P.service() as (client, ctx, _clock):
        op = auth(P.operator)
        # three pools, each with its own four entities (an entity is in one pool only)
        await P.publish_history(kafka_bootstrap, ctx, P.history(10, groups=("b", "c", "")))
        pools = [await P.create_pool(client, group=g) for g in ("b", "c", "")]
        blocked, limited, executed = (p["id"] for p in pools)

        async def sync_allocate(pid: str) -> Any:
            return await client.post(f"{BASE}/{pid}/allocate", json={"async": False}, headers=op)

        # Guardrails block (simulated: read the change set from Kafka, answer with the same request id) → 423.
        task = asyncio.create_task(sync_allocate(blocked))
        [env] = await P.requests_for(kafka_bootstrap, blocked)
        await publish(kafka_bootstrap, _blocked(P, env, "daily_cap", "daily cap of 100.00 EUR would be exceeded"))
        r = await asyncio.wait_for(task, 30)
        assert r.status_code == 423, r.text
        body = r.json()
        assert body["error"] == "guardrail_blocked" and body["check"] == "daily_cap"
        assert body["message"] == "daily cap of 100.00 EUR would be exceeded"
        assert body["requestId"] == env["payload"]["request_id"] and body["details"] == {"cap_eur_cents": 10_000}

        # The guardrails' own manual rate limit → 429 with its Retry-After.
        task = asyncio.create_task(sync_allocate(limited))
        [env] = await P.requests_for(kafka_bootstrap, limited)
        await publish(
            kafka_bootstrap, _blocked(P, env, "rate_limited", "one manual change per 120 s", retry_after_s=120)
        )
        r = await asyncio.wait_for(task, 30)
        assert r.status_code == 429 and r.headers["Retry-After"] == "120", r.text

        # Approved and executed (simulated executor) → 200 with every action's outcome.
        task = asyncio.create_task(sync_allocate(executed))
        [env] = await P.requests_for(kafka_bootstrap, executed)
        await publish(kafka_bootstrap, *_executed(P, env))
        r = await asyncio.wait_for(task, 30)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "executed" and body["requestId"] == env["payload"]["request_id"]
        outcomes = {o["entityId"]: o for o in body["allocation"]["outcomes"]}
        assert len(outcomes) == 2 and P.entity["m4"] not in outcomes
        assert all(o["outcome"] == "succeeded" and o["afterCents"] == 12_000 for o in outcomes.values())

        # The logs keep the guardrail decision / outcomes; an executed change updates the members' current budget.
        [log] = await P.allocations(client, blocked)
        assert log["status"] == "blocked" and log["decision"]["check"] == "daily_cap"
        # (which members the seeded engine moves is tested in tests/unit/pools; here: the ones that moved)
        async with ctx.pool.acquire() as conn:
            budgets = await conn.fetch(
                "SELECT entity_id, daily_budget_cents FROM entities WHERE workspace_id = $1 AND entity_id = ANY($2)",
                P.ws,
                list(outcomes),
            )
        assert {r["entity_id"]: r["daily_budget_cents"] for r in budgets} == dict.fromkeys(outcomes, 12_000)

        # A retried synchronous allocate of the executed pool (after the local window) returns the same outcome.
        _clock.advance(61)
        r = await sync_allocate(executed)
        assert r.status_code == 200 and r.json()["replayed"] is True and r.json()["status"] == "executed"
        metrics = (await client.get("/metrics")).text
        for outcome in ("blocked", "executed"):
            assert f'allot_pool_allocations_total{{outcome="{outcome}"}}' in metrics
