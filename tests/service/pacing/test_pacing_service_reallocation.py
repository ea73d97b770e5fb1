"""Pacing reallocation end to end on the real broker and Postgres (#16): stable proposals, approving a proposal
a newer snapshot replaced, and an approved proposal's change set staying inside the guardrails' limits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from allot.contracts.currencies import min_budget_minor
from allot.contracts.payloads import AllocationRequested
from allot.guardrails.domain.checks import check_budget_minimums, check_max_change
from allot.guardrails.domain.settings import WorkspaceLimits
from tests.support.kafka import eventually, publish
from tests.support.service import auth


async def _open(client: Any, pacing: Any, pid: str) -> list[tuple[str, int]]:
    res = await client.get(f"/api/v1/pacing/plans/{pid}/proposals", headers=auth(pacing.viewer))
    return [(p["proposal_id"], p["amount_cents"]) for p in res.json()["proposals"]]


async def test_proposals_are_stable_and_a_replaced_one_is_approved_or_explained(pacing: Any) -> None:
    async with pacing.service() as (client, ctx):
        pid = (await pacing.create_plan(client, approval_config={"PACING_ADJUSTMENT": True}))["plan_id"]
        first = [pacing.metric("c1", 0, 1_500_000, daily_budget_cents=1_000_000),
                 pacing.metric("d1", 0, 2_600_000, daily_budget_cents=400_000)]
        await publish(pacing.bootstrap, *first)
        await pacing.wait_projection(ctx, [m.event_id for m in first])
        (x,) = (await pacing.snapshot(client, pid))["proposal_ids"]
        assert await _open(client, pacing, pid) == [(x, 600_000)]

        # Same situation a minute later: the open proposal stays, the snapshot points at it.
        ctx.clock.advance(60)
        assert (await pacing.snapshot(client, pid))["proposal_ids"] == [x]
        assert await _open(client, pacing, pid) == [(x, 600_000)]

        # DISPLAY spends 500,000 more: 1,100,000 ahead is a material change, x is replaced by y.
        more = pacing.metric("d1", 1, 500_000, daily_budget_cents=400_000)
        await publish(pacing.bootstrap, more)
        await pacing.wait_projection(ctx, [more.event_id])
        ctx.clock.advance(60)
        (y,) = (await pacing.snapshot(client, pid))["proposal_ids"]
        ((open_y, amount_y),) = await _open(client, pacing, pid)
        assert y != x and open_y == y and abs(amount_y - 1_100_000) < 1_000  # expected spend grew for 2 minutes

        # Approving x now: y moves 83 % more, so 409 with y in the body, and nothing is requested.
        res = await client.post(f"/api/v1/pacing/plans/{pid}/proposals/{x}/approve", headers=auth(pacing.operator))
        body = res.json()
        assert res.status_code == 409 and body["error"] == "proposal_superseded", body
        assert body["current"]["proposal_id"] == y and body["current"]["amount_cents"] == amount_y
        assert f"{amount_y} USD cents instead of 600000" in body["message"]
        assert await _open(client, pacing, pid) == [(y, amount_y)]

        # The day is re-reported lower: 640,000 ahead replaces y by z, within 10 % of x's 600,000.
        fixed = pacing.metric("d1", 1, 40_000, daily_budget_cents=400_000,
                              reported_at=pacing.FLIGHT_START + timedelta(days=3))
        await publish(pacing.bootstrap, fixed)
        await pacing.wait_projection(ctx, [fixed.event_id])
        ctx.clock.advance(60)
        (z,) = (await pacing.snapshot(client, pid))["proposal_ids"]
        ((open_z, amount_z),) = await _open(client, pacing, pid)
        assert z not in (x, y) and open_z == z and abs(amount_z - 640_000) < 1_000

        # Approving y (1,100,000) is explained; approving x applies z, the current one.
        res = await client.post(f"/api/v1/pacing/plans/{pid}/proposals/{y}/approve", headers=auth(pacing.operator))
        assert res.status_code == 409 and res.json()["current"]["proposal_id"] == z
        res = await client.post(f"/api/v1/pacing/plans/{pid}/proposals/{x}/approve", headers=auth(pacing.operator))
        assert res.status_code == 200, res.text
        out = res.json()
        assert (out["proposal_id"], out["approved_for"], out["status"]) == (z, x, "requested")
        assert await _open(client, pacing, pid) == []
        requested = await pacing.events("allocation.requested", pid, field="source_id")
        assert [r["payload"]["idempotency_key"] for r in requested] == [z]


async def test_an_approved_proposal_requests_changes_the_guardrails_allow(pacing: Any) -> None:
    """The issue's case: daily budgets of 3000 cents. Before, approval asked for 3000 -> 0 and +3000."""
    async with pacing.service() as (client, ctx):
        pid = (await pacing.create_plan(client, approval_config={"PACING_ADJUSTMENT": True}))["plan_id"]
        metrics = [pacing.metric("c1", 0, 1_500_000, daily_budget_cents=3000),
                   pacing.metric("d1", 0, 2_600_000, daily_budget_cents=3000)]
        await publish(pacing.bootstrap, *metrics)
        await pacing.wait_projection(ctx, [m.event_id for m in metrics])

        # The flight goes off pace: CTV 1,500,000 behind, DISPLAY 600,000 ahead -> a proposal waits.
        snap = await pacing.snapshot(client, pid)
        assert snap["alert"] is not None or snap["deviation_pct"] != 0
        (proposal_id,) = snap["proposal_ids"]
        latest = (await client.get(f"/api/v1/pacing/plans/{pid}/snapshots/latest", headers=auth(pacing.viewer))).json()
        ctv = next(c for c in latest["channels"] if c["channel"] == "CTV")
        # 15,000.00 over 1,000 impressions; no bid data reaches pacing, so the rates are unknown (null).
        assert (ctv["effective_cpm"], ctv["fill_rate"], ctv["unplanned_spend_cents"]) == (15_000.0, None, 0)
        (deal,) = latest["deals"]
        assert (deal["effective_cpm"], deal["fill_rate"], deal["win_rate"]) == (15_000.0, None, None)
        res = await client.post(f"/api/v1/pacing/plans/{pid}/proposals/{proposal_id}/approve",
                                headers=auth(pacing.operator))
        assert res.status_code == 200 and res.json()["status"] == "requested", res.text
        assert "step(s)" in res.json()["status_reason"]

        (event,) = await pacing.events("allocation.requested", pid, field="source_id")
        request = AllocationRequested.model_validate(event["payload"])
        changes = {(a.entity_id.removeprefix(f"{pacing.unique}-"), a.from_cents, a.to_cents) for a in request.actions}
        # 600,000 over 5 remaining days wants 120,000 a day; the first step is 20 % of 3000.
        assert changes == {("d1", 3000, 3600), ("c1", 3000, 2400)}
        minimum = min_budget_minor("sandbox", "campaign", "USD")
        for a in request.actions:
            assert a.to_cents is not None and a.from_cents is not None
            assert a.to_cents >= minimum
            assert abs(a.to_cents - a.from_cents) * 100 <= 20 * a.from_cents
        assert check_budget_minimums(request) is None
        assert check_max_change(request, WorkspaceLimits()) is None

        # The executor applies step 1. A new proposal approved within the 72 h net-change window waits (the
        # guardrails would drop it) and says from when; after the window the next step starts from 3600 / 2400.
        await publish(pacing.bootstrap, *(pacing.executed(a, pid, str(request.request_id))
                                          for a in event["payload"]["actions"]))

        async def applied() -> Any:
            res = await client.get(f"/api/v1/pacing/plans/{pid}/proposals?status=applied",
                                   headers=auth(pacing.viewer))
            return res.json()["proposals"]

        await eventually(applied, what="step 1 applied")
        ctx.clock.advance(3600)
        (second,) = (await pacing.snapshot(client, pid))["proposal_ids"]
        res = await client.post(f"/api/v1/pacing/plans/{pid}/proposals/{second}/approve",
                                headers=auth(pacing.operator))
        assert res.status_code == 200 and res.json()["status"] == "needs_budget", res.text
        assert "72 h net-change window" in res.json()["status_reason"]
        assert "possible from 2026-08-09T00:00:00+00:00" in res.json()["status_reason"]
        assert len(await pacing.events("allocation.requested", pid, field="source_id")) == 1

        # Three days on, DISPLAY has kept overspending (the platform reports its new budget of 3600).
        later = [pacing.metric("d1", day, 1_500_000, daily_budget_cents=3600) for day in (5, 6)]
        await publish(pacing.bootstrap, *later)
        await pacing.wait_projection(ctx, [m.event_id for m in later])
        ctx.clock.advance(72 * 3600)
        (third,) = (await pacing.snapshot(client, pid))["proposal_ids"]
        res = await client.post(f"/api/v1/pacing/plans/{pid}/proposals/{third}/approve",
                                headers=auth(pacing.operator))
        assert res.status_code == 200 and res.json()["status"] == "requested", res.text
        assert {(a["role"], a["from_cents"], a["to_cents"]) for a in res.json()["actions"]} == {
            ("target", 3600, 4080), ("source", 2400, 1920)}  # 20 % of the source's 2400
