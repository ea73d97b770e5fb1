"""The console's Limits & autonomy, Activity and Overview pages over real loopback HTTP against small fake services:
the guardrails' limits are the real model (``patch_limits``, its 422s shaped like the runtime's), the executor answers
its change sets, rules and pacing their lists; a second console whose guardrails do not answer shows the rest."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from allot.console.app import create_app
from allot.console.settings import ConsoleSettings
from allot.guardrails.domain import WorkspaceLimits, diff_settings, patch_limits, set_kill_switch
from allot.runtime.auth import ApiKeyStore, generate_key
from allot.sandbox.testing import serve_app

RAW: dict[str, str] = {}
ENTRIES = []
for _name, (_ws, _role) in {"admin": ("ws-a", "admin"), "operator": ("ws-a", "operator"),
                            "viewer": ("ws-a", "viewer")}.items():
    RAW[_name], _entry = generate_key(_ws, _role)  # type: ignore[arg-type]
    ENTRIES.append(_entry.model_dump())
KEYS_JSON = orjson.dumps(ENTRIES).decode()
STORE = ApiKeyStore.from_json(KEYS_JSON)
NOW = datetime.now(UTC)
POOL_ID = "7c1a0b7e-0000-4000-8000-000000000001"


def _entity(eid: str, name: str, account: str, account_name: str | None) -> dict[str, Any]:
    return {"entityId": eid, "entityName": name, "entityType": "adset", "platform": "sandbox",
            "adAccountId": account, "adAccountName": account_name, "timezoneName": "Europe/Madrid",
            "status": "active", "dailyBudgetCents": 10_000, "currency": "EUR", "poolId": POOL_ID, "poolName": "Spain"}


ENTITIES = [_entity("as-1", "Madrid", "act-1", "Iberia"), _entity("as-2", "Sevilla", "act-1", "Iberia"),
            _entity("as-3", "Lisboa", "act-2", None)]


def _who(request: Request) -> Any:
    return STORE.authenticate(request.headers.get("authorization", "")[7:])


def _refuse(request: Request, role: str) -> JSONResponse | None:
    rank = {"viewer": 0, "operator": 1, "admin": 2}
    who = _who(request)
    if rank[who.role] < rank[role]:
        return JSONResponse({"error": "http_error", "message": f"role '{who.role}' may not do this"}, 403)
    return None


def _change_set(request_id: str, source: str, source_id: str, entity: str, before: int, after: int, status: str,
                at: datetime) -> dict[str, Any]:
    return {"request_id": request_id, "source": source, "source_id": source_id, "created_at": at.isoformat(),
            "finished_at": (at + timedelta(seconds=5)).isoformat(), "timezone_name": "Europe/Madrid",
            "undo_request_id": None, "undo_requested_at": None,
            "actions": [{"action_id": f"a-{request_id}", "status": status, "before_cents": before,
                         "after_cents": after if status == "succeeded" else None, "error": None
                         if status == "succeeded" else "the platform refused",
                         "action": {"entity_id": entity, "entity_type": "adset", "from_cents": before,
                                    "to_cents": after, "currency": "EUR"}}]}


CHANGE_SETS = [
    _change_set("11111111-0000-4000-8000-000000000001", "pool", POOL_ID, "as-1", 10_000, 12_000, "succeeded",
                NOW),
    _change_set("11111111-0000-4000-8000-000000000002", "rule", "rule-1", "as-3", 8_000, 6_000, "failed",
                NOW),  # both today, whatever the hour (the overview counts the UTC day)
    _change_set("11111111-0000-4000-8000-000000000003", "pool", POOL_ID, "as-2", 5_000, 5_500, "succeeded",
                datetime(2026, 1, 5, 9, tzinfo=UTC)),
]


def _decision(n: int, source: str, source_id: str, status: str, check: str | None, reason: str, at: datetime,
              entity: str | None = None) -> dict[str, Any]:
    return {"decision_id": f"d-{n}", "request_id": f"r-{n}", "source": source, "source_id": source_id,
            "status": status, "check": check, "reason": reason, "details": {}, "observe_only": False,
            "retry_after_s": None, "notes": [], "decided_at": at.isoformat(), "http_status": 200,
            "actions": [{"entity_id": entity}] if entity else [], "event_id": f"e-{n}",
            "event_type": "guardrail.blocked" if status == "blocked" else "guardrail.approved"}


DECISIONS = [
    _decision(1, "pool", POOL_ID, "blocked", "kill_switch", "the workspace kill switch is on", NOW),
    _decision(2, "rule", "rule-1", "blocked", "daily_cap", "the daily cap of 500.00 EUR would be exceeded",
              NOW - timedelta(hours=3)),
    _decision(3, "pool", POOL_ID, "approved", None, "approved 1 action", NOW - timedelta(hours=1), "as-1"),
]
TRIPPED = {"id": "rule-1", "name": "Doomed", "status": "paused", "schedule": {"interval_minutes": 60},
           "auto_pause_reason": "circuit breaker: error rate 60.0% in the last 24 h", "last_error": "500 on write",
           "last_evaluated_at": None}
CALM = {**TRIPPED, "id": "rule-2", "name": "Calm", "status": "active", "auto_pause_reason": None}
RULE_AUDIT = [
    {"id": 2, "rule_id": "rule-1", "action": "auto_pause", "actor": "rules", "at": NOW.isoformat(),
     "before": {**TRIPPED, "status": "active"}, "after": TRIPPED, "detail": {"reason": "circuit breaker tripped"}},
    {"id": 1, "rule_id": "rule-1", "action": "update", "actor": "key-admin", "at": "2026-01-05T08:00:00+00:00",
     "before": {**TRIPPED, "name": "Doomed", "schedule": {"interval_minutes": 30}}, "after": TRIPPED, "detail": None}]
PLANS = [{"plan_id": "plan-1", "name": "Q4 flight", "campaign_id": "cmp-1", "state": "PACING_HOLD"},
         {"plan_id": "plan-2", "name": "Quiet flight", "campaign_id": "cmp-2", "state": "ACTIVE"}]
LATEST = {"plan-1": {"taken_at": NOW.isoformat(), "alert": {
    "level": "critical", "direction": "underpacing", "deviation_pct": -31.0,
    "message": "Campaign is underpacing by -31.0% (threshold -25.0%)"}},
          "plan-2": {"taken_at": NOW.isoformat(), "alert": None}}


def fake_services() -> FastAPI:
    """Pools, guardrails, executor, rules and pacing on one app (their paths do not overlap)."""
    app = FastAPI()
    state: dict[str, Any] = {"limits": WorkspaceLimits(daily_cap_eur_cents=50_000), "version": 1, "audit": []}
    app.state.patches = []

    @app.get("/api/v1/budget-pools")
    async def pools() -> Any:
        return {"pools": [{"id": POOL_ID, "name": "Spain", "status": "active"}]}

    @app.get("/api/v1/budget-pools/entities")
    async def entities() -> Any:
        return {"entities": ENTITIES}

    def view() -> dict[str, Any]:
        return {"workspace_id": "ws-a", "limits": state["limits"].model_dump(mode="json"),
                "version": state["version"], "updated_at": "2026-12-06T10:00:00+00:00", "updated_by": "key-admin",
                "defaults": False}

    def change(request: Request, action: str, after: WorkspaceLimits) -> list[str]:
        changes = diff_settings(state["limits"], after)
        if changes:
            state["limits"], state["version"] = after, state["version"] + 1
            who = _who(request)
            state["audit"].insert(0, {"id": len(state["audit"]) + 1, "at": datetime.now(UTC).isoformat(),
                                      "key_id": who.key_id, "role": who.role, "action": action,
                                      "version": state["version"], "changes": changes})
        return sorted(changes)

    @app.get("/api/v1/guardrails/limits")
    async def limits() -> Any:
        return view()

    @app.patch("/api/v1/guardrails/limits")
    async def patch(request: Request) -> Any:
        if (refused := _refuse(request, "admin")) is not None:
            return refused
        body = await request.json()
        app.state.patches.append(body)
        if "act-9" in (body.get("account_whitelist") or []):  # the tenancy refusal: another workspace's account
            return JSONResponse({"error": "validation_failed", "message": "account_whitelist: ad account act-9 "
                                 "belongs to another workspace", "errors": [
                                     {"field": "account_whitelist", "message": "ad account act-9 belongs to another "
                                                                               "workspace"}]}, 422)
        try:
            after = patch_limits(state["limits"], body)
        except ValidationError as exc:  # shaped like the runtime's RequestValidationError handler
            errors = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
            return JSONResponse({"error": "validation_failed", "errors": errors,
                                 "message": "; ".join(f"{e['field']}: {e['message']}" for e in errors)}, 422)
        return {**view(), "changed": change(request, "patch", after)}

    @app.post("/api/v1/guardrails/kill-switch")
    async def kill(request: Request) -> Any:
        if (refused := _refuse(request, "operator")) is not None:
            return refused
        body = await request.json()
        changed = change(request, "kill_switch", set_kill_switch(state["limits"], body["enabled"],
                                                                  body.get("ad_account_id")))
        return {"kill_switch": state["limits"].kill_switch, "changed": changed}

    @app.get("/api/v1/guardrails/ledger")
    async def ledger() -> Any:
        cap = state["limits"].daily_cap_eur_cents
        return {"day": NOW.date().isoformat(), "month": NOW.strftime("%Y-%m"), "timezone_name": "UTC",
                "exposure_eur_cents": 12_000, "month_exposure_eur_cents": 40_000, "daily_cap_eur_cents": cap,
                "daily_remaining_eur_cents": None if cap is None else max(0, cap - 12_000),
                "monthly_cap_eur_cents": state["limits"].monthly_cap_eur_cents, "monthly_remaining_eur_cents": None,
                "decisions": {"approved": 4, "blocked": 2, "observed": 0}}

    @app.get("/api/v1/guardrails/decisions")
    async def decisions(limit: int = 50, source_id: str | None = None) -> Any:
        app.state.decision_queries = [*getattr(app.state, "decision_queries", []), source_id]
        return {"decisions": [d for d in DECISIONS if source_id in (None, d["source_id"])][:limit]}

    @app.get("/api/v1/guardrails/audit-log")
    async def audit(limit: int = 50) -> Any:
        return {"entries": state["audit"][:limit]}

    @app.get("/api/v1/change-sets")
    async def change_sets(limit: int = 50) -> Any:
        return {"change_sets": CHANGE_SETS[:limit]}

    @app.get("/api/v1/rules")
    async def rules() -> Any:
        return {"rules": [TRIPPED, CALM]}

    @app.get("/api/v1/audit-log")
    async def rule_audit(limit: int = 100) -> Any:
        return {"entries": RULE_AUDIT[:limit], "next_before_id": None}

    @app.get("/api/v1/pacing/plans")
    async def plans() -> Any:
        return {"plans": PLANS}

    @app.get("/api/v1/pacing/plans/{plan_id}/snapshots/latest")
    async def latest(plan_id: str) -> Any:
        return LATEST[plan_id]

    return app


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[str, FastAPI]]:
    app = fake_services()
    with serve_app(app) as url:
        yield url, app


def _console(services_url: str, **down: str) -> ConsoleSettings:
    urls = {f"{k}_url": services_url for k in ("pools", "guardrails", "executor", "rules", "pacing")}
    return ConsoleSettings(service_name="console", api_keys=KEYS_JSON, **{**urls, **down})


@pytest.fixture(scope="module")
def console_url(fake: tuple[str, FastAPI]) -> Iterator[str]:
    with serve_app(create_app(_console(fake[0]))) as url:
        yield url


@pytest.fixture(scope="module")
def no_guardrails_url(fake: tuple[str, FastAPI]) -> Iterator[str]:
    """A console whose guardrails do not answer (nothing listens on the port)."""
    with serve_app(create_app(_console(fake[0], guardrails_url=f"http://127.0.0.1:{_closed_port()}"))) as url:
        yield url


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "every form carries the CSRF token"
    return m.group(1)


def signed_in(url: str, who: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=20)
    page = client.get("/sign-in")
    r = client.post("/sign-in", data={"api_key": RAW[who], "csrf_token": csrf_of(page.text), "next": "/"})
    assert r.status_code == 303
    return client


# ---------------------------------------------------------------- limits & autonomy


def test_limits_show_caps_against_today_s_exposure_whitelists_protection_and_autonomy(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin:
        page = admin.get("/limits")
        assert page.status_code == 200 and "service is unavailable" not in page.text
        caps = page.text[page.text.index('data-testid="caps"'):]
        assert "€500.00" in caps and "€120.00" in caps and "€380.00" in caps and "€400.00" in caps
        assert 'id="daily_cap" name="daily_cap" inputmode="decimal" value="500.00"' in page.text
        assert 'value="20"' in page.text and 'value="72"' in page.text
        assert "Iberia" in page.text and "act-2" in page.text, "accounts by name, else id"
        assert "Madrid" in page.text and "Lisboa" in page.text, "entities to protect, by name"
        assert '<label for="autonomy_rule">Rules</label>' in page.text
        for testid in ("kill-switch", "save-caps", "save-whitelist", "save-protected", "save-autonomy"):
            assert f'data-testid="{testid}"' in page.text


def test_an_admin_edits_the_caps_in_eur_and_a_refusal_names_the_field(fake: tuple[str, FastAPI],
                                                                      console_url: str) -> None:
    _, app = fake
    with closing(signed_in(console_url, "admin")) as admin:
        token = csrf_of(admin.get("/limits").text)
        form = {"csrf_token": token, "daily_cap": "750,50", "monthly_cap": "", "max_change_pct": "25",
                "net_change_pct_window": "30", "net_change_window_h": "48"}
        bad = admin.post("/limits/caps", data={**form, "daily_cap": "lots"})
        assert bad.status_code == 422 and "Daily cap: “lots” is not an amount in EUR" in bad.text
        assert 'value="lots"' in bad.text and 'aria-invalid="true" aria-describedby="daily_cap-error"' in bad.text
        assert not app.state.patches, "nothing sent while the form itself is wrong"
        refused = admin.post("/limits/caps", data={**form, "max_change_pct": "5000"})
        assert refused.status_code == 422
        assert "Largest single change: Input should be less than or equal to 1000" in refused.text
        assert 'aria-describedby="max_change_pct-error"' in refused.text and 'value="5000"' in refused.text
        saved = admin.post("/limits/caps", data=form)
        assert saved.status_code == 303 and saved.headers["location"] == "/limits#caps"
        assert app.state.patches[-1] == {"daily_cap_eur_cents": 75_050, "monthly_cap_eur_cents": None,
                                         "max_change_pct": "25", "net_change_pct_window": "30",
                                         "net_change_window_h": 48}
        page = admin.get("/limits").text
        assert "Saved: Daily cap, Largest single change, Net change per entity, Net-change window." in page
        assert 'value="750.50"' in page and "€630.50" in page, "the new cap and what is left of it today"


def test_whitelists_protected_entities_and_autonomy_save_and_refusals_land_on_their_field(
        fake: tuple[str, FastAPI], console_url: str) -> None:
    _, app = fake
    with closing(signed_in(console_url, "admin")) as admin:
        token = csrf_of(admin.get("/limits").text)
        refused = admin.post("/limits/whitelist", data={"csrf_token": token, "whitelist_mode": "listed",
                                                        "account": ["act-1", "act-9"], "platform_mode": "all"})
        assert refused.status_code == 422
        assert "Ad accounts: ad account act-9 belongs to another workspace" in refused.text
        assert 'id="account_whitelist-error"' in refused.text and "(not reported)" in refused.text
        ok = admin.post("/limits/whitelist", data={"csrf_token": token, "whitelist_mode": "listed", "account": "act-1",
                                                   "platform_mode": "listed", "platform": "sandbox"})
        assert ok.status_code == 303
        assert app.state.patches[-1] == {"account_whitelist": ["act-1"], "platform_whitelist": ["sandbox"]}
        admin.post("/limits/protected", data={"csrf_token": token, "entity": ["as-1", "as-3"], "other": "as-77, as-78"})
        assert app.state.patches[-1] == {"protected_entities": ["as-1", "as-3", "as-77", "as-78"]}
        page = admin.get("/limits").text
        assert "Saved: Protected entities." in page and "as-77 <span class=\"hint\">(not reported)" in page
        admin.post("/limits/autonomy", data={"csrf_token": token, **{f"autonomy_{k}": "live" for k in
                                                                     ("pool", "pacing", "manual", "undo")},
                                             "autonomy_rule": "observe"})
        assert app.state.patches[-1]["autonomy"]["rule"] == "observe"
        page = admin.get("/limits").text
        assert '<option value="observe" selected>' in page and "Saved: Autonomy." in page
        bad = admin.post("/limits/autonomy", data={"csrf_token": token, "autonomy_pool": "sometimes",
                                                   **{f"autonomy_{k}": "live" for k in
                                                      ("rule", "pacing", "manual", "undo")}})
        assert bad.status_code == 422 and "Autonomy of budget pools: Input should be" in bad.text
        assert 'aria-describedby="autonomy_pool-error"' in bad.text
        admin.post("/limits/autonomy", data={"csrf_token": token, **{f"autonomy_{k}": "live" for k in
                                                                     ("pool", "rule", "pacing", "manual", "undo")}})
        admin.post("/limits/whitelist", data={"csrf_token": token, "whitelist_mode": "all", "platform_mode": "all"})
        admin.post("/limits/protected", data={"csrf_token": token})


def test_the_kill_switch_asks_first_and_operators_flip_it_but_edit_nothing_else(console_url: str) -> None:
    with closing(signed_in(console_url, "operator")) as operator:
        page = operator.get("/limits").text
        assert 'data-testid="kill-switch"' in page and "save-caps" not in page and "save-autonomy" not in page
        assert "The guardrails let admins change the limits; operators flip the kill switches" in page
        token = csrf_of(page)
        ask = operator.post("/limits/kill-switch", data={"csrf_token": token, "enabled": "true",
                                                         "ad_account_id": "act-2"})
        assert ask.status_code == 200 and "Stop every budget change in ad account act-2?" in ask.text
        done = operator.post("/limits/kill-switch", data={"csrf_token": token, "enabled": "true",
                                                          "ad_account_id": "act-2", "confirm": "yes"},
                             follow_redirects=True)
        assert "Ad account act-2 stopped." in done.text and ">stopped<" in done.text
        operator.post("/limits/kill-switch", data={"csrf_token": token, "enabled": "false", "ad_account_id": "act-2",
                                                   "confirm": "yes"})
        forbidden = operator.post("/limits/caps", data={"csrf_token": token, "daily_cap": "1"})
        assert forbidden.status_code == 403 and "the guardrails allow admins" in forbidden.text


def test_a_viewer_sees_the_limits_without_any_button(console_url: str) -> None:
    with closing(signed_in(console_url, "viewer")) as viewer:
        page = viewer.get("/limits").text
        assert "€500.00" in page or "€750.50" in page
        assert "<button" not in page.replace('<button class="secondary" type="submit">Sign out</button>', "")
        assert "every ad account" in page and "Rules" in page and "live" in page


def test_limits_with_the_guardrails_down_name_them(no_guardrails_url: str) -> None:
    with closing(signed_in(no_guardrails_url, "admin")) as admin:
        page = admin.get("/limits")
        assert page.status_code == 200 and "The <strong>Guardrails</strong> service is unavailable" in page.text
        assert "The limits cannot be shown right now." in page.text
        token = csrf_of(page.text)
        r = admin.post("/limits/autonomy", data={"csrf_token": token, "autonomy_rule": "observe"},
                       follow_redirects=True)
        assert "The Guardrails service is unavailable; the limits were not changed." in r.text


# ---------------------------------------------------------------- activity


def test_activity_shows_change_sets_decisions_with_check_and_reason_and_the_audit_log(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin:
        token = csrf_of(admin.get("/limits").text)
        admin.post("/limits/caps", data={"csrf_token": token, "daily_cap": "500.00", "monthly_cap": "9000",
                                         "max_change_pct": "20", "net_change_pct_window": "20",
                                         "net_change_window_h": "72"})
        page = admin.get("/activity")
        assert page.status_code == 200 and "service is unavailable" not in page.text
        sets = page.text[page.text.index('data-testid="change-sets"'):page.text.index("Blocked by the guardrails")]
        assert "Pool Spain" in sets and "Madrid" in sets and "€100.00" in sets and "€120.00" in sets
        assert "Rule" in sets and "Lisboa" in sets and "Failed" in sets and "the platform refused" in sets
        assert sets.count('data-testid="undo"') == 1, "only the recent applied change set can be undone"
        blocked = page.text[page.text.index('data-testid="blocked"'):page.text.index('id="audit"')]
        assert "kill switch" in blocked and "the workspace kill switch is on" in blocked
        assert "daily cap" in blocked and "approved 1 action" not in blocked
        audit = page.text[page.text.index('data-testid="audit"'):]
        assert "Limits edited" in audit and "(admin)" in audit and "Kill switch" in audit
        assert "Monthly cap: no cap → €9,000.00" in audit and "Stopped ad accounts: none → act-2" in audit
        assert "Protected entities: Madrid, Lisboa, as-77, as-78 → none" in audit, "entities by name"
        assert "Autonomy rule: live → observe" in audit
        rules = _table(page.text, "rule-audit")
        assert 'href="/rules/rule-1">Doomed</a>' in rules and "Auto pause" in rules and "circuit breaker" in rules
        assert "Update: schedule" in rules and "key-admin" in rules


def _table(html: str, testid: str) -> str:
    """The table with that test id (empty when the page has none)."""
    at = html.find(f'data-testid="{testid}"')
    return "" if at < 0 else html[at:html.index("</table>", at)]


def test_activity_filters_by_entity_source_and_day_through_the_query_string(fake: tuple[str, FastAPI],
                                                                           console_url: str) -> None:
    _, app = fake
    with closing(signed_in(console_url, "viewer")) as viewer:
        by_entity = viewer.get("/activity", params={"entity": "as-1", "decisions": "all"}).text
        sets = _table(by_entity, "change-sets")
        assert "Madrid" in sets and "Lisboa" not in sets and "Sevilla" not in sets
        decided = _table(by_entity, "blocked")
        assert "approved 1 action" in decided and "the workspace kill switch is on" not in decided
        assert "<h2>Guardrail decisions</h2>" in by_entity
        assert '<option value="as-1" selected>Madrid (Iberia)</option>' in by_entity
        by_pool = viewer.get("/activity", params={"source": f"pool:{POOL_ID}"}).text
        assert app.state.decision_queries[-1] == POOL_ID, "the guardrails filter decisions by source id themselves"
        assert "Lisboa" not in _table(by_pool, "change-sets") and "Sevilla" in _table(by_pool, "change-sets")
        assert "the workspace kill switch is on" in _table(by_pool, "blocked")
        assert "daily cap" not in _table(by_pool, "blocked") and f'value="pool:{POOL_ID}" selected' in by_pool
        by_rule = viewer.get("/activity", params={"source": "rule"}).text
        assert "Lisboa" in _table(by_rule, "change-sets") and "Madrid" not in _table(by_rule, "change-sets")
        assert "daily cap" in _table(by_rule, "blocked")
        by_day = viewer.get("/activity", params={"from": "2026-01-05", "to": "2026-01-05"}).text
        assert "Sevilla" in _table(by_day, "change-sets") and "Madrid" not in _table(by_day, "change-sets")
        assert "No decision matches the filters." in by_day
        assert "No setting was changed on those days." in by_day and "Clear filters" in by_day
        assert "Update: schedule" in _table(by_day, "rule-audit") and "Auto pause" not in by_day
        assert 'id="rule-audit"' not in by_pool, "a pool's activity has no rule changes"
        bad = viewer.get("/activity", params={"from": "yesterday"}).text
        assert "From: “yesterday” is not a date (YYYY-MM-DD)" in bad and 'aria-invalid="true"' in bad
        assert "Madrid" in _table(bad, "change-sets"), "a day that is not one is ignored"
        assert "newest 200 change sets, 500 guardrail decisions and 200 audit entries" in bad
        assert 'data-testid="undo"' not in bad, "a viewer gets no undo"


def test_activity_with_the_guardrails_down_names_them_and_shows_the_change_sets(no_guardrails_url: str) -> None:
    with closing(signed_in(no_guardrails_url, "admin")) as admin:
        page = admin.get("/activity").text
        assert "The <strong>Guardrails</strong> service is unavailable" in page
        assert "Guardrail decisions cannot be shown right now." in page
        assert "The audit log cannot be shown right now." in page and "Madrid" in page


# ---------------------------------------------------------------- overview


def _card(html: str, name: str) -> str:
    at = html.index(f'data-testid="card-{name}"')
    return html[at:html.index("</section>", at)]


def test_the_overview_cards_link_to_their_pages(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin, closing(signed_in(console_url, "viewer")) as viewer:
        admin.post("/limits/caps", data={"csrf_token": csrf_of(admin.get("/limits").text), "daily_cap": "500",
                                         "monthly_cap": "9000", "max_change_pct": "20", "net_change_pct_window": "20",
                                         "net_change_window_h": "72"})
        home = viewer.get("/").text
        today = NOW.date().isoformat()
        assert '<a href="/limits#kill-switch">Kill switch</a>' in _card(home, "kill-switch")
        assert "off" in _card(home, "kill-switch")
        spend = _card(home, "spend")
        assert "€120.00" in spend and "of the €500.00 daily cap (24\u00a0%)" in spend
        assert "€400.00 of €9,000.00" in spend
        changes = _card(home, "changes")
        assert f'href="/activity?from={today}&amp;to={today}"' in changes
        assert "<strong>2</strong>" in changes, "today's two, not January's"
        assert "1 budget(s) applied, 1 failed" in changes
        assert "<strong>2</strong>" in _card(home, "blocks")
        pacing = _card(home, "pacing")
        assert "<strong>1</strong>" in pacing and 'href="/pacing/plans/plan-1">Q4 flight</a>' in pacing
        assert "underpacing by -31.0%" in pacing and "Quiet flight" not in pacing
        rules = _card(home, "rules")
        assert 'href="/rules/rule-1">Doomed</a>' in rules and "circuit breaker" in rules and "Calm" not in rules
        assert "<strong>1</strong>" in _card(home, "pools")
        assert "service is unavailable" not in home


def test_the_overview_with_the_guardrails_down_marks_their_cards_and_shows_the_rest(no_guardrails_url: str) -> None:
    with closing(signed_in(no_guardrails_url, "admin")) as admin:
        home = admin.get("/")
        assert home.status_code == 200 and "The <strong>Guardrails</strong> service is unavailable" in home.text
        for name in ("kill-switch", "spend", "blocks"):
            assert "unavailable" in _card(home.text, name)
        assert "unavailable" not in _card(home.text, "changes") and "Q4 flight" in _card(home.text, "pacing")
        assert "Doomed" in _card(home.text, "rules")
