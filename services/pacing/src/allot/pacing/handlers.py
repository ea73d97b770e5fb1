"""Thin consumers of the pacing service (batches of up to 500 events, set-based SQL)."""

from __future__ import annotations

from allot.contracts.envelope import Envelope
from allot.contracts.payloads import FINAL_OUTCOMES, ActionExecuted, GuardrailBlocked, MetricsIngested
from allot.contracts.projection import latest_intervals, platform_interval_key
from allot.pacing import workflow
from allot.pacing.adapters import postgres as db
from allot.pacing.metrics import PROPOSALS
from allot.runtime.consumer import BatchContext
from allot.runtime.logging import get_logger

log = get_logger(__name__)


async def on_metrics_ingested(ctx: BatchContext, events: list[Envelope[MetricsIngested]]) -> None:
    """Keep the latest report per (entity, interval) in the projection's order (``allot.contracts.projection``):
    reports carry full counters, so replays change nothing and the result does not depend on delivery order."""
    rows = [
        (r.workspace_id, m.platform, m.entity_id, m.interval_start, m.interval_end, m.reported_at, r.event_id,
         m.ad_account_id, m.entity_type, m.currency, m.spend_cents, m.impressions, m.daily_budget_cents)
        for r in latest_intervals(events, platform_interval_key) for m in (r.metrics,)
    ]
    await db.upsert_metric_reports(ctx.conn, rows)


async def on_action_executed(ctx: BatchContext, events: list[Envelope[ActionExecuted]]) -> None:
    """Record outcomes of actions this service requested (source 'pacing'); complete their proposals.

    ``pending`` (a duplicate approval while the original is being applied) is not an outcome: the real one follows.
    """
    rows = [(e.payload.action_id, e.workspace_id, e.payload.outcome, e.payload.error, e.payload.executed_at)
            for e in events if e.payload.source == "pacing" and e.payload.outcome in FINAL_OUTCOMES]
    if not rows:
        return
    done = await workflow.apply_action_outcomes(ctx.conn, rows, ctx.clock.now())
    for proposal_id, status in done:
        PROPOSALS.labels("pacing", status).inc()
        log.info("pacing_proposal_completed", proposal_id=proposal_id, status=status)


async def on_guardrail_blocked(ctx: BatchContext, events: list[Envelope[GuardrailBlocked]]) -> None:
    """A change set of ours the guardrails refused: its proposal ends 'blocked' with the guardrail's reason."""
    rows = [(e.payload.request_id, e.workspace_id, f"{e.payload.check}: {e.payload.reason}",
             "observed" if e.payload.observe_only else "blocked")
            for e in events if e.payload.source == "pacing"]
    if not rows:
        return
    for p in await db.block_proposals(ctx.conn, rows, ctx.clock.now()):
        PROPOSALS.labels("pacing", p.status).inc()
        log.info("pacing_proposal_blocked", proposal_id=str(p.proposal_id), status=p.status)
