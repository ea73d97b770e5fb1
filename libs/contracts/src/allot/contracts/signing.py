"""HMAC signatures of guardrail approvals: the executor acts only on what the guardrails signed."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
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
    if approval.key_id is not None:  # covered by the signature, so it cannot be swapped to another key
        body["key_id"] = approval.key_id
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def sign_approval(approval: GuardrailApproved, workspace_id: str, secret: bytes) -> str:
    """Hex HMAC-SHA256 of the approval's signing bytes."""
    return hmac.new(secret, signing_bytes(approval, workspace_id), hashlib.sha256).hexdigest()


class ApprovalRejected(Exception):
    """An approval that must not be executed: unsigned, forged, signed with an unknown key, or expired."""


class ApprovalExpired(ApprovalRejected):
    """An authentic approval whose lifetime ended: nothing may be executed, but its source is told (outcome
    ``expired``)."""


#: key id → (secret, accepted until; None = no end). A bare secret means one key whatever the id.
VerificationKeys = Mapping[str, tuple[bytes, datetime | None]]


def verify_approval(approval: GuardrailApproved, workspace_id: str, keys: bytes | VerificationKeys, *,
                    now: datetime) -> None:
    """Raise ApprovalRejected unless the signature matches (constant time) under an accepted key, and
    ApprovalExpired when an authentic approval has expired.

    ``keys``: the verifier's keys by id (the current one, and the previous one during a rotation window).
    An approval without ``key_id`` (signed before key ids existed) is checked against the first key (the current).
    """
    if not approval.signature:
        raise ApprovalRejected("approval is unsigned")
    if isinstance(keys, bytes):
        candidates = [keys]
    elif approval.key_id is None:  # signed before key ids existed: any key still accepted
        candidates = [secret for secret, until in keys.values() if until is None or now < until]
    else:
        entry = keys.get(approval.key_id)
        if entry is None:
            raise ApprovalRejected(f"approval signed with unknown key id {approval.key_id!r} "
                                   f"(accepted: {', '.join(sorted(keys))})")
        secret, until = entry
        if until is not None and now >= until:
            raise ApprovalRejected(f"approval signed with key {approval.key_id!r}, whose rotation window ended "
                                   f"at {until.isoformat()}")
        candidates = [secret]
    if not any(hmac.compare_digest(sign_approval(approval, workspace_id, secret), approval.signature)
               for secret in candidates):
        raise ApprovalRejected("approval signature does not match (forged or altered)")
    if now >= approval.expires_at:
        raise ApprovalExpired(f"approval expired at {approval.expires_at.isoformat()} (now {now.isoformat()})")
