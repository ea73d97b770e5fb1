"""MetaGraphReader: the read-only Graph client of ingest. It has no method that changes anything on Meta.

The only POSTs it sends are the two Graph uses for reading: creating an async insights report run
(``POST /act_{id}/insights``, https://developers.facebook.com/docs/marketing-api/insights/best-practices/) and a
batch of GETs (``POST /?batch=``, https://developers.facebook.com/docs/graph-api/batch-requests; every
operation it builds is ``"method": "GET"``). Every response's usage headers feed the account's Pacer, which
slows down before the limit and waits out throttling (allot.ingest.domain.ratelimit).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

import httpx

from allot.ingest.domain.mapping import HOURLY_BREAKDOWN, REACH_RANGES
from allot.ingest.domain.ratelimit import PacePolicy, Usage, delay_before_next, parse_usage, throttled_wait
from allot.runtime.logging import get_logger

log = get_logger(__name__)

ENTITY_FIELDS = "id,name,status,effective_status,daily_budget,lifetime_budget,campaign_id"
ACCOUNT_FIELDS = "name,currency,timezone_name,account_status"
INSIGHT_FIELDS = {
    "adset": "adset_id,adset_name,campaign_id,campaign_name,spend,impressions,clicks,actions,action_values",
    "campaign": "campaign_id,campaign_name,spend,impressions,clicks,actions,action_values",
}


class GraphError(Exception):
    """A Graph error body (``{"error": {"message", "type", "code", "error_subcode"}}``)."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        raw = body.get("error")
        err: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
        self.status = status
        self.code: int | None = err.get("code")
        self.subcode: int | None = err.get("error_subcode")
        self.message = str(err.get("message") or f"HTTP {status}")
        super().__init__(f"Graph error {self.code}/{self.subcode}: {self.message}")


@dataclass
class Pacer:
    """One account's pace: how long to wait before its next call, from the last response's usage headers."""

    sleep: Callable[[float], Awaitable[None]]
    policy: PacePolicy = field(default_factory=PacePolicy)
    pending_s: float = 0.0
    waited_s: float = 0.0
    last: Usage = field(default_factory=Usage)

    async def before_call(self) -> None:
        if self.pending_s > 0:
            wait, self.pending_s = self.pending_s, 0.0
            self.waited_s += wait
            await self.sleep(wait)

    def observe(self, headers: Mapping[str, str]) -> Usage:
        self.last = parse_usage(headers)
        self.pending_s = max(self.pending_s, delay_before_next(self.last, self.policy))
        if self.pending_s > 0:
            log.info("ingest_slowing_down", usage_pct=self.last.pct, wait_s=round(self.pending_s, 2))
        return self.last


@dataclass(frozen=True)
class TokenInfo:
    valid: bool
    scopes: list[str]
    error: str = ""


class MetaGraphReader:
    """Reads one connection's accounts with its read token (``appsecret_proof`` when an app secret is set)."""

    def __init__(self, http: httpx.AsyncClient, *, token: str, version: str, pacer: Pacer,
                 app_secret: str | None = None, max_throttle_retries: int = 3, page_limit: int = 500,
                 async_poll_s: float = 2.0, async_max_polls: int = 120) -> None:
        self._http = http
        self._token = token
        self._version = version
        self.pacer = pacer
        self._proof = hmac.new(app_secret.encode(), token.encode(), hashlib.sha256).hexdigest() if app_secret \
            else None
        self._retries = max_throttle_retries
        self._limit = page_limit
        self._poll_s = async_poll_s
        self._max_polls = async_max_polls

    def _auth(self) -> dict[str, str]:
        return {"access_token": self._token, **({"appsecret_proof": self._proof} if self._proof else {})}

    async def _call(self, method: Literal["GET", "POST"], path: str, params: Mapping[str, str]) -> Any:
        attempt = 0
        while True:
            await self.pacer.before_call()
            url = f"/{self._version}/{path.lstrip('/')}" if path else f"/{self._version}"
            query = {**params, **self._auth()}
            if method == "GET":
                resp = await self._http.get(url, params=query)
            else:
                resp = await self._http.post(url, data=query)
            usage = self.pacer.observe(resp.headers)
            try:
                body = resp.json()
            except ValueError:
                body = {"error": {"message": resp.text[:200], "code": None}}
            if resp.status_code < 400 and not (isinstance(body, dict) and "error" in body):
                return body
            err = GraphError(resp.status_code, body if isinstance(body, dict) else {})
            wait = throttled_wait(err.code, usage, self.pacer.policy)
            if wait is None or attempt >= self._retries:
                raise err
            attempt += 1
            log.warning("ingest_throttled", code=err.code, subcode=err.subcode, wait_s=wait, attempt=attempt)
            self.pacer.pending_s = max(self.pacer.pending_s, wait)

    async def _pages(self, path: str, params: Mapping[str, str], first: Any | None = None) -> list[dict[str, Any]]:
        """Every row of a paged edge, following ``paging.cursors.after`` while ``paging.next`` is present."""
        rows: list[dict[str, Any]] = []
        body = first if first is not None else await self._call("GET", path, {**params, "limit": str(self._limit)})
        while True:
            rows.extend(body.get("data", []))
            paging = body.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            if not paging.get("next") or not after:
                return rows
            body = await self._call("GET", path, {**params, "limit": str(self._limit), "after": after})

    async def debug_token(self) -> TokenInfo:
        """The token's own permissions (``GET /debug_token?input_token=``)."""
        body = await self._call("GET", "debug_token", {"input_token": self._token})
        data = body.get("data") or {}
        if not data.get("is_valid", False):
            err = data.get("error") or {}
            return TokenInfo(False, [], str(err.get("message") or "token is not valid"))
        return TokenInfo(True, [str(s) for s in data.get("scopes", [])])

    async def account(self, account_id: str) -> dict[str, Any]:
        body: dict[str, Any] = await self._call("GET", f"act_{account_id}", {"fields": ACCOUNT_FIELDS})
        return body

    async def entities(self, account_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(ad sets, campaigns): both first pages in one batch request, then each edge's further pages."""
        rels = [f"act_{account_id}/{edge}?" + urlencode({"fields": ENTITY_FIELDS, "limit": str(self._limit)})
                for edge in ("adsets", "campaigns")]
        firsts = await self.batch_get(rels)
        adsets = await self._pages(f"act_{account_id}/adsets", {"fields": ENTITY_FIELDS}, firsts[0])
        campaigns = await self._pages(f"act_{account_id}/campaigns", {"fields": ENTITY_FIELDS}, firsts[1])
        return adsets, campaigns

    async def batch_get(self, relative_urls: list[str]) -> list[Any]:
        """Up to 50 GETs in one request; each answer's usage headers are observed. A throttled answer retries the
        batch after the wait Meta asks for; any other error raises GraphError."""
        ops = [{"method": "GET", "relative_url": r} for r in relative_urls[:50]]
        attempt = 0
        while True:
            answers = await self._call("POST", "", {"batch": json.dumps(ops), "include_headers": "true"})
            out, throttled = [], None
            for ans in answers:
                usage = self.pacer.observe({h["name"].lower(): h["value"] for h in ans.get("headers") or []})
                body = json.loads(ans.get("body") or "{}")
                if int(ans.get("code", 500)) >= 400 or "error" in body:
                    err = GraphError(int(ans.get("code", 500)), body)
                    wait = throttled_wait(err.code, usage, self.pacer.policy)
                    if wait is None or attempt >= self._retries:
                        raise err
                    throttled = max(throttled or 0.0, wait)
                out.append(body)
            if throttled is None:
                return out
            attempt += 1
            log.warning("ingest_throttled", where="batch", wait_s=throttled, attempt=attempt)
            self.pacer.pending_s = max(self.pacer.pending_s, throttled)

    async def insights(self, account_id: str, level: Literal["campaign", "adset"], since: str, until: str, *,
                       use_async: bool) -> list[dict[str, Any]]:
        """Hourly rows of one level over [since, until] (local dates), with the account's attribution setting."""
        params = {"level": level, "fields": INSIGHT_FIELDS[level], "breakdowns": HOURLY_BREAKDOWN,
                  "time_range": json.dumps({"since": since, "until": until}),
                  "use_account_attribution_setting": "true", "time_increment": "1"}
        path = f"act_{account_id}/insights"
        if not use_async:
            try:
                return await self._pages(path, params)
            except GraphError as exc:
                if (exc.code, exc.subcode) != (100, 1487534):
                    raise
                # "Please reduce the amount of data": too much for a sync call; the async job takes it
                log.info("ingest_insights_async_fallback", account_id=account_id, level=level)
        return await self._report_run(path, params)

    async def _report_run(self, path: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """Every row of an async insights report run: create it, poll it until done, page through its rows."""
        run = await self._call("POST", path, params)
        run_id = str(run["report_run_id"])
        for _ in range(self._max_polls):
            status = await self._call("GET", run_id, {"fields": "async_status,async_percent_completion"})
            state = status.get("async_status")
            if state == "Job Completed":
                return await self._pages(f"{run_id}/insights", {})
            if state in ("Job Failed", "Job Skipped"):
                raise GraphError(500, {"error": {"message": f"async report {run_id}: {state}", "code": None}})
            await self.pacer.sleep(self._poll_s)
        raise GraphError(504, {"error": {"message": f"async report {run_id} did not finish", "code": None}})

    async def range_reach(self, account_id: str, through: date, *,
                          use_async: bool = False) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """(level, range name) → insights rows ``{"<level>_id", "reach"}`` over each range of ``REACH_RANGES``:
        the N complete local days ending with ``through``, as an explicit ``time_range`` (what ``date_preset=
        last_Nd`` means when read the day after ``through``, pinned to the days ingest means), without
        ``time_increment`` so each entity has one row with its reach deduplicated over the whole range
        (https://developers.facebook.com/docs/marketing-api/reference/ad-account/insights/). All ten first pages
        come in one batch request, then each answer's further pages; ``use_async`` (large accounts, as for the
        hourly rows): one async report run per query instead."""
        path = f"act_{account_id}/insights"
        queries: dict[tuple[str, str], dict[str, str]] = {}
        for level in ("adset", "campaign"):
            for name, days in REACH_RANGES.items():
                since = through - timedelta(days=days - 1)
                queries[(level, name)] = {"level": level, "fields": f"{level}_id,reach", "time_range": json.dumps(
                    {"since": since.isoformat(), "until": through.isoformat()})}
        if use_async:
            return {key: await self._report_run(path, q) for key, q in queries.items()}
        firsts = await self.batch_get([f"{path}?" + urlencode({**q, "limit": str(self._limit)})
                                       for q in queries.values()])
        return {key: await self._pages(path, q, first)
                for (key, q), first in zip(queries.items(), firsts, strict=True)}


def graph_client(base_url: str, *, timeout_s: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The HTTP client every reader of the process shares (tests pass the fake's ASGI transport)."""
    split = urlsplit(base_url)
    if split.scheme not in ("http", "https"):
        raise ValueError(f"Graph URL must be http(s): {base_url!r}")
    return httpx.AsyncClient(base_url=base_url, timeout=timeout_s, transport=transport)
