"""Approval stage, unknown budgets, validation (422 naming the field) and workspace/role scoping."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.support.kafka import publish, read_topic
from tests.support.service import auth


def _mine(field: str, value: str) -> Any:
    import orjson

    return lambda rec: orjson.loads(rec.value)["payload"].get(field) == value


async def test_with_pacing_adjustment_on_nothing_is_requested_until_approved(pacing: Any) -> None:
    async with pacing.service() as (client, ctx):
        plan = await pacing.create_plan(client, approval_config={"PACING_ADJUSTMENT": True})
        pid = plan["plan_id"]
        assert plan["approval_config"] == {"PACING_ADJUSTMENT": True}
        metrics = [pacing.metric("c1", 0, 1_500_000, daily_budget_cents=1_000_000),
                   pacing.metric("d1", 0, 2_600_000, daily_budget_cents=400_000)]
        await publish(pacing.bootstrap, *metrics)
        await pacing.wait_projection(ctx, [m.event_id for m in metrics])

        snap = await pacing.snapshot(client, pid)
        (proposal_id,) = snap["proposal_ids"]
        rec = (await pacing.events("pacing.reallocation_recommended", pid))[0]["payload"]
        assert rec["requires_approval"] is True and rec["amount_cents"] == 600_000
        open_ = (await client.get(f"/api/v1/pacing/plans/{pid}/proposals", headers=auth(pacing.viewer))).json()
        assert [(p["proposal_id"], p["status"]) for p in open_["proposals"]] == [(proposal_id, "pending_approval")]
        assert await read_topic(pacing.bootstrap, "allocation.requested", timeout=3,
                                predicate=_mine("source_id", pid)) == []

        url = f"/api/v1/pacing/plans/{pid}/proposals/{proposal_id}"
        assert (await client.post(f"{url}/approve", headers=auth(pacing.viewer))).status_code == 403
        assert (await client.post(f"{url}/approve", headers=auth(pacing.stranger))).status_code == 404
        res = await client.post(f"{url}/approve", headers=auth(pacing.operator))
        assert res.status_code == 200 and res.json()["status"] == "requested"
        assert {(a["role"], a["from_cents"], a["to_cents"]) for a in res.json()["actions"]} == {
            ("target", 400_000, 480_000), ("source", 1_000_000, 920_000)}
        again = await client.post(f"{url}/approve", headers=auth(pacing.operator))
        assert again.status_code == 409 and again.json()["field"] == "status"
        assert (await client.post(f"{url}/reject", headers=auth(pacing.operator))).status_code == 409

        requested = await pacing.events("allocation.requested", pid, field="source_id")
        assert len(requested) == 1
        payload = requested[0]["payload"]
        assert payload["idempotency_key"] == proposal_id and payload["source"] == "pacing"
        assert sorted((a["from_cents"], a["to_cents"]) for a in payload["actions"]) == [
            (400_000, 480_000), (1_000_000, 920_000)]

        # The next snapshot's proposal waits too, and can be rejected.
        ctx.clock.advance(60)
        (second,) = (await pacing.snapshot(client, pid))["proposal_ids"]
        res = await client.post(f"/api/v1/pacing/plans/{pid}/proposals/{second}/reject", json={"reason": "no"},
                                headers=auth(pacing.operator))
        assert res.json()["status"] == "rejected" and res.json()["status_reason"] == "no"
        assert len(await pacing.events("allocation.requested", pid, field="source_id")) == 1

        # Unknown daily budget: an automatic plan marks the proposal needs_budget and emits nothing.
        auto = await pacing.create_plan(client, campaign_id=f"cmp2-{pacing.unique}", channels=[
            {"name": "CTV", "allocated_budget_cents": 6_000_000, "entities": [pacing.ent("x1")],
             "budget_entity": pacing.ent("x1")},
            {"name": "DISPLAY", "allocated_budget_cents": 4_000_000, "entities": [pacing.ent("y1")],
             "budget_entity": pacing.ent("y1")}], deals=[])
        no_budget = [pacing.metric("x1", 0, 1_500_000, daily_budget_cents=1_000_000),
                     pacing.metric("y1", 0, 2_600_000)]
        await publish(pacing.bootstrap, *no_budget)
        await pacing.wait_projection(ctx, [m.event_id for m in no_budget])
        await pacing.snapshot(client, auto["plan_id"])
        props = (await client.get(f"/api/v1/pacing/plans/{auto['plan_id']}/proposals?status=all",
                                  headers=auth(pacing.viewer))).json()["proposals"]
        assert [p["status"] for p in props] == ["needs_budget"]
        assert "no known daily budget" in props[0]["status_reason"]
        assert await read_topic(pacing.bootstrap, "allocation.requested", timeout=3,
                                predicate=_mine("source_id", auto["plan_id"])) == []


async def test_validation_names_the_field_and_roles_and_workspaces_are_enforced(pacing: Any) -> None:
    async with pacing.service() as (client, _ctx):
        op, viewer, stranger = auth(pacing.operator), auth(pacing.viewer), auth(pacing.stranger)

        async def field_of(**overrides: Any) -> list[str]:
            res = await client.post("/api/v1/pacing/plans", json=pacing.plan_body(**overrides), headers=op)
            assert res.status_code == 422, res.text
            return [e["field"] for e in res.json()["errors"]]

        assert await field_of(flight_end=pacing.FLIGHT_START.isoformat()) == ["flight_end"]
        assert await field_of(total_budget_cents=9_000_000) == ["channels"]
        assert await field_of(total_budget_cents=-1) == ["total_budget_cents"]
        bad_channel = pacing.plan_body()["channels"]
        bad_channel[0]["allocated_budget_cents"] = -5
        assert await field_of(channels=bad_channel) == ["channels.0.allocated_budget_cents"]
        assert await field_of(curve={"kind": "zigzag"}) == ["curve.kind"]
        assert await field_of(curve={"kind": "day_of_week", "weekday_weights": [1, 1]}) == ["curve.weekday_weights"]
        assert await field_of(thresholds={"underpacing_warning_pct": 30, "underpacing_critical_pct": 20}) == [
            "thresholds.underpacing_critical_pct"]
        assert await field_of(deals=[{"deal_id": "d", "allocated_budget_cents": 20_000_000}]) == ["deals"]
        assert await field_of(currency="usd") == ["currency"]

        assert (await client.post("/api/v1/pacing/plans", json=pacing.plan_body())).status_code == 401
        assert (await client.post("/api/v1/pacing/plans", json=pacing.plan_body(), headers=viewer)).status_code == 403

        plan = await pacing.create_plan(client, curve={"kind": "front_loaded", "exponent": 1.5},
                                        thresholds={"overpacing_warning_pct": 5, "min_reallocation_amount_cents": 1})
        pid = plan["plan_id"]
        assert plan["curve"]["kind"] == "front_loaded" and plan["thresholds"]["overpacing_warning_pct"] == 5
        for path in ("", "/snapshots", "/snapshots/latest", "/proposals", "/transitions"):
            assert (await client.get(f"/api/v1/pacing/plans/{pid}{path}", headers=stranger)).status_code == 404
        assert (await client.post(f"/api/v1/pacing/plans/{pid}/snapshots", headers=stranger)).status_code == 404
        assert (await client.patch(f"/api/v1/pacing/plans/{pid}", json={"name": "x"},
                                   headers=stranger)).status_code == 404
        assert (await client.get("/api/v1/pacing/plans", headers=stranger)).json()["plans"] == []
        assert (await client.get(f"/api/v1/pacing/plans/{pid}/snapshots/latest", headers=viewer)).status_code == 404

        res = await client.patch(f"/api/v1/pacing/plans/{pid}", json={"currency": "EUR"}, headers=op)
        assert res.status_code == 422 and res.json()["errors"][0]["field"] == "currency"
        res = await client.patch(f"/api/v1/pacing/plans/{pid}", json={"total_budget_cents": 1}, headers=op)
        assert res.status_code == 422 and res.json()["errors"][0]["field"] == "channels"
        res = await client.patch(f"/api/v1/pacing/plans/{pid}", json={"approval_config": {"PACING_ADJUSTMENT": True},
                                                                     "escalate_after_s": 600}, headers=op)
        assert res.status_code == 200, res.text
        assert res.json()["approval_config"] == {"PACING_ADJUSTMENT": True} and res.json()["escalate_after_s"] == 600

        res = await client.get(f"/api/v1/pacing/plans/{pid}/snapshots", headers=viewer,
                               params={"start_time": pacing.FLIGHT_END.isoformat(),
                                       "end_time": pacing.FLIGHT_START.isoformat()})
        assert res.status_code == 422 and res.json()["field"] == "end_time"
        res = await client.get(f"/api/v1/pacing/plans/{pid}/snapshots", headers=viewer,
                               params={"start_time": "2026-08-01T00:00:00"})
        assert res.status_code == 422 and res.json()["errors"][0]["field"] == "start_time"


async def test_a_proposal_the_guardrails_block_ends_blocked_with_their_reason(pacing: Any) -> None:
    import uuid as _uuid

    from allot.contracts import new_envelope
    from allot.contracts.payloads import GuardrailBlocked
    from tests.support.kafka import eventually

    async with pacing.service() as (client, ctx):
        plan = await pacing.create_plan(client)
        pid = plan["plan_id"]
        metrics = [pacing.metric("c1", 0, 1_500_000, daily_budget_cents=1_000_000),
                   pacing.metric("d1", 0, 2_600_000, daily_budget_cents=400_000)]
        await publish(pacing.bootstrap, *metrics)
        await pacing.wait_projection(ctx, [m.event_id for m in metrics])
        (proposal_id,) = (await pacing.snapshot(client, pid))["proposal_ids"]
        (requested,) = await pacing.events("allocation.requested", pid, field="source_id")
        request_id = requested["payload"]["request_id"]
        blocked = GuardrailBlocked(decision_id=_uuid.uuid4(), request_id=_uuid.UUID(request_id), source="pacing",
                                   source_id=pid, check="daily_cap", reason="daily cap 100.00 EUR would be exceeded",
                                   details={"cap_eur_cents": 10_000})
        await publish(pacing.bootstrap, new_envelope(
            event_type="guardrail.blocked", schema_version=1, payload=blocked, producer="guardrails",
            workspace_id=requested["workspace_id"], occurred_at=ctx.clock.now()))

        async def ended() -> Any:
            r = await client.get(f"/api/v1/pacing/plans/{pid}/proposals?status=all", headers=auth(pacing.viewer))
            props = {p["proposal_id"]: p for p in r.json()["proposals"]}
            return props[proposal_id] if props[proposal_id]["status"] != "requested" else None

        proposal = await eventually(ended, what="the proposal to record the block")
        assert proposal["status"] == "blocked"
        assert proposal["status_reason"] == "daily_cap: daily cap 100.00 EUR would be exceeded"


async def test_planned_spend_covers_the_whole_flight_per_channel_as_snapshots_compute_it(pacing: Any) -> None:
    async with pacing.service() as (client, _ctx):
        pid = (await pacing.create_plan(client))["plan_id"]
        res = await client.get(f"/api/v1/pacing/plans/{pid}/planned", params={"points": 10},
                               headers=auth(pacing.viewer))
        assert res.status_code == 200, res.text
        body = res.json()
        assert (body["currency"], body["timezone_name"], len(body["points"])) == ("USD", "UTC", 11)
        first, half, last = body["points"][0], body["points"][5], body["points"][-1]
        assert datetime.fromisoformat(first["at"]) == pacing.FLIGHT_START
        assert datetime.fromisoformat(half["at"]) == pacing.NOW
        assert (first["expected_spend_cents"], half["expected_spend_cents"], last["expected_spend_cents"]) == (
            0, 5_000_000, 10_000_000)
        snap = await pacing.snapshot(client, pid)  # taken at NOW, half way through the flight
        assert snap["expected_spend_cents"] == half["expected_spend_cents"]
        assert {c["channel"]: c["expected_spend_cents"] for c in snap["channels"]} == {
            c["channel"]: c["expected_spend_cents"] for c in half["channels"]} == {"CTV": 3_000_000,
                                                                                   "DISPLAY": 2_000_000}
        assert (await client.get(f"/api/v1/pacing/plans/{pid}/planned",
                                 headers=auth(pacing.stranger))).status_code == 404
        assert (await client.get(f"/api/v1/pacing/plans/{pid}/planned", params={"points": 0},
                                 headers=auth(pacing.viewer))).status_code == 422
