"""A local fake of the Meta Graph API for the subset the executor uses, speaking Graph's HTTP contract.

Supported, under ``/{version}/...`` with ``version`` like ``v21.0``:

* ``GET /{version}/{object_id}?fields=...`` on campaigns, ad sets, ads and ad accounts (``act_<id>``):
  ``id, name, status, configured_status, effective_status, daily_budget, account_id, campaign_id, adset_id``
  (``currency, account_status`` on accounts). ``daily_budget`` is a string of minor units and is
  omitted when the object has none, as Graph omits empty fields.
* ``POST /{version}/{object_id}`` with ``daily_budget`` and/or ``status`` (query, form or JSON) → ``{"success": true}``.
* ``POST /{version}/{object_id}/copies`` (``status_option``) → ``{"copied_<type>_id": ...}``.

The token comes from ``access_token`` (query, form or JSON) or ``Authorization: OAuth|Bearer <token>``.
Errors use Graph's body ``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``.
Every response carries ``x-fb-trace-id``; answers about an account carry the rate-limit usage headers
(``x-business-use-case-usage``, ``x-ad-account-usage``, ``x-app-usage``; ``/_fake/usage`` sets the
percentages). ``appsecret_proof`` is verified when ``app_secret`` is set (error 100, "Invalid appsecret_proof
provided in the API argument"); a token known to lack ``ads_management`` cannot write (error 200);
``/_fake/deprecated_versions`` makes versions answer error 2635. ``/_fake/...`` routes (no token) seed
objects, arm faults and expose the write log, which records every applied change once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import re
import secrets
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from allot.fakes.meta import insights as _reads

__all__ = ["GraphAccount", "GraphObject", "GraphWrite", "MetaFakeState", "create_meta_fake"]

ObjectKind = Literal["campaign", "adset", "ad"]
_NODE_TYPE = {"campaign": "Campaign", "adset": "AdSet", "ad": "Ad"}
_STATUSES = ("ACTIVE", "PAUSED", "DELETED", "ARCHIVED")
_VERSION = re.compile(r"^v\d+\.\d+$")
_OBJECT_FIELDS = frozenset(
    {
        "id",
        "name",
        "status",
        "configured_status",
        "effective_status",
        "daily_budget",
        "account_id",
        "campaign_id",
        "adset_id",
    }
)
_ACCOUNT_FIELDS = frozenset({"id", "account_id", "name", "currency", "account_status"})
_WRITE_PARAMS = frozenset({"daily_budget", "status"})
_AUTH_PARAMS = frozenset({"access_token", "appsecret_proof"})


@dataclass(slots=True)
class GraphAccount:
    """An ad account; ``account_id`` is the bare number, its node id is ``act_<account_id>``."""

    account_id: str
    currency: str = "USD"
    name: str = ""


@dataclass(slots=True)
class GraphObject:
    """A campaign, ad set or ad. ``daily_budget`` is in the account currency's minor units (None: no daily budget)."""

    id: str
    kind: ObjectKind
    account_id: str
    name: str = ""
    daily_budget: int | None = None
    status: str = "ACTIVE"
    parent_id: str | None = None


@dataclass(frozen=True, slots=True)
class GraphWrite:
    """One field changed by one accepted POST (copies log one ``copy`` record)."""

    seq: int
    object_id: str
    field: str
    old: str | None
    new: str | None
    fbtrace_id: str


@dataclass(slots=True)
class _Fault:
    kind: str
    remaining: int | None
    probability: float | None
    rng: random.Random
    object_id: str | None
    on: str
    code: int
    error_subcode: int | None
    http_status: int
    message: str | None
    delay_s: float
    retry_after_s: float | None
    regain_access_minutes: int
    applied: bool


@dataclass
class MetaFakeState:
    """Objects, valid tokens, armed faults and the write log of one fake Graph API."""

    access_tokens: set[str] = field(default_factory=lambda: {"test-token"})
    app_secret: str | None = None
    """When set, every call must carry ``appsecret_proof`` = HMAC-SHA256(app_secret, access_token)."""
    min_daily_budget: int = 100
    deprecated_versions: set[str] = field(default_factory=set)
    """Versions answered with error 2635 "You are calling a deprecated version of the Ads API" (arm to test)."""
    latest_version: str = "v27.0"
    """The version a 2635 error tells the caller to upgrade to."""
    app_usage_pct: int = 1
    """What ``x-app-usage`` reports (call_count / total_time / total_cputime, percent)."""
    accounts: dict[str, GraphAccount] = field(default_factory=dict)
    objects: dict[str, GraphObject] = field(default_factory=dict)
    writes: list[GraphWrite] = field(default_factory=list)
    faults: list[_Fault] = field(default_factory=list)
    #: the read side (time zones, scopes, hourly delivery, report runs): see insights.py
    reads: _reads.ReadSide = field(default_factory=_reads.ReadSide)
    _next_id: int = 120_000_000_000_000

    def add_account(self, account_id: str, currency: str = "USD", name: str = "") -> GraphAccount:
        """Register ``act_<account_id>`` (a leading ``act_`` is accepted and stripped)."""
        account = GraphAccount(account_id.removeprefix("act_"), currency, name)
        self.accounts[account.account_id] = account
        return account

    def add_object(
        self,
        object_id: str,
        kind: ObjectKind,
        account_id: str,
        *,
        name: str = "",
        daily_budget: int | None = None,
        status: str = "ACTIVE",
        parent_id: str | None = None,
    ) -> GraphObject:
        """Register a campaign / ad set / ad (its account is created in USD if unknown)."""
        account_id = account_id.removeprefix("act_")
        if account_id not in self.accounts:
            self.add_account(account_id)
        obj = GraphObject(object_id, kind, account_id, name or object_id, daily_budget, status, parent_id)
        self.objects[object_id] = obj
        return obj

    def add_fault(
        self,
        kind: Literal["rate_limit", "server_error", "timeout", "slow", "error"],
        *,
        count: int | None = None,
        probability: float | None = None,
        seed: int = 0,
        object_id: str | None = None,
        on: Literal["any", "read", "write"] = "any",
        code: int | None = None,
        error_subcode: int | None = None,
        http_status: int | None = None,
        message: str | None = None,
        delay_s: float = 0.0,
        retry_after_s: float | None = None,
        regain_access_minutes: int = 1,
        applied: bool = False,
    ) -> None:
        """Arm a fault for the next ``count`` matching calls (default 1) or each call with ``probability``."""
        if count is None and probability is None:
            count = 1
        defaults = {"rate_limit": (17, 2446079, 400), "server_error": (2, None, 500), "error": (100, None, 400)}
        d_code, d_sub, d_http = defaults.get(kind, (0, None, 504))
        self.faults.append(
            _Fault(
                kind=kind,
                remaining=count,
                probability=probability,
                rng=random.Random(seed),
                object_id=object_id,
                on=on,
                code=code if code is not None else d_code,
                error_subcode=error_subcode if error_subcode is not None else d_sub,
                http_status=http_status or d_http,
                message=message,
                delay_s=delay_s,
                retry_after_s=retry_after_s,
                regain_access_minutes=regain_access_minutes,
                applied=applied,
            )
        )

    def draw_fault(self, object_id: str, operation: str) -> _Fault | None:
        """The first armed fault that fires on this call (count faults are consumed when they fire)."""
        for fault in self.faults:
            if fault.object_id is not None and fault.object_id != object_id:
                continue
            if fault.on not in ("any", operation):
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
            if fault.probability is not None and fault.rng.random() < fault.probability:
                return fault
        return None

    def new_id(self) -> str:
        """A fresh numeric object id."""
        self._next_id += 1
        return str(self._next_id)


# ---------------------------------------------------------------- admin bodies


class _Admin(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _AccountBody(_Admin):
    account_id: str = Field(min_length=1)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    name: str = ""


class _ObjectBody(_Admin):
    id: str = Field(min_length=1, pattern=r"^[0-9A-Za-z_]+$")
    kind: ObjectKind
    account_id: str = Field(min_length=1)
    name: str = ""
    daily_budget: Annotated[StrictInt, Field(ge=0)] | None = None
    status: Literal["ACTIVE", "PAUSED", "DELETED", "ARCHIVED"] = "ACTIVE"
    parent_id: str | None = None


class _FaultBody(_Admin):
    kind: Literal["rate_limit", "server_error", "timeout", "slow", "error"]
    count: StrictInt | None = Field(default=None, ge=1)
    probability: float | None = Field(default=None, ge=0, le=1)
    seed: StrictInt = 0
    object_id: str | None = None
    on: Literal["any", "read", "write"] = "any"
    code: StrictInt | None = None
    error_subcode: StrictInt | None = None
    http_status: StrictInt | None = Field(default=None, ge=400, le=599)
    message: str | None = None
    delay_s: float = Field(default=0.0, ge=0, le=600)
    retry_after_s: float | None = Field(default=None, ge=0)
    regain_access_minutes: StrictInt = Field(default=1, ge=0)
    applied: bool = False


class _UsageBody(_Admin):
    account_id: str | None = None
    pct: StrictInt = Field(ge=0, le=1000)
    app_pct: StrictInt | None = Field(default=None, ge=0, le=1000)


class _VersionsBody(_Admin):
    versions: list[Annotated[str, Field(pattern=r"^v\d+\.\d+$")]]


# ---------------------------------------------------------------- the app


def create_meta_fake(state: MetaFakeState | None = None) -> FastAPI:
    """A FastAPI app behaving like graph.facebook.com for reading and writing budgets and statuses over ``state``."""
    st = state if state is not None else MetaFakeState()
    app = FastAPI(title="Fake Meta Graph API")
    app.state.meta = st

    def trace_id() -> str:
        return secrets.token_urlsafe(8)

    def graph_error(
        http_status: int,
        message: str,
        code: int,
        *,
        etype: str = "OAuthException",
        subcode: int | None = None,
        is_transient: bool | None = None,
        user_msg: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> JSONResponse:
        fbtrace = trace_id()
        err: dict[str, Any] = {"message": message, "type": etype, "code": code}
        if subcode is not None:
            err["error_subcode"] = subcode
        if is_transient is not None:
            err["is_transient"] = is_transient
        if user_msg is not None:
            err["error_user_title"] = "Invalid parameter"
            err["error_user_msg"] = user_msg
        err["fbtrace_id"] = fbtrace
        return JSONResponse(
            {"error": err}, status_code=http_status, headers={"x-fb-trace-id": fbtrace, **(headers or {})}
        )

    def invalid(message: str, user_msg: str | None = None) -> JSONResponse:
        return graph_error(400, f"(#100) {message}", 100, user_msg=user_msg)

    async def read_params(request: Request) -> dict[str, str]:
        params: dict[str, str] = dict(request.query_params)
        if request.method == "POST":
            ctype = request.headers.get("content-type", "")
            if ctype.startswith("application/json"):
                try:
                    body = json.loads(await request.body() or b"{}")
                except ValueError:
                    body = None
                if not isinstance(body, dict):
                    raise _GraphFailure(invalid("Invalid JSON body"))
                params.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()})
            elif ctype.startswith("application/x-www-form-urlencoded"):
                # Parsed by hand: Starlette's form parser needs python-multipart, which we do not depend on.
                try:
                    pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True, strict_parsing=False)
                except UnicodeDecodeError:
                    raise _GraphFailure(invalid("Invalid form body")) from None
                params.update(pairs)
            elif await request.body():
                raise _GraphFailure(invalid(f"Unsupported content type {ctype.split(';')[0] or 'none'}"))
        return params

    def authenticate(request: Request, params: dict[str, str]) -> str:
        token = params.get("access_token")
        if token is None:
            scheme, _, value = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() in ("oauth", "bearer") and value:
                token = value.strip()
        if not token:
            raise _GraphFailure(graph_error(400, "An access token is required to request this resource.", 104))
        if not any(secrets.compare_digest(token.encode(), t.encode()) for t in st.access_tokens):
            raise _GraphFailure(graph_error(400, "Invalid OAuth access token - Cannot parse access token", 190))
        if st.app_secret is not None:
            expected = hmac.new(st.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
            if not secrets.compare_digest(params.get("appsecret_proof", ""), expected):
                raise _GraphFailure(
                    graph_error(
                        400, "Invalid appsecret_proof provided in the API argument", 100, etype="GraphMethodException"
                    )
                )
        return token

    def require_write_scope(token: str) -> None:
        # A token whose scopes are known (debug_token, insights.py) and lack ads_management cannot write:
        # Graph answers (#200) "Requires ads_management permission" (Marketing API "Authorization" /
        # https://developers.facebook.com/docs/marketing-api/overview/authorization).
        scopes = st.reads.token_scopes.get(token)
        if scopes is not None and "ads_management" not in scopes:
            raise _GraphFailure(graph_error(
                403, "(#200) Requires ads_management permission to manage the object", 200, etype="OAuthException"))

    def usage_headers(account_id: str | None) -> dict[str, str]:
        # On every Graph answer about an account: x-business-use-case-usage and x-ad-account-usage (shared with
        # the read side, insights.py) and x-app-usage {call_count, total_time, total_cputime} in percent.
        # Shapes: https://developers.facebook.com/docs/graph-api/overview/rate-limiting
        # Object reads and writes do not count towards the read side's growing default (insights.py): they
        # report what /_fake/usage set for the account (default 1 %).
        app = st.app_usage_pct
        headers = {"x-app-usage": json.dumps({"call_count": app, "total_time": app, "total_cputime": app})}
        if account_id is not None:
            pct = st.reads.usage_pct.get(account_id, 1)
            headers["x-business-use-case-usage"] = json.dumps({f"act_{account_id}": [{
                "type": "ads_management", "call_count": pct, "total_cputime": pct, "total_time": pct,
                "estimated_time_to_regain_access": 0, "ads_api_access_tier": "standard_access"}]})
            headers["x-ad-account-usage"] = json.dumps({"acc_id_util_pct": pct, "reset_time_duration": 0,
                                                        "ads_api_access_tier": "standard_access"})
        return headers

    async def apply_fault(object_id: str, operation: str) -> _Fault | None:
        """Raise the injected failure, or return an 'applied' timeout to stall after the write lands."""
        fault = st.draw_fault(object_id, operation)
        if fault is None:
            return None
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay_s)
            return None
        if fault.kind == "timeout":
            if fault.applied and operation == "write":
                return fault
            await asyncio.sleep(fault.delay_s or 30.0)
            raise _GraphFailure(graph_error(504, "Gateway timeout", 2, is_transient=True))
        headers: dict[str, str] = {}
        if fault.retry_after_s is not None:
            headers["Retry-After"] = str(int(-(-fault.retry_after_s // 1)))
        if fault.kind == "rate_limit":
            usage = {
                "type": "ads_management",
                "call_count": 100,
                "total_cputime": 25,
                "total_time": 25,
                "estimated_time_to_regain_access": fault.regain_access_minutes,
            }
            obj = st.objects.get(object_id)
            business = f"act_{obj.account_id}" if obj is not None else "0"
            headers["x-business-use-case-usage"] = json.dumps({business: [usage]})
            message = fault.message or {
                4: "(#4) Application request limit reached",
                17: "(#17) User request limit reached",
                32: "(#32) Page request limit reached",
                613: "(#613) Calls to this api have exceeded the rate limit.",
            }.get(fault.code, "(#80004) There have been too many calls to this ad-account. Wait a bit and try again.")
            raise _GraphFailure(
                graph_error(fault.http_status, message, fault.code, subcode=fault.error_subcode, headers=headers)
            )
        if fault.kind == "server_error":
            raise _GraphFailure(
                graph_error(
                    fault.http_status,
                    fault.message or "An unexpected error has occurred. Please retry your request later.",
                    fault.code,
                    is_transient=True,
                    headers=headers,
                )
            )
        raise _GraphFailure(
            graph_error(
                fault.http_status,
                fault.message or f"(#{fault.code}) Injected error",
                fault.code,
                subcode=fault.error_subcode,
                headers=headers,
            )
        )

    def unknown_object(object_id: str, method: str) -> _GraphFailure:
        return _GraphFailure(
            graph_error(
                400,
                f"Unsupported {method} request. Object with ID '{object_id}' does not exist, cannot be loaded due "
                "to missing permissions, or does not support this operation.",
                100,
                etype="GraphMethodException",
                subcode=33,
            )
        )

    def check_version(version: str) -> None:
        if not _VERSION.match(version):
            raise _GraphFailure(graph_error(400, "Unknown path components: /" + version, 2500))
        if version in st.deprecated_versions:
            # The error Meta returns once a Marketing API version has expired (Meta for Developers blog,
            # "Upcoming change in Marketing API version deprecation", 2024-04-16).
            raise _GraphFailure(graph_error(
                400, f"(#2635) You are calling a deprecated version of the Ads API. Please update to the latest "
                f"version: {st.latest_version}.", 2635))

    def effective_status(obj: GraphObject) -> str:
        if obj.status != "ACTIVE":
            return obj.status
        parent = st.objects.get(obj.parent_id) if obj.parent_id else None
        while parent is not None:
            if parent.status != "ACTIVE":
                return "CAMPAIGN_PAUSED" if parent.kind == "campaign" else "ADSET_PAUSED"
            parent = st.objects.get(parent.parent_id) if parent.parent_id else None
        return "ACTIVE"

    def ancestor(obj: GraphObject, kind: str) -> str | None:
        node: GraphObject | None = obj
        while node is not None:
            if node.kind == kind:
                return node.id
            node = st.objects.get(node.parent_id) if node.parent_id else None
        return None

    def ok(body: dict[str, Any], fbtrace: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(body, headers={"x-fb-trace-id": fbtrace or trace_id(), **(headers or {})})

    @app.exception_handler(_GraphFailure)
    async def _failure(_: Request, exc: _GraphFailure) -> Response:
        return exc.response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
        where = ".".join(str(p) for p in first["loc"])
        return invalid(f"Invalid parameter {where}: {first['msg']}")

    # ------------------------------------------------------------ admin (declared first: they shadow /{version}/...)

    @app.post("/_fake/accounts", status_code=201)
    async def seed_account(body: _AccountBody) -> dict[str, str]:
        acc = st.add_account(body.account_id, body.currency, body.name)
        return {"id": f"act_{acc.account_id}"}

    @app.post("/_fake/objects", status_code=201)
    async def seed_object(body: _ObjectBody) -> dict[str, str]:
        st.add_object(
            body.id,
            body.kind,
            body.account_id,
            name=body.name,
            daily_budget=body.daily_budget,
            status=body.status,
            parent_id=body.parent_id,
        )
        return {"id": body.id}

    @app.post("/_fake/faults", status_code=201)
    async def arm_fault(body: _FaultBody) -> dict[str, int]:
        st.add_fault(**body.model_dump())
        return {"armed": len(st.faults)}

    @app.post("/_fake/usage", status_code=201)
    async def set_usage(body: _UsageBody) -> dict[str, int]:
        if body.account_id is not None:
            st.reads.usage_pct[body.account_id.removeprefix("act_")] = body.pct
        if body.app_pct is not None:
            st.app_usage_pct = body.app_pct
        return {"pct": body.pct}

    @app.post("/_fake/deprecated_versions", status_code=201)
    async def deprecate(body: _VersionsBody) -> dict[str, list[str]]:
        st.deprecated_versions = set(body.versions)
        return {"deprecated": sorted(st.deprecated_versions)}

    @app.delete("/_fake/faults")
    async def clear_faults() -> dict[str, int]:
        n = len(st.faults)
        st.faults.clear()
        return {"cleared": n}

    @app.get("/_fake/writes")
    async def writes(object_id: str | None = None) -> dict[str, Any]:
        return {
            "writes": [
                {
                    "seq": w.seq,
                    "object_id": w.object_id,
                    "field": w.field,
                    "old": w.old,
                    "new": w.new,
                    "fbtrace_id": w.fbtrace_id,
                }
                for w in st.writes
                if object_id is None or w.object_id == object_id
            ]
        }

    # ------------------------------------------------------------ Graph

    _reads.install_read_routes(app, st, _reads.ReadHelpers(
        read_params=read_params, authenticate=authenticate, check_version=check_version, graph_error=graph_error,
        invalid=invalid, apply_fault=apply_fault, unknown_object=unknown_object, effective_status=effective_status,
        ancestor=ancestor))

    @app.get("/{version}/{object_id}", response_model=None)
    async def read(version: str, object_id: str, request: Request) -> Response:
        check_version(version)
        params = await read_params(request)
        authenticate(request, params)
        await apply_fault(object_id, "read")
        fields = [f for f in params.get("fields", "id").split(",") if f] or ["id"]
        run = _reads.report_run_node(st, object_id, fields)
        if run is not None:
            return ok(run)
        if object_id.startswith("act_"):
            account = st.accounts.get(object_id.removeprefix("act_"))
            if account is None:
                raise unknown_object(object_id, "get")
            for f in fields:
                if f not in _ACCOUNT_FIELDS | _reads.READ_ACCOUNT_FIELDS:
                    return invalid(f"Tried accessing nonexisting field ({f}) on node type (AdAccount)")
            values: dict[str, Any] = {
                "id": object_id,
                "account_id": account.account_id,
                "name": account.name,
                "currency": account.currency,
                "account_status": 1,
                **_reads.account_values(st, account.account_id),
            }
            return ok({f: values[f] for f in ["id", *fields] if f in values},
                      headers=usage_headers(account.account_id))
        obj = st.objects.get(object_id)
        if obj is None:
            raise unknown_object(object_id, "get")
        for f in fields:
            if f not in _OBJECT_FIELDS:
                return invalid(f"Tried accessing nonexisting field ({f}) on node type ({_NODE_TYPE[obj.kind]})")
        values = {
            "id": obj.id,
            "name": obj.name,
            "status": obj.status,
            "configured_status": obj.status,
            "effective_status": effective_status(obj),
            "account_id": obj.account_id,
        }
        if obj.daily_budget is not None:
            values["daily_budget"] = str(obj.daily_budget)
        if obj.kind != "campaign":
            values["campaign_id"] = ancestor(obj, "campaign")
        if obj.kind == "ad":
            values["adset_id"] = obj.parent_id
        return ok({f: values[f] for f in dict.fromkeys(["id", *fields]) if values.get(f) is not None},
                  headers=usage_headers(obj.account_id))

    @app.post("/{version}/{object_id}", response_model=None)
    async def write(version: str, object_id: str, request: Request) -> Response:
        check_version(version)
        params = await read_params(request)
        require_write_scope(authenticate(request, params))
        obj = st.objects.get(object_id)
        late = await apply_fault(object_id, "write")
        if obj is None:
            raise unknown_object(object_id, "post")
        changes = {k: v for k, v in params.items() if k not in _AUTH_PARAMS}
        unknown = sorted(set(changes) - _WRITE_PARAMS)
        if unknown:
            return invalid(f"Invalid parameter: {unknown[0]}")
        if not changes:
            return invalid("No fields to update")
        budget: int | None = None
        if "daily_budget" in changes:
            raw = changes["daily_budget"]
            if not raw.isdigit():
                return invalid("Invalid parameter: daily_budget must be an integer in minor units")
            budget = int(raw)
            if obj.daily_budget is None:
                return invalid("Invalid parameter: daily_budget", "This object has no daily budget of its own.")
            if budget < st.min_daily_budget:
                return invalid("Invalid parameter", f"Your budget is too low. The minimum is {st.min_daily_budget}.")
        status = changes.get("status")
        if status is not None and status not in _STATUSES:
            return invalid(f"Param status must be one of {{{', '.join(_STATUSES)}}}")
        if obj.status == "DELETED":
            return invalid("Invalid parameter", "The object has been deleted.")
        fbtrace = trace_id()
        if budget is not None:
            st.writes.append(
                GraphWrite(len(st.writes) + 1, object_id, "daily_budget", str(obj.daily_budget), str(budget), fbtrace)
            )
            obj.daily_budget = budget
        if status is not None:
            st.writes.append(GraphWrite(len(st.writes) + 1, object_id, "status", obj.status, status, fbtrace))
            obj.status = status
        if late is not None:
            await asyncio.sleep(late.delay_s or 30.0)
        return ok({"success": True}, fbtrace, usage_headers(obj.account_id))

    @app.post("/{version}/{object_id}/copies", response_model=None)
    async def copy(version: str, object_id: str, request: Request) -> Response:
        check_version(version)
        params = await read_params(request)
        require_write_scope(authenticate(request, params))
        obj = st.objects.get(object_id)
        late = await apply_fault(object_id, "write")
        if obj is None:
            raise unknown_object(object_id, "post")
        status_option = params.get("status_option", "PAUSED")
        if status_option not in ("ACTIVE", "PAUSED", "INHERITED_FROM_SOURCE"):
            return invalid("Param status_option must be one of {ACTIVE, PAUSED, INHERITED_FROM_SOURCE}")
        new_id = st.new_id()
        new_status = obj.status if status_option == "INHERITED_FROM_SOURCE" else status_option
        st.objects[new_id] = GraphObject(
            new_id, obj.kind, obj.account_id, f"{obj.name} - Copy", obj.daily_budget, new_status, obj.parent_id
        )
        fbtrace = trace_id()
        st.writes.append(GraphWrite(len(st.writes) + 1, object_id, "copy", None, new_id, fbtrace))
        if late is not None:
            await asyncio.sleep(late.delay_s or 30.0)
        return ok({f"copied_{obj.kind}_id": new_id}, fbtrace, usage_headers(obj.account_id))

    return app


class _GraphFailure(Exception):
    """Carries a ready Graph error response out of a helper."""

    def __init__(self, response: Response) -> None:
        super().__init__("graph failure")
        self.response = response
