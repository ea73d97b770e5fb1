"""HMAC signatures of guardrail approvals: the executor acts only on what the guardrails signed."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

import orjson

from allot.contracts.payloads import GuardrailApproved


def signing_bytes(approval: GuardrailApproved, workspace_id: str) -> bytes:
    """Canonical bytes covered by the signature: workspace, ids, actions and expiry (sorted-key JSON)."""
    body: dict[str, Any] = {
        "workspace_id": workspace_id,
        "decision_id": str(approval.decision_id),
        "request_id": str(approval.request_id),
        "source": approval.source,
        "source_id": approval.source_id,
        "actions": [a.model_dump(mode="json") for a in approval.actions],
        "expires_at": approval.expires_at.isoformat(),
    }
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def sign_approval(approval: GuardrailApproved, workspace_id: str, secret: bytes) -> str:
    """Hex HMAC-SHA256 of the approval's signing bytes."""
    return hmac.new(secret, signing_bytes(approval, workspace_id), hashlib.sha256).hexdigest()


class ApprovalRejected(Exception):
    """An approval that must not be executed: unsigned, forged or expired."""


def verify_approval(approval: GuardrailApproved, workspace_id: str, secret: bytes, *, now: datetime) -> None:
    """Raise ApprovalRejected unless the signature matches (constant time) and the approval has not expired."""
    if not approval.signature:
        raise ApprovalRejected("approval is unsigned")
    expected = sign_approval(approval, workspace_id, secret)
    if not hmac.compare_digest(expected, approval.signature):
        raise ApprovalRejected("approval signature does not match (forged or altered)")
    if now >= approval.expires_at:
        raise ApprovalRejected(f"approval expired at {approval.expires_at.isoformat()} (now {now.isoformat()})")
