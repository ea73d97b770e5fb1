"""Helpers shared by the HTTP adapters: Retry-After parsing and transport-error mapping."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from allot.executor.adapters.base import TransientPlatformError

__all__ = ["parse_retry_after", "transport_error"]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None when absent or unparseable."""
    if not value:
        return None
    value = value.strip()
    with contextlib.suppress(ValueError):  # not seconds: maybe an HTTP date
        return max(0.0, float(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def transport_error(platform: str, exc: httpx.TransportError) -> TransientPlatformError:
    """A TransientPlatformError naming only the failure class, never the URL, headers or body of the request."""
    if isinstance(exc, httpx.TimeoutException):
        return TransientPlatformError(f"{platform} request timed out ({type(exc).__name__})")
    return TransientPlatformError(f"{platform} connection failed ({type(exc).__name__})")
