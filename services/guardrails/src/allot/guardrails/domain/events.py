"""Payloads the service publishes for a decision: a signed approval or a block, and the HTTP status."""

from __future__ import annotations

from allot.contracts.payloads import AllocationRequested, GuardrailApproved, GuardrailBlocked
from allot.contracts.signing import sign_approval
from allot.guardrails.domain.decision import Decision


def _require_same_request(decision: Decision, request: AllocationRequested) -> None:
    mine = (decision.source, decision.source_id, decision.idempotency_key)
    theirs = (request.source, request.source_id, request.idempotency_key)
    if mine != theirs:
        raise ValueError(f"decision {decision.decision_id} is for {mine}, not for {theirs}")


def signed_approval(
    decision: Decision, request: AllocationRequested, workspace_id: str, secret: bytes, *, key_id: str | None = None
) -> GuardrailApproved:
    """The guardrail.approved payload of an approved decision, HMAC-signed over workspace, ids, actions, expiry.

    Deterministic: the same decision (a replay included) gives the same payload and signature. It
    carries the decision's request_id, i.e. the request first decided under this idempotency key.
    ``key_id`` names ``secret`` (signed too), so verifiers pick the key during a rotation.
    Raises ValueError for a decision that is not an approval or belongs to another request.
    """
    if not decision.approved or decision.expires_at is None or not decision.actions:
        raise ValueError(f"decision {decision.decision_id} is not an approval (status {decision.status})")
    _require_same_request(decision, request)
    unsigned = GuardrailApproved(
        decision_id=decision.decision_id,
        request_id=decision.request_id,
        source=decision.source,
        source_id=decision.source_id,
        actions=list(decision.actions),
        trimmed=list(decision.notes),
        approved_at=decision.decided_at,
        expires_at=decision.expires_at,
        signature="",
        key_id=key_id,
    )
    return unsigned.model_copy(update={"signature": sign_approval(unsigned, workspace_id, secret)})


def blocked_event(decision: Decision, request: AllocationRequested) -> GuardrailBlocked:
    """The guardrail.blocked payload of a blocked (or observe-only) decision, with its check and numbers.

    Raises ValueError for an approval or a decision that belongs to another request.
    """
    if decision.approved or decision.check is None:
        raise ValueError(f"decision {decision.decision_id} is not a block (status {decision.status})")
    _require_same_request(decision, request)
    return GuardrailBlocked(
        decision_id=decision.decision_id,
        request_id=decision.request_id,
        source=decision.source,
        source_id=decision.source_id,
        check=decision.check,
        reason=decision.reason,
        details=dict(decision.details),
        observe_only=decision.observe_only,
        retry_after_s=decision.retry_after_s,
    )


def http_status(decision: Decision) -> int:
    """The HTTP status of a synchronous request: 200 approved, 202 observe-only, 429 rate-limited, 423 blocked."""
    if decision.approved:
        return 200
    if decision.observe_only:
        return 202
    if decision.check == "rate_limited":
        return 429
    return 423
