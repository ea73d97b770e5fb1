"""Thin consumers: the metric projection, and outcomes of this service's own change sets.

- metrics.ingested: every report is the FULL counters of its interval as of ``reported_at``; keep the
  latest per (entity, interval_start), add each kept report's change to its daily bucket (the ad account's
  local day, from the account directory), refresh the entity from its latest report, and keep the
  platform's range reach of the latest report that carries one (greatest (reported_at, event_id): equal
  times are told apart by the event id, as every report order is). Set-based SQL;
  replaying any report changes nothing. Then trigger-mode rules of the reported accounts are evaluated for
  the reported entities in the same transaction (their change sets go to the outbox with the batch).
- account.profiled (allot.runtime.accounts): the account's time zone; when it changes (or is first known),
  the account's intervals are re-bucketed into its local days in the same transaction.
- guardrail.blocked / action.executed with ``source == "rule"`` (others are ignored): record the outcome
  on the rule's action (→ the execution's per-entity outcome, pending / failure backoff / circuit
  breaker facts) and auto-pause a rule whose circuit breaker trips.
- guardrail.approved with ``source == "rule"``: an action the guardrails left out of the approved set (pool
  ownership, arbitration) will never be executed: its outcome is ``blocked`` with the guardrails' note.
"""

from __future__ import annotations

import uuid
from typing import Any

from allot.contracts.envelope import Envelope
from allot.contracts.payloads import (
    FINAL_OUTCOMES,
    ActionExecuted,
    GuardrailApproved,
    GuardrailBlocked,
    MetricsIngested,
)
from allot.contracts.projection import Report, latest_entities, latest_intervals
from allot.rules import workflow
from allot.rules.adapters import postgres as db
from allot.rules.domain.projection import report_counters
from allot.rules.domain.timeranges import bucket_date
from allot.rules.metrics import RULE_OUTCOMES
from allot.runtime.accounts import ZoneChange, account_profiled_handler, directory_of
from allot.runtime.consumer import BatchContext
from allot.runtime.logging import get_logger

log = get_logger(__name__)


async def on_metrics_ingested(ctx: BatchContext, events: list[Envelope[MetricsIngested]]) -> None:
    zones = directory_of(ctx.extra)
    intervals = []
    for r in latest_intervals(events):
        m = r.metrics
        counters = report_counters(spend_cents=m.spend_cents, impressions=m.impressions, clicks=m.clicks,
                                   conversions=m.conversions, revenue_cents=m.revenue_cents, reach=m.reach,
                                   extra=m.extra)
        day = bucket_date(m.interval_start, zones.zone_for(r.workspace_id, m.platform, m.ad_account_id))
        intervals.append((r.workspace_id, m.entity_id, m.interval_start, m.interval_end, m.reported_at, r.event_id,
                          day, *counters))
    entities = [
        (e.report.workspace_id, m.entity_id, m.platform, m.ad_account_id, m.entity_type, m.entity_name, m.status,
         m.daily_budget_cents, m.currency, m.parent_id, m.reported_at, m.interval_start, e.report.event_id)
        for e in latest_entities(events) for m in (e.report.metrics,)
    ]
    await db.project_intervals(ctx.conn, intervals)
    await db.upsert_entities(ctx.conn, entities)
    await db.upsert_range_reach(ctx.conn, _latest_range_reach(events))
    # Trigger-mode rules: evaluated now for the entities just reported, in this transaction (exactly once).
    reported = [(e.report.workspace_id, e.report.metrics.ad_account_id, e.report.metrics.entity_id)
                for e in latest_entities(events)]

    async def emit(conn: object, *envelopes: Envelope[Any]) -> None:
        ctx.emit(*envelopes)

    for result in await workflow.run_triggers(ctx.conn, emit, reported, now=ctx.clock.now(), zones=zones.zone_for):
        workflow.observe(result)


def _latest_range_reach(events: list[Envelope[MetricsIngested]]) -> list[tuple[Any, ...]]:
    """Per (workspace, entity), the range reach of the latest report in the batch that carries one."""
    kept: dict[tuple[str, str], Report] = {}
    for r in map(Report.of, events):
        if r.metrics.range_reach is None:
            continue  # a report without it does not say the platform's range reach is gone
        key = (r.workspace_id, r.metrics.entity_id)
        held = kept.get(key)
        if held is None or r.order > held.order:
            kept[key] = r
    return [(ws, entity_id, rr.through, rr.yesterday, rr.last_3d, rr.last_7d, rr.last_14d, rr.last_30d,
             r.metrics.reported_at, r.event_id)
            for (ws, entity_id), r in kept.items() if (rr := r.metrics.range_reach) is not None]


def _rule_uuid(source_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(source_id)
    except ValueError:
        return None


async def on_action_executed(ctx: BatchContext, events: list[Envelope[ActionExecuted]]) -> None:
    rows: dict[uuid.UUID, tuple[Any, ...]] = {}
    for event in events:
        p: ActionExecuted = event.payload
        if p.source != "rule" or p.outcome not in FINAL_OUTCOMES:
            continue  # pending: a duplicate approval while the original is applied; the real outcome follows
        rule_id = _rule_uuid(p.source_id)
        if rule_id is None:
            log.warning("rule_outcome_bad_source_id", source_id=p.source_id, action_id=str(p.action_id))
            continue
        RULE_OUTCOMES.labels(workflow.SERVICE, p.outcome).inc()
        row = (p.action_id, rule_id, event.workspace_id, p.request_id, p.entity_id, p.platform, p.action_type,
               p.outcome, workflow.outcome_success(p.outcome), p.executed_at, p.error)
        held = rows.get(p.action_id)
        # a duplicate approval is reported as already_applied: never let it replace the real outcome
        if held is None or (held[7] == "already_applied" and p.outcome != "already_applied"):
            rows[p.action_id] = row
    if not rows:
        return
    rule_ids = await db.record_outcomes(ctx.conn, list(rows.values()))
    await workflow.trip_breakers(ctx.conn, rule_ids, ctx.clock.now())


async def on_guardrail_blocked(ctx: BatchContext, events: list[Envelope[GuardrailBlocked]]) -> None:
    rows = []
    for event in events:
        p: GuardrailBlocked = event.payload
        if p.source != "rule":
            continue
        outcome = "observed" if p.observe_only else "blocked"
        RULE_OUTCOMES.labels(workflow.SERVICE, outcome).inc()
        rows.append((p.request_id, event.workspace_id, outcome, event.occurred_at, f"{p.check}: {p.reason}"[:2000]))
    if rows:
        await db.record_blocked(ctx.conn, rows)


async def on_guardrail_approved(ctx: BatchContext, events: list[Envelope[GuardrailApproved]]) -> None:
    await workflow.record_left_out(ctx.conn, [(e.payload, e.workspace_id, e.occurred_at) for e in events
                                              if e.payload.source == "rule"])


async def _rebucket(conn: Any, changes: list[ZoneChange]) -> None:
    for ws, platform, account, previous, zone in changes:
        moved = await db.rebucket_account(conn, ws, platform, account, zone)
        log.info("rules_account_rebucketed", workspace_id=ws, platform=platform, ad_account_id=account,
                 previous=previous, timezone_name=zone, intervals=moved)


on_account_profiled = account_profiled_handler(_rebucket)
