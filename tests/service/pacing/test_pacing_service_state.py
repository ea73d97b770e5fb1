"""The campaign pacing state machine through the running service: hold, release, escalation, manual pause."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pytest

from tests.support.kafka import eventually, publish
from tests.support.service import auth


async def test_critical_deviation_holds_releases_and_escalates_on_the_scheduler(
    pacing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The scheduler reads its interval through settings_of(ctx, PacingSettings). Before the SPEC declared
    # PacingSettings, the keyword override alone was dropped for the environment's (the scheduler scanned every second).
    monkeypatch.setenv("ALLOT_PACING_SCAN_INTERVAL_S", "0.1")
    async with pacing.service(pacing_scan_interval_s=0.1) as (client, ctx):
        clock = ctx.clock
        body = pacing.plan_body(
            channels=[{"name": "ALL", "allocated_budget_cents": 10_000_000, "entities": [pacing.ent("e1")],
                       "budget_entity": pacing.ent("e1")}],
            deals=[], escalate_after_s=3600, snapshot_interval_s=3600)
        plan = await pacing.create_plan(client, **body)
        pid = plan["plan_id"]

        first = pacing.metric("e1", 0, 1_000_000, daily_budget_cents=1_000_000)
        await publish(pacing.bootstrap, first)
        await pacing.wait_projection(ctx, [first.event_id])
        held = await pacing.snapshot(client, pid)  # 1,000,000 of 5,000,000 expected: -80 %, critical
        assert (held["deviation_pct"], held["alert"]["level"]) == (-80.0, "critical")
        assert (held["state_before"], held["state"]) == ("ACTIVE", "PACING_HOLD")
        plan_now = (await client.get(f"/api/v1/pacing/plans/{pid}", headers=auth(pacing.viewer))).json()
        assert plan_now["state"] == "PACING_HOLD" and plan_now["held_since"] is not None

        catch_up = [pacing.metric("e1", day, 1_000_000, daily_budget_cents=1_000_000) for day in range(1, 5)]
        await publish(pacing.bootstrap, *catch_up)
        await pacing.wait_projection(ctx, [m.event_id for m in catch_up])
        clock.advance(1)
        released = await pacing.snapshot(client, pid)
        assert released["total_spend_cents"] == 5_000_000 and released["alert"] is None
        assert (released["state_before"], released["state"]) == ("PACING_HOLD", "ACTIVE")
        taken = await pacing.events("pacing.snapshot_taken", pid, min_count=2)
        assert [e["payload"]["state"] for e in taken] == ["PACING_HOLD", "ACTIVE"]

        async def latest_state(expected: str) -> Any:
            row = await ctx.pool.fetchrow(
                "SELECT state, trigger, taken_at FROM pacing_snapshots WHERE plan_id = $1 "
                "ORDER BY taken_at DESC LIMIT 1", pid)
            return row if row and row["trigger"] == "schedule" and row["state"] == expected else None

        # Two days later spend has not moved: the scheduler's next slot finds -28.57 % and holds again ...
        clock.advance(2 * 86_400)
        hold_row = await eventually(lambda: latest_state("PACING_HOLD"), what="scheduled snapshot holding")
        # ... and one hour (escalate_after_s) later, still critical, it escalates to PAUSED.
        clock.advance(3600)
        await eventually(lambda: latest_state("PAUSED"), what="scheduled snapshot escalating")
        assert hold_row["taken_at"] == pacing.NOW + timedelta(days=2, seconds=1)

        deviations = await pacing.events("pacing.deviation_detected", pid, min_count=3)
        assert [(d["payload"]["alert_level"], d["payload"]["state_before"], d["payload"]["state_after"])
                for d in deviations] == [("critical", "ACTIVE", "PACING_HOLD"), ("critical", "ACTIVE", "PACING_HOLD"),
                                         ("critical", "PACING_HOLD", "PAUSED")]

        # Manual resume and pause are stored transitions too.
        res = await client.post(f"/api/v1/pacing/plans/{pid}/resume", json={"reason": "budget fixed"},
                                headers=auth(pacing.operator))
        assert res.status_code == 200 and res.json()["state"] == "ACTIVE"
        assert (await client.post(f"/api/v1/pacing/plans/{pid}/pause", headers=auth(pacing.viewer))).status_code == 403
        res = await client.post(f"/api/v1/pacing/plans/{pid}/pause", headers=auth(pacing.operator))
        assert res.json()["state"] == "PAUSED"
        transitions = (await client.get(f"/api/v1/pacing/plans/{pid}/transitions",
                                        headers=auth(pacing.viewer))).json()["transitions"]
        assert [(t["from_state"], t["to_state"]) for t in reversed(transitions)] == [
            ("ACTIVE", "PACING_HOLD"), ("PACING_HOLD", "ACTIVE"), ("ACTIVE", "PACING_HOLD"),
            ("PACING_HOLD", "PAUSED"), ("PAUSED", "ACTIVE"), ("ACTIVE", "PAUSED")]
        assert transitions[1]["reason"] == "budget fixed" and transitions[0]["actor"] != "pacing"
        assert transitions[2]["actor"] == "pacing" and "Escalated" in transitions[2]["reason"]

        # PAUSED plans are not scheduled any more (checked last: a plan resumed while a slot of its is due gets a
        # scheduled snapshot at once, which would race the manual pause above). A sentinel plan (held at its first
        # slot, never escalated) is snapshotted in every scheduler pass: its snapshot of the pass AFTER the one in
        # which the paused plan's slot came due proves that pass is over (a fixed sleep would let a slow pass
        # snapshot it afterwards).
        sentinel = (await pacing.create_plan(client, **{
            **body, "campaign_id": f"cmp-{pacing.unique}-sentinel", "escalate_after_s": 86_400,
            "channels": [{"name": "ALL", "allocated_budget_cents": 10_000_000, "entities": [pacing.ent("s1")],
                          "budget_entity": pacing.ent("s1")}]}))["plan_id"]

        async def sentinel_scheduled(slot: datetime) -> bool:
            return bool(await ctx.pool.fetchval(
                "SELECT count(*) FROM pacing_snapshots WHERE plan_id = $1 AND trigger = 'schedule' AND taken_at >= $2",
                sentinel, slot))

        count = await ctx.pool.fetchval("SELECT count(*) FROM pacing_snapshots WHERE plan_id = $1", pid)
        for _ in range(2):  # the paused plan's next slot, then one more pass
            clock.advance(3600)
            await eventually(partial(sentinel_scheduled, clock.now()), what="the sentinel plan's scheduled snapshot")
        assert await ctx.pool.fetchval("SELECT count(*) FROM pacing_snapshots WHERE plan_id = $1", pid) == count == 4
