"""Consumes guardrail.approved only: verify, then record the actions in the ledger exactly once."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter

from allot.contracts.envelope import Envelope, derive_event_id, new_envelope
from allot.contracts.payloads import ActionExecuted, GuardrailApproved
from allot.contracts.registry import TOPICS
from allot.contracts.signing import ApprovalRejected, verify_approval
from allot.executor import ledger
from allot.runtime.consumer import BatchContext, PoisonEvent
from allot.runtime.logging import get_logger

log = get_logger(__name__)
REJECTED_APPROVALS = Counter("allot_executor_rejected_approvals_total", "Approvals refused before execution", ["why"])


async def on_guardrail_approved(ctx: BatchContext, events: list[Envelope[Any]]) -> None:
    secret = ctx.extra["settings"].approval_secret.get_secret_value().encode()
    now = ctx.clock.now()
    for event in events:
        approval: GuardrailApproved = event.payload
        try:
            verify_approval(approval, event.workspace_id, secret, now=now)
        except ApprovalRejected as exc:
            why = "expired" if "expired" in str(exc) else "signature"
            REJECTED_APPROVALS.labels(why).inc()
            log.warning("approval_rejected", request_id=str(approval.request_id), reason=str(exc))
            raise PoisonEvent(event.event_id, f"approval rejected: {exc}") from None
        duplicates = await ledger.record_approval(ctx.conn, approval, workspace_id=event.workspace_id,
                                                  correlation_id=event.correlation_id, event_id=event.event_id, now=now)
        for action in approval.actions:
            if action.action_id not in duplicates:
                continue
            row = await ledger.get_action(ctx.conn, action.action_id)
            assert row is not None
            ctx.emit(new_envelope(
                event_type="action.executed", schema_version=TOPICS["action.executed"].schema_version,
                payload=ActionExecuted(
                    action_id=action.action_id, request_id=approval.request_id, decision_id=approval.decision_id,
                    source=approval.source, source_id=approval.source_id, platform=action.platform,
                    ad_account_id=action.ad_account_id, entity_type=action.entity_type, entity_id=action.entity_id,
                    action_type=action.action_type, outcome="already_applied", currency=action.currency,
                    before_cents=row["before_cents"], after_cents=row["after_cents"], attempts=0, executed_at=now,
                    error=f"action already in the ledger (status {row['status']}); not sent again"),
                producer="executor", workspace_id=event.workspace_id, occurred_at=now,
                event_id=derive_event_id(event.event_id, f"duplicate/{action.action_id}"),
                correlation_id=event.correlation_id, causation_id=event.event_id,
            ))
            log.info("duplicate_approval_action", action_id=str(action.action_id), status=row["status"])
