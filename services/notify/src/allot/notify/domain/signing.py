"""Webhook signatures: HMAC-SHA256 over ``"<timestamp>.<body>"``, so a receiver can verify and reject replays.

Headers on every webhook request:
  X-Allot-Timestamp: 1733456789                 (Unix seconds when the request was signed)
  X-Allot-Signature: v1=<hex hmac-sha256>       (over b"1733456789." + raw body, key = the channel's secret)
  Idempotency-Key:   <notification id>          (the same on every retry: receivers dedupe on it)

A receiver recomputes the HMAC over the timestamp header, a dot and the raw body, compares in constant time,
and refuses a timestamp older than its tolerance (5 minutes by default), so a captured request cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Allot-Timestamp"
SIGNATURE_HEADER = "X-Allot-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DEFAULT_TOLERANCE_S = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Allot-Signature`` value for ``body`` signed at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={mac}"


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(secret, timestamp, body)}


def verify(secret: str, *, timestamp_header: str | None, signature_header: str | None, body: bytes, now: int,
           tolerance_s: int = DEFAULT_TOLERANCE_S) -> bool:
    """What a receiver does: True only for a fresh timestamp and a matching signature."""
    if not timestamp_header or not signature_header or not timestamp_header.isdigit():
        return False
    ts = int(timestamp_header)
    if abs(now - ts) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, ts, body), signature_header)
