"""PlatformClient for Allot's sandbox ad platform (``allot.sandbox.app``)."""

from __future__ import annotations

from typing import Any, Self

import httpx

from allot.executor.adapters._http import parse_retry_after, transport_error
from allot.executor.adapters.base import (
    EntityRef,
    EntityState,
    PermanentPlatformError,
    PlatformAuthError,
    PlatformError,
    TransientPlatformError,
    WritableStatus,
    WriteResult,
    redact,
)

__all__ = ["SandboxClient"]


class SandboxClient:
    """Talks to the sandbox's ``/v1`` API with a bearer token.

    Error mapping: 429 → Transient with the Retry-After seconds; 5xx, timeouts
    and connection failures → Transient; 401/403 → PlatformAuthError; any other
    4xx → Permanent (``code`` = ``not_found``, ``invalid_parameter`` or the HTTP
    status). ``platform`` defaults to ``sandbox`` but may name the platform the
    sandbox stands in for.
    """

    def __init__(
        self,
        base_url: str,
        api_token: str,
        timeout_s: float = 10.0,
        *,
        platform: str = "sandbox",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not api_token:
            raise ValueError("api_token is required")
        self.platform = platform
        self._token = api_token
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout_s),
            headers={"Authorization": f"Bearer {api_token}", "Accept": "application/json"},
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"SandboxClient(base_url={str(self._http.base_url)!r}, platform={self.platform!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def get_entity(self, ref: EntityRef) -> EntityState:
        """Current budget, status, currency and name of the entity."""
        body = await self._call("GET", f"/v1/entities/{ref.entity_id}")
        try:
            return EntityState(
                budget_cents=body["daily_budget_cents"],
                status=str(body["status"]),
                currency=str(body["currency"]),
                name=str(body.get("name", "")),
                ad_account_id=str(body["ad_account_id"]) if body.get("ad_account_id") else None,
            )
        except (KeyError, TypeError) as exc:
            raise TransientPlatformError(f"sandbox returned an unexpected entity body (missing {exc})") from None

    async def set_budget(self, ref: EntityRef, budget_cents: int, *, idempotency_key: str | None = None) -> WriteResult:
        """Set the daily budget to exactly ``budget_cents``; ``idempotency_key`` is sent as a header for the call
        log."""
        if isinstance(budget_cents, bool) or not isinstance(budget_cents, int) or budget_cents < 0:
            raise PermanentPlatformError("budget_cents must be a non-negative integer", "invalid_parameter")
        body = await self._call(
            "POST", f"/v1/entities/{ref.entity_id}", json={"daily_budget_cents": budget_cents}, key=idempotency_key
        )
        return WriteResult(response_id=str(body.get("write_id", "")))

    async def set_status(
        self, ref: EntityRef, status: WritableStatus, *, idempotency_key: str | None = None
    ) -> WriteResult:
        """Set the status to ``active`` or ``paused``."""
        if status not in ("active", "paused"):
            raise PermanentPlatformError(f"status must be active or paused, not {status!r}", "invalid_parameter")
        body = await self._call("POST", f"/v1/entities/{ref.entity_id}", json={"status": status}, key=idempotency_key)
        return WriteResult(response_id=str(body.get("write_id", "")))

    async def relaunch(self, ref: EntityRef, *, idempotency_key: str | None = None) -> WriteResult:
        """Copy the entity; ``new_entity_id`` is the copy's id."""
        body = await self._call("POST", f"/v1/entities/{ref.entity_id}/relaunch", key=idempotency_key)
        new_id = body.get("new_entity_id")
        return WriteResult(response_id=str(body.get("write_id", "")), new_entity_id=str(new_id) if new_id else None)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _call(
        self, method: str, path: str, *, json: dict[str, Any] | None = None, key: str | None = None
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": key} if key else None
        try:
            resp = await self._http.request(method, path, json=json, headers=headers)
        except httpx.TransportError as exc:
            raise transport_error("sandbox", exc) from None
        if resp.status_code < 300:
            try:
                body = resp.json()
            except ValueError:
                raise TransientPlatformError(f"sandbox returned non-JSON (HTTP {resp.status_code})") from None
            if not isinstance(body, dict):
                raise TransientPlatformError("sandbox returned a non-object body")
            return body
        raise self._error(resp)

    def _error(self, resp: httpx.Response) -> PlatformError:
        status = resp.status_code
        detail = _detail(resp)
        message = redact(f"sandbox HTTP {status}: {detail}", self._token)
        if status == 429:
            return TransientPlatformError(message, parse_retry_after(resp.headers.get("retry-after")))
        if status >= 500:
            return TransientPlatformError(message, parse_retry_after(resp.headers.get("retry-after")))
        if status in (401, 403):
            return PlatformAuthError(message, "unauthorized" if status == 401 else "forbidden")
        if status == 404:
            return PermanentPlatformError(message, "not_found")
        if status in (400, 422):
            return PermanentPlatformError(message, "invalid_parameter")
        return PermanentPlatformError(message, status)


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200]
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):
        parts = []
        for err in detail[:3]:
            if isinstance(err, dict):
                loc = ".".join(str(p) for p in err.get("loc", []) if p != "body")
                parts.append(f"{loc}: {err.get('msg', '')}")
        return "; ".join(parts)
    return str(detail)[:200]
