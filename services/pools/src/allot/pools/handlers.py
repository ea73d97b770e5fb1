"""Thin consumers: the member metric projection, and outcomes of this service's own change sets.

- metrics.ingested: every report carries the FULL counters of its interval as of ``reported_at``; the
  latest report per (entity, interval_start) is kept, and the entity's current budget/status/account come
  from its latest report (one order for all services: ``allot.contracts.projection``). All entities are stored (the
  projection is small and a member may be added after its metrics arrived).
- guardrail.blocked (source == "pool"): the guardrail decision goes into the allocation's log
  (status blocked, or guardrail_observed for an observe-only decision).
- action.executed: source == "pool" → each action's outcome is stored against its allocation and the
  allocation's status rolled up (executing → executed / partially_failed / failed; ``expired`` — the approval
  ran out before the executor got it — counts as not applied, and the next slot plans from the unchanged
  budgets; ``pending`` is a duplicate's interim report and ignored). Any source's
  successful set_budget also updates the entity's current budget (unless a later report says otherwise),
  so the next plan's from_cents is what the platform now has.
- pacing.reallocation_recommended: a flight plan's channel-level proposal. Pools do not act on it (a
  channel is not a pool member and the pool's own engine decides its members' budgets); it is logged as
  a note against every pool whose active members include the plan's campaign (shown with the pool's
  allocation log), and otherwise ignored with a logged reason.
"""

from __future__ import annotations

from typing import Any

from allot.contracts.envelope import Envelope
from allot.contracts.payloads import (
    FINAL_OUTCOMES,
    ActionExecuted,
    GuardrailBlocked,
    MetricsIngested,
    PacingReallocationRecommended,
)
from allot.contracts.projection import latest_entities, latest_intervals
from allot.pools.adapters import postgres as db
from allot.pools.domain.changeset import allocation_status
from allot.pools.metrics import ALLOCATIONS, PACING_RECOMMENDATIONS
from allot.runtime.consumer import BatchContext
from allot.runtime.logging import get_logger

log = get_logger(__name__)


async def on_metrics_ingested(ctx: BatchContext, events: list[Envelope[MetricsIngested]]) -> None:
    intervals = [
        (r.workspace_id, m.entity_id, m.interval_start, m.interval_end, m.reported_at, r.event_id, m.spend_cents,
         m.revenue_cents, m.conversions, m.impressions, m.clicks, m.reach)
        for r in latest_intervals(events) for m in (r.metrics,)
    ]
    entities = [
        (e.report.workspace_id, m.entity_id, m.platform, m.ad_account_id, m.entity_type, m.entity_name, m.status,
         e.known_budget_cents, m.currency, m.reported_at, m.interval_start, e.report.event_id)
        for e in latest_entities(events) for m in (e.report.metrics,)
    ]
    await db.upsert_metrics(ctx.conn, intervals)
    await db.upsert_entities(ctx.conn, entities)


async def on_guardrail_blocked(ctx: BatchContext, events: list[Envelope[GuardrailBlocked]]) -> None:
    rows = []
    for event in events:
        p: GuardrailBlocked = event.payload
        if p.source != "pool":
            continue
        status = "guardrail_observed" if p.observe_only else "blocked"
        decision = {
            "decisionId": str(p.decision_id),
            "check": p.check,
            "reason": p.reason,
            "details": p.details,
            "observeOnly": p.observe_only,
            "retryAfterS": p.retry_after_s,
            "at": event.occurred_at.isoformat(),
            "eventId": str(event.event_id),
        }
        rows.append((p.request_id, event.workspace_id, status, decision))
    changed = await db.record_blocked(ctx.conn, rows)
    for r in changed:
        ALLOCATIONS.labels(r.status).inc()
        log.info("pool_allocation_blocked", allocation_id=str(r.allocation_id), status=r.status)


async def on_action_executed(ctx: BatchContext, events: list[Envelope[ActionExecuted]]) -> None:
    budgets: dict[tuple[str, str], tuple[str, str, int, Any]] = {}
    outcomes: dict[Any, tuple[Any, ...]] = {}
    changes: list[tuple[Any, str, str, int, int, Any]] = []
    for event in events:
        p: ActionExecuted = event.payload
        ws = event.workspace_id
        if p.outcome not in FINAL_OUTCOMES:
            continue  # pending: a duplicate approval while the original is applied; the real outcome follows
        if (
            p.action_type == "set_budget"
            and p.outcome in ("succeeded", "already_applied")
            and p.after_cents is not None
        ):
            if p.outcome == "succeeded" and p.before_cents is not None and p.before_cents != p.after_cents:
                changes.append((p.action_id, ws, p.entity_id, p.before_cents, p.after_cents, p.executed_at))
            held = budgets.get((ws, p.entity_id))
            if held is None or p.executed_at > held[3]:
                budgets[(ws, p.entity_id)] = (ws, p.entity_id, p.after_cents, p.executed_at)
        if p.source != "pool":
            continue
        row = (
            p.action_id,
            p.request_id,
            ws,
            p.entity_id,
            p.outcome,
            p.before_cents,
            p.after_cents,
            p.observed_cents,
            p.error,
            p.executed_at,
        )
        held_o = outcomes.get(p.action_id)
        # a duplicate approval is reported as already_applied: never let it replace the real outcome
        if held_o is None or (held_o[4] == "already_applied" and p.outcome != "already_applied"):
            outcomes[p.action_id] = row
    await db.apply_executed_budgets(ctx.conn, list(budgets.values()))
    await db.record_budget_changes(ctx.conn, changes)
    touched = await db.record_outcomes(ctx.conn, list(outcomes.values()))
    for r in await db.outcome_counts(ctx.conn, touched):
        status = allocation_status(r.action_count, r.outcomes)
        if status != r.status:
            await db.set_status(ctx.conn, r.allocation_id, status)
            if status != "executing":
                ALLOCATIONS.labels(status).inc()
            log.info(
                "pool_allocation_outcome",
                allocation_id=str(r.allocation_id),
                status=status,
                outcomes=len(r.outcomes),
                actions=r.action_count,
            )


async def on_pacing_reallocation_recommended(
    ctx: BatchContext, events: list[Envelope[PacingReallocationRecommended]]
) -> None:
    for event in events:
        p: PacingReallocationRecommended = event.payload
        ws = event.workspace_id
        pools = await db.pools_with_member(ctx.conn, ws, [p.campaign_id])
        if not pools:
            PACING_RECOMMENDATIONS.labels("ignored").inc()
            log.info(
                "pool_pacing_recommendation_ignored",
                workspace_id=ws,
                plan_id=p.plan_id,
                campaign_id=p.campaign_id,
                reason="the plan's campaign is not an active member of any pool",
            )
            continue
        body = {
            "planId": p.plan_id,
            "campaignId": p.campaign_id,
            "proposalId": str(p.proposal_id),
            "sourceChannel": p.source_channel,
            "targetChannel": p.target_channel,
            "amountCents": p.amount_cents,
            "currency": p.currency,
            "reason": p.reason,
            "requiresApproval": p.requires_approval,
            "note": "logged only: the pool's engine decides its members' budgets; channel moves are pacing's",
        }
        for r in pools:
            await db.insert_note(
                ctx.conn, event.event_id, r.pool_id, ws, "pacing_reallocation_recommended", event.occurred_at, body
            )
        PACING_RECOMMENDATIONS.labels("logged").inc()
