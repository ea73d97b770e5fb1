"""Retry, backoff and channel health: what to do after one delivery attempt. Pure (``now`` is passed in)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal

Verdict = Literal["delivered", "retry", "failed"]


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 5.0
    factor: float = 2.0
    max_delay_s: float = 3600.0
    max_attempts: int = 8
    #: longest Retry-After honoured as given (a longer one is capped here)
    max_retry_after_s: float = 6 * 3600.0
    #: consecutive failed attempts (any delivery) after which a channel is disabled
    disable_after: int = 5


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt came back with: an HTTP status (None for SMTP), an SMTP code, or a network error."""

    status: int | None = None
    smtp_code: int | None = None
    retry_after: str | None = None
    error: str = ""
    #: the sender refused to try (e.g. the host resolves to a private address): retrying cannot help
    refused: bool = False

    @property
    def ok(self) -> bool:
        if self.refused:
            return False
        if self.status is not None:
            return 200 <= self.status < 300
        if self.smtp_code is not None:
            return 200 <= self.smtp_code < 300
        return False


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    next_attempt_at: datetime | None
    reason: str


def classify(result: AttemptResult) -> Literal["delivered", "transient", "permanent"]:
    """2xx delivered; 408, 425, 429, 5xx, SMTP 4xx and network errors pass; other 4xx and SMTP 5xx do not."""
    if result.ok:
        return "delivered"
    if result.refused:
        return "permanent"
    if result.status is not None:
        return "transient" if result.status in (408, 425, 429) or result.status >= 500 else "permanent"
    if result.smtp_code is not None:
        return "transient" if 400 <= result.smtp_code < 500 else "permanent"
    return "transient"


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def backoff_s(policy: RetryPolicy, attempt: int, *, key: str) -> float:
    """Delay after failed attempt number ``attempt`` (1-based): exponential, capped, with up to 20 % jitter drawn
    deterministically from ``key`` (same delivery, same delays; different deliveries spread out)."""
    raw = min(policy.max_delay_s, policy.base_s * policy.factor ** max(0, attempt - 1))
    spread = int.from_bytes(hashlib.sha256(f"{key}/{attempt}".encode()).digest()[:2], "big") / 65535
    return min(policy.max_delay_s, raw * (1 + 0.2 * spread))


def decide(policy: RetryPolicy, result: AttemptResult, *, attempt: int, key: str, now: datetime) -> Outcome:
    """After attempt ``attempt`` of a delivery: delivered, retry at a time, or failed for good."""
    kind = classify(result)
    if kind == "delivered":
        return Outcome("delivered", None, "")
    reason = describe(result)
    if kind == "permanent":
        return Outcome("failed", None, f"permanent: {reason}")
    if attempt >= policy.max_attempts:
        return Outcome("failed", None, f"gave up after {attempt} attempts: {reason}")
    delay = backoff_s(policy, attempt, key=key)
    if result.status == 429:
        wait = parse_retry_after(result.retry_after, now=now)
        if wait is not None:
            delay = min(policy.max_retry_after_s, wait)
    return Outcome("retry", now + timedelta(seconds=delay), reason)


def describe(result: AttemptResult) -> str:
    if result.error:
        return result.error[:500]
    if result.status is not None:
        return f"HTTP {result.status}"
    if result.smtp_code is not None:
        return f"SMTP {result.smtp_code}"
    return "no answer"


def should_disable(policy: RetryPolicy, consecutive_failures: int) -> bool:
    return consecutive_failures >= policy.disable_after
