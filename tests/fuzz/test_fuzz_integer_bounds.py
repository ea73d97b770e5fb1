"""Property (issue #14): every integer input of every HTTP route is bounded at the API to what PostgreSQL stores.

The integer fields are read from each service's own OpenAPI document (request bodies, nested objects and arrays
included, and query parameters); routes whose body is free-form JSON (the guardrails' merge PATCH, the rules'
PATCH and preview) get the integer fields of the model they are validated against. For every field hypothesis
draws integers around every boundary that matters (0, ±2^31, ±2^53, ±2^63, 2^64, …) and across ±2^66, puts
each into an otherwise valid request (a valid body per route where the route creates or changes something; ids
of real objects in the path) and sends it to the REAL running service (real Postgres, real broker):

- never a 5xx; every 4xx is JSON with a message;
- a 422 never comes from the database safety net (``invalid_value``: the value reached PostgreSQL) and names
  its fields;
- a value outside PostgreSQL's bigint is always a 422 naming exactly that field.
"""

from __future__ import annotations

import copy
import os
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allot.runtime.inputs import BIGINT_MAX, BIGINT_MIN
from allot.runtime.service import create_app
from allot.runtime.settings import Settings
from tests.fuzz.fuzz_services import ADMIN_KEY, KEYS_JSON, OVERRIDES, SPECS, WORKSPACE, runner_for
from tests.fuzz.fuzz_support import Runners
from tests.support.service import auth

EXAMPLES = int(os.environ.get("ALLOT_FUZZ_INT_EXAMPLES", "12"))
EDGES = [0, 1, -1, 2**31 - 1, 2**31, -(2**31) - 1, 2**53 + 1, 10**12 + 1, 10**15 + 1, BIGINT_MAX, BIGINT_MAX + 1,
         BIGINT_MIN, BIGINT_MIN - 1, 2**64 - 1, 2**64, -(2**64)]
INTEGERS = st.one_of(st.sampled_from(EDGES), st.integers(min_value=-(2**66), max_value=2**66))

ACCOUNT = f"act-{WORKSPACE}"  # the account the fuzz seeds project for the workspace
_NOW = "2026-11-02T00:00:00+00:00"
_PACING_ENTITY = {"platform": "sandbox", "ad_account_id": ACCOUNT, "entity_type": "campaign", "entity_id": "c-bounds"}
#: A valid body per (service, METHOD, path); the drawn integer replaces one field of it.
BODIES: dict[tuple[str, str, str], Any] = {
    ("pools", "POST", "/api/v1/budget-pools"): {
        "name": "bounds", "dailyBudgetCents": 40_000, "currency": "EUR",
        "members": [{"entityType": "campaign", "entityId": "c-bounds", "adAccountId": ACCOUNT}]},
    ("pools", "POST", "/api/v1/budget-pools/{pool_id}/members"): {
        "entityType": "campaign", "entityId": "c-bounds-2", "adAccountId": ACCOUNT},
    ("rules", "POST", "/api/v1/rules"): {
        "name": "bounds", "scope": {"ad_account_ids": [ACCOUNT], "entity_level": "adset"},
        "conditions": [{"metric": "spend", "operator": "gte", "value": 0, "time_range": "last_30d"}],
        "actions": [{"type": "pause"}], "schedule": {"interval_minutes": 15}, "protections": {"cooldown_minutes": 60}},
    ("rules", "POST", "/api/v1/rules/bulk"): {"rule_ids": [str(uuid.uuid4())], "op": "set_cooldown",
                                              "cooldown_minutes": 5},
    ("pacing", "POST", "/api/v1/pacing/plans"): {
        "campaign_id": "cmp-bounds", "name": "bounds", "currency": "USD", "total_budget_cents": 1_000_000,
        "flight_start": "2026-10-30T00:00:00+00:00", "flight_end": "2026-11-20T00:00:00+00:00",
        "channels": [{"name": "CTV", "allocated_budget_cents": 600_000, "entities": [_PACING_ENTITY],
                      "budget_entity": _PACING_ENTITY}],
        "deals": [{"name": "d1", "channel": "CTV", "allocated_budget_cents": 100_000}]},
}
BODIES[("rules", "PUT", "/api/v1/rules/{rule_id}")] = BODIES[("rules", "POST", "/api/v1/rules")]
BODIES[("rules", "POST", "/api/v1/rules/preview")] = BODIES[("rules", "POST", "/api/v1/rules")]
#: Free-form JSON bodies: validated against the model of this other operation (same integer fields).
SAME_FIELDS_AS = {
    ("guardrails", "PATCH", "/api/v1/guardrails/limits"): ("PUT", "/api/v1/guardrails/limits"),
    ("rules", "PATCH", "/api/v1/rules/{rule_id}"): ("PUT", "/api/v1/rules/{rule_id}"),
    ("rules", "POST", "/api/v1/rules/preview"): ("POST", "/api/v1/rules"),
}

Path = tuple[str | int, ...]


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _integer_fields(doc: dict[str, Any], schema: dict[str, Any], path: Path, out: list[Path], depth: int = 0) -> None:
    if depth > 8:
        return
    schema = _resolve(doc, schema)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            _integer_fields(doc, sub, path, out, depth + 1)
    if schema.get("type") == "integer" and path not in out:
        out.append(path)
    for name, prop in schema.get("properties", {}).items():
        _integer_fields(doc, prop, (*path, name), out, depth + 1)
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        _integer_fields(doc, schema["items"], (*path, 0), out, depth + 1)


def _operation_fields(doc: dict[str, Any], op: dict[str, Any]) -> list[tuple[str, Path]]:
    fields: list[Path] = []
    for param in op.get("parameters", []):
        if param["in"] == "query":
            _integer_fields(doc, param["schema"], (param["name"],), fields)
    out = [("query", f) for f in fields]
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if body:
        fields = []
        _integer_fields(doc, body, (), fields)
        out += [("body", f) for f in fields]
    return out


def _cases() -> list[Any]:
    cases = []
    for name, spec in SPECS.items():
        if spec is None:
            continue
        doc = create_app(spec, Settings(api_keys=KEYS_JSON, **OVERRIDES.get(name, {}))).openapi()
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                fields = _operation_fields(doc, op)
                other = SAME_FIELDS_AS.get((name, method.upper(), path))
                if other is not None:
                    fields += [f for f in _operation_fields(doc, doc["paths"][other[1]][other[0].lower()])
                               if f[0] == "body" and f not in fields]
                for where, field in fields:
                    dotted = ".".join(map(str, field))
                    cases.append(pytest.param(name, method.upper(), path, where, field,
                                              id=f"{name}-{method.upper()}-{path}-{where}-{dotted}"))
    return cases


CASES = _cases()


def test_every_service_has_integer_inputs_under_test() -> None:
    services = {c.values[0] for c in CASES}
    assert {"guardrails", "pools", "rules", "pacing"} <= services, services
    assert len(CASES) >= 50, len(CASES)


def _with(body: Any, field: Path, value: int) -> Any:
    out = copy.deepcopy(body) if body is not None else {}
    node = out
    for i, step in enumerate(field):
        last = i == len(field) - 1
        nxt = None if last else field[i + 1]
        if last:
            node[step] = value
            break
        if isinstance(step, int):
            while len(node) <= step:
                node.append({})
            child = node[step]
        else:
            child = node.get(step)
        if child is None or not isinstance(child, (dict, list)):
            child = [] if isinstance(nxt, int) else {}
            node[step] = child
        node = child
    return out


@pytest.mark.parametrize("service, method, path, where, field", CASES)
def test_integers_are_bounded_to_what_postgres_stores(service: str, method: str, path: str, where: str, field: Path,
                                                     fuzz_runners: Runners, fuzz_base_settings: Settings) -> None:
    runner = runner_for(service, fuzz_runners, fuzz_base_settings)
    ids = runner.data.get("ids", {})
    url = path
    for segment in [s[1:-1] for s in path.split("/") if s.startswith("{")]:
        url = url.replace("{" + segment + "}", str(ids.get(segment, uuid.uuid4())))
    dotted = ".".join(map(str, field))

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(value=INTEGERS)
    def check(value: int) -> None:
        headers = {**auth(ADMIN_KEY), "content-type": "application/json"}
        content = None
        target = url
        if where == "query":
            target = f"{url}?{field[0]}={value}"
            if method in ("POST", "PUT", "PATCH"):
                content = orjson.dumps(BODIES.get((service, method, path), {}))
        else:
            # orjson refuses integers beyond 64 bits: the number is written into the JSON text by hand
            marker = 7_777_777_777_777_777
            text = orjson.dumps(_with(BODIES.get((service, method, path)), field, marker)).decode()
            content = text.replace(str(marker), str(value), 1).encode()
        response = runner.request(method, target, headers=headers, content=content)
        seen = f"{method} {target} {dotted}={value} -> {response.status_code} {response.text[:600]}"
        assert response.status_code < 500, seen
        if response.status_code >= 400:
            body = response.json()
            assert isinstance(body.get("message"), str) and body["message"], seen
        if response.status_code == 422:
            body = response.json()
            assert body.get("error") != "invalid_value", "the database answered, not validation: " + seen
            named = [e.get("field") for e in body.get("errors", [])] or [body.get("field")]
            assert all(named) and "body" not in named, "a 422 without its field: " + seen
            if not BIGINT_MIN <= value <= BIGINT_MAX:
                assert dotted in named, seen
        elif not BIGINT_MIN <= value <= BIGINT_MAX:
            pytest.fail("a value beyond bigint was not refused: " + seen)

    check()
