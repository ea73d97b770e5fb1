"""Notifications derived from facts already on the bus, for sources that do not publish notification.requested
themselves yet: a guardrail block, a critical pacing deviation, an executor conflict or failure. Pure: same event,
same notification (its id is derived from the event's id, so a replay is the same notification)."""

from __future__ import annotations

import uuid
from typing import Any

from allot.contracts.envelope import Envelope
from allot.contracts.payloads import (
    ActionExecuted,
    GuardrailBlocked,
    NotificationRequested,
    NotifiedEntity,
    PacingDeviationDetected,
)

#: How each change-set source appears as an entity, and where its console page is.
_SOURCE_ENTITY = {"pool": ("pool", "/budget-pools/{}"), "rule": ("rule", "/rules/{}"),
                  "pacing": ("plan", "/pacing/plans/{}")}
#: Blocks that retry on their own soon: telling people about each would be noise.
QUIET_CHECKS = frozenset({"rate_limited"})


def _id(event: Envelope[Any]) -> uuid.UUID:
    return uuid.uuid5(event.event_id, "notification")


def _facts(values: dict[str, Any]) -> dict[str, int | float | str | None]:
    kept = {k: v for k, v in values.items() if v is None or isinstance(v, int | float | str)}
    return dict(list(kept.items())[:50])


def from_guardrail_blocked(event: Envelope[GuardrailBlocked]) -> NotificationRequested | None:
    """A refused change set, with the check and its numbers (observe-only decisions are info)."""
    p = event.payload
    if p.check in QUIET_CHECKS:
        return None
    entity = _SOURCE_ENTITY.get(p.source)
    entities = [] if entity is None else [NotifiedEntity(entity_type=entity[0], entity_id=p.source_id[:128],  # type: ignore[arg-type]
                                                         detail=p.reason[:300])]
    facts = _facts(p.details)
    currency = "EUR" if any(k.endswith("eur_cents") for k in facts) else None
    verb = "logged (observe mode)" if p.observe_only else "blocked"
    return NotificationRequested(
        notification_id=_id(event), workspace_id=event.workspace_id, kind="guardrail_blocked",
        severity="info" if p.observe_only else "warning",
        title=f"Guardrails {verb} a {p.source} change: {p.check}"[:200], summary=p.reason[:2000],
        condition=f"{p.check}: {p.reason}"[:500], facts=facts, currency=currency, entities=entities,
        source="guardrails", source_id=p.source_id[:128],
        dedupe_key=f"guardrail_blocked/{p.source}/{p.source_id}/{p.check}"[:200],
        console_path=None if entity is None else entity[1].format(p.source_id)[:300], occurred_at=event.occurred_at)


def from_pacing_deviation(event: Envelope[PacingDeviationDetected]) -> NotificationRequested | None:
    """A flight plan past its critical threshold (warnings stay on the dashboard)."""
    p = event.payload
    if p.alert_level != "critical":
        return None
    return NotificationRequested(
        notification_id=_id(event), workspace_id=event.workspace_id, kind="pacing_critical", severity="critical",
        title=f"Pacing plan {p.plan_id} is {p.direction} by {p.deviation_pct:+.1f}%"[:200], summary=p.message[:2000],
        condition=f"deviation {p.deviation_pct:+.2f}% beyond the critical threshold {p.threshold_pct:+.2f}%",
        facts={"deviation_pct": p.deviation_pct, "threshold_pct": p.threshold_pct, "campaign_id": p.campaign_id,
               "state_before": p.state_before, "state_after": p.state_after},
        entities=[NotifiedEntity(entity_type="plan", entity_id=p.plan_id[:128], detail=p.message[:300])],
        source="pacing", source_id=p.plan_id[:128], dedupe_key=f"pacing_critical/{p.plan_id}/{p.direction}",
        console_path=f"/pacing/plans/{p.plan_id}"[:300], occurred_at=event.occurred_at)


def from_action_executed(event: Envelope[ActionExecuted]) -> NotificationRequested | None:
    """A budget changed outside Allot (conflict) or a platform write that failed; other outcomes say nothing."""
    p = event.payload
    if p.outcome not in ("conflict", "failed"):
        return None
    amount = p.observed_cents if p.outcome == "conflict" else p.after_cents
    entity = NotifiedEntity(entity_type=p.entity_type, entity_id=p.entity_id[:128], amount_cents=amount,
                            currency=p.currency if amount is not None else None, detail=(p.error or "")[:300])
    if p.outcome == "conflict":
        title = f"The budget of {p.entity_type} {p.entity_id} was changed outside Allot"
        summary = ("Allot did not apply its change: the platform's budget differs from what Allot last saw (someone "
                   "changed it in the ad manager). The next plan starts from the platform's value.")
        kind, severity = "executor_conflict", "warning"
    else:
        title = f"A change to {p.entity_type} {p.entity_id} failed on the platform"
        summary = f"The platform refused or did not answer after {p.attempts} attempts: {p.error or 'no detail'}"
        kind, severity = "executor_failed", "critical"
    return NotificationRequested(
        notification_id=_id(event), workspace_id=event.workspace_id, kind=kind,  # type: ignore[arg-type]
        severity=severity,  # type: ignore[arg-type]
        title=title[:200], summary=summary[:2000], condition=f"{p.action_type}: {p.outcome}"[:500],
        facts=_facts({"before_cents": p.before_cents, "after_cents": p.after_cents,
                      "observed_cents": p.observed_cents, "attempts": p.attempts, "source": p.source,
                      "source_id": p.source_id}),
        currency=p.currency, entities=[entity], source="executor", source_id=p.source_id[:128],
        dedupe_key=f"{kind}/{p.entity_id}"[:200], occurred_at=event.occurred_at)
