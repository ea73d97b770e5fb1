"""The fuzzed services, shared by the fuzz test modules: the workspace and its admin key, the services' specs and
settings overrides, the seeds (real objects for id path parameters) and the running service per name (``runner_for``,
one at a time through the session's ``Runners``, see fuzz_support.py).

The keys are drawn once, when this module is imported (as ``tests.fuzz.fuzz_services``, like conftest.py imports
fuzz_support). They must not live in a test module that another imports: pytest imports every test module itself,
under its basename (tests/fuzz has no ``__init__.py``), so an import as ``tests.fuzz.test_...`` runs its body a
second time with keys of its own, and whichever copy starts a service first makes the other's requests a 401.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from allot.connections.service import SPEC as CONNECTIONS
from allot.contracts import TOPICS, new_envelope
from allot.contracts.payloads import ConnectionChanged, MetricsIngested
from allot.executor.service import SPEC as EXECUTOR
from allot.guardrails.service import SPEC as GUARDRAILS
from allot.ingest.service import SPEC as INGEST
from allot.notify.service import SPEC as NOTIFY
from allot.pacing.service import SPEC as PACING
from allot.pools.service import SPEC as POOLS
from allot.rules.service import SPEC as RULES
from allot.runtime.sealing import Keyring, generate_keypair, seal
from allot.runtime.service import ServiceSpec
from allot.runtime.settings import Settings
from allot.sandbox.app import create_app as create_sandbox
from allot.sandbox.state import SandboxState
from tests.fuzz.fuzz_support import Runners, ServiceRunner
from tests.support.kafka import eventually, publish
from tests.support.service import api_keys, auth, running_service

#: The workspace every fuzz request is made in, and its admin key (ADMIN_KEY raw, KEYS_JSON configures the services).
WORKSPACE = f"fuzz-{uuid.uuid4().hex[:8]}"
(ADMIN_KEY,), KEYS_JSON = api_keys((WORKSPACE, "admin"))
#: The sandbox ad platform's API token.
SANDBOX_TOKEN = "fuzz-sandbox-token"
#: Sealing keys of the fuzzed connections (public halves) and ingest (its private half) services.
SEALING = {r: generate_keypair(f"fuzz-{r}") for r in ("ingest", "executor")}
#: The fuzzed notifier's own key (channel secrets at rest).
NOTIFY_KEY = generate_keypair("fuzz-notify")
#: Platform tokens the connections seed sends (shaped like Meta system-user tokens).
READ_TOKEN, WRITE_TOKEN = "EAAFuzzRead" + "r" * 60 + "R3AD", "EAAFuzzWrite" + "w" * 60 + "WR1T"


# ---------------------------------------------------------------- which services


#: Imported directly: a service whose SPEC does not import fails the fuzz suite, it is never silently left unfuzzed.
SPECS: dict[str, ServiceSpec] = {"guardrails": GUARDRAILS, "executor": EXECUTOR, "rules": RULES, "pacing": PACING,
                                 "pools": POOLS, "connections": CONNECTIONS, "ingest": INGEST, "notify": NOTIFY}


def sandbox_app(state: SandboxState | None = None) -> Any:
    """The sandbox ad platform's app (no lifespan), answering SANDBOX_TOKEN unless given another state."""
    return create_sandbox(state or SandboxState(api_token=SANDBOX_TOKEN))


# ---------------------------------------------------------------- seeds: real objects for the id parameters


async def _seed_rules(client: httpx.AsyncClient, base: Settings) -> dict[str, str]:
    account = f"act-{WORKSPACE}"
    now = datetime.now(UTC)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    payload = MetricsIngested(platform="meta", ad_account_id=account, entity_type="adset", entity_id=f"as-{WORKSPACE}",
                              entity_name="fuzzed ad set", status="active", currency="EUR", daily_budget_cents=10_000,
                              interval_start=start, interval_end=start + timedelta(days=1), reported_at=now,
                              spend_cents=5_000, impressions=10_000, clicks=100, conversions=5, revenue_cents=20_000,
                              reach=5_000)
    await publish(base.kafka_bootstrap, new_envelope(
        event_type="metrics.ingested", schema_version=TOPICS["metrics.ingested"].schema_version, payload=payload,
        producer="fuzz", workspace_id=WORKSPACE, occurred_at=now))
    body = {"template": "kill_losers", "name": "fuzzed", "targets": {"target_cpa": 1500},
            "scope": {"ad_account_ids": [account], "entity_level": "adset"}}

    async def created() -> Any:
        r = await client.post("/api/v1/rules/from-template", json=body, headers=auth(ADMIN_KEY))
        return r.json() if r.status_code == 201 else None

    rule = await eventually(created, timeout=30, what="the fuzz account projected and a rule created")
    return {"rule_id": rule["id"]}


async def _seed_pacing(client: httpx.AsyncClient, _: Settings) -> dict[str, str]:
    now = datetime.now(UTC)
    ent = {"platform": "sandbox", "ad_account_id": "act-fuzz", "entity_type": "campaign", "entity_id": "c-fuzz"}
    r = await client.post("/api/v1/pacing/plans", headers=auth(ADMIN_KEY), json={
        "campaign_id": "cmp-fuzz", "name": "fuzz", "currency": "USD", "total_budget_cents": 1_000_000,
        "flight_start": (now - timedelta(days=2)).isoformat(), "flight_end": (now + timedelta(days=8)).isoformat(),
        "channels": [{"name": "CTV", "allocated_budget_cents": 600_000, "entities": [ent], "budget_entity": ent}]})
    assert r.status_code == 201, r.text
    return {"plan_id": r.json()["plan_id"]}


async def _seed_pools(client: httpx.AsyncClient, _: Settings) -> dict[str, str]:
    r = await client.post("/api/v1/budget-pools", headers=auth(ADMIN_KEY), json={
        "name": "fuzz", "dailyBudgetCents": 40_000, "currency": "EUR",
        "members": [{"entityType": "campaign", "entityId": f"c-{uuid.uuid4().hex[:6]}", "adAccountId": "act-fuzz"}]})
    assert r.status_code == 201, r.text
    pool = r.json()
    return {"pool_id": pool["id"], "member_id": pool["members"][0]["id"]}


async def _seed_sandbox(client: httpx.AsyncClient, _: Settings) -> dict[str, str]:
    r = await client.post("/sandbox/entities", headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}, json={
        "ad_account_id": "act-fuzz", "entity_type": "adset", "currency": "EUR", "daily_budget_cents": 10_000})
    assert r.status_code == 201, r.text
    return {"entity_id": r.json()["id"]}


def _account_id() -> str:
    return str(10**11 + uuid.uuid4().int % (9 * 10**11))


async def _seed_connections(client: httpx.AsyncClient, _: Settings) -> dict[str, str]:
    r = await client.post("/api/v1/connections", headers=auth(ADMIN_KEY), json={
        "platform": "meta", "ad_account_ids": [_account_id()], "read_token": READ_TOKEN, "write_token": WRITE_TOKEN})
    assert r.status_code == 201, r.text
    return {"connection_id": r.json()["connection_id"]}


async def _seed_ingest(client: httpx.AsyncClient, base: Settings) -> dict[str, str]:
    """An account connected to the fuzz workspace (a connection.changed sealed to ingest's key), once projected."""
    account, now = _account_id(), datetime.now(UTC)
    ring = Keyring.parse("ingest", f"{SEALING['ingest'].key_id}:{SEALING['ingest'].private_key}")
    payload = ConnectionChanged(connection_id=f"con-fuzz-{account}", platform="meta", ad_account_ids=[account],
                                state="active", read_token=seal(READ_TOKEN, ring.public_key()),  # type: ignore[arg-type]
                                changed_at=now)
    await publish(base.kafka_bootstrap, new_envelope(
        event_type="connection.changed", schema_version=TOPICS["connection.changed"].schema_version, payload=payload,
        producer="fuzz", workspace_id=WORKSPACE, occurred_at=now))

    async def projected() -> bool:
        r = await client.get("/api/v1/ingest/accounts", headers=auth(ADMIN_KEY))
        return r.status_code == 200 and account in r.text

    await eventually(projected, timeout=30, what="the fuzz account projected by ingest")
    return {"ad_account_id": account}


async def _seed_notify(client: httpx.AsyncClient, _: Settings) -> dict[str, str]:
    """A webhook channel to a closed loopback port (a test send fails fast) and a subscription to it."""
    r = await client.post("/api/v1/notifications/channels", headers=auth(ADMIN_KEY), json={
        "kind": "webhook", "name": "fuzz hook", "url": "http://127.0.0.1:9/hook", "signing_secret": "f" * 40})
    assert r.status_code == 201, r.text
    channel_id = r.json()["channel_id"]
    r = await client.post("/api/v1/notifications/subscriptions", headers=auth(ADMIN_KEY),
                          json={"channel_id": channel_id})
    assert r.status_code == 201, r.text
    return {"channel_id": channel_id, "subscription_id": r.json()["subscription_id"]}


Seed = Callable[[httpx.AsyncClient, Settings], Awaitable[dict[str, str]]]
SEEDS: dict[str, Seed] = {"rules": _seed_rules, "pacing": _seed_pacing, "pools": _seed_pools,
                          "sandbox": _seed_sandbox, "connections": _seed_connections, "ingest": _seed_ingest,
                          "notify": _seed_notify}
OVERRIDES: dict[str, dict[str, Any]] = {
    # the executor never reaches a platform here; undo only emits allocation.requested
    "executor": {"sandbox_url": "http://127.0.0.1:9", "platform_timeout_s": 1.0},
    # a synchronous allocate waits for an outcome that never comes here: keep the wait short
    "pools": {"pools_sync_timeout_s": 0.3, "pools_scheduler_enabled": False},
    "rules": {"rules_scheduler_enabled": False},
    "connections": {"sealing_public_keys": ",".join(f"{r}={k.key_id}:{k.public_key}" for r, k in SEALING.items())},
    # no Graph API here (a closed port): a "sync now" is accepted, the read it schedules fails fast
    "ingest": {"sealing_private_keys": f"{SEALING['ingest'].key_id}:{SEALING['ingest'].private_key}",
               "ingest_graph_url": "http://127.0.0.1:9", "ingest_scan_interval_s": 3600.0},
    # its own sealing key; loopback receivers allowed (development), nothing listens on port 9
    "notify": {"sealing_private_keys": f"{NOTIFY_KEY.key_id}:{NOTIFY_KEY.private_key}", "notify_allow_loopback": True,
               "notify_timeout_s": 1.0},
}


# ---------------------------------------------------------------- the runner per service


def runner_for(name: str, runners: Runners, base: Settings) -> ServiceRunner:
    """The running service ``name`` (started with KEYS_JSON and its OVERRIDES, then seeded: ``data["ids"]`` are the
    seeded objects' ids, ``data["seed"]()`` seeds fresh ones), stopping whichever other service ran before."""

    def factory() -> ServiceRunner:
        @asynccontextmanager
        async def client() -> AsyncIterator[httpx.AsyncClient]:
            if name == "sandbox":
                transport = httpx.ASGITransport(app=sandbox_app(SandboxState(api_token=SANDBOX_TOKEN)))
                async with httpx.AsyncClient(transport=transport, base_url="http://service") as c:
                    yield c
                return
            spec = SPECS[name]
            settings = base.model_copy(update={"api_keys": KEYS_JSON, "ai_native_enabled": True,
                                               "database_schema": f"{base.database_schema}_{name}"})
            async with running_service(spec, settings, **OVERRIDES.get(name, {})) as (c, _ctx):
                yield c

        runner = ServiceRunner(name, client)
        seed = SEEDS.get(name)
        if seed is not None:
            assert runner.client is not None
            runner.data["seed"] = lambda: seed(runner.client, base)  # type: ignore[arg-type]
            runner.data["ids"] = runner.run(seed(runner.client, base), timeout_s=60)
        return runner

    return runners.get(name, factory)


