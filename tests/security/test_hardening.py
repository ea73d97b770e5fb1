"""Issue #14, point by point, against the real broker and real PostgreSQL where the point is about them.

1. Approval secrets: no default or short secret outside ALLOT_ENV=development (in process and as a process),
   key ids and the previous key's rotation window.
2. Tenancy of ad accounts: NOT built yet (see the README's security section); no test here.
3. Integers beyond bigint: 422 naming the field (property test over every route:
   tests/fuzz/test_fuzz_integer_bounds.py).
4. NUL and control characters: 422 naming the field, before the database.
5. `make run` (allot-stack) honours an exported ALLOT_API_KEYS and generates an approval secret per run.
6. An approval that expires before the executor gets it is reported `expired` and the guardrails' ledger releases it.
7. A duplicate approval arriving while the original is still being applied reports `pending`, not `already_applied`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from allot.contracts import decode, new_envelope, sign_approval
from allot.contracts.payloads import BudgetAction, GuardrailApproved
from allot.contracts.signing import ApprovalExpired, ApprovalRejected, verify_approval
from allot.runtime.auth import ApiKeyStore, generate_key
from allot.runtime.service import create_app
from allot.runtime.settings import InsecureConfiguration, Settings, key_fingerprint
from allot.runtime.stack import start_stack
from allot.sandbox.state import SandboxState
from tests.service.guardrails.guardrails_support import action as change
from tests.service.guardrails.guardrails_support import envelope, request
from tests.support.kafka import eventually, publish, read_topic
from tests.support.sandbox import sandbox_client, sandbox_server
from tests.support.service import api_keys, auth, running_service

STRONG = "s" * 24 + uuid.uuid4().hex  # 56 characters, not published anywhere
OLD_STRONG = "o" * 24 + uuid.uuid4().hex
TOKEN = "hardening-sandbox-token"


def _spec(name: str) -> Any:
    import importlib

    return importlib.import_module(f"allot.{name}.service").SPEC


# ====================================================================== 1. approval secrets


@pytest.mark.parametrize("service", ["guardrails", "executor"])
@pytest.mark.parametrize("secret, why", [(None, "default written in Allot's source"),
                                         ("local-only-approval-secret-change-me", "default written"),
                                         ("short-secret", "12 characters long")])
def test_signing_services_refuse_a_default_or_short_secret_outside_development(service: str, secret: str | None,
                                                                               why: str) -> None:
    values: dict[str, Any] = {"env": "production"}
    if secret is not None:
        values["approval_secret"] = SecretStr(secret)
    with pytest.raises(InsecureConfiguration, match=why) as caught:
        create_app(_spec(service), Settings(**values))
    assert "ALLOT_APPROVAL_SECRET" in str(caught.value) and "ALLOT_ENV=development" in str(caught.value)
    # a strong secret, or an explicit development mode, starts
    create_app(_spec(service), Settings(env="production", approval_secret=SecretStr(STRONG)))
    create_app(_spec(service), Settings(env="development"))


def test_services_that_never_touch_approvals_do_not_need_the_secret() -> None:
    for name in ("pools", "rules", "pacing"):
        create_app(_spec(name), Settings(env="production"))


def test_a_weak_previous_key_is_refused_too() -> None:
    settings = Settings(env="production", approval_secret=SecretStr(STRONG),
                        approval_previous_secret=SecretStr("dev-only-approval-secret-change-me"))
    with pytest.raises(InsecureConfiguration, match="ALLOT_APPROVAL_PREVIOUS_SECRET"):
        create_app(_spec("executor"), settings)


def test_the_executor_process_refuses_to_start_with_the_default_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLOT_")}
    env.update({"ALLOT_ENV": "production", "ALLOT_KAFKA_BOOTSTRAP": "127.0.0.1:9", "ALLOT_HTTP_PORT": "9"})
    done = subprocess.run([sys.executable, "-m", "allot.executor"], env=env, capture_output=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode != 0
    assert b"refuses to start" in done.stderr and b"ALLOT_APPROVAL_SECRET" in done.stderr, done.stderr[-2000:]


def _approval(workspace: str, entity: str, *, secret: str, key_id: str | None, to_cents: int = 11_000,
              expires_in_s: float = 900, account: str = "act_1") -> Any:
    now = datetime.now(UTC)
    act = BudgetAction(action_id=uuid.uuid4(), platform="sandbox", ad_account_id=account, entity_type="adset",
                       entity_id=entity, action_type="set_budget", currency="EUR", from_cents=10_000,
                       to_cents=to_cents, reason="test")
    unsigned = GuardrailApproved(decision_id=uuid.uuid4(), request_id=uuid.uuid4(), source="pool", source_id="pool_1",
                                 actions=[act], approved_at=now, expires_at=now + timedelta(seconds=expires_in_s),
                                 signature="", key_id=key_id)
    signed = unsigned.model_copy(update={"signature": sign_approval(unsigned, workspace, secret.encode())})
    return new_envelope(event_type="guardrail.approved", schema_version=1, payload=signed, producer="guardrails",
                        workspace_id=workspace, occurred_at=now)


def test_key_ids_are_signed_and_the_previous_key_only_counts_in_its_window() -> None:
    now = datetime.now(UTC)
    keys = Settings(approval_secret=SecretStr(STRONG), approval_key_id="k2",
                    approval_previous_secret=SecretStr(OLD_STRONG), approval_previous_key_id="k1",
                    approval_previous_until=now + timedelta(hours=1)).approval_keys().verification_keys()
    old = _approval("ws", "e", secret=OLD_STRONG, key_id="k1").payload
    verify_approval(old, "ws", keys, now=now)
    with pytest.raises(ApprovalRejected, match="rotation window ended"):
        verify_approval(old, "ws", keys, now=now + timedelta(hours=2))
    with pytest.raises(ApprovalRejected, match="unknown key id"):
        verify_approval(_approval("ws", "e", secret=STRONG, key_id="k9").payload, "ws", keys, now=now)
    # the key id is covered by the signature: relabelling an old-key approval as the current key fails
    relabelled = old.model_copy(update={"key_id": "k2"})
    with pytest.raises(ApprovalRejected, match="does not match"):
        verify_approval(relabelled, "ws", keys, now=now)
    # an approval signed before key ids existed verifies against any accepted key
    verify_approval(_approval("ws", "e", secret=OLD_STRONG, key_id=None).payload, "ws", keys, now=now)
    assert Settings(approval_secret=SecretStr(STRONG)).approval_keys().current_id == key_fingerprint(STRONG)


@pytest.fixture
def sandbox() -> Iterator[tuple[str, SandboxState]]:
    with sandbox_server(TOKEN) as running:
        yield running


def _sandbox(url: str) -> httpx.Client:
    return sandbox_client(url, TOKEN)


def _entity(url: str, entity_id: str, budget: int = 10_000) -> None:
    with _sandbox(url) as http:
        r = http.post("/sandbox/entities", json={"id": entity_id, "platform": "sandbox", "ad_account_id": "act_1",
                                                 "entity_type": "adset", "currency": "EUR",
                                                 "daily_budget_cents": budget})
        assert r.status_code in (200, 201), r.text


def _writes(url: str, entity_id: str) -> list[Any]:
    with _sandbox(url) as http:
        body = http.get("/sandbox/calls", params={"entity_id": entity_id}).json()
    calls = body["calls"] if isinstance(body, dict) else body
    return [c for c in calls if c.get("source", "allot") != "human"]


async def _outcomes(bootstrap: str, entity: str, count: int, timeout: float = 20.0) -> list[Any]:
    records = await read_topic(bootstrap, "action.executed", min_count=count, timeout=timeout,
                               predicate=lambda r: r.key == entity.encode())
    return [decode("action.executed", r.value).payload for r in records]


def _executor_overrides(url: str, **extra: Any) -> dict[str, Any]:
    return {"sandbox_url": url, "sandbox_token": TOKEN, "retry_base_s": 0.05, "retry_cap_s": 0.2, "env": "production",
            "approval_secret": SecretStr(STRONG), **extra}


async def test_the_executor_accepts_the_previous_key_during_rotation_and_refuses_unknown_keys(
        settings: Settings, unique: str, sandbox: tuple[str, SandboxState]) -> None:
    url, _ = sandbox
    rotated, unknown = f"rot-{unique}", f"unk-{unique}"
    _entity(url, rotated)
    _entity(url, unknown)
    old = _approval(unique, rotated, secret=OLD_STRONG, key_id="k1")
    stray = _approval(unique, unknown, secret="x" * 40, key_id="k0")
    overrides = _executor_overrides(url, approval_key_id="k2", approval_previous_secret=SecretStr(OLD_STRONG),
                                    approval_previous_key_id="k1",
                                    approval_previous_until=datetime.now(UTC) + timedelta(hours=1))
    async with running_service(_spec("executor"), settings, **overrides):
        await publish(settings.kafka_bootstrap, old, stray)
        [done] = await _outcomes(settings.kafka_bootstrap, rotated, 1)
        assert done.outcome == "succeeded"
        dlq = await read_topic(settings.kafka_bootstrap, "guardrail.approved.dlq", min_count=1,
                               predicate=lambda r: dict(r.headers).get("event_id") == str(stray.event_id).encode())
        assert b"unknown key id 'k0'" in dict(dlq[0].headers)["x-dlq-error"]
    assert _writes(url, unknown) == []


# ====================================================================== 3. integers beyond what PostgreSQL stores


async def test_guardrail_limits_beyond_bigint_are_a_422_naming_the_field(settings: Settings, unique: str) -> None:
    ws = f"ws-{unique}"
    (admin,), keys = api_keys((ws, "admin"))
    async with running_service(_spec("guardrails"), settings, api_keys=keys) as (client, _):
        for value in (2**64, 2**64 - 1, 2**63, -(2**63) - 1):
            r = await client.patch("/api/v1/guardrails/limits", headers=auth(admin),
                                   json={"daily_cap_eur_cents": value})
            assert r.status_code == 422, (value, r.text)
            assert [e["field"] for e in r.json()["errors"]] == ["daily_cap_eur_cents"], r.text
        r = await client.put("/api/v1/guardrails/limits", headers=auth(admin),
                             json={"manual_rate_limit": {"count": 2, "window_s": 2**70}})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "manual_rate_limit.window_s", r.text
        r = await client.patch("/api/v1/guardrails/limits", headers=auth(admin),
                               json={"daily_cap_eur_cents": 2**63 - 1})
        assert r.status_code == 200, r.text
        r = await client.get("/api/v1/guardrails/limits", headers=auth(admin))
        assert r.json()["limits"]["daily_cap_eur_cents"] == 2**63 - 1
        # without a key: 401 first, whatever the body
        r = await client.patch("/api/v1/guardrails/limits", json={"daily_cap_eur_cents": 2**64})
        assert r.status_code == 401


# ====================================================================== 4. every 422 names the field


def _own(settings: Settings, suffix: str) -> Settings:
    """Each service of one test in a schema of its own (as in production)."""
    return settings.model_copy(update={"database_schema": f"{settings.database_schema}_{suffix}"})


def _field_of(response: httpx.Response) -> list[str]:
    body = response.json()
    return [e["field"] for e in body.get("errors", [])] or [body.get("field")]


async def test_nul_and_control_characters_are_422s_naming_the_field(settings: Settings, unique: str) -> None:
    ws = f"ws-{unique}"
    (admin,), keys = api_keys((ws, "admin"))
    pool = {"name": "a\x00b", "dailyBudgetCents": 40_000, "currency": "EUR",
            "members": [{"entityType": "campaign", "entityId": f"c-{unique}", "adAccountId": f"act-{unique}"}]}
    async with running_service(_spec("pools"), _own(settings, "p"), api_keys=keys,
                               pools_scheduler_enabled=False) as (c, _):
        r = await c.post("/api/v1/budget-pools", headers=auth(admin), json=pool)
        assert r.status_code == 422 and _field_of(r) == ["name"], r.text
        assert r.json()["error"] == "validation_failed"
        member = {**pool, "name": "ok", "members": [{**pool["members"][0], "entityId": "c\x07"}]}
        r = await c.post("/api/v1/budget-pools", headers=auth(admin), json=member)
        assert r.status_code == 422 and _field_of(r) == ["members.0.entityId"], r.text
    rule = {"name": "a\x00b", "scope": {"ad_account_ids": [f"act-{unique}"], "entity_level": "adset"},
            "conditions": [{"metric": "spend", "operator": "gte", "value": 0, "time_range": "last_30d"}],
            "actions": [{"type": "pause"}]}
    async with running_service(_spec("rules"), _own(settings, "r"), api_keys=keys,
                               rules_scheduler_enabled=False) as (c, _):
        r = await c.post("/api/v1/rules", headers=auth(admin), json=rule)
        assert r.status_code == 422 and _field_of(r) == ["name"], r.text
        r = await c.get("/api/v1/audit-log", headers=auth(admin), params={"entity_id": "x\x00"})
        assert r.status_code == 422 and _field_of(r) == ["entity_id"], r.text
    async with running_service(_spec("guardrails"), _own(settings, "g"), api_keys=keys) as (c, _):
        r = await c.post("/api/v1/guardrails/kill-switch", headers=auth(admin),
                         json={"enabled": True, "ad_account_id": "act\x1b[31m"})
        assert r.status_code == 422 and _field_of(r) == ["ad_account_id"], r.text
        r = await c.get("/api/v1/guardrails/decisions", headers=auth(admin), params={"source_id": "a\x00"})
        assert r.status_code == 422 and _field_of(r) == ["source_id"], r.text
        r = await c.put("/api/v1/guardrails/limits", headers=auth(admin), json={"protected_entities": ["ok", "x\x00"]})
        assert r.status_code == 422 and _field_of(r) == ["protected_entities.1"], r.text


# ====================================================================== 5. make run: ALLOT_API_KEYS, a secret per run


def test_the_stack_adds_exported_api_keys_beside_the_demo_key_and_generates_a_secret_per_run(
        kafka_bootstrap: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    raw, entry = generate_key("acme", "operator", key_id="ops")
    monkeypatch.setenv("ALLOT_API_KEYS", orjson.dumps([entry.model_dump()]).decode())
    monkeypatch.delenv("ALLOT_APPROVAL_SECRET", raising=False)
    monkeypatch.setenv("ALLOT_ENV", "production")
    secrets = []
    for run in range(2):
        stack = start_stack(tmp_path / f"run{run}", services=[], bootstrap=kafka_bootstrap, database_url=database_url)
        try:
            store = ApiKeyStore.from_json(stack.env["ALLOT_API_KEYS"])
            assert store.authenticate(raw) is not None and store.authenticate(stack.admin_key) is not None
            secrets.append(stack.env["ALLOT_APPROVAL_SECRET"])
        finally:
            stack.stop()
    out = capsys.readouterr().out
    assert "1 from ALLOT_API_KEYS (ops)" in out and "random ALLOT_APPROVAL_SECRET generated" in out
    assert secrets[0] != secrets[1] and all(len(s) == 64 for s in secrets)
    assert not any(Settings(approval_secret=SecretStr(s)).approval_keys().current == b"" for s in secrets)
    # an exported weak secret stops the run with the reason, before any service starts
    monkeypatch.setenv("ALLOT_APPROVAL_SECRET", "change-me")
    with pytest.raises(SystemExit, match="default written in Allot's source"):
        start_stack(tmp_path / "weak", services=[], bootstrap=kafka_bootstrap, database_url=database_url)


# ====================================================================== 6. expiry is an outcome


async def test_an_approval_that_expires_while_the_executor_is_down_is_reported_and_released(
        settings: Settings, unique: str, sandbox: tuple[str, SandboxState]) -> None:
    url, _ = sandbox
    ws, entity = f"ws-{unique}", f"exp-{unique}"
    _entity(url, entity)
    (admin,), keys = api_keys((ws, "admin"))
    guardrails, executor = _own(settings, "g"), _own(settings, "x")
    async with running_service(_spec("guardrails"), guardrails, api_keys=keys, env="production",
                               approval_secret=SecretStr(STRONG)) as (client, _):
        r = await client.put("/api/v1/guardrails/limits", headers=auth(admin), json={"approval_ttl_s": 1})
        assert r.status_code == 200, r.text
        req = request(change(entity, 10_000, 11_000, platform="sandbox", account="act_1"), source="rule",
                      source_id=f"r-{unique}")
        await publish(settings.kafka_bootstrap, envelope(ws, req))
        approved = await read_topic(settings.kafka_bootstrap, "guardrail.approved", min_count=1,
                                    predicate=lambda r: r.key == f"r-{unique}".encode())
        assert len(approved) == 1
        ledger = (await client.get("/api/v1/guardrails/ledger", headers=auth(admin))).json()
        reserved = ledger["exposure_eur_cents"]
        assert reserved == 1_250 and ledger["approvals_counted"] == 1  # +10 EUR x 1.25 worst case
        await asyncio.sleep(1.5)  # the executor is down while the approval's lifetime runs out
        async with running_service(_spec("executor"), executor, **_executor_overrides(url)):
            [outcome] = await _outcomes(settings.kafka_bootstrap, entity, 1)
        assert outcome.outcome == "expired" and outcome.source == "rule"
        assert outcome.error and "not applied: approval expired at" in outcome.error

        async def released() -> Any:
            body = (await client.get("/api/v1/guardrails/ledger", headers=auth(admin))).json()
            return body if body["exposure_eur_cents"] == 0 else None

        body = await eventually(released, timeout=15, what="the expired approval's reservation released")
        assert body["released_eur_cents"] == reserved and body["approvals_counted"] == 0
    assert _writes(url, entity) == []


def test_expired_is_authentic_but_never_applied() -> None:
    event = _approval("ws", "e", secret=STRONG, key_id=None, expires_in_s=-1)
    with pytest.raises(ApprovalExpired):
        verify_approval(event.payload, "ws", STRONG.encode(), now=datetime.now(UTC))
    with pytest.raises(ApprovalRejected, match="does not match"):  # a forged expired one is still a forgery
        verify_approval(event.payload, "ws", b"y" * 40, now=datetime.now(UTC))


def test_consumers_treat_expired_as_final_and_not_applied_and_ignore_pending() -> None:
    from allot.contracts.payloads import FINAL_OUTCOMES
    from allot.executor.handlers import duplicate_outcome
    from allot.pacing.domain.plans import proposal_outcome
    from allot.rules.workflow import outcome_success

    assert "expired" in FINAL_OUTCOMES and "pending" not in FINAL_OUTCOMES
    # pacing: a proposal whose actions expired ends 'expired' (not applied); the next snapshot proposes again
    assert proposal_outcome({"a": "expired", "b": "expired"}) == "expired"
    assert proposal_outcome({"a": "expired", "b": "failed"}) == "failed"
    # rules: an expired action clears the pending action (so the rule may act again) and is no failure
    assert outcome_success("expired") is None
    assert (duplicate_outcome("pending"), duplicate_outcome("expired"), duplicate_outcome("succeeded")) == (
        "pending", "expired", "already_applied")


# ====================================================================== 7. a duplicate while the original is pending


async def test_a_duplicate_while_the_original_is_being_applied_reports_pending(
        settings: Settings, unique: str, sandbox: tuple[str, SandboxState]) -> None:
    url, _ = sandbox
    entity = f"dup-{unique}"
    _entity(url, entity)
    with _sandbox(url) as http:
        r = http.post("/sandbox/faults", json={"kind": "slow", "count": 1, "entity_id": entity, "on": "write",
                                               "delay_s": 3})
        assert r.status_code in (200, 201), r.text
    first = _approval(unique, entity, secret=STRONG, key_id=None)
    again = first.model_copy(update={"event_id": uuid.uuid4()})
    async with running_service(_spec("executor"), settings, **_executor_overrides(url)):
        await publish(settings.kafka_bootstrap, first)

        async def writing() -> Any:  # the slow fault fired: the write call is in progress (3 s)
            with _sandbox(url) as http:
                return http.get("/sandbox/faults").json()["faults"] == [] or None

        await eventually(writing, timeout=60, what="the platform write in progress")
        await publish(settings.kafka_bootstrap, again)
        outcomes = await _outcomes(settings.kafka_bootstrap, entity, 2)
    assert [o.outcome for o in outcomes] == ["pending", "succeeded"], outcomes
    assert "still being applied" in (outcomes[0].error or "")
    assert len(_writes(url, entity)) == 1


def test_a_release_needs_an_approved_decision_whose_lifetime_is_over() -> None:
    from allot.guardrails.domain import Decision, LedgerIncrement, release_of

    now = datetime.now(UTC)
    base = Decision(decision_id=uuid.uuid4(), request_id=uuid.uuid4(), source="rule", source_id="r",
                    idempotency_key="k",
                    utc_day=now.date(), status="approved", decided_at=now, expires_at=now + timedelta(seconds=60),
                    ledger=LedgerIncrement(utc_day=now.date(), month=f"{now:%Y-%m}", eur_cents=1_250))
    assert release_of(base, now=now) is None  # an "expired" report before the expiry is false
    released = release_of(base, now=now + timedelta(seconds=61))
    assert released is not None and released.ledger.eur_cents == 1_250
    blocked = base.model_copy(update={"status": "blocked", "check": "daily_cap", "expires_at": None})
    assert release_of(blocked, now=now + timedelta(days=1)) is None
