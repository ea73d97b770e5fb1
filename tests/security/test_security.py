"""Security properties of the running services (real Postgres, real broker).

(a) Workspace isolation, table-driven across services: an object created by workspace B through the API is a 404
    (never a 403: existence is not disclosed) for every read and every change by a key of workspace A — admin, so
    the role is never the reason — and B's views of it are byte-for-byte the same afterwards.
(b) The executor refuses approvals it must not execute. Already covered in
    tests/service/executor/test_executor_service.py::test_forged_approvals_go_to_the_dlq_and_never_reach_the_platform
    (signed with the wrong secret, tampered after signing; an expired approval is an `expired` outcome, never
    applied: tests/security/test_hardening.py). Added here: an UNSIGNED approval, and an
    approval validly signed for workspace B replayed into workspace A (the signature binds the workspace id), with
    the same approval under its own workspace applied as the control.
(c) No secret in the logs: executor + guardrails run as processes (allot.runtime.stack) with an approval secret,
    API keys, a sandbox token and a Meta access token configured; traffic with valid, invalid and forged keys,
    approvals the platforms refuse (a Meta fake that ECHOES the presented token in its error message, a sandbox
    failing with 5xx) and a forged approval; then no raw secret may appear in any log line.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from allot.contracts import TOPICS, decode, new_envelope, sign_approval
from allot.contracts.payloads import AllocationRequested, BudgetAction, GuardrailApproved, MetricsIngested
from allot.executor.service import SPEC as EXECUTOR
from allot.guardrails.service import SPEC as GUARDRAILS
from allot.notify.service import SPEC as NOTIFY
from allot.pacing.service import SPEC as PACING
from allot.pools.service import SPEC as POOLS
from allot.rules.service import SPEC as RULES
from allot.runtime.auth import generate_key
from allot.runtime.sealing import generate_keypair
from allot.runtime.service import ServiceSpec
from allot.runtime.settings import Settings
from allot.sandbox.app import create_app as create_sandbox
from allot.sandbox.state import SandboxState
from allot.sandbox.testing import serve_app
from tests.support.kafka import eventually, publish, read_topic
from tests.support.sandbox import sandbox_client, sandbox_server
from tests.support.service import api_keys, auth, running_service

#: Imported directly: a service whose SPEC does not import fails this module, it is never silently left untested.
SPECS: dict[str, ServiceSpec] = {"guardrails": GUARDRAILS, "executor": EXECUTOR, "rules": RULES, "pacing": PACING,
                                 "pools": POOLS, "notify": NOTIFY}


# ====================================================================== (a) workspace isolation


@dataclass
class World:
    """Two workspaces with an admin key each; ``ids`` are B's objects, ``reads`` B's views of them."""

    client: httpx.AsyncClient
    settings: Settings
    ws_a: str
    ws_b: str
    key_a: str
    key_b: str
    ids: dict[str, str] = field(default_factory=dict)

    async def b_views(self, paths: list[str]) -> list[Any]:
        out = []
        for p in paths:
            r = await self.client.get(p.format(**self.ids), headers=auth(self.key_b))
            assert r.status_code == 200, (p, r.status_code, r.text)
            out.append(r.json())
        return out


Attack = tuple[str, str, Any]  # method, path template (B's ids), JSON body or None


@dataclass
class Target:
    service: str
    create: Callable[[World], Awaitable[None]]
    reads: list[str]
    attacks: list[Attack]
    #: A's own listings must not contain B's ids: (path template, function returning the ids a listing shows)
    listings: list[tuple[str, Callable[[Any], list[str]]]] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- guardrails


async def _guardrails_create(w: World) -> None:
    r = await w.client.put("/api/v1/guardrails/limits", headers=auth(w.key_b),
                           json={"daily_cap_eur_cents": 123_456, "protected_entities": [f"secret-{w.ws_b}"]})
    assert r.status_code == 200, r.text
    action = BudgetAction(action_id=uuid.uuid4(), platform="meta", ad_account_id="act-b", entity_type="adset",
                          entity_id=f"as-{w.ws_b}", action_type="set_budget", currency="EUR", from_cents=10_000,
                          to_cents=11_000)
    req = AllocationRequested(request_id=uuid.uuid4(), source="rule", source_id="r-b", idempotency_key=uuid.uuid4().hex,
                              actions=[action])
    await publish(w.settings.kafka_bootstrap, new_envelope(
        event_type="allocation.requested", schema_version=1, payload=req, producer="test", workspace_id=w.ws_b,
        occurred_at=datetime.now(UTC)))

    async def decided() -> bool:
        r = await w.client.get(f"/api/v1/guardrails/decisions/{req.request_id}", headers=auth(w.key_b))
        return r.status_code == 200

    await eventually(decided, timeout=30, what="B's decision stored")
    w.ids["request_id"] = str(req.request_id)


async def _guardrails_own_only(w: World) -> None:
    """Limits have no id: A's reads and writes of 'the limits' are A's own, never B's."""
    r = await w.client.get("/api/v1/guardrails/limits", headers=auth(w.key_a))
    assert r.status_code == 200 and r.json()["workspace_id"] == w.ws_a and r.json()["defaults"] is True
    assert "123456" not in r.text and w.ws_b not in r.text
    for method, body in (("PATCH", {"daily_cap_eur_cents": 1}), ("PUT", {"daily_cap_eur_cents": 2})):
        r = await w.client.request(method, "/api/v1/guardrails/limits", headers=auth(w.key_a), json=body)
        assert r.status_code == 200 and r.json()["workspace_id"] == w.ws_a
    r = await w.client.post("/api/v1/guardrails/kill-switch", headers=auth(w.key_a), json={"enabled": True})
    assert r.status_code == 200 and r.json()["workspace_id"] == w.ws_a
    for path in ("/api/v1/guardrails/audit-log", "/api/v1/guardrails/ledger", "/api/v1/guardrails/decisions"):
        r = await w.client.get(path, headers=auth(w.key_a))
        assert r.status_code == 200 and w.ws_b not in r.text and w.ids["request_id"] not in r.text, (path, r.text)


# ---------------------------------------------------------------- executor


async def _executor_create(w: World) -> None:
    approval = _approval(w.ws_b, f"as-{w.ws_b}", secret=w.settings.approval_secret.get_secret_value())
    await publish(w.settings.kafka_bootstrap, approval)
    request_id = str(approval.payload.request_id)

    async def finished() -> bool:
        r = await w.client.get(f"/api/v1/change-sets/{request_id}", headers=auth(w.key_b))
        return r.status_code == 200 and all(a["finished_at"] for a in r.json()["actions"])

    await eventually(finished, timeout=30, what="B's change set in the ledger, finished")
    w.ids["request_id"] = request_id


# ---------------------------------------------------------------- rules


async def _rules_create(w: World) -> None:
    account = f"act-{w.ws_b}"
    now = datetime.now(UTC)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    payload = MetricsIngested(platform="meta", ad_account_id=account, entity_type="adset", entity_id=f"as-{w.ws_b}",
                              entity_name="b's ad set", status="active", currency="EUR", daily_budget_cents=10_000,
                              interval_start=start, interval_end=start + timedelta(days=1), reported_at=now,
                              spend_cents=5_000, impressions=10_000, clicks=100, conversions=5, revenue_cents=20_000,
                              reach=5_000)
    await publish(w.settings.kafka_bootstrap, new_envelope(
        event_type="metrics.ingested", schema_version=TOPICS["metrics.ingested"].schema_version, payload=payload,
        producer="test", workspace_id=w.ws_b, occurred_at=now))
    body = {"template": "kill_losers", "name": "b's rule", "targets": {"target_cpa": 1500},
            "scope": {"ad_account_ids": [account], "entity_level": "adset"}}

    async def created() -> Any:
        r = await w.client.post("/api/v1/rules/from-template", json=body, headers=auth(w.key_b))
        return r.json() if r.status_code == 201 else None

    rule = await eventually(created, timeout=30, what="B's account projected and B's rule created")
    w.ids["rule_id"] = rule["id"]
    w.ids["account"] = account
    definition = {k: rule[k] for k in ("name", "scope", "targets", "conditions", "actions", "schedule", "protections")}
    w.ids["definition"] = orjson.dumps(definition).decode()


# ---------------------------------------------------------------- pacing


async def _pacing_create(w: World) -> None:
    now = datetime.now(UTC)
    ent = {"platform": "sandbox", "ad_account_id": f"act-{w.ws_b}", "entity_type": "campaign", "entity_id": "c-b"}
    r = await w.client.post("/api/v1/pacing/plans", headers=auth(w.key_b), json={
        "campaign_id": f"cmp-{w.ws_b}", "name": "b's plan", "currency": "USD", "total_budget_cents": 1_000_000,
        "flight_start": (now - timedelta(days=2)).isoformat(), "flight_end": (now + timedelta(days=8)).isoformat(),
        "channels": [{"name": "CTV", "allocated_budget_cents": 600_000, "entities": [ent], "budget_entity": ent}]})
    assert r.status_code == 201, r.text
    w.ids["plan_id"] = r.json()["plan_id"]
    w.ids["campaign_id"] = f"cmp-{w.ws_b}"
    w.ids["proposal_id"] = str(uuid.uuid4())


# ---------------------------------------------------------------- pools


async def _pools_create(w: World) -> None:
    r = await w.client.post("/api/v1/budget-pools", headers=auth(w.key_b), json={
        "name": "b's pool", "dailyBudgetCents": 40_000, "currency": "EUR",
        "members": [{"entityType": "campaign", "entityId": f"c-{w.ws_b}", "adAccountId": "act-b"}]})
    assert r.status_code == 201, r.text
    w.ids["pool_id"] = r.json()["id"]
    w.ids["member_id"] = r.json()["members"][0]["id"]


# ---------------------------------------------------------------- notify


async def _notify_create(w: World) -> None:
    r = await w.client.post("/api/v1/notifications/channels", headers=auth(w.key_b), json={
        "kind": "webhook", "name": "b's hook", "url": "http://127.0.0.1:9/b-hook", "signing_secret": "b" * 40})
    assert r.status_code == 201, r.text
    w.ids["channel_id"] = r.json()["channel_id"]
    r = await w.client.post("/api/v1/notifications/subscriptions", headers=auth(w.key_b),
                            json={"channel_id": w.ids["channel_id"]})
    assert r.status_code == 201, r.text
    w.ids["subscription_id"] = r.json()["subscription_id"]


RULE = "/api/v1/rules/{rule_id}"
PLAN = "/api/v1/pacing/plans/{plan_id}"
POOL = "/api/v1/budget-pools/{pool_id}"
CHANNEL = "/api/v1/notifications/channels/{channel_id}"
_NOTIFY_PAIR = generate_keypair("security-notify")
_NOTIFY_KEY = f"{_NOTIFY_PAIR.key_id}:{_NOTIFY_PAIR.private_key}"

TARGETS: dict[str, Target] = {
    "guardrails": Target(
        "guardrails", _guardrails_create,
        reads=["/api/v1/guardrails/limits", "/api/v1/guardrails/decisions/{request_id}",
               "/api/v1/guardrails/audit-log"],
        attacks=[("GET", "/api/v1/guardrails/decisions/{request_id}", None)]),
    "executor": Target(
        "executor", _executor_create,
        reads=["/api/v1/change-sets/{request_id}"],
        attacks=[("GET", "/api/v1/change-sets/{request_id}", None),
                 ("POST", "/api/v1/change-sets/{request_id}/undo", None)],
        overrides={"sandbox_url": "http://127.0.0.1:9", "max_attempts": 1, "platform_timeout_s": 1.0}),
    "rules": Target(
        "rules", _rules_create,
        reads=[RULE, RULE + "/executions", "/api/v1/audit-log?rule_id={rule_id}"],
        attacks=[("GET", RULE, None), ("PUT", RULE, "definition"), ("PATCH", RULE, {"name": "taken over"}),
                 ("DELETE", RULE, None), ("POST", RULE + "/activate", None), ("POST", RULE + "/pause", None),
                 ("POST", RULE + "/evaluate-now", None), ("GET", RULE + "/executions", None),
                 ("POST", "/api/v1/rules/bulk", {"rule_ids": ["{rule_id}"], "op": "delete"}),
                 ("POST", "/api/v1/rules/bulk", {"rule_ids": ["{rule_id}"], "op": "activate"}),
                 ("POST", "/api/v1/rules/preview", {"rule_id": "{rule_id}"})],
        listings=[("/api/v1/rules", lambda b: [r["id"] for r in b["rules"]]),
                  ("/api/v1/audit-log?rule_id={rule_id}", lambda b: [str(e.get("rule_id")) for e in b["entries"]])],
        overrides={"rules_scheduler_enabled": False}),
    "pacing": Target(
        "pacing", _pacing_create,
        reads=[PLAN, PLAN + "/transitions", PLAN + "/snapshots", PLAN + "/proposals?status=all"],
        attacks=[("GET", PLAN, None), ("PATCH", PLAN, {"name": "taken over"}), ("POST", PLAN + "/pause", None),
                 ("POST", PLAN + "/resume", None), ("GET", PLAN + "/transitions", None),
                 ("POST", PLAN + "/snapshots", None), ("GET", PLAN + "/snapshots/latest", None),
                 ("GET", PLAN + "/snapshots", None), ("GET", PLAN + "/proposals", None),
                 ("GET", PLAN + "/proposals/{proposal_id}", None),
                 ("POST", PLAN + "/proposals/{proposal_id}/approve", None),
                 ("POST", PLAN + "/proposals/{proposal_id}/reject", None)],
        listings=[("/api/v1/pacing/plans", lambda b: [p["plan_id"] for p in b["plans"]]),
                  ("/api/v1/pacing/snapshots?campaign_id={campaign_id}",
                   lambda b: [s.get("plan_id") for s in b["snapshots"]])],
        env={"ALLOT_PACING_SCAN_INTERVAL_S": "3600"}),
    "pools": Target(
        "pools", _pools_create,
        reads=[POOL, POOL + "/allocations"],
        attacks=[("GET", POOL, None), ("PATCH", POOL, {"name": "taken over"}), ("DELETE", POOL, None),
                 ("POST", POOL + "/members", {"entityType": "campaign", "entityId": "intruder", "adAccountId": "x"}),
                 ("DELETE", POOL + "/members/{member_id}", None), ("POST", POOL + "/simulate", None),
                 ("POST", POOL + "/allocate", {"async": True}), ("GET", POOL + "/allocations", None),
                 ("GET", POOL + "/diminishing-returns", None), ("GET", POOL + "/backtest", None)],
        listings=[("/api/v1/budget-pools?include_deleted=true", lambda b: [p["id"] for p in b["pools"]])],
        overrides={"pools_scheduler_enabled": False, "ai_native_enabled": True}),
    "notify": Target(
        "notify", _notify_create,
        reads=[CHANNEL, "/api/v1/notifications/subscriptions"],
        attacks=[("GET", CHANNEL, None), ("PATCH", CHANNEL, {"name": "taken over"}), ("DELETE", CHANNEL, None),
                 ("POST", CHANNEL + "/test", None),
                 ("POST", "/api/v1/notifications/subscriptions", {"channel_id": "{channel_id}"}),
                 ("DELETE", "/api/v1/notifications/subscriptions/{subscription_id}", None)],
        listings=[("/api/v1/notifications/channels?include_removed=true",
                   lambda b: [c["channel_id"] for c in b["channels"]]),
                  ("/api/v1/notifications/subscriptions", lambda b: [x["subscription_id"] for x in b["subscriptions"]]),
                  ("/api/v1/notifications/deliveries?channel_id={channel_id}",
                   lambda b: [d["channel_id"] for d in b["deliveries"]])],
        overrides={"sealing_private_keys": _NOTIFY_KEY, "notify_allow_loopback": True}),
}


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if value == "definition":
        return orjson.loads(ids["definition"])
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize("service", list(TARGETS))
async def test_a_key_of_workspace_a_never_reads_or_changes_workspace_b_data(
    service: str, settings: Settings, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = SPECS[service]
    target = TARGETS[service]
    for name, value in target.env.items():
        monkeypatch.setenv(name, value)
    ws_a, ws_b = f"wa-{unique}", f"wb-{unique}"
    (key_a, key_b), keys_json = api_keys((ws_a, "admin"), (ws_b, "admin"))
    configured = settings.model_copy(update={"api_keys": keys_json, "approval_secret": SecretStr("isolation-secret")})
    async with running_service(spec, configured, **target.overrides) as (client, _ctx):
        world = World(client, configured, ws_a, ws_b, key_a, key_b)
        await target.create(world)
        before = await world.b_views(target.reads)

        for method, path, body in target.attacks:
            r = await client.request(method, path.format(**world.ids), headers=auth(key_a),
                                     json=_fill(body, world.ids) if body is not None else None)
            assert r.status_code == 404, f"{service}: {method} {path} by workspace A -> {r.status_code} {r.text}"
            assert r.json()["message"] and world.ws_b not in r.text
        for path, shown in target.listings:
            r = await client.get(path.format(**world.ids), headers=auth(key_a))
            assert r.status_code == 200, r.text
            assert not set(shown(r.json())) & set(world.ids.values()), f"{service}: {path} shows B's objects to A"
        if service == "guardrails":
            await _guardrails_own_only(world)

        assert await world.b_views(target.reads) == before, f"{service}: B's data changed by A's requests"


# ====================================================================== (b) approvals the executor must refuse

SECRET = "security-approval-secret"
SANDBOX_TOKEN = "security-sandbox-token"


def _approval(workspace: str, entity_id: str, *, secret: str, sign_for: str | None = None,
              from_cents: int = 10_000, to_cents: int = 11_000, platform: str = "sandbox",
              request_id: uuid.UUID | None = None) -> Any:
    """A guardrail.approved envelope of ``workspace``, signed for ``sign_for`` (default: the same workspace)."""
    now = datetime.now(UTC)
    action = BudgetAction(action_id=uuid.uuid4(), platform=platform, ad_account_id="act_1", entity_type="adset",
                          entity_id=entity_id, action_type="set_budget", currency="EUR", from_cents=from_cents,
                          to_cents=to_cents, reason="security test")
    unsigned = GuardrailApproved(decision_id=uuid.uuid4(), request_id=request_id or uuid.uuid4(), source="pool",
                                 source_id="pool_1", actions=[action], approved_at=now,
                                 expires_at=now + timedelta(minutes=15), signature="")
    signed = unsigned.model_copy(
        update={"signature": sign_approval(unsigned, sign_for or workspace, secret.encode())})
    return new_envelope(event_type="guardrail.approved", schema_version=1, payload=signed, producer="guardrails",
                        workspace_id=workspace, occurred_at=now)


@pytest.fixture
def sandbox() -> Iterator[tuple[str, SandboxState]]:
    with sandbox_server(SANDBOX_TOKEN) as running:
        yield running


def _sandbox_http(url: str) -> httpx.Client:
    return sandbox_client(url, SANDBOX_TOKEN)


def _create_entity(url: str, entity_id: str, budget: int) -> None:
    with _sandbox_http(url) as http:
        r = http.post("/sandbox/entities", json={"id": entity_id, "ad_account_id": "act_1", "entity_type": "adset",
                                                 "currency": "EUR", "daily_budget_cents": budget})
        assert r.status_code == 201, r.text


def _api_writes(url: str, entity_id: str) -> list[dict[str, Any]]:
    with _sandbox_http(url) as http:
        calls = http.get("/sandbox/calls", params={"entity_id": entity_id}).json()["calls"]
    return [c for c in calls if c.get("source", "api") != "human" and c.get("method", "POST") != "GET"]


def _budget(url: str, entity_id: str) -> int:
    with _sandbox_http(url) as http:
        return int(http.get(f"/v1/entities/{entity_id}").json()["daily_budget_cents"])


async def _dlq_error(bootstrap: str, event_id: uuid.UUID) -> str:
    dlq = await read_topic(bootstrap, "guardrail.approved.dlq", min_count=1,
                           predicate=lambda r: dict(r.headers).get("event_id") == str(event_id).encode())
    return dict(dlq[0].headers)["x-dlq-error"].decode()


async def test_an_unsigned_approval_goes_to_the_dlq_and_never_reaches_the_platform(
    settings: Settings, unique: str, sandbox: tuple[str, SandboxState]
) -> None:
    from allot.executor.service import SPEC

    url, _ = sandbox
    entity = f"as-{unique}"
    _create_entity(url, entity, 10_000)
    event = _approval(unique, entity, secret=SECRET, to_cents=99_000)
    event = event.model_copy(update={"payload": event.payload.model_copy(update={"signature": ""})})
    async with running_service(SPEC, settings, sandbox_url=url, sandbox_token=SANDBOX_TOKEN, approval_secret=SECRET):
        await publish(settings.kafka_bootstrap, event)
        error = await _dlq_error(settings.kafka_bootstrap, event.event_id)
        assert "approval rejected" in error and "unsigned" in error
    assert _api_writes(url, entity) == []
    assert _budget(url, entity) == 10_000


async def test_an_approval_signed_for_another_workspace_is_refused_when_replayed_into_this_one(
    settings: Settings, unique: str, sandbox: tuple[str, SandboxState]
) -> None:
    """Workspace B's genuine approval, replayed under workspace A's id (e.g. by a tenant who can publish), is forged
    for A: the signature covers the workspace id. The same approval under B is applied (the control)."""
    from allot.executor.service import SPEC

    url, _ = sandbox
    ws_a, ws_b = f"wa-{unique}", f"wb-{unique}"
    entity = f"as-{unique}"
    _create_entity(url, entity, 10_000)
    genuine = _approval(ws_b, entity, secret=SECRET, to_cents=11_000)
    replayed = genuine.model_copy(update={"event_id": uuid.uuid4(), "workspace_id": ws_a})
    async with running_service(SPEC, settings, sandbox_url=url, sandbox_token=SANDBOX_TOKEN, approval_secret=SECRET):
        await publish(settings.kafka_bootstrap, replayed)
        error = await _dlq_error(settings.kafka_bootstrap, replayed.event_id)
        assert "approval rejected" in error and "signature" in error
        assert _api_writes(url, entity) == [] and _budget(url, entity) == 10_000

        await publish(settings.kafka_bootstrap, genuine)
        records = await read_topic(settings.kafka_bootstrap, "action.executed", min_count=1,
                                   predicate=lambda r: r.key == entity.encode())
        outcomes = [decode("action.executed", r.value) for r in records]
        assert [(o.workspace_id, o.payload.outcome) for o in outcomes] == [(ws_b, "succeeded")]
    assert _budget(url, entity) == 11_000


# ====================================================================== (c) no secret in the logs

APPROVAL_SECRET = "approval-secret-" + uuid.uuid4().hex
META_TOKEN = "EAAmeta" + uuid.uuid4().hex
META_APP_SECRET = "meta-app-secret-" + uuid.uuid4().hex
LOG_SANDBOX_TOKEN = "sandbox-token-" + uuid.uuid4().hex
#: platform tokens given to the connections API (sealed at once; never logged, never returned)
CONN_READ_TOKEN = "EAAread" + uuid.uuid4().hex + "RD4X"
CONN_WRITE_TOKEN = "EAAwrite" + uuid.uuid4().hex + "WR4X"
CONN_NEW_WRITE_TOKEN = "EAAwrite2" + uuid.uuid4().hex + "NW4X"


def _echoing_meta_fake() -> FastAPI:
    """A hostile Graph API: every call fails with error 190 whose message ECHOES the presented credentials."""
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def everything(path: str, request: Request) -> JSONResponse:
        presented = request.headers.get("authorization", "") + " " + str(request.query_params)
        return JSONResponse({"error": {"message": f"Invalid OAuth access token: {presented}", "type": "OAuthException",
                                       "code": 190, "fbtrace_id": "trace"}}, status_code=400)

    return app


def test_no_secret_appears_in_the_logs_of_running_services(
    kafka_bootstrap: str, database_url: str, tmp_path: Path, unique: str
) -> None:
    from allot.runtime.embedded import free_port
    from allot.runtime.stack import start_stack, wait_ready

    ws = f"ws-{unique}"
    admin_raw, admin_entry = generate_key(ws, "admin")
    viewer_raw, viewer_entry = generate_key(ws, "viewer")
    forged_key = "allot_" + uuid.uuid4().hex  # looks like a key, is none: must not be echoed either
    from allot.runtime.sealing import generate_keypair

    sealing = {r: generate_keypair(f"{r}-sec") for r in ("ingest", "executor")}
    secrets = {"approval secret": APPROVAL_SECRET, "meta access token": META_TOKEN,
               "meta app secret": META_APP_SECRET,
               "sandbox token": LOG_SANDBOX_TOKEN, "admin key": admin_raw, "viewer key": viewer_raw,
               "presented unknown key": forged_key, "connection read token": CONN_READ_TOKEN,
               "connection write token": CONN_WRITE_TOKEN, "replaced write token": CONN_NEW_WRITE_TOKEN,
               "executor sealing private key": sealing["executor"].private_key}
    sealing_env = {
        "connections": {"ALLOT_SEALING_PUBLIC_KEYS": ",".join(f"{r}={p.key_id}:{p.public_key}"
                                                              for r, p in sealing.items())},
        "executor": {"ALLOT_SEALING_PRIVATE_KEYS": f"executor-sec:{sealing['executor'].private_key}"},
    }

    sandbox_state = SandboxState(api_token=LOG_SANDBOX_TOKEN)
    ok_entity, failing_entity, meta_entity = f"ok-{unique}", f"fail-{unique}", f"meta-{unique}"
    with serve_app(create_sandbox(sandbox_state)) as sandbox_url, serve_app(_echoing_meta_fake()) as meta_url:
        _create_entity_with(sandbox_url, LOG_SANDBOX_TOKEN, ok_entity)
        _create_entity_with(sandbox_url, LOG_SANDBOX_TOKEN, failing_entity)
        with httpx.Client(base_url=sandbox_url, headers={"Authorization": f"Bearer {LOG_SANDBOX_TOKEN}"}) as http:
            assert http.post("/sandbox/faults", json={"kind": "server_error", "entity_id": failing_entity,
                                                      "count": 1000, "status_code": 503}).status_code == 201
        stack = start_stack(tmp_path, services=[], quiet=True, bootstrap=kafka_bootstrap, database_url=database_url,
                            api_keys=[admin_entry.model_dump(), viewer_entry.model_dump()],
                            extra_env={"ALLOT_APPROVAL_SECRET": APPROVAL_SECRET, "ALLOT_SANDBOX_URL": sandbox_url,
                                       "ALLOT_SANDBOX_TOKEN": LOG_SANDBOX_TOKEN, "ALLOT_META_BASE_URL": meta_url,
                                       "ALLOT_META_ACCESS_TOKEN": META_TOKEN,
                                       "ALLOT_META_APP_SECRET": META_APP_SECRET, "ALLOT_MAX_ATTEMPTS": "2",
                                       "ALLOT_RETRY_BASE_S": "0.05", "ALLOT_RETRY_CAP_S": "0.1",
                                       "ALLOT_LOG_LEVEL": "DEBUG"})
        try:
            for name in ("guardrails", "executor", "connections"):
                stack.ports[name] = free_port()
                stack.start_service(name, ALLOT_DATABASE_SCHEMA=f"sec_{unique}_{name}", **sealing_env.get(name, {}))
            for name in ("guardrails", "executor", "connections"):
                wait_ready(stack, name)
            asyncio.run(_drive_traffic(stack, kafka_bootstrap, ws, admin_raw, viewer_raw, forged_key,
                                       ok_entity, failing_entity, meta_entity))
        finally:
            stack.stop()  # SIGTERM to the pids it started (and the embedded infra: none here)

    logs = {p.name: p.read_text(errors="replace") for p in (tmp_path / "logs").glob("*.log")}
    assert logs.get("executor.log") and logs.get("guardrails.log")
    # the traffic really happened and was logged: the failures are in the logs, only without the secrets
    assert "approval_rejected" in logs["executor.log"]
    assert "gave up after" in logs["executor.log"] or "platform refused" in logs["executor.log"]
    assert "connection_created" in logs["connections.log"] and "connection_removed" in logs["connections.log"]
    leaks = [(what, log) for log, text in logs.items() for what, secret in secrets.items() if secret in text]
    assert leaks == [], f"secrets in the logs: {leaks}"


def _create_entity_with(url: str, token: str, entity_id: str) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        r = http.post("/sandbox/entities", json={"id": entity_id, "ad_account_id": "act_1", "entity_type": "adset",
                                                 "currency": "EUR", "daily_budget_cents": 10_000})
        assert r.status_code == 201, r.text


async def _drive_traffic(stack: Any, bootstrap: str, ws: str, admin: str, viewer: str, forged: str,
                         ok_entity: str, failing_entity: str, meta_entity: str) -> None:
    g, e = stack.url("guardrails"), stack.url("executor")
    async with httpx.AsyncClient(timeout=10) as http:
        # valid keys, wrong roles, unknown keys, keys in the wrong header form, malformed bodies
        assert (await http.get(f"{g}/api/v1/guardrails/limits", headers=auth(admin))).status_code == 200
        assert (await http.put(f"{g}/api/v1/guardrails/limits", headers=auth(viewer),
                               json={})).status_code == 403
        assert (await http.patch(f"{g}/api/v1/guardrails/limits", headers=auth(admin),
                                 json={"max_change_pct": 500})).status_code in (200, 422)
        for base, path in ((g, "/api/v1/guardrails/limits"), (e, f"/api/v1/change-sets/{uuid.uuid4()}")):
            for headers in (auth(forged), {"X-API-Key": forged}, {"Authorization": forged},
                            auth(admin[:-1]), auth(APPROVAL_SECRET), auth(META_TOKEN)):
                assert (await http.get(base + path, headers=headers)).status_code == 401
            r = await http.post(base + path, headers={**auth(forged), "content-type": "application/json"},
                                content=b"{" + forged.encode())
            assert r.status_code in (401, 404, 405, 422)
        assert (await http.get(f"{e}/api/v1/change-sets/{uuid.uuid4()}", headers=auth(admin))).status_code == 404

    # approvals: one applied, one failing on the sandbox (503s), one refused by the hostile Meta (echoing the token),
    # one forged (wrong secret)
    applied = _approval(ws, ok_entity, secret=APPROVAL_SECRET)
    failing = _approval(ws, failing_entity, secret=APPROVAL_SECRET)
    meta = _approval(ws, meta_entity, secret=APPROVAL_SECRET, platform="meta")
    forged_approval = _approval(ws, ok_entity, secret="not-the-secret")
    await publish(bootstrap, applied, failing, meta, forged_approval)
    # and a change set through the guardrails (their decision is signed with the secret)
    action = BudgetAction(action_id=uuid.uuid4(), platform="sandbox", ad_account_id="act_1", entity_type="adset",
                          entity_id=ok_entity, action_type="set_budget", currency="EUR", from_cents=11_000,
                          to_cents=11_500)
    await publish(bootstrap, new_envelope(
        event_type="allocation.requested", schema_version=1, producer="test", workspace_id=ws,
        occurred_at=datetime.now(UTC),
        payload=AllocationRequested(request_id=uuid.uuid4(), source="rule", source_id="r-1",
                                    idempotency_key=uuid.uuid4().hex, actions=[action])))
    entities = {ok_entity, failing_entity, meta_entity}
    outcomes: dict[str, Any] = {}

    async def every_entity_has_an_outcome() -> bool:
        # ok_entity may get two outcomes (its approval and the guardrails' change set): wait for every entity,
        # not for a record count
        records = await read_topic(bootstrap, "action.executed", timeout=2,
                                   predicate=lambda r: r.key.decode() in entities and
                                   decode("action.executed", r.value).workspace_id == ws)
        for r in records:
            payload = decode("action.executed", r.value).payload
            outcomes[payload.entity_id] = payload
        return entities <= set(outcomes)

    await eventually(every_entity_has_an_outcome, timeout=45, what="an action.executed for every entity")
    assert outcomes[ok_entity].outcome == "succeeded"
    assert outcomes[failing_entity].outcome == "failed"
    assert outcomes[meta_entity].outcome in ("failed", "rejected")
    assert META_TOKEN not in (outcomes[meta_entity].error or "")  # nor in the event
    await _dlq_error(bootstrap, forged_approval.event_id)
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(f"{e}/api/v1/change-sets/{meta.payload.request_id}", headers=auth(admin))
        assert r.status_code == 200 and META_TOKEN not in r.text
    await _drive_connections(stack, bootstrap, admin)


async def _drive_connections(stack: Any, bootstrap: str, admin: str) -> None:
    """Connection tokens through the API: accepted, refused, replaced, listed, removed; no response carries one,
    and the executor projects the sealed write token (its logs are checked by the caller)."""
    c = stack.url("connections") + "/api/v1/connections"
    account = str(uuid.uuid4().int % 10**12)
    responses: list[httpx.Response] = []
    async with httpx.AsyncClient(timeout=10) as http:
        good = {"platform": "meta", "ad_account_ids": [account], "read_token": CONN_READ_TOKEN,
                "write_token": CONN_WRITE_TOKEN}
        for bad in ({**good, "read_token": f"Bearer {CONN_READ_TOKEN}"}, {**good, "write_token": CONN_READ_TOKEN},
                    {**good, "platform": "tiktok"}, {**good, "ad_account_ids": ["x"]}):
            responses.append(await http.post(c, headers=auth(admin), json=bad))
            assert responses[-1].status_code == 422, responses[-1].text
        responses.append(await http.post(c, headers=auth(admin), json=good))
        assert responses[-1].status_code == 201, responses[-1].text
        cid = responses[-1].json()["connection_id"]
        responses.append(await http.patch(f"{c}/{cid}", headers=auth(admin),
                                          json={"write_token": CONN_NEW_WRITE_TOKEN}))
        responses.append(await http.get(c, headers=auth(admin)))
        responses.append(await http.get(f"{c}/{cid}", headers=auth(admin)))
        assert responses[-1].json()["write_token_last4"] == "NW4X"
        log_path = stack.root / "logs" / "executor.log"
        await eventually(lambda: _logged(log_path, cid), what="the executor projected the connection")
        responses.append(await http.delete(f"{c}/{cid}", headers=auth(admin)))
        assert responses[-1].status_code == 200
    for r in responses:
        for token in (CONN_READ_TOKEN, CONN_WRITE_TOKEN, CONN_NEW_WRITE_TOKEN):
            assert token not in r.text and token[:-4] not in r.text, (r.request.method, r.request.url)
    records = await read_topic(bootstrap, "connection.changed", min_count=3, predicate=lambda r: r.key == cid.encode())
    for rec in records:
        for token in (CONN_READ_TOKEN, CONN_WRITE_TOKEN, CONN_NEW_WRITE_TOKEN):
            assert token.encode() not in rec.value


async def _logged(path: Path, connection_id: str) -> bool:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "connection_token_updated" in text and connection_id in text
