"""Property-based fuzzing of every HTTP API (schemathesis 4 + hypothesis) against the REAL running services.

Property: whatever the request (valid or invalid by the OpenAPI document: schemathesis generates both), a service
never answers 5xx; every answer whose status the document lists matches the schema it gives for it (the route's
response model, or the ``Problem`` error shape: ``response_schema_conformance``); its 4xx are JSON objects with a
``message`` (the runtime's error handlers) and, without an API key, every route answers 401 (never 5xx, never data).

Each service runs its real lifespan (migrations on the session's Postgres, consumer on the session's broker, relay,
background tasks) through ``tests.support.service.running_service`` on a loop of its own (``runner_for`` in
fuzz_services.py, on fuzz_support.py's runner); the schema is the service's own ``/openapi.json``. Half of the
generated cases (chosen deterministically) have their id path parameters pointed at a real object created beforehand
through the API (fuzz_services.py's seeds), so the handlers behind the 404 are fuzzed too. The sandbox ad platform
(``allot.sandbox.app.create_app``) is fuzzed the same way (it has no lifespan).

Bounded: ``ALLOT_FUZZ_EXAMPLES`` (default 10) hypothesis examples per operation with a key, a quarter of that
without, ``derandomize=True`` (the same cases every run; raise the env variable to search harder).
"""

from __future__ import annotations

import os
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from allot.runtime.service import ServiceSpec, create_app
from allot.runtime.settings import Settings
from tests.fuzz.fuzz_services import ADMIN_KEY, KEYS_JSON, OVERRIDES, SANDBOX_TOKEN, SPECS, runner_for, sandbox_app
from tests.fuzz.fuzz_support import Runners
from tests.support.service import auth

EXAMPLES = int(os.environ.get("ALLOT_FUZZ_EXAMPLES", "10"))
UNAUTH_EXAMPLES = max(2, EXAMPLES // 4)
#: The service ids path parameters are pointed at (when seeded) and the real object behind each.
ID_PARAMS = ("rule_id", "plan_id", "pool_id", "member_id", "request_id", "proposal_id", "entity_id", "connection_id",
             "ad_account_id", "channel_id", "subscription_id")

CONFIG = schemathesis.Config.from_dict({
    "generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": True},
    "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
    # schemathesis' negative generator fails on the rule body's 2-element condition tuples ("InvalidSchema: Cannot
    # generate an array with 1 demanded elements"): the two routes taking a whole rule body get valid bodies only
    # (invalid ones still reach them through /preview and PATCH, which take free-form JSON objects).
    "operations": [{"include-path-regex": r"^/api/v1/rules(/\{rule_id\})?$", "include-method-regex": "^(POST|PUT)$",
                    "generation": {"mode": "positive"}}],
})


def _hyp(max_examples: int) -> Any:
    return settings(max_examples=max_examples, derandomize=True, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck), print_blob=True)


# ---------------------------------------------------------------- which operations: each service's own document


def _tuples_as_arrays(node: Any) -> Any:
    """``prefixItems`` (a JSON Schema 2020-12 tuple, e.g. a rule condition's ``between`` value) as ``items: anyOf``:
    schemathesis' negative-data generator cannot build those tuples (InvalidSchema "Cannot generate an array")."""
    if isinstance(node, dict):
        out = {k: _tuples_as_arrays(v) for k, v in node.items()}
        if "prefixItems" in out:
            out["items"] = {"anyOf": out.pop("prefixItems")}
        return out
    if isinstance(node, list):
        return [_tuples_as_arrays(v) for v in node]
    return node


def _schema(app: Any) -> Any:
    """The app's own OpenAPI document (as /openapi.json serves it) loaded by schemathesis."""
    return schemathesis.openapi.from_dict(_tuples_as_arrays(app.openapi()), config=CONFIG)


def _service_schema(name: str) -> Any:
    spec = SPECS[name]  # nothing connects before the lifespan
    return _schema(create_app(spec, spec.settings_class(api_keys=KEYS_JSON, **OVERRIDES.get(name, {}))))


# ---------------------------------------------------------------- one case against the running service


def _point_ids_at_real_objects(runner: Any, case: Any) -> None:
    """For about half the cases (a deterministic choice), use ids of real objects in the path."""
    params = case.path_parameters or {}
    wanted = [p for p in params if p in ID_PARAMS and p in runner.data.get("ids", {})]
    if not wanted:
        return
    choice = zlib.crc32(repr(sorted((k, str(v)) for k, v in params.items())).encode())
    if choice % 2:
        return
    ids = runner.data["ids"]
    if case.method.upper() == "DELETE":  # destructive: a fresh object, the shared one stays usable
        ids = runner.run(runner.data["seed"](), timeout_s=60)
    for p in wanted:
        params[p] = ids[p]


def _send(runner: Any, case: Any, headers: dict[str, str]) -> httpx.Response:
    kwargs = case.as_transport_kwargs(base_url="http://service", headers=headers)
    prepared = requests.Request(**{k: v for k, v in kwargs.items() if k not in ("timeout", "allow_redirects")}
                                ).prepare()
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    return runner.request(prepared.method or "GET", prepared.url or "", headers=dict(prepared.headers), content=body)


def _describe(case: Any, response: httpx.Response) -> str:
    return (f"{case.method} {case.formatted_path} query={case.query!r} body={getattr(case, 'body', None)!r} "
            f"-> {response.status_code} {response.text[:800]}")


def _check(name: str, case: Any, response: httpx.Response, *, authed: bool) -> None:
    assert response.status_code < 500, "server error: " + _describe(case, response)
    # and a body that is not what the document says for its status (a response model, or the Problem error shape)
    case.validate_response(response, checks=[schemathesis.checks.not_a_server_error,
                                             schemathesis.checks.response_schema_conformance])
    if name == "sandbox":  # the sandbox speaks FastAPI's {"detail": ...} shape, not the runtime's
        if response.status_code >= 400:
            assert "detail" in orjson.loads(response.content), _describe(case, response)
        if not authed and case.path != "/healthz":  # liveness is public
            detail = orjson.loads(response.content).get("detail")
            unparseable = (response.status_code == 422 and isinstance(detail, list) and detail and all(
                e.get("type") == "json_invalid" for e in detail)) or (
                response.status_code == 400 and detail == "There was an error parsing the body")
            assert response.status_code in (401, 404, 405) or unparseable, _describe(case, response)
        return
    if not authed:
        # no key: 401 — or the router's own 404/405 when a fuzzed path/method matches no route at all
        body = response.json()
        unmatched = response.status_code in (404, 405) and body.get("message") in ("Not Found", "Method Not Allowed")
        # FastAPI decodes a JSON body before it runs any dependency: a body that is not JSON at all is a 422 naming
        # only the syntax error, before the key is looked at (nothing about the data is disclosed; see the report)
        unparseable = (response.status_code == 422 and body.get("errors") and all(
            e.get("type") == "json_invalid" for e in body["errors"])) or (
            response.status_code == 400 and body.get("message") == "There was an error parsing the body")
        assert response.status_code == 401 or unmatched or unparseable, \
            "answered without a key: " + _describe(case, response)
    if 400 <= response.status_code < 500:
        assert response.headers.get("content-type", "").startswith("application/json"), _describe(case, response)
        body = orjson.loads(response.content)
        assert isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"], \
            "4xx without a message: " + _describe(case, response)


def _fuzz(name: str, case: Any, runners: Any, base: Settings, *, authed: bool) -> None:
    runner = runner_for(name, runners, base)
    if name == "sandbox":
        headers = {"Authorization": f"Bearer {SANDBOX_TOKEN}"} if authed else {}
    else:
        headers = auth(ADMIN_KEY) if authed else {}
    if authed:
        _point_ids_at_real_objects(runner, case)
    elif "authorization" in {h.lower() for h in case.headers or {}}:
        # an Authorization header the schema declares (the sandbox's) may be generated: it must not be the token
        assert SANDBOX_TOKEN not in str(case.headers)
    response = _send(runner, case, headers)
    try:
        _check(name, case, response, authed=authed)
    finally:
        if name == "sandbox":  # a fuzzed POST /sandbox/faults must not make the NEXT case fail or stall
            runner.run(_clear_faults(runner.client))


async def _clear_faults(client: httpx.AsyncClient) -> None:
    await client.delete("/sandbox/faults", headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"})


# ---------------------------------------------------------------- regressions: the 5xx the fuzzing found, pinned


BIG = 2**63  # one past PostgreSQL bigint


def _answer(name: str, method: str, path: str, runners: Runners, base: Settings, body: Any = None) -> httpx.Response:
    runner = runner_for(name, runners, base)
    content = orjson.dumps(body) if body is not None else None
    headers = {**auth(ADMIN_KEY), "content-type": "application/json"}
    return runner.request(method, path, headers=headers, content=content)


def _assert_refused(r: httpx.Response, status: int = 422) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.json()["message"], r.text


# ---------------------------------------------------------------- the tests (one per service, with and without key)

guardrails = _service_schema("guardrails")
executor = _service_schema("executor")
rules = _service_schema("rules")
pacing = _service_schema("pacing")
pools = _service_schema("pools")
connections = _service_schema("connections")
ingest = _service_schema("ingest")
notify = _service_schema("notify")
sandbox = _schema(sandbox_app()).exclude(
    # advancing the delivery simulator to a fuzzed far-future instant simulates every hour in between (see report)
    path="/sandbox/delivery/advance")


@guardrails.parametrize()
@_hyp(EXAMPLES)
def test_fuzz_guardrails_api(case: Any, fuzz_runners: Any, fuzz_base_settings: Settings) -> None:
    _fuzz("guardrails", case, fuzz_runners, fuzz_base_settings, authed=True)


@guardrails.parametrize()
@_hyp(UNAUTH_EXAMPLES)
def test_fuzz_guardrails_api_without_key(case: Any, fuzz_runners: Any, fuzz_base_settings: Settings) -> None:
    _fuzz("guardrails", case, fuzz_runners, fuzz_base_settings, authed=False)


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", f"/api/v1/guardrails/audit-log?before_id={BIG}", None),  # was asyncpg DataError (int64) -> 500
    ("GET", "/api/v1/guardrails/decisions?source_id=%00", None),  # was CharacterNotInRepertoireError -> 500
    ("PUT", "/api/v1/guardrails/limits", {"protected_entities": ["as-\x00"]}),  # was UntranslatableCharacter -> 500
    ("PATCH", "/api/v1/guardrails/limits", {"account_whitelist": ["act\x00"]}),
    ("POST", "/api/v1/guardrails/kill-switch", {"enabled": True, "ad_account_id": "act\x00"}),
])
def test_fuzz_guardrails_regressions(method: str, path: str, body: Any, fuzz_runners: Runners,
                                     fuzz_base_settings: Settings) -> None:
    _assert_refused(_answer("guardrails", method, path, fuzz_runners, fuzz_base_settings, body))


@executor.parametrize()
@_hyp(EXAMPLES)
def test_fuzz_executor_api(case: Any, fuzz_runners: Any, fuzz_base_settings: Settings) -> None:
    _fuzz("executor", case, fuzz_runners, fuzz_base_settings, authed=True)


@executor.parametrize()
@_hyp(UNAUTH_EXAMPLES)
def test_fuzz_executor_api_without_key(case: Any, fuzz_runners: Any, fuzz_base_settings: Settings) -> None:
    _fuzz("executor", case, fuzz_runners, fuzz_base_settings, authed=False)


@rules.parametrize()
@_hyp(EXAMPLES)
def test_fuzz_rules_api(case: Any, fuzz_runners: Any, fuzz_base_settings: Settings) -> None:
    _fuzz("rules", case, fuzz_runners, fuzz_base_settings, authed=True)


@rules.parametrize()
@_hyp(UNAUTH_EXAMPLES)
def test_fuzz_rules_api_without_key(case: Any, fuzz_runners: Any, fuzz_base_settings: Settings) -> None:
    _fuzz("rules", case, fuzz_runners, fuzz_base_settings, authed=False)


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", f"/api/v1/rules?offset={BIG}", None),  # was asyncpg DataError (int64) -> 500
    ("GET", f"/api/v1/audit-log?before_id={BIG}", None),  # idem
    ("GET", "/api/v1/audit-log?action=%00", None),  # was CharacterNotInRepertoireError -> 500
    ("POST", "/api/v1/rules/preview", {"name": "n", "scope": {"ad_account_ids": ["act\x00"], "entity_level": "adset"},
                                       "conditions": [{"metric": "spend", "operator": "gt", "value": 1}],
                                       "actions": [{"type": "notify_only"}]}),
    ("POST", "/api/v1/rules/from-template", {"template": "kill_losers", "name": "n\x00", "targets": {"target_cpa": 1},
                                             "scope": {"ad_account_ids": ["a"], "entity_level": "adset"}}),
])
def test_fuzz_rules_regressions(method: str, path: str, body: Any, fuzz_runners: Runners,
                                fuzz_base_settings: Settings) -> None:
    _assert_refused(_answer("rules", method, path, fuzz_runners, fuzz_base_settings, body))


@pacing.parametrize()
@_hyp(EXAMPLES)
def test_fuzz_pacing_api(case: Any, fuzz_runners: Any, fuzz_base_settings: Settings) -> None:
    _fuzz("pacing", case, fuzz_runners, fuzz_base_settings, authed=True)


@pacing.parametrize()
@_hyp(UNAUTH_EXAMPLES)
def test_fuzz_pacing_api_without_key(case: Any, fuzz_runners: Any, fuzz_base_settings: Settings) -> None:
    _fuzz("pacing", case, fuzz_runners, fuzz_base_settings, authed=False)


def _plan(**changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"campaign_id": "cmp-reg", "currency": "USD", "total_budget_cents": 1_000,
            "flight_start": now.isoformat(), "flight_end": (now + timedelta(days=3)).isoformat(),
            "channels": [{"name": "CTV", "allocated_budget_cents": 500}], **changes}


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("POST", "/api/v1/pacing/plans", _plan(total_budget_cents=BIG), 422),  # was OverflowError (int64) -> 500
    ("POST", "/api/v1/pacing/plans", _plan(channels=[{"name": "CTV", "allocated_budget_cents": BIG}]), 422),
    ("POST", "/api/v1/pacing/plans", _plan(campaign_id="cmp\x00"), 422),  # was CharacterNotInRepertoire -> 500
    ("POST", "/api/v1/pacing/plans", _plan(channels=[{"name": "C\x00", "allocated_budget_cents": 1}]), 422),
    ("GET", "/api/v1/pacing/plans?campaign_id=%00", None, 422),
    ("GET", "/api/v1/pacing/snapshots?campaign_id=c%00", None, 422),
    ("GET", "/api/v1/pacing/plans/p%00", None, 422),  # NUL in a path parameter: 422 naming plan_id (#14)
])
def test_fuzz_pacing_regressions(method: str, path: str, body: Any, status: int, fuzz_runners: Runners,
                                 fuzz_base_settings: Settings) -> None:
    _assert_refused(_answer("pacing", method, path, fuzz_runners, fuzz_base_settings, body), status)


def test_fuzz_pacing_patch_regressions(fuzz_runners: Runners, fuzz_base_settings: Settings) -> None:
    """A PATCH is re-validated as a whole plan: the same limits apply to it."""
    plan_id = runner_for("pacing", fuzz_runners, fuzz_base_settings).data["ids"]["plan_id"]
    for body in ({"total_budget_cents": BIG}, {"name": "x\x00"}):
        _assert_refused(_answer("pacing", "PATCH", f"/api/v1/pacing/plans/{plan_id}", fuzz_runners,
                                fuzz_base_settings, body))


@pools.parametrize()
@_hyp(EXAMPLES)
def test_fuzz_pools_api(case: Any, fuzz_runners: Any, fuzz_base_settings: Settings) -> None:
    _fuzz("pools", case, fuzz_runners, fuzz_base_settings, authed=True)


@pools.parametrize()
@_hyp(UNAUTH_EXAMPLES)
def test_fuzz_pools_api_without_key(case: Any, fuzz_runners: Any, fuzz_base_settings: Settings) -> None:
    _fuzz("pools", case, fuzz_runners, fuzz_base_settings, authed=False)


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/v1/budget-pools", {"name": "p\x00", "dailyBudgetCents": 100}),
    ("POST", "/api/v1/budget-pools", {"name": "p", "dailyBudgetCents": 100, "defaultMaxBudgetCents": BIG}),
    ("POST", "/api/v1/budget-pools", {"name": "p", "dailyBudgetCents": 100, "minBudgetChange": BIG}),
    ("POST", "/api/v1/budget-pools", {"name": "p", "dailyBudgetCents": 100,
                                      "members": [{"entityType": "campaign", "entityId": "c\x00"}]}),
])
def test_fuzz_pools_regressions(method: str, path: str, body: Any, fuzz_runners: Runners,
                                fuzz_base_settings: Settings) -> None:
    _assert_refused(_answer("pools", method, path, fuzz_runners, fuzz_base_settings, body))


@connections.parametrize()
@_hyp(EXAMPLES)
def test_fuzz_connections_api(case: Any, fuzz_runners: Any, fuzz_base_settings: Settings) -> None:
    _fuzz("connections", case, fuzz_runners, fuzz_base_settings, authed=True)


@connections.parametrize()
@_hyp(UNAUTH_EXAMPLES)
def test_fuzz_connections_api_without_key(case: Any, fuzz_runners: Any, fuzz_base_settings: Settings) -> None:
    _fuzz("connections", case, fuzz_runners, fuzz_base_settings, authed=False)


@ingest.parametrize()
@_hyp(EXAMPLES)
def test_fuzz_ingest_api(case: Any, fuzz_runners: Any, fuzz_base_settings: Settings) -> None:
    _fuzz("ingest", case, fuzz_runners, fuzz_base_settings, authed=True)


@ingest.parametrize()
@_hyp(UNAUTH_EXAMPLES)
def test_fuzz_ingest_api_without_key(case: Any, fuzz_runners: Any, fuzz_base_settings: Settings) -> None:
    _fuzz("ingest", case, fuzz_runners, fuzz_base_settings, authed=False)


@notify.parametrize()
@_hyp(EXAMPLES)
def test_fuzz_notify_api(case: Any, fuzz_runners: Any, fuzz_base_settings: Settings) -> None:
    _fuzz("notify", case, fuzz_runners, fuzz_base_settings, authed=True)


@notify.parametrize()
@_hyp(UNAUTH_EXAMPLES)
def test_fuzz_notify_api_without_key(case: Any, fuzz_runners: Any, fuzz_base_settings: Settings) -> None:
    _fuzz("notify", case, fuzz_runners, fuzz_base_settings, authed=False)


@sandbox.parametrize()
@_hyp(EXAMPLES)
def test_fuzz_sandbox_platform_api(case: Any, fuzz_runners: Any, fuzz_base_settings: Settings) -> None:
    _fuzz("sandbox", case, fuzz_runners, fuzz_base_settings, authed=True)


@sandbox.parametrize()
@_hyp(UNAUTH_EXAMPLES)
def test_fuzz_sandbox_platform_api_without_token(case: Any, fuzz_runners: Any, fuzz_base_settings: Settings) -> None:
    _fuzz("sandbox", case, fuzz_runners, fuzz_base_settings, authed=False)


def test_fuzz_covers_every_service() -> None:
    """Every service with an HTTP API (services/<name>/src/allot/<name>/api.py) is fuzzed with and without a key."""
    services = Path(__file__).resolve().parents[2] / "services"
    with_api = sorted(p.parent.name for p in services.glob("*/src/allot/*/api.py"))
    assert with_api and sorted(SPECS) == with_api
    for name, spec in SPECS.items():
        assert isinstance(spec, ServiceSpec) and spec.routers, name
        assert f"test_fuzz_{name}_api" in globals() and f"test_fuzz_{name}_api_without_key" in globals(), name
