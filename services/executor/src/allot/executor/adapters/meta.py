"""PlatformClient for the Meta Marketing API (Graph API): daily budgets and statuses of campaigns, ad sets and ads."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Self

import httpx

from allot.contracts.platforms import META_DEFAULT_API_VERSION
from allot.executor.adapters._http import parse_retry_after, transport_error
from allot.executor.adapters.base import (
    EntityRef,
    EntityState,
    PermanentPlatformError,
    PlatformAuthError,
    PlatformConfigError,
    PlatformDeferred,
    PlatformError,
    PlatformNotConnected,
    TransientPlatformError,
    WritableStatus,
    WriteResult,
    redact,
)
from allot.executor.adapters.meta_usage import ThrottlePolicy, UsageTracker, is_throttle_code, parse_usage

__all__ = ["GRAPH_BASE_URL", "MetaGraphClient", "TokenLookup", "appsecret_proof", "is_transient_graph_code"]

GRAPH_BASE_URL = "https://graph.facebook.com"

#: (workspace_id, ad_account_id) → that workspace's write token for the account, or None when not connected.
TokenLookup = Callable[[str, str], Awaitable[str | None]]

# Graph's "wait and retry" codes: 1 unknown/2 service (temporary), 4 app, 17 user, 32 page, 341 app limit,
# 613 custom rate limits; 80000–80014 are the Marketing API's business-use-case rate limits (80004 ads management).
_TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613})
_BUC_CODES = range(80000, 80015)
# 2635 "You are calling a deprecated version of the Ads API" and 12 "... is deprecated for versions vX and
# higher": the configured version, not the action, is wrong (Meta blog "Upcoming change in Marketing API version
# deprecation", 2024-04-16, names the 2635 error).
_VERSION_CODES = frozenset({2635, 12})
# 102 session, 104 token required, 190 invalid/expired token, 10 and 200–299 permission denied.
_AUTH_CODES = frozenset({102, 104, 190, 10})

_STATUS_OUT: dict[str, str] = {"active": "ACTIVE", "paused": "PAUSED"}
_STATUS_IN: dict[str, str] = {"ACTIVE": "active", "PAUSED": "paused", "DELETED": "deleted", "ARCHIVED": "deleted"}


def is_transient_graph_code(code: int | None) -> bool:
    """True for Graph error codes that mean 'throttled or temporarily down: retry later'."""
    return code is not None and (code in _TRANSIENT_CODES or code in _BUC_CODES)


def appsecret_proof(app_secret: str, access_token: str) -> str:
    """HMAC-SHA256 of the access token keyed by the app secret, hex: Graph's ``appsecret_proof`` parameter.

    Source: Graph API "Securing Requests" (https://developers.facebook.com/docs/graph-api/securing-requests);
    with "Require App Secret" on, Graph refuses calls without it (error 100, "Invalid appsecret_proof").
    """
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


class MetaGraphClient:
    """Reads and writes ``daily_budget`` / ``status`` through the Graph API.

    Credentials: the token of the action's workspace (``token_for(workspace_id, ad_account_id)``, e.g. the
    executor's projection of connections), else the global ``access_token``; with neither the call raises
    :class:`PlatformNotConnected` (the action is rejected, never retried). Every call sends ``appsecret_proof``
    when ``app_secret`` is set. Tokens travel only in the ``Authorization`` header (never in a URL) and never
    appear in an exception message or ``repr``. ``daily_budget`` is exchanged as a string in the account
    currency's Meta offset units (``allot.contracts.currencies``), which :class:`EntityState` carries as
    ``budget_cents`` unchanged.

    Rate limits: the usage headers of every response (``X-Business-Use-Case-Usage``, ``X-Ad-Account-Usage``,
    ``X-App-Usage``) feed a per-account :class:`UsageTracker`; above ``throttle.slow_at_pct`` calls to that
    account are spaced out, and after a throttling error the account is held for Meta's estimated time to
    regain access. A wait up to ``max_inline_wait_s`` is slept; a longer one raises :class:`PlatformDeferred`
    (retried later without counting an attempt, so the executor never holds a ledger lock while waiting).

    Error mapping: codes 1, 2, 4, 17, 32, 341, 613, 80000–80014, ``is_transient`` errors, HTTP 5xx,
    timeouts and connection failures → Transient (``retry_after_s`` from ``Retry-After``, the BUC
    ``estimated_time_to_regain_access`` or the ad-account reset time); 2635/12 (deprecated version) →
    :class:`PlatformConfigError` naming the version (``config_problem`` keeps it for ``/readyz``);
    102/104/190/10/200–299 → PlatformAuthError; anything else (e.g. 100 invalid parameter) → Permanent.

    Graph has no idempotency header for updates, so ``idempotency_key`` is accepted for the port's sake and
    not sent. Writes go one call per action, never through the Graph batch endpoint: the executor applies
    each action in its own ledger transaction (read, compare, write, commit), and a batch would bundle
    writes whose outcomes must be recorded and retried one by one.
    """

    platform = "meta"

    def __init__(
        self,
        base_url: str = GRAPH_BASE_URL,
        api_version: str = META_DEFAULT_API_VERSION,
        access_token: str | None = None,
        *,
        token_for: TokenLookup | None = None,
        timeout_s: float = 30.0,
        app_secret: str | None = None,
        relaunch_status: str = "PAUSED",
        transport: httpx.AsyncBaseTransport | None = None,
        throttle: ThrottlePolicy | None = None,
        max_inline_wait_s: float = 2.0,
        config_retry_s: float = 300.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not access_token and token_for is None:
            raise ValueError("access_token or token_for is required")
        if relaunch_status not in ("ACTIVE", "PAUSED", "INHERITED_FROM_SOURCE"):
            raise ValueError("relaunch_status must be ACTIVE, PAUSED or INHERITED_FROM_SOURCE")
        self._token = access_token or None
        self._token_for = token_for
        self._app_secret = app_secret or None
        self._version = api_version.strip("/")
        self._relaunch_status = relaunch_status
        self._currency: dict[str, str] = {}
        self._usage = UsageTracker(throttle or ThrottlePolicy())
        self._max_inline_wait_s = max_inline_wait_s
        self._config_retry_s = config_retry_s
        self._sleep = sleep
        self._monotonic = monotonic
        self.config_problem: str | None = None
        """The last configuration error Graph reported (e.g. a deprecated version); None after a success."""
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout_s),
            headers={"Accept": "application/json"},
            transport=transport,
        )

    @property
    def api_version(self) -> str:
        """The Graph API version every call uses (``v26.0``)."""
        return self._version

    @property
    def usage(self) -> UsageTracker:
        """Per-account usage state (read-only use: metrics, tests)."""
        return self._usage

    def __repr__(self) -> str:
        return f"MetaGraphClient(base_url={str(self._http.base_url)!r}, api_version={self._version!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def get_entity(self, ref: EntityRef) -> EntityState:
        """Budget (None when the entity has no daily budget), configured status, account currency and name."""
        token = await self._resolve_token(ref)
        body, _ = await self._call(
            "GET", ref.entity_id, token, ref.ad_account_id,
            params={"fields": "id,name,status,effective_status,daily_budget,account_id"},
        )
        account_id = str(body.get("account_id") or ref.ad_account_id).removeprefix("act_")
        return EntityState(
            budget_cents=_parse_budget(body.get("daily_budget")),
            status=_normalise_status(body.get("status"), body.get("effective_status")),
            currency=await self._account_currency(account_id, token),
            name=str(body.get("name", "")),
            ad_account_id=account_id if body.get("account_id") else None,
        )

    async def set_budget(self, ref: EntityRef, budget_cents: int, *, idempotency_key: str | None = None) -> WriteResult:
        """POST ``daily_budget`` = ``budget_cents`` (a string of minor units)."""
        if isinstance(budget_cents, bool) or not isinstance(budget_cents, int) or budget_cents < 0:
            raise PermanentPlatformError("budget_cents must be a non-negative integer", 100)
        return await self._write(ref, {"daily_budget": str(budget_cents)})

    async def set_status(
        self, ref: EntityRef, status: WritableStatus, *, idempotency_key: str | None = None
    ) -> WriteResult:
        """POST ``status`` = ACTIVE or PAUSED."""
        graph_status = _STATUS_OUT.get(status)
        if graph_status is None:
            raise PermanentPlatformError(f"status must be active or paused, not {status!r}", 100)
        return await self._write(ref, {"status": graph_status})

    async def relaunch(self, ref: EntityRef, *, idempotency_key: str | None = None) -> WriteResult:
        """POST ``/{id}/copies`` (status_option = ``relaunch_status``); ``new_entity_id`` is the copy's id."""
        data = {"status_option": self._relaunch_status}
        token = await self._resolve_token(ref)
        body, trace = await self._call("POST", f"{ref.entity_id}/copies", token, ref.ad_account_id, data=data)
        new_id = next((str(v) for k, v in body.items() if k.startswith("copied_") and k.endswith("_id")), None)
        if new_id is None:
            raise TransientPlatformError("meta copy response carried no copied id")
        return WriteResult(response_id=trace or new_id, new_entity_id=new_id)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # ------------------------------------------------------------------ internals

    async def _resolve_token(self, ref: EntityRef) -> str:
        if self._token_for is not None:
            try:
                token = await self._token_for(ref.workspace_id, ref.ad_account_id)
            except PlatformError:
                raise
            except Exception as exc:  # noqa: BLE001 - the lookup is someone else's code; never leak its message
                raise TransientPlatformError(f"meta token lookup failed ({type(exc).__name__})") from None
            if token:
                return token
        if self._token:
            return self._token
        raise PlatformNotConnected(
            f"no active Meta connection for account {ref.ad_account_id} in workspace {ref.workspace_id or '(none)'}"
        )

    async def _write(self, ref: EntityRef, data: dict[str, str]) -> WriteResult:
        token = await self._resolve_token(ref)
        body, trace = await self._call("POST", ref.entity_id, token, ref.ad_account_id, data=data)
        if body.get("success") is not True:
            # Absolute writes are safe to retry; the executor re-reads before it does.
            raise TransientPlatformError("meta did not confirm the write (success != true)")
        return WriteResult(response_id=trace or f"meta:{ref.entity_id}")

    async def _account_currency(self, account_id: str, token: str) -> str:
        currency = self._currency.get(account_id)
        if currency is None:
            body, _ = await self._call("GET", f"act_{account_id}", token, account_id, params={"fields": "currency"})
            currency = str(body.get("currency", ""))
            if len(currency) != 3:
                raise PermanentPlatformError(f"meta ad account act_{account_id} has no currency", "bad_response")
            self._currency[account_id] = currency
        return currency

    async def _hold_back(self, account_id: str) -> None:
        wait = self._usage.wait_s(account_id, self._monotonic())
        if wait <= 0:
            return
        if wait > self._max_inline_wait_s:
            raise PlatformDeferred(f"meta: holding back calls for account {account_id} for {wait:.1f} s "
                                   "(rate-limit usage high or throttled)", retry_after_s=wait)
        await self._sleep(wait)

    async def _call(
        self,
        method: str,
        path: str,
        token: str,
        account_id: str,
        *,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
    ) -> tuple[dict[str, Any], str | None]:
        await self._hold_back(account_id)
        params = dict(params or {})
        if self._app_secret is not None:
            params["appsecret_proof"] = appsecret_proof(self._app_secret, token)
        self._usage.record_call(account_id, self._monotonic())
        try:
            resp = await self._http.request(
                method, f"/{self._version}/{path}", params=params or None, data=data,
                headers={"Authorization": f"OAuth {token}"},
            )
        except httpx.TransportError as exc:
            raise transport_error("meta", exc) from None
        self._usage.observe(parse_usage(resp.headers, account_id), self._monotonic())
        trace = resp.headers.get("x-fb-trace-id")
        if resp.status_code < 300:
            try:
                body = resp.json()
            except ValueError:
                raise TransientPlatformError(f"meta returned non-JSON (HTTP {resp.status_code})") from None
            if isinstance(body, dict) and "error" not in body:
                self.config_problem = None
                return body, trace
        raise self._error(resp, token, account_id)

    def _error(self, resp: httpx.Response, token: str, account_id: str) -> PlatformError:
        status = resp.status_code
        proof = appsecret_proof(self._app_secret, token) if self._app_secret else None
        try:
            body = resp.json()
        except ValueError:
            body = None
        err = body.get("error") if isinstance(body, dict) else None
        if not isinstance(err, dict):
            message = redact(f"meta HTTP {status}", token, self._app_secret, proof)
            if status >= 500 or status == 429:
                return TransientPlatformError(message, parse_retry_after(resp.headers.get("retry-after")))
            return PermanentPlatformError(message, status)
        code = err.get("code") if isinstance(err.get("code"), int) else None
        subcode = err.get("error_subcode")
        text = str(err.get("error_user_msg") or err.get("message") or "")[:300]
        message = redact(
            f"meta HTTP {status} error {code}"
            + (f"/{subcode}" if subcode is not None else "")
            + f": {text} (fbtrace_id={err.get('fbtrace_id')})",
            token,
            self._app_secret,
            proof,
        )
        if code in _VERSION_CODES:
            self.config_problem = (f"Graph API version {self._version} is deprecated or unsupported: set "
                                   f"ALLOT_META_API_VERSION to a supported version (e.g. {META_DEFAULT_API_VERSION}); "
                                   f"{message}")
            return PlatformConfigError(f"meta {self.config_problem}", self._config_retry_s)
        if code in _AUTH_CODES or (code is not None and 200 <= code <= 299):
            return PlatformAuthError(message, code)
        if is_throttle_code(code):
            asked = _graph_retry_after(resp.headers)
            hold = self._usage.throttled(account_id, self._monotonic(), regain_s=asked, app_wide=code == 4)
            return TransientPlatformError(message, max(hold, asked or 0.0))
        if is_transient_graph_code(code) or err.get("is_transient") is True or status >= 500:
            return TransientPlatformError(message, _graph_retry_after(resp.headers))
        return PermanentPlatformError(message, code if code is not None else status)


def _graph_retry_after(headers: httpx.Headers) -> float | None:
    """Longest wait Graph asked for: Retry-After, BUC ``estimated_time_to_regain_access`` (minutes), ad-account
    ``reset_time_duration`` (s)."""
    waits: list[float] = []
    retry_after = parse_retry_after(headers.get("retry-after"))
    if retry_after is not None:
        waits.append(retry_after)
    buc = _json_header(headers.get("x-business-use-case-usage"))
    if isinstance(buc, dict):
        for entries in buc.values():
            for entry in entries if isinstance(entries, list) else []:
                minutes = entry.get("estimated_time_to_regain_access") if isinstance(entry, dict) else None
                if isinstance(minutes, (int, float)) and minutes > 0:
                    waits.append(float(minutes) * 60.0)
    account = _json_header(headers.get("x-ad-account-usage"))
    if isinstance(account, dict):
        reset = account.get("reset_time_duration")
        if isinstance(reset, (int, float)) and reset > 0:
            waits.append(float(reset))
    return max(waits) if waits else None


def _json_header(value: str | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def _parse_budget(raw: object) -> int | None:
    # Graph omits daily_budget (or sends "0") when the budget lives at another level or is a lifetime budget.
    if raw is None:
        return None
    text = str(raw)
    if not text.isdigit():
        raise PermanentPlatformError("meta returned a non-integer daily_budget", "bad_response")
    value = int(text)
    return value or None


def _normalise_status(status: object, effective_status: object) -> str:
    if isinstance(status, str) and status in _STATUS_IN:
        return _STATUS_IN[status]
    if isinstance(effective_status, str):
        if effective_status in ("DELETED", "ARCHIVED"):
            return "deleted"
        return "active" if effective_status == "ACTIVE" else "paused"
    raise PermanentPlatformError("meta returned no status", "bad_response")
