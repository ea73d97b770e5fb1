"""Consumes guardrail.approved: verify, then record the actions in the ledger exactly once.
Consumes connection.changed: the per-workspace write tokens (``workflow.apply_connection_changes``).

- A forged, altered, unsigned or unknown-key approval goes to the DLQ (nothing is recorded, nobody is told:
  its source never asked for it).
- An authentic approval that expired before it arrived (the executor was down, the bus was slow) is an
  outcome: its actions are recorded as ``expired`` (never applied) and each is reported on action.executed
  with outcome ``expired`` and the reason, so its source plans again and the guardrails release what the
  approval had reserved.
- An action already in the ledger is never applied again: a duplicate is reported ``pending`` while the
  original is still being applied (its real outcome follows), ``expired`` when the original expired, and
  ``already_applied`` otherwise.
"""

from __future__ import annotations

from typing import Any

from allot.contracts.envelope import Envelope, derive_event_id, new_envelope
from allot.contracts.payloads import ActionExecuted, BudgetAction, ConnectionChanged, GuardrailApproved
from allot.contracts.registry import TOPICS
from allot.contracts.signing import ApprovalExpired, ApprovalRejected, verify_approval
from allot.executor import workflow
from allot.executor.adapters import postgres as db
from allot.executor.domain.notices import executed_notifications
from allot.executor.metrics import REJECTED_APPROVALS
from allot.runtime.consumer import BatchContext, PoisonEvent
from allot.runtime.deps import maybe, need, settings_of
from allot.runtime.logging import get_logger
from allot.runtime.sealing import Keyring
from allot.runtime.settings import Settings

log = get_logger(__name__)

#: ledger status of the original action → what a duplicate of it reports
_DUPLICATE_OUTCOME = {"pending": "pending", "expired": "expired"}


def duplicate_outcome(status: str) -> str:
    """What a duplicate approval reports for an action the ledger already holds with ``status``."""
    return _DUPLICATE_OUTCOME.get(status, "already_applied")


def _executed(event: Envelope[Any], approval: GuardrailApproved, action: BudgetAction, *, outcome: str,
              error: str, event_id: Any, now: Any, before: int | None = None,
              after: int | None = None) -> Envelope[Any]:
    return new_envelope(
        event_type="action.executed", schema_version=TOPICS["action.executed"].schema_version,
        payload=ActionExecuted(
            action_id=action.action_id, request_id=approval.request_id, decision_id=approval.decision_id,
            source=approval.source, source_id=approval.source_id, platform=action.platform,
            ad_account_id=action.ad_account_id, entity_type=action.entity_type, entity_id=action.entity_id,
            action_type=action.action_type, outcome=outcome, currency=action.currency,  # type: ignore[arg-type]
            before_cents=before, after_cents=after, attempts=0, executed_at=now, error=error),
        producer="executor", workspace_id=event.workspace_id, occurred_at=now, event_id=event_id,
        correlation_id=event.correlation_id, causation_id=event.event_id,
    )


def _with_notifications(executed: Envelope[Any]) -> list[Envelope[Any]]:
    # The outcomes reported here (expired, pending, already_applied) notify nobody today; routed through the
    # same rule as the worker's so an outcome that does is never published without its notification.
    return [executed, *executed_notifications(executed)]


async def on_guardrail_approved(ctx: BatchContext, events: list[Envelope[GuardrailApproved]]) -> None:
    keys = settings_of(ctx, Settings).approval_keys().verification_keys()
    now = ctx.clock.now()
    for event in events:
        approval: GuardrailApproved = event.payload
        expired: str | None = None
        try:
            verify_approval(approval, event.workspace_id, keys, now=now)
        except ApprovalExpired as exc:
            expired = str(exc)
            REJECTED_APPROVALS.labels("expired").inc()
            log.warning("approval_expired", request_id=str(approval.request_id), reason=expired)
        except ApprovalRejected as exc:
            REJECTED_APPROVALS.labels("signature").inc()
            log.warning("approval_rejected", request_id=str(approval.request_id), reason=str(exc))
            raise PoisonEvent(event.event_id, f"approval rejected: {exc}") from None
        duplicates = await db.record_approval(ctx.conn, approval, workspace_id=event.workspace_id,
                                                  correlation_id=event.correlation_id, event_id=event.event_id, now=now)
        if expired is None and (recorded := maybe(ctx, workflow.ActionsRecorded)) is not None:
            ctx.after_commit(recorded.set)  # the worker applies them now rather than at its next poll
        if expired is not None:
            fresh = [a.action_id for a in approval.actions if a.action_id not in duplicates]
            reason = f"not applied: {expired}"
            await db.expire(ctx.conn, fresh, now=now, reason=reason)
            for action in approval.actions:
                if action.action_id in fresh:
                    ctx.emit(*_with_notifications(_executed(
                        event, approval, action, outcome="expired", error=reason, now=now,
                        event_id=derive_event_id(action.action_id, "executed"))))
        for action in approval.actions:
            if action.action_id not in duplicates:
                continue
            row = await db.get_action(ctx.conn, action.action_id)
            assert row is not None
            outcome = duplicate_outcome(row["status"])
            note = ("the original action is still being applied; its outcome follows" if outcome == "pending"
                    else f"action already in the ledger (status {row['status']}); not sent again")
            ctx.emit(*_with_notifications(_executed(
                event, approval, action, outcome=outcome, error=note, now=now, before=row["before_cents"],
                after=row["after_cents"], event_id=derive_event_id(event.event_id, f"duplicate/{action.action_id}"))))
            log.info("duplicate_approval_action", action_id=str(action.action_id), status=row["status"],
                     outcome=outcome)


async def on_connection_changed(ctx: BatchContext, events: list[Envelope[ConnectionChanged]]) -> None:
    """Keep the latest state per connection (older changes arriving late are ignored)."""
    await workflow.apply_connection_changes(ctx.conn, events, keyring=need(ctx, Keyring))
