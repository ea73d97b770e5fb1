"""The console app over real loopback HTTP against fake pools and guardrails (small FastAPI apps that check the
key like the real ones) and an executor that is down: sessions, cookies, CSRF, roles, field errors, outages."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from allot.console.app import create_app
from allot.console.settings import ConsoleSettings
from allot.runtime.auth import ApiKeyStore, generate_key
from allot.sandbox.testing import serve_app

RAW: dict[str, str] = {}
ENTRIES = []
GRANTS = {"admin": ("ws-a", "admin"), "viewer": ("ws-a", "viewer"), "other": ("ws-b", "admin")}
for _name, (_ws, _role) in GRANTS.items():
    RAW[_name], _entry = generate_key(_ws, _role)  # type: ignore[arg-type]
    ENTRIES.append(_entry.model_dump())
KEYS_JSON = orjson.dumps(ENTRIES).decode()
STORE = ApiKeyStore.from_json(KEYS_JSON)
POOL = {"id": "7c1a0b7e-0000-4000-8000-000000000001", "name": "Spain", "dailyBudgetCents": 30_000, "currency": "EUR",
        "optimizationMetric": "roas", "allocationFrequencyHours": 24, "status": "active", "autonomy": "live",
        "activeMemberCount": 1, "defaultMinBudgetCents": 0, "defaultMaxBudgetCents": None,
        "members": [{"entityId": "as-1", "entityName": "Madrid", "entityType": "adset", "isActive": True,
                     "minBudgetCents": 1_000, "maxBudgetCents": None, "weight": 1.0}]}
ENTITY = {"entityId": "as-1", "entityName": "Madrid", "entityType": "adset", "platform": "sandbox",
          "adAccountId": "act-1", "adAccountName": None, "timezoneName": "Europe/Madrid", "status": "active",
          "dailyBudgetCents": 12_345, "currency": "EUR", "poolId": POOL["id"], "poolName": "Spain"}
seen: list[dict[str, Any]] = []


def _who(request: Request) -> Any:
    raw = request.headers.get("authorization", "")[7:]
    return STORE.authenticate(raw)


def fake_pools() -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/budget-pools")
    async def pools(request: Request) -> Any:
        who = _who(request)
        if who is None:
            return JSONResponse({"error": "http_error", "message": "invalid API key"}, 401)
        return {"pools": [POOL] if who.workspace_id == "ws-a" else []}

    @app.post("/api/v1/budget-pools")
    async def create(request: Request) -> Any:
        seen.append(await request.json())
        return JSONResponse({"error": "validation_failed", "message": "name: taken", "field": "name",
                             "errors": [{"field": "name", "message": "a pool with this name exists"},
                                        {"field": "members.0.entityId", "message": "entity as-1 is in pool Spain"}]},
                            422)

    @app.get("/api/v1/budget-pools/entities")
    async def entities(request: Request) -> Any:
        return {"entities": [ENTITY] if _who(request).workspace_id == "ws-a" else []}

    @app.get("/api/v1/budget-pools/{pool_id}")
    async def one(pool_id: str, request: Request) -> Any:
        if _who(request).workspace_id != "ws-a" or pool_id != POOL["id"]:
            return JSONResponse({"error": "not_found", "message": "no budget pool", "field": "id"}, 404)
        return POOL

    @app.patch("/api/v1/budget-pools/{pool_id}")
    async def patch(pool_id: str, request: Request) -> Any:
        body = await request.json()
        seen.append(body)
        if body["dailyBudgetCents"] < 1_000:
            return JSONResponse({"error": "validation_failed", "field": "dailyBudgetCents",
                                 "message": "active members' floors (minBudgetCents) sum to 1000 cents, above the "
                                            f"pool's daily budget of {body['dailyBudgetCents']} cents"}, 422)
        return POOL

    @app.get("/api/v1/budget-pools/{pool_id}/allocations")
    async def allocations(pool_id: str) -> Any:
        return {"allocations": [{"createdAt": "2026-12-06T10:00:00+00:00", "trigger": "schedule",
                                 "status": "executed", "decision": None,
                                 "plan": {"members": [{"entityId": "as-1", "entityName": "Madrid",
                                                       "beforeCents": 10_000,
                                                     "afterCents": 12_345, "why": "raised 100.00 → 123.45 EUR/day"}]}}]}

    return app


def fake_guardrails() -> FastAPI:
    app = FastAPI()
    state = {"kill_switch": False}
    killed: set[str] = set()

    @app.get("/api/v1/guardrails/limits")
    async def limits() -> Any:
        return {"limits": {"kill_switch": state["kill_switch"], "killed_ad_accounts": sorted(killed),
                           "daily_cap_eur_cents": 50_000, "monthly_cap_eur_cents": None, "max_change_pct": 20,
                           "net_change_pct_window": 20, "net_change_window_h": 72,
                           "autonomy": {"pool": "live"}, "protected_entities": []}, "updated_at": None}

    @app.get("/api/v1/guardrails/ledger")
    async def ledger() -> Any:
        return {"day": "2026-12-06", "month": "2026-12", "timezone_name": "UTC", "exposure_eur_cents": 12_000,
                "month_exposure_eur_cents": 12_000, "daily_cap_eur_cents": 50_000, "daily_remaining_eur_cents": 38_000,
                "monthly_cap_eur_cents": None, "monthly_remaining_eur_cents": None}

    @app.post("/api/v1/guardrails/kill-switch")
    async def kill(request: Request) -> Any:
        if _who(request).role == "viewer":
            return JSONResponse({"error": "http_error", "message": "role 'viewer' may not do this"}, 403)
        body = await request.json()
        if body.get("ad_account_id"):
            killed.add(body["ad_account_id"])
        else:
            state["kill_switch"] = body["enabled"]
        return {"kill_switch": state["kill_switch"]}

    return app


def fake_rules_and_pacing() -> FastAPI:
    app = FastAPI()
    rule = {"id": "r-1", "name": "Scale winners", "status": "active", "schedule": {"interval_minutes": 60},
            "last_evaluated_at": None, "auto_pause_reason": None, "last_error": None}
    proposal = {"proposal_id": "p-1", "source_channel": "meta", "target_channel": "google", "amount_cents": 2_500,
                "currency": "EUR", "reason": "google is behind plan", "status": "pending_approval"}

    @app.get("/api/v1/rules")
    async def rules(request: Request) -> Any:
        return {"rules": [rule] if _who(request).workspace_id == "ws-a" else []}

    @app.post("/api/v1/rules/{rule_id}/{verb}")
    async def set_status(rule_id: str, verb: str, request: Request) -> Any:
        if _who(request).role == "viewer":
            return JSONResponse({"error": "http_error", "message": "role 'viewer' may not do this"}, 403)
        rule["status"] = "active" if verb == "activate" else "paused"
        return rule

    @app.get("/api/v1/pacing/plans")
    async def plans() -> Any:
        return {"plans": [{"plan_id": "plan-1", "name": "Q4 flight", "total_budget_cents": 1_000_000,
                           "currency": "EUR", "flight_start": "2026-12-01", "flight_end": "2026-12-31",
                           "state": "ACTIVE"}]}

    @app.get("/api/v1/pacing/plans/{plan_id}/proposals")
    async def proposals(plan_id: str) -> Any:
        return {"proposals": [proposal] if proposal["status"] == "pending_approval" else []}

    @app.post("/api/v1/pacing/plans/{plan_id}/proposals/{proposal_id}/{verb}")
    async def decide(plan_id: str, proposal_id: str, verb: str) -> Any:
        proposal["status"] = "approved" if verb == "approve" else "rejected"
        return proposal

    return app


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def console_url() -> Iterator[str]:
    with serve_app(fake_pools()) as pools, serve_app(fake_guardrails()) as guardrails, \
            serve_app(fake_rules_and_pacing()) as rules_pacing:
        settings = ConsoleSettings(service_name="console", api_keys=KEYS_JSON, pools_url=pools,
                                   guardrails_url=guardrails, executor_url=f"http://127.0.0.1:{_closed_port()}",
                                   rules_url=rules_pacing, pacing_url=rules_pacing)
        with serve_app(create_app(settings)) as url:
            yield url


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "every form carries the CSRF token"
    return m.group(1)


def signed_in(url: str, who: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=20)
    page = client.get("/sign-in")
    r = client.post("/sign-in", data={"api_key": RAW[who], "csrf_token": csrf_of(page.text), "next": "/"})
    assert r.status_code == 303 and r.headers["location"] == "/"
    return client


def test_sign_in_makes_a_server_side_session_with_a_strict_http_only_cookie(console_url: str) -> None:
    with httpx.Client(base_url=console_url, timeout=20) as client:
        assert client.get("/").headers["location"] == "/sign-in?next=/"
        page = client.get("/sign-in")
        bad = client.post("/sign-in", data={"api_key": "allot_nope", "csrf_token": csrf_of(page.text)})
        assert bad.status_code == 401 and "API key: not a valid key" in bad.text
        forged = client.post("/sign-in", data={"api_key": RAW["admin"], "csrf_token": "forged"})
        assert forged.status_code == 400 and "Allot console" in forged.text
        before = client.cookies.get("allot_console")
        r = client.post("/sign-in", data={"api_key": RAW["admin"], "csrf_token": csrf_of(page.text),
                                          "next": "//evil.example"})
        assert r.status_code == 303 and r.headers["location"] == "/", "only local redirects after sign-in"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie  # plain http here
        assert RAW["admin"] not in cookie and client.cookies.get("allot_console") != before, "a new session id"
        home = client.get("/")
        assert home.status_code == 200 and "ws-a" in home.text and "€120.00" in home.text
        with httpx.Client(base_url=console_url, timeout=20) as proxied:
            # behind a TLS-terminating proxy on loopback (uvicorn trusts X-Forwarded-Proto from 127.0.0.1): Secure
            tls = proxied.get("/sign-in", headers={"X-Forwarded-Proto": "https"})
            assert "Secure" in tls.headers["set-cookie"] and "HttpOnly" in tls.headers["set-cookie"]
        assert "default-src 'self'" in home.headers["content-security-policy"]
        assert client.post("/sign-out", data={"csrf_token": "wrong"}).status_code == 403
        assert client.post("/sign-out", data={"csrf_token": csrf_of(home.text)}).status_code == 303
        assert client.get("/").status_code == 303


def test_pool_pages_show_names_and_money_and_a_viewer_gets_no_buttons(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin, closing(signed_in(console_url, "viewer")) as viewer:
        listing = admin.get("/automation/budget-pools").text
        assert "Spain" in listing and "€300.00" in listing and "once a day" in listing and "New pool" in listing
        assert "executed, 6 Dec 2026, 11:00 CET" in listing, "the last allocation in the account's time zone"
        detail = admin.get(f"/automation/budget-pools/{POOL['id']}").text
        assert "Madrid" in detail and "€123.45" in detail and "€10.00" in detail and "Europe/Madrid" in detail
        assert "raised 100.00 → 123.45 EUR/day" in detail and "11:00 CET" in detail  # 10:00 UTC in Madrid
        assert 'data-testid="allocate"' in detail and "<svg" in detail
        v = viewer.get(f"/automation/budget-pools/{POOL['id']}").text
        assert "Madrid" in v and 'data-testid="allocate"' not in v and 'data-testid="simulate"' not in v
        assert "New pool" not in viewer.get("/automation/budget-pools").text
        assert 'data-testid="kill-switch"' not in viewer.get("/limits").text
        assert viewer.get("/automation/budget-pools/new").status_code == 403
        # a forged viewer POST reaches the API with the viewer's key, which refuses it
        r = viewer.post("/limits/kill-switch", data={"csrf_token": csrf_of(v), "enabled": "true", "confirm": "yes"},
                        follow_redirects=True)
        assert "Kill switch not changed: role &#39;viewer&#39; may not do this" in r.text
        with closing(signed_in(console_url, "other")) as other:
            assert "No budget pools yet" in other.get("/automation/budget-pools").text
            assert other.get(f"/automation/budget-pools/{POOL['id']}").status_code == 404


def test_form_errors_name_the_field_and_keep_the_input(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin:
        token = csrf_of(admin.get("/automation/budget-pools/new").text)
        r = admin.post("/automation/budget-pools/new", data={"csrf_token": token, "name": "", "daily_budget": "abc",
                                                              "currency": "EUR", "cadence": "24", "member": "as-1"})
        assert r.status_code == 422 and "Name: give the pool a name" in r.text
        assert "Daily budget: “abc” is not an amount in EUR" in r.text and 'aria-invalid="true"' in r.text
        assert not seen, "nothing sent while the form itself is wrong"
        r = admin.post("/automation/budget-pools/new", data={"csrf_token": token, "name": "Spain",
                                                              "daily_budget": "250,50", "currency": "EUR",
                                                              "cadence": "24", "member": "as-1"})
        assert r.status_code == 422 and "Name: a pool with this name exists" in r.text
        assert "Members: entity as-1 is in pool Spain" in r.text and 'value="Spain"' in r.text
        assert seen[-1]["dailyBudgetCents"] == 25_050 and seen[-1]["members"][0]["entityName"] == "Madrid"
        assert "Traceback" not in r.text


def test_a_service_that_is_down_is_named_and_the_rest_keeps_working(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin:
        r = admin.get("/activity")
        assert r.status_code == 200 and "The <strong>Executor</strong> service is unavailable" in r.text
        assert "Blocked by the guardrails" in r.text
        home = admin.get("/")
        assert "Executor" in home.text and "€120.00" in home.text, "the overview shows what the others answered"
        limits = admin.get("/limits")
        assert "service is unavailable" not in limits.text and "€500.00" in limits.text
        confirm = admin.post("/limits/kill-switch", data={"csrf_token": csrf_of(limits.text), "enabled": "true"})
        assert "Stop every budget change" in confirm.text and 'name="confirm" value="yes"' in confirm.text
        done = admin.post("/limits/kill-switch", data={"csrf_token": csrf_of(limits.text), "enabled": "true",
                                                       "confirm": "yes"}, follow_redirects=True)
        assert "Kill switch is ON" in done.text and "ON</span> Every budget change" in done.text
        assert "act-1" in done.text and "Europe/Madrid" in done.text and "running" in done.text
        ask = admin.post("/limits/kill-switch", data={"csrf_token": csrf_of(limits.text), "enabled": "true",
                                                      "ad_account_id": "act-1"})
        assert "Stop every budget change in ad account act-1?" in ask.text
        assert 'name="ad_account_id" value="act-1"' in ask.text
        stopped = admin.post("/limits/kill-switch", data={"csrf_token": csrf_of(limits.text), "enabled": "true",
                                                          "ad_account_id": "act-1", "confirm": "yes"},
                             follow_redirects=True)
        assert "Ad account act-1 stopped." in stopped.text and ">stopped<" in stopped.text


def test_rules_pause_and_pacing_proposals_are_approved_from_their_pages(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin, closing(signed_in(console_url, "viewer")) as viewer:
        rules = admin.get("/rules")
        assert "Scale winners" in rules.text and "every 60 min" in rules.text and ">Pause<" in rules.text
        assert ">Pause<" not in viewer.get("/rules").text
        paused = admin.post("/rules/r-1/pause", data={"csrf_token": csrf_of(rules.text)}, follow_redirects=True)
        assert "Rule “Scale winners” is paused." in paused.text and ">Activate<" in paused.text
        assert admin.post("/rules/r-1/pause", data={"csrf_token": "forged"}).status_code == 403
        pacing = admin.get("/pacing")
        assert "Q4 flight" in pacing.text and "€25.00" in pacing.text and "waiting for approval" in pacing.text
        assert "€10,000.00" in pacing.text and ">Approve<" in pacing.text
        assert ">Approve<" not in viewer.get("/pacing").text
        done = admin.post("/pacing/plan-1/proposals/p-1/approve", data={"csrf_token": csrf_of(pacing.text)},
                          follow_redirects=True)
        assert "Proposal approved" in done.text and "No open proposals." in done.text


def test_pool_settings_save_and_a_refusal_names_the_field_in_money(console_url: str) -> None:
    with closing(signed_in(console_url, "admin")) as admin:
        detail = admin.get(f"/automation/budget-pools/{POOL['id']}")
        assert 'value="300.00"' in detail.text and "Save settings" in detail.text
        form = {"csrf_token": csrf_of(detail.text), "currency": "EUR", "name": "Spain", "daily_budget": "5",
                "metric": "roas", "cadence": "12", "status": "paused", "autonomy": "observe"}
        r = admin.post(f"/automation/budget-pools/{POOL['id']}/settings", data=form)
        assert r.status_code == 422 and 'id="daily_budget-error"' in r.text
        assert "Daily budget: active members&#39; floors (minBudgetCents) sum to €10.00" in r.text
        assert seen[-1] == {"name": "Spain", "optimizationMetric": "roas", "status": "paused", "autonomy": "observe",
                            "allocationFrequencyHours": 12, "dailyBudgetCents": 500}
        ok = admin.post(f"/automation/budget-pools/{POOL['id']}/settings", data={**form, "daily_budget": "400"},
                        follow_redirects=True)
        assert "Pool settings saved." in ok.text and seen[-1]["dailyBudgetCents"] == 40_000
        bad = admin.post(f"/automation/budget-pools/{POOL['id']}/settings", data={**form, "daily_budget": "x"})
        assert bad.status_code == 422 and "Daily budget: “x” is not an amount in EUR" in bad.text
