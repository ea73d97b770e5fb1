"""The READ side of the fake Graph API: what a read-only ingest service calls (hooked into ``graph.py``).

Routes (under ``/{version}``; shapes follow Meta's documentation, cited beside each):

* ``GET /debug_token?input_token=...`` → ``{"data": {"app_id", "type", "application", "expires_at",
  "data_access_expires_at", "is_valid", "issued_at", "scopes": [...], "granular_scopes": [...], "user_id"}}``
  (https://developers.facebook.com/docs/graph-api/reference/debug_token/). An unknown token answers
  ``is_valid: false`` with an ``error`` object (code 190), as Graph does for expired or revoked tokens.
* ``GET /act_{id}/adsets|campaigns?fields=...&limit=&after=`` → ``{"data": [...], "paging": {"cursors":
  {"before", "after"}, "next"}}`` cursor paging (https://developers.facebook.com/docs/graph-api/results/).
  ``daily_budget`` / ``lifetime_budget`` are strings of the account currency's minor units (offset), omitted
  when unset (https://developers.facebook.com/docs/marketing-api/reference/ad-campaign/).
* ``GET /act_{id}/insights`` (sync) and ``POST /act_{id}/insights`` (async: ``{"report_run_id"}``), then
  ``GET /{report_run_id}`` (``async_status`` "Job Not Started" / "Job Running" / "Job Completed",
  ``async_percent_completion``) and ``GET /{report_run_id}/insights``
  (https://developers.facebook.com/docs/marketing-api/insights/best-practices/ "Asynchronous jobs").
  ``level`` campaign | adset, ``time_range={"since","until"}`` in the account's time zone, ``breakdowns=
  hourly_stats_aggregated_by_advertiser_time_zone`` gives one row per local hour labelled ``"HH:00:00 -
  HH:59:59"`` (https://developers.facebook.com/docs/marketing-api/insights/breakdowns/). ``spend`` is a decimal
  string in the account currency's major unit; counts are strings; ``actions`` / ``action_values`` are lists of
  ``{"action_type", "value"}`` (https://developers.facebook.com/docs/marketing-api/reference/ads-insights/).
  With an hourly breakdown off-Meta actions (``offsite_conversion.*``) are not returned (breakdowns page,
  "Restrictions for off-Meta action metrics", Type 1). ``use_account_attribution_setting=true`` adds
  ``attribution_setting`` to each row. ``time_increment=1`` gives one row per entity per local day;
  without it (Meta's default ``all_days``) one row per entity for the whole ``time_range``, its
  ``date_start`` / ``date_stop`` the range's ends
  (https://developers.facebook.com/docs/marketing-api/reference/ad-account/insights/). Only entities that
  delivered in the range have a row.
* ``reach`` (a count string, like every count) is the people reached over the row's own period, deduplicated
  over it as Meta does, so the reach of several days is less than the sum of their daily reaches. This fake's
  model is a fixed overlap: an ad set reaches ``ceil(impressions / ReadSide.daily_frequency)`` people on a
  local day; over several days, or over a campaign's ad sets, the largest of those day reaches counts in full
  and each other adds ``1 - ReadSide.reach_overlap`` of itself as new people. The fake does not model reach by
  the hour: ``reach`` with the hourly breakdown is refused (ingest never asks for it).
* ``POST /`` or ``POST /{version}`` with ``batch=[{"method","relative_url"}]`` (at most 50) → a list of
  ``{"code", "headers": [{"name","value"}], "body": "<json string>"}``
  (https://developers.facebook.com/docs/graph-api/batch-requests).
* Usage headers on every read: ``x-business-use-case-usage`` ({business: [{type, call_count, total_cputime,
  total_time, estimated_time_to_regain_access, ads_api_access_tier}]}), ``x-ad-account-usage``
  ({acc_id_util_pct, reset_time_duration, ads_api_access_tier}) and, on insights, ``x-fb-ads-insights-throttle``
  ({app_id_util_pct, acc_id_util_pct, ads_api_access_tier})
  (https://developers.facebook.com/docs/graph-api/overview/rate-limiting/,
  https://developers.facebook.com/docs/marketing-api/insights/best-practices/).

Tests drive it through ``MetaFakeState.reads`` (a ``ReadSide``): time zones, token scopes, hourly delivery,
late (restated) conversions, usage percentages and async job speed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

if TYPE_CHECKING:
    from allot.fakes.meta.graph import MetaFakeState

__all__ = ["HourDelivery", "ReadSide", "install_read_routes", "meta_offset", "reach_of"]

#: Currencies whose Meta offset is 1 (amounts in whole units), the rest 100
#: (https://developers.facebook.com/docs/marketing-api/currencies).
_OFFSET_ONE = frozenset({"CLP", "COP", "CRC", "HUF", "ISK", "IDR", "JPY", "KRW", "PYG", "TWD", "VND"})
_HOURLY = "hourly_stats_aggregated_by_advertiser_time_zone"
_ACCOUNT_STATUS = {"active": 1, "disabled": 2, "unsettled": 3, "closed": 101}
ENTITY_FIELDS = frozenset({"id", "name", "status", "configured_status", "effective_status", "daily_budget",
                           "lifetime_budget", "campaign_id", "account_id"})
READ_ACCOUNT_FIELDS = frozenset({"timezone_name", "timezone_offset_hours_utc", "account_status", "currency", "name",
                                 "id", "account_id"})


def meta_offset(currency: str) -> int:
    """Minor units per major unit in Meta's terms (1 or 100)."""
    return 1 if currency in _OFFSET_ONE else 100


@dataclass(slots=True)
class HourDelivery:
    """Delivery of one ad set in one local hour of its account (money in the account's minor units)."""

    adset_id: str
    day: date
    hour: int
    spend: int
    impressions: int
    clicks: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    action_values: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _ReportRun:
    id: str
    account_id: str
    params: dict[str, str]
    polls_left: int
    pending: list[dict[str, Any]]
    rows: list[dict[str, Any]] | None = None


@dataclass
class ReadSide:
    """Read-side state of the fake (see module docstring)."""

    #: token → granted scopes; a valid token not listed here can write (the executor's default test token).
    token_scopes: dict[str, list[str]] = field(default_factory=dict)
    token_type: str = "SYSTEM_USER"
    app_id: str = "1234567890"
    timezones: dict[str, str] = field(default_factory=dict)
    account_status: dict[str, str] = field(default_factory=dict)
    attribution_setting: str = "7d_click_1d_view"
    delivery: list[HourDelivery] = field(default_factory=list)
    #: account id → usage percentage reported in all three headers (default: 1 % per call this minute, capped)
    usage_pct: dict[str, int] = field(default_factory=dict)
    page_size: int = 25
    #: a sync insights query with more rows than this fails with code 100 / subcode 1487534 ("Please reduce the
    #: amount of data you're asking for"), as Meta's data-per-call limit does (insights best practices page)
    max_sync_rows: int | None = None
    #: GET /{report_run_id} polls before a job reports "Job Completed"
    async_polls: int = 2
    #: reach model (module docstring): impressions per person on one ad set's local day ...
    daily_frequency: float = 1.5
    #: ... and the share of another day's (or ad set's) people already counted in a longer period's reach
    reach_overlap: float = 0.5
    report_runs: dict[str, _ReportRun] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    insights_calls: list[dict[str, str]] = field(default_factory=list)
    _next_run: int = 900_000_000

    def set_account(self, account_id: str, *, timezone_name: str = "America/Los_Angeles",
                    status: str = "active") -> None:
        account_id = account_id.removeprefix("act_")
        self.timezones[account_id] = timezone_name
        self.account_status[account_id] = status

    def grant(self, token: str, *scopes: str) -> None:
        """Give ``token`` exactly these scopes (e.g. ``"ads_read"`` for a read-only system user)."""
        self.token_scopes[token] = list(scopes)

    def deliver(self, adset_id: str, day: date, hour: int, *, spend: int, impressions: int, clicks: int = 0,
                actions: dict[str, int] | None = None, action_values: dict[str, int] | None = None) -> HourDelivery:
        row = HourDelivery(adset_id, day, hour, spend, impressions, clicks, dict(actions or {}),
                           dict(action_values or {}))
        self.delivery.append(row)
        return row

    def add_conversions(self, adset_id: str, day: date, hour: int, action_type: str, count: int,
                        value: int = 0) -> None:
        """Late conversions attributed back to an earlier hour (the hour's numbers are restated)."""
        for row in self.delivery:
            if row.adset_id == adset_id and row.day == day and row.hour == hour:
                row.actions[action_type] = row.actions.get(action_type, 0) + count
                row.action_values[action_type] = row.action_values.get(action_type, 0) + value
                return
        raise KeyError(f"no delivery for {adset_id} on {day} hour {hour}")


@dataclass
class ReadHelpers:
    """Closures of ``create_meta_fake`` the read routes share (auth, errors, faults, entity helpers)."""

    read_params: Callable[[Request], Awaitable[dict[str, str]]]
    authenticate: Callable[[Request, dict[str, str]], str]  # the token (the readers only need the check)
    check_version: Callable[[str], None]
    graph_error: Callable[..., JSONResponse]
    invalid: Callable[..., JSONResponse]
    apply_fault: Callable[[str, str], Awaitable[Any]]
    unknown_object: Callable[[str, str], Exception]
    effective_status: Callable[[Any], str]
    ancestor: Callable[[Any, str], str | None]


def _usage_headers(st: MetaFakeState, account_id: str, *, insights: bool) -> dict[str, str]:
    reads = st.reads
    reads.calls[account_id] = reads.calls.get(account_id, 0) + 1
    pct = reads.usage_pct.get(account_id, min(reads.calls[account_id], 60))
    tier = "standard_access"
    headers = {
        "x-business-use-case-usage": json.dumps({f"act_{account_id}": [{
            "type": "ads_insights" if insights else "ads_management", "call_count": pct, "total_cputime": pct,
            "total_time": pct, "estimated_time_to_regain_access": 0, "ads_api_access_tier": tier}]}),
        "x-ad-account-usage": json.dumps({"acc_id_util_pct": pct, "reset_time_duration": 0,
                                          "ads_api_access_tier": tier}),
    }
    if insights:
        headers["x-fb-ads-insights-throttle"] = json.dumps({"app_id_util_pct": pct, "acc_id_util_pct": pct,
                                                            "ads_api_access_tier": tier})
    return headers


def _cursor(i: int) -> str:
    return base64.urlsafe_b64encode(str(i).encode()).decode().rstrip("=")


def _uncursor(c: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(c + "=" * (-len(c) % 4)).decode())
    except ValueError:
        return -1


def _page(request: Request, items: list[dict[str, Any]], params: dict[str, str], default_size: int
          ) -> dict[str, Any] | None:
    """One page of cursor paging; None when ``after`` is not a cursor this fake issued."""
    try:
        size = max(1, min(int(params.get("limit", default_size)), 5000))
    except ValueError:
        size = default_size
    start = 0
    if "after" in params:
        start = _uncursor(params["after"])
        if start < 0:
            return None
    chunk = items[start:start + size]
    body: dict[str, Any] = {"data": chunk}
    if items:
        body["paging"] = {"cursors": {"before": _cursor(start), "after": _cursor(start + len(chunk))}}
        if start + size < len(items):
            query = {k: v for k, v in params.items() if k != "after"}
            query["after"] = _cursor(start + len(chunk))
            body["paging"]["next"] = str(request.url.replace(query=urlencode(query)))
    return body


def _money(minor: int, currency: str) -> str:
    return str(Decimal(minor) / meta_offset(currency))


def reach_of(day_impressions: list[int], *, daily_frequency: float, overlap: float) -> int:
    """People reached by deliveries whose (ad set, local day) impressions are ``day_impressions``: the fake's fixed
    overlap model (module docstring). Less than the sum of the day reaches whenever two of them are positive."""
    days = [math.ceil(i / daily_frequency) for i in day_impressions if i > 0]
    if not days:
        return 0
    top = max(days)
    return top + round((1.0 - overlap) * (sum(days) - top))


def install_read_routes(app: FastAPI, st: MetaFakeState, h: ReadHelpers) -> None:
    """Register the read routes; call before the generic ``/{version}/{object_id}`` routes (they would shadow)."""

    def ok(body: Any, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(body, headers={"x-fb-trace-id": "read", **(headers or {})})

    def account_of(object_id: str) -> Any:
        if not object_id.startswith("act_"):
            raise h.unknown_object(object_id, "get")
        account = st.accounts.get(object_id.removeprefix("act_"))
        if account is None:
            raise h.unknown_object(object_id, "get")
        return account

    @app.get("/{version}/debug_token", response_model=None)
    async def debug_token(version: str, request: Request) -> Response:
        h.check_version(version)
        params = await h.read_params(request)
        h.authenticate(request, params)
        token = params.get("input_token", "")
        if token not in st.access_tokens:
            return ok({"data": {"app_id": st.reads.app_id, "type": st.reads.token_type, "is_valid": False,
                                "error": {"code": 190, "message": "The access token has been revoked or has "
                                          "expired.", "subcode": 460}, "scopes": []}})
        scopes = st.reads.token_scopes.get(token, ["ads_read", "ads_management", "business_management"])
        return ok({"data": {
            "app_id": st.reads.app_id, "type": st.reads.token_type, "application": "Allot", "expires_at": 0,
            "data_access_expires_at": 0, "is_valid": True, "issued_at": 1_700_000_000, "scopes": scopes,
            "granular_scopes": [{"scope": s} for s in scopes], "user_id": "5550001"}})

    def entity_rows(account_id: str, kind: str, fields: list[str]) -> list[dict[str, Any]]:
        rows = []
        for obj in st.objects.values():
            if obj.account_id != account_id or obj.kind != kind:
                continue
            values: dict[str, Any] = {"id": obj.id, "name": obj.name, "status": obj.status,
                                      "configured_status": obj.status, "effective_status": h.effective_status(obj),
                                      "account_id": obj.account_id}
            if obj.daily_budget is not None:
                values["daily_budget"] = str(obj.daily_budget)
            lifetime = getattr(obj, "lifetime_budget", None)
            if lifetime is not None:
                values["lifetime_budget"] = str(lifetime)
            if kind == "adset":
                values["campaign_id"] = h.ancestor(obj, "campaign")
            rows.append({f: values[f] for f in dict.fromkeys(["id", *fields]) if values.get(f) is not None})
        return sorted(rows, key=lambda r: r["id"])

    async def list_edge(version: str, object_id: str, request: Request, kind: str) -> Response:
        h.check_version(version)
        params = await h.read_params(request)
        h.authenticate(request, params)
        account = account_of(object_id)
        await h.apply_fault(object_id, "read")
        fields = [f for f in params.get("fields", "id").split(",") if f]
        for f in fields:
            if f not in ENTITY_FIELDS:
                return h.invalid(f"Tried accessing nonexisting field ({f}) on node type "
                                 f"({'Campaign' if kind == 'campaign' else 'AdSet'})")
        body = _page(request, entity_rows(account.account_id, kind, fields), params, st.reads.page_size)
        if body is None:
            return h.invalid("Invalid cursor")
        return ok(body, _usage_headers(st, account.account_id, insights=False))

    @app.get("/{version}/{object_id}/adsets", response_model=None)
    async def adsets(version: str, object_id: str, request: Request) -> Response:
        return await list_edge(version, object_id, request, "adset")

    @app.get("/{version}/{object_id}/campaigns", response_model=None)
    async def campaigns(version: str, object_id: str, request: Request) -> Response:
        return await list_edge(version, object_id, request, "campaign")

    def insight_rows(account: Any, params: dict[str, str]) -> list[dict[str, Any]] | JSONResponse:
        level = params.get("level", "account")
        if level not in ("campaign", "adset"):
            return h.invalid("level must be one of {campaign, adset} in this fake")
        try:
            tr = json.loads(params.get("time_range", "{}"))
            since, until = date.fromisoformat(tr["since"]), date.fromisoformat(tr["until"])
        except (ValueError, KeyError, TypeError):
            return h.invalid("Param time_range must be a JSON object {since, until} of dates YYYY-MM-DD")
        hourly = _HOURLY in params.get("breakdowns", "").split(",")
        fields = [f for f in params.get("fields", "spend,impressions").split(",") if f]
        if hourly and "reach" in fields:
            return h.invalid("reach by the hour is not modelled by this fake (ingest reads reach per day or range)")
        increment = params.get("time_increment", "all_days")
        if increment not in ("1", "all_days"):
            return h.invalid("time_increment must be 1 or all_days in this fake")
        daily = increment == "1"
        with_attr = params.get("use_account_attribution_setting", "false").lower() == "true"
        groups: dict[tuple[str, date, int], dict[str, Any]] = {}
        for d in st.reads.delivery:
            adset = st.objects.get(d.adset_id)
            if adset is None or adset.account_id != account.account_id or not since <= d.day <= until:
                continue
            entity = adset.id if level == "adset" else (h.ancestor(adset, "campaign") or "")
            key = (entity, d.day if daily else since, d.hour if hourly else -1)
            g = groups.setdefault(key, {"spend": 0, "impressions": 0, "clicks": 0, "actions": {},
                                        "action_values": {}, "adset": adset, "day_impressions": {}})
            g["spend"] += d.spend
            g["impressions"] += d.impressions
            g["clicks"] += d.clicks
            per_day = g["day_impressions"]
            per_day[(d.adset_id, d.day)] = per_day.get((d.adset_id, d.day), 0) + d.impressions
            for src, dst in ((d.actions, g["actions"]), (d.action_values, g["action_values"])):
                for k, v in src.items():
                    if hourly and k.startswith("offsite_conversion."):
                        continue  # Type 1 breakdowns drop off-Meta actions (breakdowns page)
                    dst[k] = dst.get(k, 0) + v
        rows = []
        for (_entity, day, hour), g in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
            adset = g["adset"]
            campaign_id = h.ancestor(adset, "campaign")
            campaign = st.objects.get(campaign_id or "")
            values: dict[str, Any] = {
                "account_id": account.account_id, "campaign_id": campaign_id,
                "campaign_name": campaign.name if campaign else None,
                "spend": _money(g["spend"], account.currency), "impressions": str(g["impressions"]),
                "clicks": str(g["clicks"]),
                "actions": [{"action_type": k, "value": str(v)} for k, v in sorted(g["actions"].items())],
                "action_values": [{"action_type": k, "value": _money(v, account.currency)}
                                  for k, v in sorted(g["action_values"].items())],
                "account_currency": account.currency,
            }
            if "reach" in fields:
                values["reach"] = str(reach_of(list(g["day_impressions"].values()),
                                               daily_frequency=st.reads.daily_frequency,
                                               overlap=st.reads.reach_overlap))
            if level == "adset":
                values.update(adset_id=adset.id, adset_name=adset.name)
            row = {f: values[f] for f in fields if values.get(f) not in (None, [])}
            row.update(date_start=day.isoformat(), date_stop=(day if daily else until).isoformat())
            if hourly:
                row[_HOURLY] = f"{hour:02d}:00:00 - {hour:02d}:59:59"
            if with_attr:
                row["attribution_setting"] = st.reads.attribution_setting
            rows.append(row)
        return rows

    @app.get("/{version}/{object_id}/insights", response_model=None)
    async def insights_get(version: str, object_id: str, request: Request) -> Response:
        h.check_version(version)
        params = await h.read_params(request)
        h.authenticate(request, params)
        run = st.reads.report_runs.get(object_id)
        if run is not None:  # GET /{report_run_id}/insights
            if run.rows is None:
                return h.invalid("Report is not ready yet; poll async_status until 'Job Completed'")
            body = _page(request, run.rows, params, st.reads.page_size)
            return ok(body or {"data": []}, _usage_headers(st, run.account_id, insights=True))
        account = account_of(object_id)
        await h.apply_fault(object_id, "read")
        st.reads.insights_calls.append({"mode": "sync", **params})
        rows = insight_rows(account, params)
        if isinstance(rows, JSONResponse):
            return rows
        if st.reads.max_sync_rows is not None and len(rows) > st.reads.max_sync_rows:
            return h.graph_error(400, "Please reduce the amount of data you're asking for, then retry your request",
                                 100, etype="OAuthException", subcode=1487534)
        body = _page(request, rows, params, st.reads.page_size)
        if body is None:
            return h.invalid("Invalid cursor")
        return ok(body, _usage_headers(st, account.account_id, insights=True))

    @app.post("/{version}/{object_id}/insights", response_model=None)
    async def insights_post(version: str, object_id: str, request: Request) -> Response:
        h.check_version(version)
        params = await h.read_params(request)
        h.authenticate(request, params)
        account = account_of(object_id)
        await h.apply_fault(object_id, "read")
        st.reads.insights_calls.append({"mode": "async", **params})
        rows = insight_rows(account, params)
        if isinstance(rows, JSONResponse):
            return rows
        st.reads._next_run += 1
        run_id = str(st.reads._next_run)
        st.reads.report_runs[run_id] = _ReportRun(run_id, account.account_id, params, st.reads.async_polls, rows)
        return ok({"report_run_id": run_id}, _usage_headers(st, account.account_id, insights=True))

    @app.post("/", response_model=None)
    async def batch_root(request: Request) -> Response:
        return await batch(request, None)

    @app.post("/{version}", response_model=None)
    async def batch_versioned(version: str, request: Request) -> Response:
        h.check_version(version)
        return await batch(request, version)

    async def batch(request: Request, version: str | None) -> Response:
        params = await h.read_params(request)
        h.authenticate(request, params)
        try:
            ops = json.loads(params.get("batch", ""))
            assert isinstance(ops, list) and all(isinstance(o, dict) and "relative_url" in o for o in ops)
        except (ValueError, AssertionError):
            return h.invalid("Param batch must be a JSON array of {method, relative_url}")
        if len(ops) > 50:
            return h.invalid("Too many requests in batch message. Maximum batch size is 50")
        token = params.get("access_token")
        if token is None:
            _, _, token = request.headers.get("authorization", "").partition(" ")
        transport = httpx.ASGITransport(app=app)
        out = []
        async with httpx.AsyncClient(transport=transport, base_url="http://graph.local") as client:
            for op in ops:
                rel = str(op["relative_url"]).lstrip("/")
                if version and not rel.startswith("v"):
                    rel = f"{version}/{rel}"
                extra = {"access_token": token.strip()}
                for k in ("appsecret_proof",):
                    if k in params:
                        extra[k] = params[k]
                sep = "&" if "?" in rel else "?"
                method = str(op.get("method", "GET")).upper()
                resp = await client.request(method, f"/{rel}{sep}{urlencode(extra)}",
                                            content=op.get("body"),
                                            headers={"content-type": "application/x-www-form-urlencoded"}
                                            if op.get("body") else None)
                out.append({"code": resp.status_code,
                            "headers": [{"name": k, "value": v} for k, v in resp.headers.items()
                                        if k.startswith("x-")],
                            "body": resp.text})
        return ok(out)


def report_run_node(st: MetaFakeState, object_id: str, fields: list[str]) -> dict[str, Any] | None:
    """``GET /{report_run_id}``: the job's status (each poll advances it); None when not a report run."""
    run = st.reads.report_runs.get(object_id)
    if run is None:
        return None
    if run.rows is None:
        run.polls_left -= 1
        if run.polls_left <= 0:
            run.rows = run.pending
    done = run.rows is not None
    total = max(st.reads.async_polls, 1)
    values = {"id": run.id, "account_id": run.account_id,
              "async_status": "Job Completed" if done else ("Job Running" if run.polls_left < total
                                                            else "Job Not Started"),
              "async_percent_completion": 100 if done else int(100 * (total - run.polls_left) / total)}
    # A malformed time_range was refused when the run was created; if one slips through, show no dates.
    with contextlib.suppress(ValueError):
        tr = json.loads(run.params.get("time_range", "{}"))
        values.update(date_start=tr.get("since"), date_stop=tr.get("until"))
    return {f: values[f] for f in dict.fromkeys(["id", *fields]) if values.get(f) is not None}


def account_values(st: MetaFakeState, account_id: str) -> dict[str, Any]:
    """The read-side fields of ``GET /act_{id}`` (https://developers.facebook.com/docs/marketing-api/reference/ad-account/):
    ``timezone_name`` (IANA), ``timezone_offset_hours_utc``, ``account_status`` (1 active, 2 disabled,
    3 unsettled, 101 closed)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    tz = st.reads.timezones.get(account_id, "America/Los_Angeles")
    offset = datetime.now(ZoneInfo(tz)).utcoffset() or timedelta(0)
    return {"timezone_name": tz, "timezone_offset_hours_utc": offset.total_seconds() / 3600,
            "account_status": _ACCOUNT_STATUS.get(st.reads.account_status.get(account_id, "active"), 1)}
