"""Observe autonomy (logs, publishes nothing), simulate (stores a log, changes nothing), diminishing returns,
backtest, the scheduler on clock time, and pacing recommendations logged against pools."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from allot.contracts.envelope import new_envelope
from allot.contracts.payloads import PacingReallocationRecommended
from allot.pools.scheduler import run_slot
from tests.service.pools.pools_support import BASE, NOW, PoolsCase, action_id, auth, eventually
from tests.support.kafka import publish


async def test_pools_observe_simulate_reports_and_scheduler(settings: Any, unique: str, kafka_bootstrap: str) -> None:
    P = PoolsCase(settings, unique)
    async with P.service() as (client, ctx, clock):
        op, viewer = auth(P.operator), auth(P.viewer)
        # Two pools with the same story on their own entities ("o": the observed pool's; an entity is in one pool).
        groups = ("o", "")
        history = P.history(16, groups=groups)
        # m4 grew its spend by half over the last 7 days while its ROAS fell: a diminishing-returns candidate.
        midnight = NOW.replace(hour=0)
        m4s = {P.entities(g)["m4"] for g in groups}
        history = [e for e in history if e.payload.entity_id not in m4s]
        for g in groups:
            for d in range(16, 0, -1):
                recent = d <= 7
                history.append(
                    P.metric(
                        "m4",
                        midnight - timedelta(days=d),
                        spend=15_000 if recent else 10_000,
                        roas=1.2 if recent else 2.0,
                        group=g,
                    )
                )
        await P.publish_history(kafka_bootstrap, ctx, history)

        observed = (await P.create_pool(client, autonomy="observe", group="o"))["id"]
        live = (await P.create_pool(client))["id"]

        # observe: the worker plans it, the log says what it would have done, nothing is published
        r = await client.post(f"{BASE}/{observed}/allocate", headers=op)
        assert r.status_code == 202, r.text

        async def planned() -> dict[str, Any] | None:
            logs = await P.allocations(client, observed)
            return logs[0] if logs and logs[0]["status"] != "queued" else None

        log = await eventually(planned, what="the observed allocation")
        assert log["status"] == "observed" and log["autonomy"] == "observe" and log["eventId"] is None
        assert len(log["actions"]) == 2
        assert all(a["toCents"] == 12_000 for a in log["actions"])

        # simulate: a simulation log entry; the pool (engine state, version) is untouched, nothing published
        before = (await client.get(f"{BASE}/{live}", headers=viewer)).json()
        r = await client.post(
            f"{BASE}/{live}/simulate", json={"from_date": "2026-09-01", "toDate": "2026-09-09"}, headers=op
        )
        assert r.status_code == 201, r.text
        sim = r.json()
        assert sim["kind"] == "simulation" and sim["status"] == "simulated" and sim["requestId"] is None
        assert sim["inputs"]["range"] == {"fromDate": "2026-09-01", "toDate": "2026-09-09"}
        assert {m["intervals"] for m in sim["inputs"]["members"]} == {9}
        # which members move is the engine's (seeded by pool id and time; tested in tests/unit/pools): a simulation
        # logs a balanced pair of changes among this pool's members
        moved = {a["entityId"] for a in sim["actions"]}
        assert len(sim["actions"]) == 2 and moved <= set(P.entity.values())
        r = await client.post(f"{BASE}/{live}/simulate", headers=op)
        assert r.status_code == 201 and r.json()["inputs"]["range"] == {"fromDate": None, "toDate": None}
        r = await client.post(
            f"{BASE}/{live}/simulate", params={"from_date": "2026-09-09", "to_date": "2026-09-01"}, headers=op
        )
        assert r.status_code == 422 and r.json()["field"] == "to_date"
        after = (await client.get(f"{BASE}/{live}", headers=viewer)).json()
        assert after == before and after["engine"]["lastPlanAt"] is None
        assert [a["kind"] for a in await P.allocations(client, live)] == ["simulation", "simulation"]
        assert await P.requests_for(kafka_bootstrap, live, min_count=0, timeout=3) == []
        assert await P.requests_for(kafka_bootstrap, observed, min_count=0, timeout=1) == []

        # diminishing returns: the numbers behind the flag
        r = await client.get(f"{BASE}/{live}/diminishing-returns", headers=viewer)
        assert r.status_code == 200, r.text
        [finding] = r.json()["findings"]
        assert finding["entityId"] == P.entity["m4"] and r.json()["evaluatedMembers"] == 4
        assert finding["spendBeforeCentsPerDay"] == 10_000 and finding["spendAfterCentsPerDay"] == 15_000
        assert finding["spendGrowthPct"] == 50.0 and finding["roasBefore"] == 2.0
        assert 1.2 <= finding["roasAfter"] < 1.4  # recent days maturity-corrected
        assert "candidate to cap or trim" in finding["explanation"]
        # and each member's response curve as the engine fits it: the posterior mean on a grid, with its evidence
        curves = {c["entityId"]: c for c in r.json()["curves"]}
        assert set(curves) == {P.entity[k] for k in ("m1", "m2", "m3", "m4")}
        for c in curves.values():
            assert c["memberId"] and c["entityType"] == "campaign" and c["kind"] in ("concave", "s_shaped")
            assert not c["priorOnly"] and c["evidenceDays"] >= 10 and c["valueUnit"] == "revenue_cents"
            assert len(c["points"]) == 24 and c["points"][0] == {"spendCentsPerDay": 0, "valuePerDay": 0.0}
            assert c["points"][-1]["spendCentsPerDay"] == 2 * max(c["budgetCents"], c["equalShareCents"])
            values = [p["valuePerDay"] for p in c["points"]]
            assert values == sorted(values) and values[-1] > 0
        # m4 returns about 1.2-2 per unit spent around its spend; the curve is in revenue cents per day
        near = min(curves[P.entity["m4"]]["points"], key=lambda p: abs(p["spendCentsPerDay"] - 15_000))
        assert 0.8 < near["valuePerDay"] / near["spendCentsPerDay"] < 2.5
        r = await client.get(f"{BASE}/{live}/diminishing-returns", params={"entity_type": "adset"}, headers=viewer)
        assert r.json()["findings"] == [] and r.json()["evaluatedMembers"] == 0 and r.json()["curves"] == []

        # backtest over stored metrics
        r = await client.get(
            f"{BASE}/{live}/backtest", params={"from_date": "2026-09-01", "to_date": "2026-09-09"}, headers=viewer
        )
        assert r.status_code == 200, r.text
        bt = r.json()
        assert bt["plans"] == 9 and bt["actualSpendCents"] > 0 and bt["moves"]
        assert set(bt["finalBudgets"]) == set(P.entity[k] for k in ("m1", "m2", "m3", "m4"))
        r = await client.get(
            f"{BASE}/{live}/backtest", params={"from_date": "2026-09-09", "to_date": "2026-09-01"}, headers=viewer
        )
        assert r.status_code == 422 and r.json()["field"] == "to_date"

        # pacing recommendation about a member campaign: logged against the pools holding it
        rec = PacingReallocationRecommended(
            plan_id=f"plan-{unique}",
            campaign_id=P.entity["m1"],
            proposal_id=uuid.uuid4(),
            snapshot_id=uuid.uuid4(),
            source_channel="CTV",
            target_channel="DISPLAY",
            amount_cents=5_000,
            currency="EUR",
            reason="CTV underpacing",
            requires_approval=True,
        )
        await publish(
            kafka_bootstrap,
            new_envelope(
                event_type="pacing.reallocation_recommended",
                schema_version=1,
                payload=rec,
                producer="test-pacing",
                workspace_id=P.ws,
                occurred_at=datetime.now(UTC),
            ),
        )

        async def noted() -> list[Any]:
            r = await client.get(f"{BASE}/{live}/allocations", headers=viewer)
            return list(r.json()["notes"])

        [note] = await eventually(noted, what="the pacing note")
        assert note["kind"] == "pacing_reallocation_recommended" and note["amountCents"] == 5_000

        # the scheduler: at the next 24 h slot (clock time) each active pool runs once; live publishes
        clock.advance(12 * 3600 + 1)
        slot = "2026-09-11T00:00:00+00:00"

        async def scheduled() -> list[dict[str, Any]] | None:
            logs = [a for a in await P.allocations(client, live) if a["trigger"] == "scheduled"]
            return logs or None

        [run] = await eventually(scheduled, what="the scheduled allocation")
        assert run["idempotencyKey"] == f"pool:{live}:{slot}" and run["status"] == "requested"
        [env] = await P.requests_for(kafka_bootstrap, live)
        req = env["payload"]
        assert req["idempotency_key"] == f"pool:{live}:{slot}" and req["manual"] is False
        assert req["request_id"] == run["requestId"] and req["pool_daily_budget_cents"] == 44_000
        assert {a["action_id"] for a in req["actions"]} == {
            action_id(live, slot, a["entity_id"]) for a in req["actions"]
        }
        obs = [a for a in await P.allocations(client, observed) if a["trigger"] == "scheduled"]
        assert len(obs) == 1 and obs[0]["status"] in ("observed", "no_change")
        # another instance (or a second scan) cannot run the same (pool, slot) again
        assert await run_slot(ctx, uuid.UUID(live), datetime.fromisoformat(slot)) is None
        async with ctx.pool.acquire() as conn:
            claims = await conn.fetchval("SELECT count(*) FROM schedule_claims WHERE job = $1", f"pool:{live}")
            runs = await conn.fetchval("SELECT count(*) FROM allocations WHERE pool_id = $1::uuid AND "
                                       "trigger = 'scheduled'", live)
        assert claims == 1 and runs == 1
        metrics = (await client.get("/metrics")).text
        assert 'allot_pool_allocations_total{outcome="observed"}' in metrics
        assert 'allot_pool_allocations_total{outcome="simulated"}' in metrics
