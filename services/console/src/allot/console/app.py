"""The console: server-rendered pages (FastAPI + Jinja2, htmx as a static file) over the services' HTTP APIs.

Every call goes to the owning service's API with the signed-in user's own key, so the console shows exactly
what the APIs allow (a viewer's key cannot change anything even if a form were forged). Sessions live on the
server; the cookie holds a random id (HttpOnly, SameSite=Strict, Secure over TLS); every POST carries the
session's CSRF token.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from allot.console import charts, describe, wizard
from allot.console import formatting as fmt
from allot.console.clients import Problem, ServiceDown, Services
from allot.console.sessions import COOKIE, Session, SessionStore
from allot.console.settings import ConsoleSettings
from allot.runtime.auth import ApiKeyStore
from allot.runtime.logging import configure_logging, get_logger
from allot.runtime.metrics import HTTP_REQUESTS

log = get_logger(__name__)
HERE = Path(__file__).parent
POOLS = "/automation/budget-pools"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


class NeedSignIn(Exception):
    """The request has no valid session: it is redirected to the sign-in page (and back afterwards)."""


class Forbidden(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def htmx_file(settings: ConsoleSettings) -> Path | None:
    candidates = [Path(settings.console_htmx_path)] if settings.console_htmx_path else []
    candidates.append(Path(sys.prefix) / "share" / "allot-console" / "htmx.min.js")
    return next((p for p in candidates if p.is_file()), None)


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    settings = settings or ConsoleSettings(service_name="console")
    keys = ApiKeyStore.from_json(settings.api_keys)
    sessions = SessionStore(settings.console_session_ttl_s)
    services = Services({"pools": settings.pools_url, "guardrails": settings.guardrails_url,
                         "executor": settings.executor_url, "rules": settings.rules_url,
                         "pacing": settings.pacing_url}, settings.console_request_timeout_s)
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    htmx = htmx_file(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        configure_logging("console", settings.log_level)
        if htmx is None:
            log.warning("htmx_missing", detail="htmx.min.js not installed: pages work as plain forms")
        log.info("console_started", http_port=settings.http_port, services=sorted(services.urls))
        yield
        await services.aclose()

    app = FastAPI(title="Allot console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sessions = sessions
    app.state.services = services

    # ------------------------------------------------------------ plumbing

    def current(request: Request) -> Session | None:
        return sessions.get(request.cookies.get(COOKIE))

    def signed_in(request: Request) -> Session:
        s = current(request)
        if s is None or not s.signed_in:
            raise NeedSignIn
        return s

    def set_cookie(request: Request, response: Response, s: Session) -> None:
        secure = settings.console_secure_cookie == "always" or (
            settings.console_secure_cookie == "auto" and request.url.scheme == "https")
        response.set_cookie(COOKIE, s.sid, httponly=True, samesite="strict", secure=secure, path="/",
                            max_age=settings.console_session_ttl_s)

    def render(request: Request, template: str, s: Session | None, status: int = 200, **values: Any) -> HTMLResponse:
        locale = fmt.locale_of(request.headers.get("accept-language"))
        flashes = list(s.flash) if s else []
        if s:
            s.flash.clear()
        html = env.get_template(template).render(
            request=request, s=s, csrf=s.csrf if s else "", path=request.url.path, flashes=flashes,
            can_operate=bool(s and s.can("operator")), is_admin=bool(s and s.can("admin")), htmx=htmx is not None,
            money=lambda c, cur=None: fmt.money(c, cur, locale), when=fmt.when, cadence=fmt.cadence,
            metrics=fmt.METRICS, outcomes=fmt.OUTCOMES, verdicts=fmt.VERDICTS, amount_input=fmt.amount_input,
            pct=lambda v, **kw: fmt.pct(v, locale, **kw), day=fmt.day, words=describe, **values)
        response = HTMLResponse(html, status_code=status)
        if s:
            set_cookie(request, response, s)
        return response

    def redirect(url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303)

    async def form_of(request: Request, s: Session) -> dict[str, Any]:
        form = await request.form()
        if not s.csrf_ok(form.get("csrf_token")):  # type: ignore[arg-type]
            raise Forbidden("The form expired or did not come from this console (CSRF check). Reload the page.")
        return {k: (form.getlist(k) if len(form.getlist(k)) > 1 or k in ("member", "rule_id") else form.get(k))
                for k in form}

    async def attempt(call: Awaitable[Any], down: list[ServiceDown]) -> Any:
        """The call's answer, or None with the service recorded as down (the page shows which)."""
        try:
            return await call
        except ServiceDown as exc:
            down.append(exc)
            return None
        except Problem as exc:  # a read refused (e.g. an older service without the route): shown like an outage
            down.append(ServiceDown(exc.service, f"answered {exc.status}: {exc.message}"))
            return None

    async def optional(call: Awaitable[Any], down: list[ServiceDown]) -> Any:
        """Like ``attempt``, but a 404 is an answer (nothing there yet, or a route an older service lacks): None."""
        try:
            return await call
        except Problem as exc:
            if exc.status != 404:
                down.append(ServiceDown(exc.service, f"answered {exc.status}: {exc.message}"))
            return None
        except ServiceDown as exc:
            down.append(exc)
            return None

    async def perform(
        s: Session, call: Awaitable[Any], ok: Callable[[Any], str], refused: str, unavailable: str
    ) -> None:
        """Make a change through a service; the outcome becomes the next page's message (a refusal gives the
        service's reason after ``refused``; an outage names the service, then ``unavailable``)."""
        try:
            result = await call
        except Problem as exc:
            s.flash.append(("error", f"{refused}: {exc.message}"))
        except ServiceDown as exc:
            s.flash.append(("error", f"The {exc.label} service is unavailable; {unavailable}"))
        else:
            s.flash.append(("ok", ok(result)))

    def api(s: Session) -> Callable[..., Awaitable[Any]]:
        def call(service: str, method: str, path: str, **kw: Any) -> Awaitable[Any]:
            assert s.api_key is not None
            return services.call(service, method, path, s.api_key, **kw)
        return call

    @app.exception_handler(NeedSignIn)
    async def _need_sign_in(request: Request, _: NeedSignIn) -> Response:
        nxt = request.url.path if request.method == "GET" else "/"
        return redirect(f"/sign-in?next={quote(nxt)}")

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        return render(request, "message.html", current(request), status=403, title="Not allowed",
                      message=exc.message)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("console_error", path=request.url.path, error=repr(exc))
        return render(request, "message.html", current(request), status=500, title="Something went wrong",
                      message="The console could not show this page. The error is logged; try again.")

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        route = request.scope.get("route")
        HTTP_REQUESTS.labels("console", request.method, getattr(route, "path", "unmatched"),
                             str(response.status_code)).inc()
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers["Cache-Control"] = "no-store"
        return response

    # ------------------------------------------------------------ ops and static

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "alive", "service": "console"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        return JSONResponse({"ready": True, "checks": {"started": True, "htmx": htmx is not None},
                             "services": sorted(services.urls)})

    @app.get("/static/console.css", include_in_schema=False)
    async def css() -> FileResponse:
        return FileResponse(HERE / "static" / "console.css", media_type="text/css")

    @app.get("/static/htmx.min.js", include_in_schema=False)
    async def htmx_js() -> Response:
        if htmx is None:
            return Response("/* htmx not installed */", media_type="text/javascript")
        return FileResponse(htmx, media_type="text/javascript")

    # ------------------------------------------------------------ sign-in

    @app.get("/sign-in")
    async def sign_in_page(request: Request, next: str = "/") -> Response:  # noqa: A002
        s = current(request) or sessions.new()
        return render(request, "sign_in.html", s, next=next, errors={})

    @app.post("/sign-in")
    async def sign_in(request: Request) -> Response:
        s = current(request)
        form = await request.form()
        nxt = str(form.get("next") or "/")
        if not nxt.startswith("/") or nxt.startswith("//"):
            nxt = "/"
        if s is None or not s.csrf_ok(form.get("csrf_token")):  # type: ignore[arg-type]
            s = s or sessions.new()
            return render(request, "sign_in.html", s, status=400, next=nxt,
                          errors={"api_key": "The sign-in form expired; enter the key again."})
        raw = str(form.get("api_key") or "").strip()
        principal = keys.authenticate(raw) if raw else None
        if principal is None:
            return render(request, "sign_in.html", s, status=401, next=nxt,
                          errors={"api_key": "API key: not a valid key" if raw else "API key: enter your key"})
        s = sessions.rotate(s)
        s.api_key, s.key_id, s.workspace_id, s.role = raw, principal.key_id, principal.workspace_id, principal.role
        log.info("console_signed_in", key_id=principal.key_id, workspace_id=principal.workspace_id,
                 role=principal.role)
        response = redirect(nxt)
        set_cookie(request, response, s)
        return response

    @app.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        s = signed_in(request)
        await form_of(request, s)
        sessions.drop(s)
        response = redirect("/sign-in")
        response.delete_cookie(COOKIE, path="/")
        return response

    # ------------------------------------------------------------ overview

    @app.get("/")
    async def overview(request: Request) -> Response:
        s = signed_in(request)
        call, down = api(s), list[ServiceDown]()
        pools, ledger, limits, changes, rules, plans = await asyncio.gather(
            attempt(call("pools", "GET", "/api/v1/budget-pools"), down),
            attempt(call("guardrails", "GET", "/api/v1/guardrails/ledger"), down),
            attempt(call("guardrails", "GET", "/api/v1/guardrails/limits"), down),
            attempt(call("executor", "GET", "/api/v1/change-sets", params={"limit": 200}), down),
            attempt(call("rules", "GET", "/api/v1/rules", params={"status": "paused"}), down),
            attempt(call("pacing", "GET", "/api/v1/pacing/plans"), down))
        watched = ((plans or {}).get("plans") or [])[:OVERVIEW_PLANS]
        latest = await asyncio.gather(*[
            optional(call("pacing", "GET", f"/api/v1/pacing/plans/{quote(p['plan_id'])}/snapshots/latest"), down)
            for p in watched])
        today = datetime.now(UTC).date()
        recent = None
        if changes is not None:
            recent = [c for c in changes.get("change_sets", []) if (at := c.get("finished_at") or c.get("created_at"))
                      and _at(at).astimezone(UTC).date() == today]
        critical = [{**p, "alert": x["alert"]} for p, x in zip(watched, latest, strict=True)
                    if x and (x.get("alert") or {}).get("level") == "critical"]
        tripped = None if rules is None else [r for r in rules.get("rules", []) if r.get("auto_pause_reason")]
        actions = [a for c in recent or [] for a in c.get("actions", [])]
        return render(request, "overview.html", s, down=_unique(down), unavailable={d.service for d in down},
                      pools=(pools or {}).get("pools"), ledger=ledger, limits=(limits or {}).get("limits"),
                      recent=recent, applied=sum(a.get("status") in ("succeeded", "already_applied") for a in actions),
                      failed=sum(a.get("status") in ("failed", "conflict", "rejected", "expired") for a in actions),
                      critical=critical if plans is not None else None, tripped=tripped, today=today.isoformat(),
                      plans_cut=len((plans or {}).get("plans") or []) > OVERVIEW_PLANS)

    # ------------------------------------------------------------ budget pools

    @app.get(POOLS)
    async def pools_list(request: Request) -> Response:
        s = signed_in(request)
        call, down = api(s), list[ServiceDown]()
        data = await attempt(call("pools", "GET", "/api/v1/budget-pools"), down)
        pools = (data or {}).get("pools", [])
        entities, *last = await asyncio.gather(
            entities_of(s, down), *[attempt(call("pools", "GET", f"/api/v1/budget-pools/{p['id']}/allocations",
                                                 params={"kind": "allocation", "limit": 1}), down) for p in pools])
        zones = {e["poolId"]: e["timezoneName"] for e in reversed(entities) if e["poolId"]}
        for p, a in zip(pools, last, strict=True):
            allocs = (a or {}).get("allocations") or []
            p["last_allocation"] = allocs[0] if allocs else None
            p["zone"] = zones.get(p["id"], "UTC")
        return render(request, "pools.html", s, down=_unique(down), pools=pools if data is not None else None)

    async def entities_of(s: Session, down: list[ServiceDown], pool_id: str | None = None) -> list[dict[str, Any]]:
        params = {"pool_id": pool_id} if pool_id else None
        data = await attempt(api(s)("pools", "GET", "/api/v1/budget-pools/entities", params=params), down)
        return (data or {}).get("entities", [])

    @app.get(POOLS + "/new")
    async def pool_new_page(request: Request) -> Response:
        s = signed_in(request)
        if not s.can("operator"):
            raise Forbidden("Your role may look but not create pools.")
        down: list[ServiceDown] = []
        entities = await entities_of(s, down)
        return render(request, "pool_new.html", s, down=_unique(down), entities=entities, form=_pool_defaults(entities),
                      errors={})

    @app.post(POOLS + "/new")
    async def pool_create(request: Request) -> Response:
        s = signed_in(request)
        form = await form_of(request, s)
        down: list[ServiceDown] = []
        entities = await entities_of(s, down)
        by_id = {e["entityId"]: e for e in entities}
        errors: dict[str, str] = {}
        currency = str(form.get("currency") or "EUR").upper()
        body: dict[str, Any] = {"name": str(form.get("name") or "").strip(), "currency": currency,
                                "optimizationMetric": form.get("metric") or "roas",
                                "autonomy": form.get("autonomy") or "observe"}
        try:
            body["allocationFrequencyHours"] = int(form.get("cadence") or 24)
        except ValueError:
            errors["cadence"] = "Cadence: choose how often the pool reallocates"
        if not body["name"]:
            errors["name"] = "Name: give the pool a name"
        for fname, key, label, required in (("daily_budget", "dailyBudgetCents", "Daily budget", True),
                                            ("default_min", "defaultMinBudgetCents", "Floor per member", False),
                                            ("default_max", "defaultMaxBudgetCents", "Ceiling per member", False)):
            text = str(form.get(fname) or "")
            if not text.strip() and not required:
                continue
            try:
                body[key] = fmt.parse_amount(text, currency)
            except ValueError as exc:
                errors[fname] = f"{label}: {exc}"
        chosen = form.get("member") or []
        chosen = [chosen] if isinstance(chosen, str) else list(chosen)
        missing = [c for c in chosen if c not in by_id]
        if missing:
            errors["members"] = "Members: pick entities the platform reported"
        body["members"] = [{"entityType": by_id[c]["entityType"], "entityId": c, "adAccountId": by_id[c]["adAccountId"],
                            "entityName": by_id[c]["entityName"], "platform": by_id[c]["platform"],
                            "currency": by_id[c]["currency"]} for c in chosen if c in by_id]
        if not errors and not down:
            try:
                pool = await api(s)("pools", "POST", "/api/v1/budget-pools", json=body)
                s.flash.append(("ok", f"Pool “{pool['name']}” created."))
                return redirect(f"{POOLS}/{pool['id']}")
            except Problem as exc:
                errors = _form_errors(exc, POOL_FIELDS, POOL_LABELS, currency,
                                      fmt.locale_of(request.headers.get("accept-language")))
            except ServiceDown as exc:
                down.append(exc)
        return render(request, "pool_new.html", s, status=422 if errors else 503, down=_unique(down),
                      entities=entities, form={**form, "member": chosen}, errors=errors)

    async def pool_page(request: Request, s: Session, pool_id: str, *, status: int = 200,
                        simulation: dict[str, Any] | None = None, member_form: dict[str, Any] | None = None,
                        member_errors: dict[str, str] | None = None, settings_form: dict[str, Any] | None = None,
                        settings_errors: dict[str, str] | None = None) -> Response:
        call, down = api(s), list[ServiceDown]()
        try:
            pool = await call("pools", "GET", f"/api/v1/budget-pools/{pool_id}")
        except Problem as exc:
            return render(request, "message.html", s, status=exc.status, title="Budget pool not found",
                          message=exc.message if exc.status != 404 else "No such budget pool in your workspace.")
        except ServiceDown as exc:
            return render(request, "message.html", s, status=503, down=[exc], title="Budget pool",
                          message=f"The {exc.label} service is unavailable; the rest of the console still works.")
        members_now, everything, log_data, report = await asyncio.gather(
            entities_of(s, down, pool_id), entities_of(s, down),
            attempt(call("pools", "GET", f"/api/v1/budget-pools/{pool_id}/allocations",
                         params={"kind": "allocation", "limit": CHART_ALLOCATIONS}), down),
            optional(call("pools", "GET", f"/api/v1/budget-pools/{pool_id}/diminishing-returns",
                          params={"entity_type": "all"}), down))
        now_by_id = {e["entityId"]: e for e in members_now}
        zone = next((e["timezoneName"] for e in members_now), "UTC")
        members = [m for m in pool["members"] if m["isActive"]]
        for m in members:
            m["now"] = now_by_id.get(m["entityId"])
        names = {e["entityId"]: e["entityName"] for e in everything} | {m["entityId"]: m["entityName"]
                                                                          for m in pool["members"]}
        candidates = [e for e in everything if not e["poolId"] and e["currency"] == pool["currency"]]
        chart = charts.budget_bars([(m["entityName"] or names.get(m["entityId"]) or "member",
                                     (m["now"] or {}).get("dailyBudgetCents") or 0) for m in members])
        sim_chart, sim_whys = None, {}
        if simulation:
            lines = (simulation.get("plan") or {}).get("members") or []
            sim_chart = charts.move_bars([(ln.get("entityName") or names.get(ln["entityId"], "member"),
                                           ln.get("beforeCents") or 0, ln.get("afterCents") or 0) for ln in lines])
            sim_whys = {ln["entityId"]: ln.get("why") or "" for ln in lines}
        allocations = (log_data or {}).get("allocations")
        label = {m["entityId"]: m["entityName"] or names.get(m["entityId"]) or m["entityId"] for m in pool["members"]}
        shares = _share_history(allocations or [], [m["entityId"] for m in members], label, now_by_id)
        returns = _returns_view(allocations or [], members, label, report)
        return render(request, "pool_detail.html", s, status=status, down=_unique(down), pool=pool, members=members,
                      zone=zone, names=names, allocations=allocations[:20] if allocations is not None else None,
                      chart=chart, shares=shares, returns=returns, report=report,
                      simulation=simulation, sim_chart=sim_chart, sim_whys=sim_whys, candidates=candidates,
                      member_form=member_form or {}, member_errors=member_errors or {},
                      settings_form=settings_form or _settings_form(pool), settings_errors=settings_errors or {})

    @app.get(POOLS + "/{pool_id}")
    async def pool_detail(request: Request, pool_id: str) -> Response:
        return await pool_page(request, signed_in(request), pool_id)

    @app.post(POOLS + "/{pool_id}/simulate")
    async def pool_simulate(request: Request, pool_id: str) -> Response:
        s = signed_in(request)
        await form_of(request, s)
        try:
            sim = await api(s)("pools", "POST", f"/api/v1/budget-pools/{pool_id}/simulate")
        except Problem as exc:
            s.flash.append(("error", f"Simulation refused: {exc.message}"))
            return await pool_page(request, s, pool_id, status=exc.status)
        except ServiceDown as exc:
            s.flash.append(("error", f"The {exc.label} service is unavailable; nothing was simulated."))
            return await pool_page(request, s, pool_id, status=503)
        return await pool_page(request, s, pool_id, simulation=sim)

    @app.post(POOLS + "/{pool_id}/allocate")
    async def pool_allocate(request: Request, pool_id: str) -> Response:
        s = signed_in(request)
        await form_of(request, s)
        try:
            result = await api(s)("pools", "POST", f"/api/v1/budget-pools/{pool_id}/allocate", json={"async": False})
            alloc = result.get("allocation") or {}
            moved = [o for o in alloc.get("outcomes") or [] if o.get("outcome") == "succeeded"]
            s.flash.append(("ok", _allocation_summary(result["status"], len(moved))))
        except Problem as exc:
            label = {423: "Blocked by the guardrails", 429: "Too soon", 409: "Not possible now"}.get(exc.status,
                                                                                                   "Refused")
            s.flash.append(("error", f"{label}: {exc.message}"))
        except ServiceDown as exc:
            s.flash.append(("error", f"The {exc.label} service is unavailable; nothing was allocated."))
        return redirect(f"{POOLS}/{pool_id}")

    @app.post(POOLS + "/{pool_id}/settings")
    async def pool_settings(request: Request, pool_id: str) -> Response:
        s = signed_in(request)
        form = await form_of(request, s)
        currency = str(form.get("currency") or "EUR")
        errors: dict[str, str] = {}
        body: dict[str, Any] = {"name": str(form.get("name") or "").strip(),
                                "optimizationMetric": form.get("metric") or "roas",
                                "status": form.get("status") or "active", "autonomy": form.get("autonomy") or "observe"}
        if not body["name"]:
            errors["name"] = "Name: give the pool a name"
        try:
            body["allocationFrequencyHours"] = int(form.get("cadence") or 24)
        except ValueError:
            errors["cadence"] = "Cadence: choose how often the pool reallocates"
        try:
            body["dailyBudgetCents"] = fmt.parse_amount(str(form.get("daily_budget") or ""), currency)
        except ValueError as exc:
            errors["daily_budget"] = f"Daily budget: {exc}"
        if not errors:
            try:
                await api(s)("pools", "PATCH", f"/api/v1/budget-pools/{pool_id}", json=body)
                s.flash.append(("ok", "Pool settings saved."))
                return redirect(f"{POOLS}/{pool_id}")
            except Problem as exc:
                errors = _form_errors(exc, POOL_FIELDS, POOL_LABELS, currency,
                                      fmt.locale_of(request.headers.get("accept-language")))
            except ServiceDown as exc:
                s.flash.append(("error", f"The {exc.label} service is unavailable; nothing was saved."))
                return redirect(f"{POOLS}/{pool_id}")
        return await pool_page(request, s, pool_id, status=422, settings_form=form, settings_errors=errors)

    @app.post(POOLS + "/{pool_id}/members")
    async def pool_add_member(request: Request, pool_id: str) -> Response:
        s = signed_in(request)
        form = await form_of(request, s)
        down: list[ServiceDown] = []
        entities = {e["entityId"]: e for e in await entities_of(s, down)}
        errors: dict[str, str] = {}
        picked = entities.get(str(form.get("entity") or ""))
        if picked is None:
            errors["entity"] = "Entity: pick a campaign or ad set the platform reported"
        body: dict[str, Any] = {}
        if picked:
            body = {"entityType": picked["entityType"], "entityId": picked["entityId"],
                    "adAccountId": picked["adAccountId"], "entityName": picked["entityName"],
                    "platform": picked["platform"], "currency": picked["currency"]}
        currency = picked["currency"] if picked else "EUR"
        for fname, key, label in (("floor", "minBudgetCents", "Floor"), ("ceiling", "maxBudgetCents", "Ceiling")):
            text = str(form.get(fname) or "")
            if text.strip():
                try:
                    body[key] = fmt.parse_amount(text, currency)
                except ValueError as exc:
                    errors[fname] = f"{label}: {exc}"
        weight = str(form.get("weight") or "").strip()
        if weight:
            try:
                body["weight"] = float(weight.replace(",", "."))
            except ValueError:
                errors["weight"] = f"Weight: “{weight}” is not a number (e.g. 1 or 1.5)"
        if not errors:
            try:
                await api(s)("pools", "POST", f"/api/v1/budget-pools/{pool_id}/members", json=body)
                s.flash.append(("ok", f"{picked['entityName'] if picked else 'Member'} added to the pool."))
                return redirect(f"{POOLS}/{pool_id}")
            except Problem as exc:
                errors = _form_errors(exc, MEMBER_FIELDS, MEMBER_LABELS, currency,
                                      fmt.locale_of(request.headers.get("accept-language")))
            except ServiceDown as exc:
                s.flash.append(("error", f"The {exc.label} service is unavailable; no member was added."))
                return redirect(f"{POOLS}/{pool_id}")
        return await pool_page(request, s, pool_id, status=422, member_form=form, member_errors=errors)

    # ------------------------------------------------------------ limits & autonomy

    @app.get("/limits")
    async def limits_get(request: Request) -> Response:
        return await limits_page(request, signed_in(request))

    async def limits_page(request: Request, s: Session, *, status: int = 200, section: str | None = None,
                          values: dict[str, Any] | None = None, errors: dict[str, str] | None = None) -> Response:
        call, down = api(s), list[ServiceDown]()
        limits, ledger, entities = await asyncio.gather(
            attempt(call("guardrails", "GET", "/api/v1/guardrails/limits"), down),
            attempt(call("guardrails", "GET", "/api/v1/guardrails/ledger"), down), entities_of(s, down))
        accounts: dict[str, dict[str, Any]] = {}
        for e in entities:
            row = accounts.setdefault(e["adAccountId"], {"id": e["adAccountId"], "zone": e["timezoneName"],
                                                         "name": e["adAccountName"] or e["adAccountId"], "entities": 0})
            row["entities"] += 1
        current = (limits or {}).get("limits")
        form = _limits_form(current) if current else {}
        if section and values is not None:
            form[section] = values
        return render(request, "limits.html", s, status=status, down=_unique(down), limits=current,
                      meta=limits, ledger=ledger, accounts=sorted(accounts.values(), key=lambda a: a["name"]),
                      entities=sorted(entities, key=lambda e: (e.get("entityName") or e["entityId"]).lower()),
                      names={e["entityId"]: e.get("entityName") or e["entityId"] for e in entities},
                      form=form, section=section, errors=errors or {}, sources=LIMIT_SOURCES,
                      platforms=LIMIT_PLATFORMS)

    @app.post("/limits/{section}")
    async def limits_edit(request: Request, section: str) -> Response:
        s = signed_in(request)
        if section == "kill-switch":
            return await kill_switch(request, s)
        form = await form_of(request, s)
        if section not in LIMIT_SECTIONS:
            return render(request, "message.html", s, status=404, title="Not found", message="No such setting.")
        if not s.can("admin"):
            raise Forbidden("Your role may look at the limits but not change them (the guardrails allow admins).")
        values = _limits_values(section, form)
        patch, errors = _limits_patch(section, values)
        if errors:
            return await limits_page(request, s, status=422, section=section, values=values, errors=errors)
        try:
            result = await api(s)("guardrails", "PATCH", "/api/v1/guardrails/limits", json=patch)
        except Problem as exc:
            errors = _limits_errors(exc, fmt.locale_of(request.headers.get("accept-language")))
            return await limits_page(request, s, status=exc.status, section=section, values=values, errors=errors)
        except ServiceDown as exc:
            s.flash.append(("error", f"The {exc.label} service is unavailable; the limits were not changed."))
            return redirect("/limits")
        changed = [LIMIT_LABELS.get(LIMIT_FIELDS.get(c, ""), c.replace("_", " ").capitalize())
                   for c in result.get("changed") or []]
        s.flash.append(("ok", f"Saved: {', '.join(changed)}." if changed else "Nothing changed."))
        return redirect(f"/limits#{section}")

    async def kill_switch(request: Request, s: Session) -> Response:
        form = await form_of(request, s)
        enabled = form.get("enabled") == "true"
        account = str(form.get("ad_account_id") or "").strip() or None
        where = f"ad account {account}" if account else "this workspace"
        if form.get("confirm") != "yes":
            fields = {"enabled": "true" if enabled else "false", **({"ad_account_id": account} if account else {})}
            return render(request, "confirm.html", s, title="Kill switch",
                          question=(f"Stop every budget change in {where}? Pools, rules and pacing keep "
                                    "deciding, but the guardrails block their changes until you turn it off."
                                    if enabled else f"Resume budget changes in {where}?"),
                          action="/limits/kill-switch", fields=fields,
                          button="Turn the kill switch on" if enabled else "Turn the kill switch off",
                          cancel="/limits")
        body: dict[str, Any] = {"enabled": enabled, **({"ad_account_id": account} if account else {})}
        if account:
            done = f"Ad account {account} {'stopped' if enabled else 'resumed'}."
        else:
            done = ("Kill switch is ON: every change is blocked." if enabled
                    else "Kill switch is off: changes go through the guardrails again.")
        await perform(s, api(s)("guardrails", "POST", "/api/v1/guardrails/kill-switch", json=body), lambda _: done,
                      "Kill switch not changed", "the kill switch was not changed.")
        return redirect("/limits")

    # ------------------------------------------------------------ rules

    @app.get("/rules")
    async def rules_page(request: Request) -> Response:
        """Each rule with its status, schedule, last evaluation, last fire (in its ad accounts' time zone when they
        share one the console knows, else UTC) and fires today (the rules API's count)."""
        s = signed_in(request)
        down: list[ServiceDown] = []
        data, entities = await asyncio.gather(attempt(api(s)("rules", "GET", "/api/v1/rules"), down),
                                              entities_of(s, down))
        zones = {k: v["zone"] for k, v in _accounts(entities).items() if v["zone"]}
        rules = None if data is None else [
            {**r, "schedule_short": describe.schedule_short(r.get("schedule")), "zone": _shared_zone(r, zones)}
            for r in data.get("rules") or []]
        return render(request, "rules.html", s, down=_unique(down), rules=rules)

    @app.post("/rules/bulk")
    async def rules_bulk(request: Request) -> Response:
        """Pause, activate, set the cooldown of or delete the ticked rules in one ``POST /api/v1/rules/bulk``
        (delete after a confirmation); the message names what changed and what already was so."""
        s = signed_in(request)
        form = await form_of(request, s)
        ids = list(dict.fromkeys(str(i) for i in form.get("rule_id") or []))
        op = str(form.get("op") or "")
        if op not in BULK_OPS:
            s.flash.append(("error", "Bulk edit: choose what to do with the ticked rules."))
            return redirect("/rules")
        if not ids:
            s.flash.append(("error", "Bulk edit: tick at least one rule."))
            return redirect("/rules")
        body: dict[str, Any] = {"rule_ids": ids, "op": op}
        if op == "set_cooldown":
            text = str(form.get("cooldown_minutes") or "").strip()
            if not text.isdigit() or int(text) > 10_080:
                s.flash.append(("error", f"Cooldown (minutes): “{text}” is not a whole number of minutes from 0 to "
                                         "10080 (7 days); nothing was changed." if text else
                                "Cooldown (minutes): enter the minutes; nothing was changed."))
                return redirect("/rules")
            body["cooldown_minutes"] = int(text)
        call, down = api(s), list[ServiceDown]()
        listed = await attempt(call("rules", "GET", "/api/v1/rules", params={"limit": 1000}), down)
        names = {str(r["id"]): r["name"] for r in (listed or {}).get("rules") or []}
        if op == "delete" and form.get("confirm") != "yes":
            shown = [names.get(i, i) for i in ids]
            return render(request, "confirm.html", s, title="Delete rules",
                          question=(f"Delete {len(ids)} rule{'s' if len(ids) != 1 else ''}: {', '.join(shown)}? "
                                    "They stop at once and leave the list; their executions and audit log are kept."),
                          action="/rules/bulk", fields={"op": "delete", "rule_id": ids},
                          button=f"Delete {len(ids)} rule{'s' if len(ids) != 1 else ''}", cancel="/rules")

        warned: list[tuple[str, str]] = []

        def said(result: Any) -> str:
            for rule_id, owned in (result.get("ownership") or {}).items():  # activate: what pools mean for each rule
                warned.extend(("warn", f"{names.get(rule_id, rule_id)}: {w}") for w in owned.get("warnings") or [])
            changed = [names.get(i, i) for i in result.get("changed") or []]
            same = [names.get(i, i) for i in result.get("unchanged") or []]
            verb, state = BULK_OPS[op]
            if op == "set_cooldown":
                verb = f"Cooldown set to {body['cooldown_minutes']} minutes on"
            text = (f"{verb} {len(changed)} rule{'s' if len(changed) != 1 else ''}: {', '.join(changed)}."
                    if changed else f"Nothing changed ({len(ids)} rule{'s' if len(ids) != 1 else ''} asked).")
            if same:
                text += f" Already {state}: {', '.join(same)}."
            return text

        await perform(s, call("rules", "POST", "/api/v1/rules/bulk", json=body), said, "Bulk edit refused",
                      "no rule was changed.")
        s.flash += warned
        return redirect("/rules")

    async def rule_page(request: Request, s: Session, rule_id: str, tab: str, status: int = 200) -> Response:
        call, down = api(s), list[ServiceDown]()
        try:
            rule = await call("rules", "GET", f"/api/v1/rules/{quote(rule_id)}")
        except Problem as exc:
            missing = exc.status in (404, 422)
            return render(request, "message.html", s, status=404 if missing else exc.status, title="Rule not found",
                          message="No such rule in your workspace." if missing else exc.message)
        except ServiceDown as exc:
            return render(request, "message.html", s, status=503, down=[exc], title="Rule",
                          message=f"The {exc.label} service is unavailable; the rest of the console still works.")
        data, entities = await asyncio.gather(
            attempt(call("rules", "GET", f"/api/v1/rules/{quote(rule_id)}/executions",
                         params={"limit": 50 if tab == "executions" else 1}), down),
            entities_of(s, down))
        locale = fmt.locale_of(request.headers.get("accept-language"))
        accounts = _accounts(entities)
        scoped = [accounts[a] for a in (rule.get("scope") or {}).get("ad_account_ids") or [] if a in accounts]
        zone = next((a["zone"] for a in scoped if a["zone"]), "UTC")
        currencies = {a["currency"] for a in scoped if a["currency"]}
        currency = currencies.pop() if len(currencies) == 1 else None
        names = {e["entityId"]: e["entityName"] for e in entities if e.get("entityName")}
        executions = None if data is None else [
            describe.execution_view(x, names, rule, currency, locale) for x in data.get("executions") or []]
        view = describe.rule_view(rule, {k: v["name"] for k, v in accounts.items()}, currency, locale)
        return render(request, "rule_detail.html", s, status=status, down=_unique(down), rule=rule, tab=tab,
                      view=view, executions=executions, zone=zone, several_zones=len({a["zone"] for a in scoped}) > 1)

    # ------------------------------------------------------------ the new-rule wizard (before /rules/{rule_id})

    def wizard_operator(s: Session) -> None:
        if not s.can("operator"):
            raise Forbidden("Your role may look at rules but not create or edit them.")

    async def wizard_context(s: Session, draft: dict[str, Any] | None,
                             down: list[ServiceDown]) -> dict[str, Any]:
        """The reported ad accounts (pools' entities) and the scope's currency (the chosen accounts' own)."""
        accounts: dict[str, dict[str, Any]] = {}
        names: dict[str, str] = {}
        for e in await entities_of(s, down):
            a = accounts.setdefault(e["adAccountId"], {
                "id": e["adAccountId"], "name": e.get("adAccountName") or e["adAccountId"],
                "platform": e.get("platform"), "currency": e.get("currency"), "zone": e.get("timezoneName"),
                "entities": 0})
            a["entities"] += 1
            if e.get("entityName"):
                names[e["entityId"]] = e["entityName"]
        chosen = (draft or {}).get("steps", {}).get("scope", {}).get("accounts") or []
        currencies = list(dict.fromkeys(accounts[a]["currency"] for a in chosen
                                        if a in accounts and accounts[a]["currency"]))
        fallback = next((a["currency"] for a in accounts.values() if a["currency"]), "EUR")
        return {"accounts": accounts, "names": names, "currency": currencies[0] if currencies else fallback,
                "currencies": currencies}

    def wizard_render(request: Request, s: Session, step: str, draft: dict[str, Any], ctx: dict[str, Any],
                      down: list[ServiceDown], *, status: int = 200, errors: dict[str, str] | None = None,
                      values: dict[str, Any] | None = None, preview: dict[str, Any] | None = None,
                      base: str = "/rules/new") -> Response:
        locale = fmt.locale_of(request.headers.get("accept-language"))
        review = None
        if step == "review":
            definition, _ = wizard.build(draft, ctx)
            review = describe.rule_view(definition, {k: v["name"] for k, v in ctx["accounts"].items()},
                                        ctx["currency"], locale)
        return render(request, "rule_new.html", s, status=status, down=_unique(down), step=step, draft=draft,
                      v=values if values is not None else draft["steps"].get(step, {}), errors=errors or {},
                      ctx=ctx, wz=wizard, labels=describe.METRIC_LABELS, operators=describe.OPERATORS,
                      ranges=describe.RANGES, review=review, preview=preview, base=base,
                      editing=draft.get("rule"))

    def wizard_draft(s: Session, key: str = "rule") -> dict[str, Any] | None:
        draft = s.drafts.get(key)
        return draft if isinstance(draft, dict) else None

    @app.get("/rules/new")
    async def rule_new_page(request: Request) -> Response:
        s = signed_in(request)
        wizard_operator(s)
        down: list[ServiceDown] = []
        data = await attempt(api(s)("rules", "GET", "/api/v1/rules/templates"), down)
        return render(request, "rule_new_start.html", s, down=_unique(down),
                      templates=(data or {}).get("templates") or [], draft=wizard_draft(s))

    @app.post("/rules/new")
    async def rule_new_start(request: Request) -> Response:
        s = signed_in(request)
        form = await form_of(request, s)
        wizard_operator(s)
        name = str(form.get("template") or "")
        if name == "continue" and wizard_draft(s):
            return redirect("/rules/new/scope")
        draft = wizard.blank_draft()
        if name and name != "blank":
            down: list[ServiceDown] = []
            data = await attempt(api(s)("rules", "GET", "/api/v1/rules/templates"), down)
            template = next((t for t in (data or {}).get("templates") or [] if t.get("name") == name), None)
            if template is None:
                s.flash.append(("error", f"The template “{name}” is not available; start blank or try again."))
                return redirect("/rules/new")
            draft = wizard.template_draft(template)
        s.drafts["rule"] = draft
        return redirect("/rules/new/scope")

    @app.get("/rules/new/{step}")
    async def rule_new_step(request: Request, step: str) -> Response:
        return await wizard_get(request, signed_in(request), step, "rule", "/rules/new", "/rules/new")

    @app.post("/rules/new/{step}")
    async def rule_new_save(request: Request, step: str) -> Response:
        return await wizard_post(request, signed_in(request), step, "rule", "/rules/new", "/rules/new")

    async def wizard_get(request: Request, s: Session, step: str, key: str, base: str, start: str) -> Response:
        """A step of the draft under ``key`` (``rule``: a new rule; ``rule:<id>``: editing one), at ``base``."""
        wizard_operator(s)
        draft = wizard_draft(s, key)
        if step not in (*wizard.STEPS, "review"):
            return render(request, "message.html", s, status=404, title="Not found", message="No such step.")
        if draft is None:
            return redirect(start)
        down: list[ServiceDown] = []
        ctx = await wizard_context(s, draft, down)
        return wizard_render(request, s, step, draft, ctx, down, base=base)

    async def wizard_post(request: Request, s: Session, step: str, key: str, base: str, start: str) -> Response:
        form = await form_of(request, s)
        wizard_operator(s)
        draft = wizard_draft(s, key)
        if step not in (*wizard.STEPS, "review"):
            return render(request, "message.html", s, status=404, title="Not found", message="No such step.")
        if draft is None:
            return redirect(start)
        go = str(form.get("go") or "next")
        down: list[ServiceDown] = []
        if step == "review":
            return await wizard_finish(request, s, draft, go, down, key, base)
        values = wizard.read_step(step, form)
        if step == "conditions" and go == "add_group" and len(values["groups"]) < wizard.MAX_GROUPS:
            values["groups"].append({"logic": "and", "rows": []})
        draft["steps"][step] = values
        index = wizard.STEPS.index(step)
        if go == "back":
            first_back = f"/rules/{quote(draft['rule']['id'])}" if draft.get("rule") else start
            return redirect(f"{base}/{wizard.STEPS[index - 1]}" if index else first_back)
        ctx = await wizard_context(s, draft, down)
        if go in ("stay", "add_group"):
            return wizard_render(request, s, step, draft, ctx, down, base=base)
        _, errors = wizard.build_step(step, values, ctx)
        if errors:
            return wizard_render(request, s, step, draft, ctx, down, status=422, errors=errors, base=base)
        following = wizard.STEPS[index + 1] if index + 1 < len(wizard.STEPS) else "review"
        return redirect(f"{base}/{following}")

    async def wizard_finish(request: Request, s: Session, draft: dict[str, Any], go: str,
                            down: list[ServiceDown], key: str = "rule", base: str = "/rules/new") -> Response:
        """Review: preview the rule, or create it (paused) and maybe activate it, or (editing) save it with the
        rules API's PUT; any error is shown on its step."""
        locale = fmt.locale_of(request.headers.get("accept-language"))
        ctx = await wizard_context(s, draft, down)
        if go == "back":
            return redirect(f"{base}/{wizard.STEPS[-1]}")
        definition, errors = wizard.build(draft, ctx)
        if errors:
            first = next(step for step in wizard.STEPS if step in errors)
            return wizard_render(request, s, first, draft, ctx, down, status=422, errors=errors[first], base=base)
        call = api(s)
        editing = draft.get("rule")
        try:
            if go == "preview":
                result = await call("rules", "POST", "/api/v1/rules/preview", json={"definition": definition})
                return wizard_render(request, s, "review", draft, ctx, down, base=base,
                                     preview=wizard.preview_view(result, ctx["names"], ctx["currency"], locale))
            if editing and go == "save":
                rule = await call("rules", "PUT", f"/api/v1/rules/{quote(str(editing['id']))}", json=definition)
            elif editing or go not in ("create", "activate"):
                return wizard_render(request, s, "review", draft, ctx, down, base=base)
            else:
                rule = await call("rules", "POST", "/api/v1/rules", json=definition)
        except Problem as exc:
            if exc.status == 403:
                return render(request, "message.html", s, status=403, title="Not allowed", message=exc.message)
            if exc.status == 404 and editing:
                s.drafts.pop(key, None)
                return render(request, "message.html", s, status=404, title="Rule not found",
                              message="This rule no longer exists in your workspace; nothing was saved.")
            mapped = wizard.api_errors(exc.fields, exc.message, draft, ctx["currency"], locale)
            first = next((step for step in (*wizard.STEPS, "review") if step in mapped), "review")
            return wizard_render(request, s, first, draft, ctx, down, status=exc.status, errors=mapped[first],
                                 base=base)
        except ServiceDown as exc:
            down.append(exc)
            return wizard_render(request, s, "review", draft, ctx, down, status=503, base=base)
        s.drafts.pop(key, None)
        rule_path = f"/rules/{quote(str(rule['id']))}"
        if editing:
            s.flash.append(("ok", f"Rule “{rule['name']}” saved; it is {rule.get('status', editing['status'])}."))
            return redirect(rule_path)
        if go == "create":
            s.flash.append(("ok", f"Rule “{rule['name']}” created; it is paused until you activate it."))
            return redirect(rule_path)
        try:
            active = await call("rules", "POST", f"/api/v1/rules/{quote(str(rule['id']))}/activate")
        except Problem as exc:
            s.flash.append(("error", f"Rule “{rule['name']}” created but not activated: {exc.message}"))
        except ServiceDown as exc:
            s.flash.append(("error", f"Rule “{rule['name']}” created, but the {exc.label} service is unavailable; "
                                     "it stays paused."))
        else:
            s.flash.append(("ok", f"Rule “{rule['name']}” created and active."))
            s.flash += [("warn", str(w)) for w in active.get("warnings") or []]
        return redirect(rule_path)

    @app.get("/rules/{rule_id}/edit")
    async def rule_edit_start(request: Request, rule_id: str) -> Response:
        """Load the rule's definition into a draft of its own (a new rule's draft is kept) and open step 1."""
        s = signed_in(request)
        wizard_operator(s)
        try:
            rule = await api(s)("rules", "GET", f"/api/v1/rules/{quote(rule_id)}")
        except Problem as exc:
            missing = exc.status in (404, 422)
            return render(request, "message.html", s, status=404 if missing else exc.status, title="Rule not found",
                          message="No such rule in your workspace." if missing else exc.message)
        except ServiceDown as exc:
            return render(request, "message.html", s, status=503, down=[exc], title="Edit rule",
                          message=f"The {exc.label} service is unavailable; the rest of the console still works.")
        down: list[ServiceDown] = []
        ctx = await wizard_context(s, {"steps": {"scope": {"accounts": (rule.get("scope") or {}).get(
            "ad_account_ids") or []}}}, down)
        draft = wizard.rule_draft(rule, ctx["currency"])
        if draft is None:
            return render(request, "message.html", s, status=409, title="Edit rule",
                          message="This rule's conditions nest deeper than the wizard's groups of conditions; "
                                  "change it through the rules API (PUT /api/v1/rules/{id}).")
        draft["rule"] = {"id": str(rule["id"]), "name": rule["name"], "status": rule.get("status")}
        s.drafts[f"rule:{rule['id']}"] = draft
        return redirect(f"/rules/{quote(str(rule['id']))}/edit/scope")

    @app.get("/rules/{rule_id}/edit/{step}")
    async def rule_edit_step(request: Request, rule_id: str, step: str) -> Response:
        base = f"/rules/{quote(rule_id)}/edit"
        return await wizard_get(request, signed_in(request), step, f"rule:{rule_id}", base, base)

    @app.post("/rules/{rule_id}/edit/{step}")
    async def rule_edit_save(request: Request, rule_id: str, step: str) -> Response:
        base = f"/rules/{quote(rule_id)}/edit"
        return await wizard_post(request, signed_in(request), step, f"rule:{rule_id}", base, base)

    @app.get("/rules/{rule_id}")
    async def rule_detail(request: Request, rule_id: str) -> Response:
        return await rule_page(request, signed_in(request), rule_id, "rule")

    @app.get("/rules/{rule_id}/executions")
    async def rule_executions(request: Request, rule_id: str) -> Response:
        return await rule_page(request, signed_in(request), rule_id, "executions")

    @app.post("/rules/{rule_id}/evaluate-now")
    async def rule_evaluate_now(request: Request, rule_id: str) -> Response:
        s = signed_in(request)
        await form_of(request, s)
        try:
            result = await api(s)("rules", "POST", f"/api/v1/rules/{quote(rule_id)}/evaluate-now")
        except Problem as exc:
            s.flash.append(("error", f"Not evaluated: {exc.message}"))
        except ServiceDown as exc:
            s.flash.append(("error", f"The {exc.label} service is unavailable; nothing was evaluated."))
        else:
            x = result.get("execution") or {}
            if result.get("status") == "already_evaluated":
                s.flash.append(("ok", "This time slot was already evaluated (the schedule got there first); its "
                                      "execution is below."))
            else:
                s.flash.append(("ok", f"Evaluated now: {describe.RESULTS.get(str(x.get('result')), x.get('result'))} "
                                      f"({x.get('entities_evaluated', 0)} evaluated, {x.get('matched', 0)} matched)."))
        return redirect(f"/rules/{quote(rule_id)}/executions")

    @app.post("/rules/{rule_id}/{verb}")
    async def rule_status(request: Request, rule_id: str, verb: str) -> Response:
        s = signed_in(request)
        form = await form_of(request, s)
        if verb not in ("activate", "pause"):
            return render(request, "message.html", s, status=404, title="Not found", message="No such action.")
        await perform(s, api(s)("rules", "POST", f"/api/v1/rules/{quote(rule_id)}/{verb}"),
                      lambda rule: f"Rule “{rule['name']}” is {rule['status']}.", "Rule not changed",
                      "the rule was not changed.")
        return redirect(f"/rules/{quote(rule_id)}" if form.get("back") == "detail" else "/rules")

    # ------------------------------------------------------------ pacing

    @app.get("/pacing")
    async def pacing_page(request: Request) -> Response:
        s = signed_in(request)
        call, down = api(s), list[ServiceDown]()
        data = await attempt(call("pacing", "GET", "/api/v1/pacing/plans"), down)
        plans = (data or {}).get("plans", [])
        proposals, entities = await asyncio.gather(
            asyncio.gather(*[attempt(call("pacing", "GET", f"/api/v1/pacing/plans/{quote(p['plan_id'])}/proposals"),
                                     down) for p in plans]), entities_of(s, down))
        accounts = _accounts(entities)
        for p, props in zip(plans, proposals, strict=True):
            p["proposals"] = (props or {}).get("proposals", [])
            p["zone"] = _plan_zone(p, accounts)
        return render(request, "pacing.html", s, down=_unique(down), plans=plans if data is not None else None)

    async def plan_page(request: Request, s: Session, plan_id: str, *, status: int = 200,
                        proposal_errors: dict[str, str] | None = None) -> Response:
        call, down = api(s), list[ServiceDown]()
        base = f"/api/v1/pacing/plans/{quote(plan_id)}"
        try:
            plan = await call("pacing", "GET", base)
        except Problem as exc:
            missing = exc.status in (404, 422)
            return render(request, "message.html", s, status=404 if missing else exc.status,
                          title="Pacing plan not found",
                          message="No such flight plan in your workspace." if missing else exc.message)
        except ServiceDown as exc:
            return render(request, "message.html", s, status=503, down=[exc], title="Pacing plan",
                          message=f"The {exc.label} service is unavailable; the rest of the console still works.")
        snaps, latest, props, transitions, planned, entities = await asyncio.gather(
            attempt(call("pacing", "GET", f"{base}/snapshots", params={"limit": 5000}), down),
            optional(call("pacing", "GET", f"{base}/snapshots/latest"), down),
            attempt(call("pacing", "GET", f"{base}/proposals", params={"status": "all", "limit": 50}), down),
            attempt(call("pacing", "GET", f"{base}/transitions", params={"limit": 50}), down),
            optional(call("pacing", "GET", f"{base}/planned", params={"points": 96}), down),
            entities_of(s, down))
        snapshots = (snaps or {}).get("snapshots", [])
        if latest and (not snapshots or snapshots[-1]["snapshot_id"] != latest["snapshot_id"]):
            snapshots.append(latest)  # more snapshots than one page: the newest is shown all the same
        latest = snapshots[-1] if snapshots else None
        accounts = _accounts(entities)
        zone = (planned or {}).get("timezone_name") or _plan_zone(plan, accounts)
        names = {e["entityId"]: e["entityName"] for e in entities if e.get("entityName")}
        proposals = (props or {}).get("proposals") if props is not None else None
        inbox = [p for p in proposals or [] if p["status"] in describe.OPEN_PROPOSALS]
        decided = [p for p in proposals or [] if p["status"] not in describe.OPEN_PROPOSALS]
        channels = _plan_channels(plan, latest)
        charts_ = _plan_charts(plan, snapshots, planned, zone)
        alerts = [x for x in reversed(snapshots) if x.get("alert")][:10]
        return render(request, "plan_detail.html", s, status=status, down=_unique(down), plan=plan, latest=latest,
                      zone=zone, names=names, inbox=inbox, decided=decided, proposals_known=proposals is not None,
                      proposal_errors=proposal_errors or {}, channels=channels, charts=charts_, alerts=alerts,
                      transitions=(transitions or {}).get("transitions") if transitions is not None else None,
                      deals=_plan_deals(plan, latest))

    @app.get("/pacing/plans/{plan_id}")
    async def plan_detail(request: Request, plan_id: str) -> Response:
        return await plan_page(request, signed_in(request), plan_id)

    @app.post("/pacing/plans/{plan_id}/proposals/{proposal_id}/{verb}")
    async def proposal_decide(request: Request, plan_id: str, proposal_id: str, verb: str) -> Response:
        s = signed_in(request)
        form = await form_of(request, s)
        if verb not in ("approve", "reject"):
            return render(request, "message.html", s, status=404, title="Not found", message="No such action.")
        reason = str(form.get("reason") or "").strip()[:1000]
        body = {"reason": reason} if verb == "reject" and reason else None
        path = f"/api/v1/pacing/plans/{quote(plan_id)}/proposals/{quote(proposal_id)}/{verb}"
        try:
            result = await api(s)("pacing", "POST", path, json=body)
        except Problem as exc:
            currency = str(form.get("currency") or "") or None
            message = describe.proposal_refusal(exc.status, exc.code, exc.body, currency,
                                                fmt.locale_of(request.headers.get("accept-language")))
            return await plan_page(request, s, plan_id, status=exc.status, proposal_errors={proposal_id: message})
        except ServiceDown as exc:
            s.flash.append(("error", f"The {exc.label} service is unavailable; nothing was decided."))
            return redirect(f"/pacing/plans/{quote(plan_id)}")
        s.flash.append(("ok", _decided(verb, result)))
        return redirect(f"/pacing/plans/{quote(plan_id)}")

    # ------------------------------------------------------------ activity

    @app.get("/activity")
    async def activity(request: Request) -> Response:
        s = signed_in(request)
        call, down = api(s), list[ServiceDown]()
        q = request.query_params
        flt, errors = _activity_filters({k: q.get(k, "") for k in ("entity", "source", "from", "to", "decisions")})
        decision_params: dict[str, Any] = {"limit": ACTIVITY_LIMITS["decisions"]}
        if flt["source_id"]:
            decision_params["source_id"] = flt["source_id"]  # the one filter an API takes
        changes, decisions, audit, rule_audit, pools, entities = await asyncio.gather(
            attempt(call("executor", "GET", "/api/v1/change-sets", params={"limit": ACTIVITY_LIMITS["change_sets"]}),
                    down),
            attempt(call("guardrails", "GET", "/api/v1/guardrails/decisions", params=decision_params), down),
            attempt(call("guardrails", "GET", "/api/v1/guardrails/audit-log",
                         params={"limit": ACTIVITY_LIMITS["audit"]}), down),
            optional(call("rules", "GET", "/api/v1/audit-log", params={"limit": ACTIVITY_LIMITS["audit"]}), down)
            if flt["kind"] in ("", "rule") else _nothing(),
            attempt(call("pools", "GET", "/api/v1/budget-pools"), down), entities_of(s, down))
        names = {e["entityId"]: e["entityName"] for e in entities}
        sources = {p["id"]: p["name"] for p in (pools or {}).get("pools", [])}
        now = datetime.now(UTC)
        sets = (changes or {}).get("change_sets") if changes is not None else None
        for c in sets or []:
            done = [a for a in c["actions"] if a["status"] == "succeeded"]
            c["undoable"] = bool(done) and not c["undo_request_id"] and c["source"] != "undo" and bool(
                c["finished_at"]) and now - datetime.fromisoformat(c["finished_at"]) < timedelta(hours=72)
        if sets is not None:
            sets = [c for c in sets if _change_set_matches(c, flt)]
        shown = None
        if decisions is not None:
            shown = [d for d in decisions.get("decisions", [])
                     if (flt["decisions"] == "all" or d.get("status") != "approved") and _decision_matches(d, flt)]
        entries = None
        if audit is not None:
            entries = [{**a, "lines": _audit_lines(a.get("changes"), names)} for a in audit.get("entries", [])
                       if _in_days(a.get("at"), flt)]
        rule_entries = None
        if rule_audit is not None:
            rule_entries = [{**a, **_rule_audit_view(a)} for a in rule_audit.get("entries", [])
                            if _in_days(a.get("at"), flt)]
        return render(request, "activity.html", s, down=_unique(down), change_sets=sets, names=names,
                      sources=sources, blocked=shown, audit=entries, rule_audit=rule_entries,
                      rules_shown=flt["kind"] in ("", "rule"), flt=flt, errors=errors,
                      entities=sorted(entities, key=lambda e: (e.get("entityName") or e["entityId"]).lower()),
                      source_kinds=ACTIVITY_SOURCES, limits=ACTIVITY_LIMITS,
                      filtered=any(flt[k] for k in ("entity", "source", "from", "to")))

    @app.post("/activity/{request_id}/undo")
    async def undo(request: Request, request_id: str) -> Response:
        s = signed_in(request)
        form = await form_of(request, s)
        if form.get("confirm") != "yes":
            return render(request, "confirm.html", s, title="Undo a change set",
                          question=("Undo this change set? The previous budgets are requested again, through the "
                                    "guardrails like any change."), action=f"/activity/{request_id}/undo",
                          fields={}, button="Undo the change set", cancel="/activity")
        try:
            await api(s)("executor", "POST", f"/api/v1/change-sets/{request_id}/undo")
            s.flash.append(("ok", "Undo requested: the previous budgets go through the guardrails now."))
        except Problem as exc:
            s.flash.append(("error", f"Not undone: {exc.message}"))
        except ServiceDown as exc:
            s.flash.append(("error", f"The {exc.label} service is unavailable; nothing was undone."))
        return redirect("/activity")

    return app


# ---------------------------------------------------------------- helpers

POOL_FIELDS = {"name": "name", "status": "status", "dailybudgetcents": "daily_budget", "currency": "currency",
               "optimizationmetric": "metric", "allocationfrequencyhours": "cadence", "autonomy": "autonomy",
               "defaultminbudgetcents": "default_min", "minbudgetcents": "default_min",
               "defaultmaxbudgetcents": "default_max", "maxbudgetcents": "default_max", "members": "members"}
POOL_LABELS = {"name": "Name", "daily_budget": "Daily budget", "currency": "Currency", "metric": "Optimise for",
               "cadence": "Cadence", "autonomy": "Autonomy", "default_min": "Floor per member",
               "default_max": "Ceiling per member", "members": "Members", "status": "Status"}
MEMBER_FIELDS = {"entityid": "entity", "adaccountid": "entity", "minbudgetcents": "floor", "maxbudgetcents": "ceiling",
                 "weight": "weight", "currency": "entity"}
MEMBER_LABELS = {"entity": "Entity", "floor": "Floor", "ceiling": "Ceiling", "weight": "Weight"}


def _form_errors(exc: Problem, mapping: dict[str, str], labels: dict[str, str], currency: str = "EUR",
                 locale: str = "en") -> dict[str, str]:
    """The service's 4xx mapped onto the form: one message per form field, named (amounts as money); the rest
    under ``_form``."""
    errors: dict[str, str] = {}
    for api_field, raw in exc.fields.items():
        message = fmt.humanize(raw, currency, locale)
        parts = api_field.split(".")
        key = "members" if parts[0] == "members" and "members" in mapping else parts[-1]
        form_field = mapping.get(key.replace("_", "").lower())
        if form_field:
            errors.setdefault(form_field, f"{labels[form_field]}: {_strip_field(message, api_field)}")
        else:
            errors.setdefault("_form", f"{api_field}: {message}")
    if not errors:
        errors["_form"] = fmt.humanize(exc.message, currency, locale)
    return errors


LIMIT_SECTIONS = ("caps", "whitelist", "protected", "autonomy")
LIMIT_SOURCES = {"pool": "Budget pools", "rule": "Rules", "pacing": "Pacing", "manual": "Manual changes",
                 "undo": "Undo"}
LIMIT_PLATFORMS = {"meta": "Meta", "google": "Google", "tiktok": "TikTok", "sandbox": "Sandbox"}
#: The guardrails' limits fields → the form's fields (``autonomy.<source>`` → ``autonomy_<source>``).
LIMIT_FIELDS = {"daily_cap_eur_cents": "daily_cap", "monthly_cap_eur_cents": "monthly_cap",
                "max_change_pct": "max_change_pct", "net_change_pct_window": "net_change_pct_window",
                "net_change_window_h": "net_change_window_h", "account_whitelist": "account_whitelist",
                "platform_whitelist": "platform_whitelist", "protected_entities": "protected_entities",
                **{f"autonomy.{k}": f"autonomy_{k}" for k in LIMIT_SOURCES}}
LIMIT_LABELS = {"daily_cap": "Daily cap", "monthly_cap": "Monthly cap", "max_change_pct": "Largest single change",
                "net_change_pct_window": "Net change per entity", "net_change_window_h": "Net-change window",
                "account_whitelist": "Ad accounts", "platform_whitelist": "Platforms",
                "protected_entities": "Protected entities", "autonomy": "Autonomy",
                **{f"autonomy_{k}": f"Autonomy of {v.lower()}" for k, v in LIMIT_SOURCES.items()}}
LIMIT_FIELDS["autonomy"] = "autonomy"


def _many(form: dict[str, Any], key: str) -> list[str]:
    value = form.get(key)
    values = value if isinstance(value, list) else [] if value is None else [value]
    return [str(v).strip() for v in values if str(v).strip()]


def _limits_form(limits: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The limits as the forms show them (caps in EUR major units, lists as the chosen ids)."""
    return {
        "caps": {"daily_cap": fmt.amount_input(limits.get("daily_cap_eur_cents"), "EUR"),
                 "monthly_cap": fmt.amount_input(limits.get("monthly_cap_eur_cents"), "EUR"),
                 **{k: str(limits.get(k, "")) for k in ("max_change_pct", "net_change_pct_window",
                                                          "net_change_window_h")}},
        "whitelist": {"whitelist_mode": "all" if limits.get("account_whitelist") is None else "listed",
                      "account": list(limits.get("account_whitelist") or []),
                      "platform_mode": "all" if limits.get("platform_whitelist") is None else "listed",
                      "platform": list(limits.get("platform_whitelist") or [])},
        "protected": {"entity": list(limits.get("protected_entities") or []), "other": ""},
        "autonomy": {f"autonomy_{k}": (limits.get("autonomy") or {}).get(k, "live") for k in LIMIT_SOURCES},
    }


def _limits_values(section: str, form: dict[str, Any]) -> dict[str, Any]:
    """What was typed into one section's form (kept when it comes back with errors)."""
    if section == "caps":
        return {k: str(form.get(k) or "").strip() for k in ("daily_cap", "monthly_cap", "max_change_pct",
                                                            "net_change_pct_window", "net_change_window_h")}
    if section == "whitelist":
        return {"whitelist_mode": str(form.get("whitelist_mode") or "all"), "account": _many(form, "account"),
                "platform_mode": str(form.get("platform_mode") or "all"), "platform": _many(form, "platform")}
    if section == "protected":
        return {"entity": _many(form, "entity"), "other": str(form.get("other") or "")[:5000]}
    return {f"autonomy_{k}": str(form.get(f"autonomy_{k}") or "") for k in LIMIT_SOURCES}


def _limits_patch(section: str, v: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """One section's form as a merge patch of the guardrails' limits, or the errors the console can see itself
    (an amount that is not one): nothing is sent then."""
    patch: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if section == "caps":
        for key, api_field in (("daily_cap", "daily_cap_eur_cents"), ("monthly_cap", "monthly_cap_eur_cents")):
            try:  # empty: no cap (a top-level null resets the field to its default, none)
                patch[api_field] = fmt.parse_amount(v[key], "EUR") if v[key] else None
            except ValueError as exc:
                errors[key] = f"{LIMIT_LABELS[key]}: {exc}"
        for key in ("max_change_pct", "net_change_pct_window"):
            if not v[key]:
                errors[key] = f"{LIMIT_LABELS[key]}: enter a percentage"
            else:
                patch[key] = v[key].replace(",", ".")  # a decimal string: the API validates the range
        hours = v["net_change_window_h"]
        if not hours.isdigit():
            errors["net_change_window_h"] = f"{LIMIT_LABELS['net_change_window_h']}: enter whole hours"
        else:
            patch["net_change_window_h"] = int(hours)
    elif section == "whitelist":
        patch["account_whitelist"] = v["account"] if v["whitelist_mode"] == "listed" else None
        patch["platform_whitelist"] = v["platform"] if v["platform_mode"] == "listed" else None
    elif section == "protected":
        others = [x.strip() for x in re.split(r"[\s,]+", v["other"]) if x.strip()]
        patch["protected_entities"] = list(dict.fromkeys([*v["entity"], *others]))
    else:
        patch["autonomy"] = {k: v[f"autonomy_{k}"] for k in LIMIT_SOURCES}
    return patch, errors


def _limits_errors(exc: Problem, locale: str) -> dict[str, str]:
    """The guardrails' 4xx on the limits mapped onto the form field it names (``autonomy.rule`` → the rule
    source's select; ``protected_entities.2`` → the protected entities); amounts in EUR."""
    errors: dict[str, str] = {}
    for api_field, raw in exc.fields.items():
        message = _strip_field(fmt.humanize(raw, "EUR", locale), api_field)
        parts = api_field.split(".")
        key = LIMIT_FIELDS.get(".".join(parts[:2])) or LIMIT_FIELDS.get(parts[0])
        if key:
            errors.setdefault(key, f"{LIMIT_LABELS[key]}: {message}")
        else:
            errors.setdefault("_form", f"{api_field}: {message}")
    if not errors:
        errors["_form"] = fmt.humanize(exc.message, "EUR", locale)
    return errors


#: The rules API's bulk operations: (what the message says was done, the state an unchanged rule was already in).
BULK_OPS = {"pause": ("Paused", "paused"), "activate": ("Activated", "active"),
            "set_cooldown": ("Cooldown set on", "with that cooldown"), "delete": ("Deleted", "deleted")}
#: How many flight plans the overview checks for a critical alert (one call each).
OVERVIEW_PLANS = 25
#: How many of the newest rows Activity asks each API for; the filters the APIs lack apply to these.
ACTIVITY_LIMITS = {"change_sets": 200, "decisions": 500, "audit": 200}
ACTIVITY_SOURCES = {"rule": "Rules", "pacing": "Pacing", "manual": "Manual changes", "undo": "Undo"}


def _activity_filters(q: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Activity's query string: ``entity``, ``source`` (``pool``, ``pool:<id>``, ``rule``...), ``from`` / ``to``
    (UTC days, inclusive) and ``decisions`` (``blocked`` or ``all``); a day that is not one is named and ignored."""
    errors: dict[str, str] = {}
    days: dict[str, date | None] = {}
    for key, label in (("from", "From"), ("to", "To")):
        try:
            days[key] = date.fromisoformat(q[key]) if q[key] else None
        except ValueError:
            days[key] = None
            errors[key] = f"{label}: “{q[key]}” is not a date (YYYY-MM-DD)"
    kind, _, source_id = q["source"].partition(":")
    return {"entity": q["entity"].strip(), "source": q["source"], "kind": kind, "source_id": source_id,
            "from": q["from"], "to": q["to"], "from_day": days["from"], "to_day": days["to"],
            "decisions": "all" if q["decisions"] == "all" else "blocked"}, errors


async def _nothing() -> None:
    return None


def _rule_audit_view(entry: dict[str, Any]) -> dict[str, Any]:
    """A rules audit entry as words: the rule's name and, for an edit, which parts of it changed."""
    before, after = entry.get("before"), entry.get("after")
    named = after if isinstance(after, dict) else before if isinstance(before, dict) else {}
    changed: list[str] = []
    if isinstance(before, dict) and isinstance(after, dict):
        changed = [k.replace("_", " ") for k in RULE_PARTS if before.get(k) != after.get(k)]
    detail = entry.get("detail")
    return {"rule_name": named.get("name") or entry.get("rule_id") or "—", "changed": changed,
            "detail_text": detail if isinstance(detail, str) else str(detail.get("reason") or "")
            if isinstance(detail, dict) else ""}


RULE_PARTS = ("name", "status", "scope", "targets", "conditions", "actions", "schedule", "protections")


def _in_days(at: Any, flt: dict[str, Any]) -> bool:
    if not (flt["from_day"] or flt["to_day"]):
        return True
    if not at:
        return False
    day = _at(at).astimezone(UTC).date()
    return (flt["from_day"] is None or day >= flt["from_day"]) and (flt["to_day"] is None or day <= flt["to_day"])


def _source_matches(source: str, source_id: str, flt: dict[str, Any]) -> bool:
    return not flt["kind"] or (source == flt["kind"] and (not flt["source_id"] or source_id == flt["source_id"]))


def _change_set_matches(c: dict[str, Any], flt: dict[str, Any]) -> bool:
    return (_source_matches(c["source"], c["source_id"], flt) and _in_days(c.get("finished_at") or c["created_at"], flt)
            and (not flt["entity"] or any(a["action"].get("entity_id") == flt["entity"] for a in c["actions"])))


def _decision_matches(d: dict[str, Any], flt: dict[str, Any]) -> bool:
    """A decision names entities in its (approved) actions and, for some checks, its details."""
    if flt["entity"]:
        named = {a.get("entity_id") for a in d.get("actions") or []}
        named |= {v for v in (d.get("details") or {}).values() if isinstance(v, str)}
        if flt["entity"] not in named:
            return False
    return _source_matches(d.get("source", ""), d.get("source_id", ""), flt) and _in_days(d.get("decided_at"), flt)


def _audit_value(name: str, value: Any, names: dict[str, str]) -> str:
    if value is None:
        return "no cap" if name.endswith("_cents") else "all" if name.endswith("whitelist") else "none"
    if name.endswith("_eur_cents") and isinstance(value, int):
        return fmt.money(value, "EUR")
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ", ".join(names.get(str(v), str(v)) for v in value) if value else "none"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def _audit_lines(changes: Any, names: dict[str, str]) -> list[str]:
    """An audit entry's changes as ``Daily cap: €500.00 → €750.00`` (entities by name, caps in EUR)."""
    if not isinstance(changes, dict):
        return [str(changes)] if changes else []
    lines = []
    for name, change in changes.items():
        label = LIMIT_LABELS.get(LIMIT_FIELDS.get(name, ""), name.replace("_", " ").capitalize())
        if name == "kill_switch":
            label = "Kill switch"
        elif name == "killed_ad_accounts":
            label = "Stopped ad accounts"
        if isinstance(change, dict) and "before" in change:
            before, after = change.get("before"), change.get("after")
            if isinstance(before, dict) and isinstance(after, dict):
                moved = {k: (before.get(k), after.get(k)) for k in {*before, *after} if before.get(k) != after.get(k)}
                lines += [f"{label} {k}: {b} → {a}" for k, (b, a) in sorted(moved.items())]
                continue
            lines.append(f"{label}: {_audit_value(name, before, names)} → {_audit_value(name, after, names)}")
        else:
            lines.append(f"{label}: {change}")
    return lines


def _strip_field(message: str, api_field: str) -> str:
    prefix = f"{api_field}: "
    return message[len(prefix):] if message.startswith(prefix) else message


#: How many of a pool's newest allocations the share-over-time and diminishing-returns charts read (the log
#: shows the newest 20 of them).
CHART_ALLOCATIONS = 100
APPLIED_OUTCOMES = ("succeeded", "already_applied")


def _share_history(allocations: list[dict[str, Any]], active: list[str], label: dict[str, str],
                   now_by_id: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Each member's share of the pool's budgets over time from the allocation log: every allocation's budgets
    before (as the engine saw them) and after (the moves that were applied: ``executed``, or the actions whose
    outcome succeeded), then the budgets the platform reports now. None without an allocation that has a plan."""
    steps: list[tuple[datetime, dict[str, int]]] = []
    for a in reversed(allocations):  # the log is newest first
        lines = (a.get("plan") or {}).get("members") or []
        if not lines or not a.get("createdAt"):
            continue
        at = _at(a["createdAt"])
        outcomes = a.get("outcomes") or []
        done = {o.get("entityId") for o in outcomes if o.get("outcome") in APPLIED_OUTCOMES}
        before = {ln["entityId"]: int(ln.get("beforeCents") or 0) for ln in lines}
        after = {ln["entityId"]: int(ln.get("afterCents") or 0)
                 if ln["entityId"] in done or (a.get("status") == "executed" and not outcomes)
                 else before[ln["entityId"]] for ln in lines}
        if not steps or steps[-1][1] != before:
            steps.append((at, before))
        steps.append((at, after))
    if not steps:
        return None
    reported = {k: int(e["dailyBudgetCents"]) for k, e in now_by_id.items() if e.get("dailyBudgetCents") is not None}
    if reported:
        steps.append((max(datetime.now(UTC), steps[-1][0]), {**steps[-1][1], **reported}))
    keys = list(dict.fromkeys([*[k for k in active if any(k in b for _, b in steps)],
                               *[k for _, b in steps for k in b]]))
    members = [(k, label.get(k, k)) for k in keys]
    rows = []
    for i, (at, budgets) in enumerate(steps):
        if i + 1 < len(steps) and steps[i + 1][0] == at:
            continue  # before and after at one moment: the table shows the after
        total = sum(budgets.get(k, 0) for k in keys)
        rows.append({"at": at, "now": bool(reported) and i == len(steps) - 1, "total": total,
                     "cells": [(budgets.get(k, 0), 100 * budgets.get(k, 0) / total if total else 0.0) for k in keys]})
    return {"chart": charts.share_chart(members, steps), "members": members, "rows": rows}


#: How many points of Allot's fitted curve the diminishing-returns table lists per member.
CURVE_TABLE_POINTS = 4


def _returns_view(allocations: list[dict[str, Any]], members: list[dict[str, Any]], label: dict[str, str],
                  report: dict[str, Any] | None) -> dict[str, Any] | None:
    """Spend against return per day for each active member: the windows the allocations' engine inputs summed
    (spend and revenue over their history window) and the diminishing-returns report's two windows (spend per day
    × ROAS), with Allot's fitted curve from the report (the pools engine's posterior-mean response; drawn when it
    counts revenue, as the windows do)."""
    found = {f["entityId"]: f for f in (report or {}).get("findings") or []}
    fitted = {c["entityId"]: c for c in (report or {}).get("curves") or []}
    days = float((report or {}).get("windowDays") or 7)
    rows, series = [], []
    for m in members:
        key = m["entityId"]
        pts: list[tuple[int, int, str]] = []
        for a in allocations:  # newest first
            inputs = a.get("inputs") or {}
            mine = next((x for x in inputs.get("members") or [] if x.get("entityId") == key), None)
            if not mine or not inputs.get("historyFrom") or not inputs.get("historyTo"):
                continue
            span = (_at(inputs["historyTo"]) - _at(inputs["historyFrom"])).total_seconds() / 86_400
            spend, value = int(mine.get("spendCents") or 0), int(mine.get("revenueCents") or 0)
            if span <= 0 or spend <= 0:
                continue
            point = (round(spend / span), round(value / span), f"allocation of {a.get('createdAt')}")
            if all(p[:2] != point[:2] for p in pts):
                pts.append(point)
        f = found.get(key)
        if f:
            pts += [(int(f["spendBeforeCentsPerDay"]), round(f["spendBeforeCentsPerDay"] * f["roasBefore"]),
                     f"the {days:g} days before"),
                    (int(f["spendAfterCentsPerDay"]), round(f["spendAfterCentsPerDay"] * f["roasAfter"]),
                     f"the last {days:g} days")]
        c = fitted.get(key)
        curve = [(int(p["spendCentsPerDay"]), float(p["valuePerDay"])) for p in (c or {}).get("points") or []]
        revenue = c is not None and c.get("valueUnit") == "revenue_cents"
        name = label.get(key, key)
        series.append((key, name, pts, curve if revenue else [], bool(c and c.get("priorOnly"))))
        newest = pts[0] if pts else None
        step = max(len(curve) // CURVE_TABLE_POINTS, 1)
        shown = curve[step - 1::step][-CURVE_TABLE_POINTS:] if curve else []
        rows.append({"key": key, "name": name, "windows": len(pts), "spend": newest[0] if newest else None,
                     "value": newest[1] if newest else None,
                     "roas": newest[1] / newest[0] if newest and newest[0] else None,
                     "curve": c, "revenue": revenue, "curve_points": shown, "finding": f})
    if not any(r["windows"] or r["curve"] for r in rows):
        return {"chart": None, "rows": rows}
    return {"chart": charts.returns_chart(series), "rows": rows}


def _settings_form(pool: dict[str, Any]) -> dict[str, Any]:
    return {"name": pool["name"], "daily_budget": fmt.amount_input(pool["dailyBudgetCents"], pool["currency"]),
            "currency": pool["currency"], "metric": pool["optimizationMetric"],
            "cadence": str(pool["allocationFrequencyHours"]), "status": pool["status"], "autonomy": pool["autonomy"]}


def _pool_defaults(entities: list[dict[str, Any]]) -> dict[str, Any]:
    currency = entities[0]["currency"] if entities else "EUR"
    return {"currency": currency, "metric": "roas", "cadence": "24", "autonomy": "live", "member": []}


def _plan_zone(plan: dict[str, Any], accounts: dict[str, dict[str, Any]]) -> str:
    """The time zone of the plan's ad account (its first entity's), as the platform reported it; else UTC."""
    for group in [*(plan.get("channels") or []), *(plan.get("deals") or [])]:
        for e in [*(group.get("entities") or []), group.get("budget_entity")]:
            if e and e.get("ad_account_id") in accounts and accounts[e["ad_account_id"]]["zone"]:
                return str(accounts[e["ad_account_id"]]["zone"])
    return "UTC"


def _plan_channels(plan: dict[str, Any], latest: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The plan's channels (allocation now) with the latest snapshot's spend, expected spend and pacing."""
    seen = {c.get("channel"): c for c in (latest or {}).get("channels") or []}
    rows = [{"name": c["name"], "allocated": c["allocated_budget_cents"], "budget_entity": c.get("budget_entity"),
             "entities": c.get("entities") or [], **{k: v for k, v in seen.get(c["name"], {}).items()
                                                     if k != "allocated_budget_cents"}}
            for c in plan.get("channels") or []]
    known = {c["name"] for c in plan.get("channels") or []}
    rows += [{"name": name, "allocated": 0, "entities": [], **c} for name, c in seen.items() if name not in known]
    return rows


def _plan_deals(plan: dict[str, Any], latest: dict[str, Any] | None) -> list[dict[str, Any]]:
    seen = {d.get("deal_id"): d for d in (latest or {}).get("deals") or []}
    return [{"deal_id": d["deal_id"], "allocated": d["allocated_budget_cents"], "entities": d.get("entities") or [],
             **{k: v for k, v in seen.get(d["deal_id"], {}).items() if k != "allocated_budget_cents"}}
            for d in plan.get("deals") or []]


def _at(value: Any) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _plan_charts(plan: dict[str, Any], snapshots: list[dict[str, Any]], planned: dict[str, Any] | None,
                 zone: str) -> list[dict[str, Any]]:
    """The whole flight's and each channel's expected vs actual spend as charts. Expected: the pacing service's
    planned spend over the flight (with today's split), else the snapshots' expected spend and the allocation at
    the end; actual: the snapshots' spend, 0 at the start."""
    start, end = _at(plan["flight_start"]), _at(plan["flight_end"])
    now = datetime.now(UTC)
    t = plan.get("thresholds") or {}
    bands = None
    if all(t.get(k) is not None for k in ("underpacing_warning_pct", "underpacing_critical_pct",
                                          "overpacing_warning_pct", "overpacing_critical_pct")):
        bands = (float(t["underpacing_warning_pct"]), float(t["underpacing_critical_pct"]),
                 float(t["overpacing_warning_pct"]), float(t["overpacing_critical_pct"]))
    points = (planned or {}).get("points") or []
    taken = [(_at(x["taken_at"]), x) for x in snapshots]

    def actual(get: Callable[[dict[str, Any]], int | None]) -> charts.Series:
        series = [(at, v) for at, x in taken if (v := get(x)) is not None]
        return [(start, 0), *series] if series and series[0][0] > start else series

    def expected(get_planned: Callable[[dict[str, Any]], int | None], get_snap: Callable[[dict[str, Any]], int | None],
                 at_end: int) -> charts.Series:
        if points:
            return [(_at(p["at"]), v) for p in points if (v := get_planned(p)) is not None]
        return [(start, 0), *[(at, v) for at, x in taken if (v := get_snap(x)) is not None], (end, at_end)]

    def channel(name: str, key: str) -> Callable[[dict[str, Any]], int | None]:
        """A channel's ``key`` in a snapshot or a planned point (both list ``channels`` by ``channel``)."""
        return lambda x: next((c.get(key) for c in x.get("channels") or [] if c.get("channel") == name), None)

    total = plan["total_budget_cents"]
    out = [{"title": "Whole flight", "budget": total,
            "chart": charts.flight_chart(start, end, now, expected(lambda p: p.get("expected_spend_cents"),
                                                                   lambda x: x.get("expected_spend_cents"), total),
                                         actual(lambda x: x.get("total_spend_cents")), bands)}]
    for c in plan.get("channels") or []:
        name, budget = c["name"], c["allocated_budget_cents"]
        want = channel(name, "expected_spend_cents")
        out.append({"title": name, "budget": budget,
                    "chart": charts.flight_chart(start, end, now, expected(want, want, budget),
                                                 actual(channel(name, "spend_cents")), bands)})
    return out


def _decided(verb: str, p: dict[str, Any]) -> str:
    if verb == "reject":
        return "Proposal rejected: nothing moves."
    replaced = " (it had been replaced by a newer proposal within 10 %, which was approved)" if p.get(
        "approved_for") else ""
    if p.get("status") == "needs_budget":
        return f"Proposal approved{replaced}, but the budgets cannot move yet: {p.get('status_reason')}"
    return f"Proposal approved{replaced}: the budget move goes through the guardrails now."


def _allocation_summary(status: str, moved: int) -> str:
    texts = {"executed": f"Allocated: {moved} budget(s) changed.", "no_change": "Allocated: no budget needed to move.",
             "observed": "Observed only (autonomy observe): nothing was changed.",
             "guardrail_observed": "The guardrails observe this pool: nothing was changed.",
             "frozen": "The pool is frozen: nothing was changed.",
             "partially_failed": f"Partly applied: {moved} budget(s) changed, some failed (see Activity).",
             "failed": "The changes failed on the platform (see Activity)."}
    return texts.get(status, f"Allocation {status.replace('_', ' ')}: see the log below.")


def _accounts(entities: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Ad account id → name, time zone and currency, as the platform reported them (pools' entities)."""
    out: dict[str, dict[str, Any]] = {}
    for e in entities:
        out.setdefault(e["adAccountId"], {"name": e.get("adAccountName") or e["adAccountId"],
                                          "zone": e.get("timezoneName"), "currency": e.get("currency")})
    return out


def _shared_zone(rule: dict[str, Any], zones: dict[str, str]) -> str:
    """The time zone of the rule's scoped ad accounts when the console knows them all in one, else UTC."""
    found = {zones.get(a) for a in (rule.get("scope") or {}).get("ad_account_ids") or []}
    zone = found.pop() if len(found) == 1 else None
    return zone or "UTC"


def _unique(down: list[ServiceDown]) -> list[ServiceDown]:
    seen: dict[str, ServiceDown] = {}
    for d in down:
        seen.setdefault(d.service, d)
    return list(seen.values())


def main() -> None:
    settings = ConsoleSettings(service_name="console")
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None,
                proxy_headers=True, access_log=False)


__all__ = ["Markup", "create_app", "main"]
