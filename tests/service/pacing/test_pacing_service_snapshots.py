"""Snapshot numbers, the three pacing events, the automatic change set, and replay-safe spend totals."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from allot.contracts.envelope import EVENT_NAMESPACE
from allot.pacing.domain import action_id_for
from tests.support.kafka import eventually, publish
from tests.support.service import auth


async def test_snapshot_persists_numbers_and_publishes_events_then_replay_changes_nothing(pacing: Any) -> None:
    async with pacing.service() as (client, ctx):
        clock = ctx.clock
        plan = await pacing.create_plan(client)
        pid = plan["plan_id"]
        assert plan["state"] == "ACTIVE" and plan["approval_config"] == {"PACING_ADJUSTMENT": False}
        assert plan["snapshot_interval_s"] == 3600 and plan["curve"]["kind"] == "linear"

        metrics = [
            pacing.metric("c1", 0, 700_000, daily_budget_cents=1_000_000),
            pacing.metric("c1", 1, 800_000, daily_budget_cents=1_000_000),
            pacing.metric("d1", 0, 1_500_000, daily_budget_cents=400_000),
            pacing.metric("d1-as", 2, 1_100_000, entity_type="adset"),
            pacing.metric("c1", -1, 123_456, daily_budget_cents=1_000_000),  # before the flight: not counted
            pacing.metric("c1", 6, 999_999, daily_budget_cents=1_000_000),  # starts after now: not counted yet
            pacing.metric("d1", 1, 777, currency="EUR", daily_budget_cents=400_000),  # other currency: not summed
            pacing.metric("unmapped", 0, 5_000_000),
        ]
        await publish(pacing.bootstrap, *metrics)
        await pacing.wait_projection(ctx, [m.event_id for m in metrics])

        snap = await pacing.snapshot(client, pid)
        # 5 of 10 days elapsed: expected 50 % of 100,000.00; CTV 50 % of 60,000; DISPLAY 50 % of 40,000.
        assert snap["total_budget_cents"] == 10_000_000
        assert snap["total_spend_cents"] == 4_100_000
        assert snap["expected_spend_cents"] == 5_000_000
        assert (snap["pacing_pct"], snap["deviation_pct"]) == (82.0, -18.0)
        assert snap["alert"]["level"] == "warning" and snap["alert"]["direction"] == "underpacing"
        assert snap["state_before"] == snap["state"] == "ACTIVE"
        ctv, display = snap["channels"]
        assert (ctv["spend_cents"], ctv["expected_spend_cents"], ctv["pacing_pct"]) == (1_500_000, 3_000_000, 50.0)
        assert (display["spend_cents"], display["expected_spend_cents"], display["deviation_pct"]) == (
            2_600_000, 2_000_000, 30.0)
        assert snap["deals"][0]["spend_cents"] == 1_500_000 and snap["deals"][0]["pacing_pct"] == 150.0
        assert len(snap["proposal_ids"]) == 1

        latest = await client.get(f"/api/v1/pacing/plans/{pid}/snapshots/latest", headers=auth(pacing.viewer))
        assert latest.status_code == 200 and latest.json()["snapshot_id"] == snap["snapshot_id"]

        taken = await pacing.events("pacing.snapshot_taken", pid)
        assert len(taken) == 1
        step = f"{pid}/{pacing.NOW.isoformat()}/snapshot_taken"
        assert taken[0]["event_id"] == str(uuid.uuid5(EVENT_NAMESPACE, f"pacing/{pacing.ws}/{step}"))
        p = taken[0]["payload"]
        assert p["snapshot_id"] == snap["snapshot_id"] and p["state"] == "ACTIVE"
        assert (p["total_spend_cents"], p["expected_spend_cents"], p["pacing_pct"]) == (4_100_000, 5_000_000, 82.0)
        assert (p["channel_count"], p["deal_count"]) == (2, 1)
        assert [c["spend_cents"] for c in p["channels"]] == [1_500_000, 2_600_000]

        deviation = (await pacing.events("pacing.deviation_detected", pid))[0]["payload"]
        assert (deviation["alert_level"], deviation["direction"], deviation["deviation_pct"]) == (
            "warning", "underpacing", -18.0)
        assert (deviation["threshold_pct"], deviation["state_before"], deviation["state_after"]) == (
            -10.0, "ACTIVE", "ACTIVE")

        rec = (await pacing.events("pacing.reallocation_recommended", pid))[0]["payload"]
        # CTV is 1,500,000 behind, DISPLAY 600,000 ahead: move the smaller, 600,000 cents.
        assert (rec["source_channel"], rec["target_channel"], rec["amount_cents"]) == ("CTV", "DISPLAY", 600_000)
        assert rec["requires_approval"] is False and rec["proposal_id"] == snap["proposal_ids"][0]

        requested = await pacing.events("allocation.requested", pid, field="source_id")
        assert len(requested) == 1
        req = requested[0]["payload"]
        assert (req["source"], req["idempotency_key"]) == ("pacing", rec["proposal_id"])
        by_entity = {a["entity_id"]: a for a in req["actions"]}
        d1, c1 = by_entity[f"{pacing.unique}-d1"], by_entity[f"{pacing.unique}-c1"]
        # 600,000 over the 5 remaining days is 120,000 a day; step 1 is 20 % of the target's 400,000.
        assert (d1["action_type"], d1["from_cents"], d1["to_cents"]) == ("set_budget", 400_000, 480_000)
        assert (c1["from_cents"], c1["to_cents"]) == (1_000_000, 920_000)
        assert "step 1 of 2" in d1["reason"] and "2 step(s) over 4 day(s)" in d1["reason"]
        assert d1["action_id"] == str(action_id_for(rec["proposal_id"], d1["entity_id"]))

        # The executor reports both actions applied: the proposal is applied and the allocation moves.
        await publish(pacing.bootstrap, *(pacing.executed(a, pid, req["request_id"]) for a in req["actions"]))

        async def applied() -> Any:
            res = await client.get(f"/api/v1/pacing/plans/{pid}/proposals?status=applied",
                                   headers=auth(pacing.viewer))
            return res.json()["proposals"]

        (proposal,) = await eventually(applied, what="proposal applied")
        assert proposal["moved_cents"] == 80_000 * 5  # step 1's daily change over the 5 remaining days
        assert {a["outcome"] for a in proposal["actions"]} == {"succeeded"}
        plan_now = (await client.get(f"/api/v1/pacing/plans/{pid}", headers=auth(pacing.viewer))).json()
        assert [c["allocated_budget_cents"] for c in plan_now["channels"]] == [5_600_000, 4_400_000]

        # Replay: the same envelopes again, identical re-reports with new ids, and an older re-report.
        later = pacing.NOW + timedelta(hours=1)
        replays = [
            pacing.metric("c1", 0, 700_000, reported_at=later, daily_budget_cents=1_000_000),
            pacing.metric("d1-as", 2, 1_100_000, reported_at=later, entity_type="adset"),
            pacing.metric("d1", 0, 1, reported_at=pacing.FLIGHT_START, daily_budget_cents=400_000),
        ]
        await publish(pacing.bootstrap, *metrics, *replays)
        await pacing.wait_projection(ctx, [m.event_id for m in replays])
        clock.advance(60)
        again = await pacing.snapshot(client, pid)
        assert again["snapshot_id"] != snap["snapshot_id"]
        assert again["total_spend_cents"] == 4_100_000
        assert [c["spend_cents"] for c in again["channels"]] == [1_500_000, 2_600_000]
        assert again["deals"][0]["spend_cents"] == 1_500_000
        rows = await ctx.pool.fetchval("SELECT count(*) FROM metric_reports WHERE workspace_id = $1", pacing.ws)
        assert rows == 8  # one row per (entity, interval): 7 reported keys + the EUR one

        # A matured report (later reported_at, bigger counters) replaces its interval, never adds to it.
        matured = pacing.metric("d1", 0, 1_500_250, reported_at=later + timedelta(hours=1), daily_budget_cents=1)
        await publish(pacing.bootstrap, matured)
        await pacing.wait_projection(ctx, [matured.event_id])
        clock.advance(60)
        assert (await pacing.snapshot(client, pid))["total_spend_cents"] == 4_100_250

        # A snapshot asked twice at the same instant is taken once.
        same = await client.post(f"/api/v1/pacing/plans/{pid}/snapshots", headers=auth(pacing.operator))
        assert same.status_code == 200

        window = await client.get(
            f"/api/v1/pacing/plans/{pid}/snapshots",
            params={"start_time": (pacing.NOW + timedelta(seconds=30)).isoformat(),
                    "end_time": (pacing.NOW + timedelta(hours=1)).isoformat()},
            headers=auth(pacing.viewer))
        assert [s["total_spend_cents"] for s in window.json()["snapshots"]] == [4_100_000, 4_100_250]
        by_campaign = await client.get("/api/v1/pacing/snapshots", params={"campaign_id": plan["campaign_id"]},
                                       headers=auth(pacing.viewer))
        assert len(by_campaign.json()["snapshots"]) == 3
        assert len(await pacing.events("pacing.snapshot_taken", pid, min_count=3)) == 3

        exposed = (await client.get("/metrics")).text
        assert 'allot_pacing_snapshots_total{service="pacing",trigger="manual"}' in exposed
        assert 'allot_pacing_deviations_total{level="warning",service="pacing"}' in exposed
        assert 'allot_pacing_proposals_total{service="pacing",status="applied"}' in exposed
