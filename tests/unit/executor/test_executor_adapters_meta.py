"""MetaGraphClient against the local Graph API fake served by uvicorn on a loopback socket."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from allot.contracts.platforms import META_DEFAULT_API_VERSION
from allot.executor.adapters import (
    EntityRef,
    PermanentPlatformError,
    PlatformAuthError,
    TransientPlatformError,
)
from allot.executor.adapters.base import PlatformDeferred
from allot.executor.adapters.meta import MetaGraphClient
from allot.fakes.meta import MetaFakeState, create_meta_fake
from allot.sandbox.testing import serve_app

TOKEN = "EAAB" + uuid.uuid4().hex
VERSION = META_DEFAULT_API_VERSION
HTTP = httpx.Client(timeout=10)  # one pool for setup and raw-contract calls


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[str, MetaFakeState]]:
    state = MetaFakeState(access_tokens={TOKEN})
    state.add_account("1001", currency="EUR", name="Agency EU")
    with serve_app(create_meta_fake(state)) as base_url:
        yield base_url, state


@pytest.fixture
def base_url(fake: tuple[str, MetaFakeState]) -> Iterator[str]:
    yield fake[0]
    HTTP.delete(f"{fake[0]}/_fake/faults").raise_for_status()


def seed(base_url: str, kind: str = "adset", budget: int | None = 5_000, status: str = "ACTIVE") -> EntityRef:
    object_id = str(uuid.uuid4().int % 10**15)
    HTTP.post(
        f"{base_url}/_fake/objects",
        json={
            "id": object_id,
            "kind": kind,
            "account_id": "1001",
            "name": "Retargeting",
            "daily_budget": budget,
            "status": status,
        },
    ).raise_for_status()
    return EntityRef("meta", "act_1001", kind, object_id)


def arm(base_url: str, **fault: Any) -> None:
    HTTP.post(f"{base_url}/_fake/faults", json=fault).raise_for_status()


def writes(base_url: str, object_id: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = HTTP.get(f"{base_url}/_fake/writes", params={"object_id": object_id}).json()[
        "writes"
    ]
    return result


def client(base_url: str, token: str = TOKEN, timeout_s: float = 5.0) -> MetaGraphClient:
    return MetaGraphClient(base_url, VERSION, token, timeout_s=timeout_s)


async def test_reads_budget_status_currency_and_name(base_url: str) -> None:
    ref = seed(base_url, budget=5_000, status="PAUSED")
    async with client(base_url) as meta:
        state = await meta.get_entity(ref)
    assert (state.budget_cents, state.status, state.currency, state.name) == (5_000, "paused", "EUR", "Retargeting")


async def test_entity_without_daily_budget_reads_as_none(base_url: str) -> None:
    ref = seed(base_url, kind="ad", budget=None)
    async with client(base_url) as meta:
        assert (await meta.get_entity(ref)).budget_cents is None


async def test_sets_budget_and_status_through_graph_params(base_url: str) -> None:
    ref = seed(base_url, budget=5_000)
    async with client(base_url) as meta:
        budget_write = await meta.set_budget(ref, 7_250, idempotency_key="action-1")  # accepted, not sent
        await meta.set_status(ref, "paused")
        state = await meta.get_entity(ref)
    assert (state.budget_cents, state.status) == (7_250, "paused")
    log = writes(base_url, ref.entity_id)
    assert [(w["field"], w["old"], w["new"]) for w in log] == [
        ("daily_budget", "5000", "7250"),
        ("status", "ACTIVE", "PAUSED"),
    ]
    assert budget_write.response_id == log[0]["fbtrace_id"]


async def test_relaunch_copies_the_object(base_url: str) -> None:
    ref = seed(base_url, kind="ad", budget=None)
    async with client(base_url) as meta:
        result = await meta.relaunch(ref)
        assert result.new_entity_id and result.new_entity_id != ref.entity_id
        copy = await meta.get_entity(EntityRef("meta", "act_1001", "ad", result.new_entity_id))
    assert copy.status == "paused"  # relaunch_status default: the executor activates deliberately


@pytest.mark.parametrize(("code", "subcode"), [(4, None), (17, 2446079), (32, None), (613, None), (80004, 2446079)])
async def test_rate_limits_are_transient_with_retry_after(base_url: str, code: int, subcode: int | None) -> None:
    ref = seed(base_url)
    arm(base_url, kind="rate_limit", code=code, error_subcode=subcode, regain_access_minutes=2, object_id=ref.entity_id)
    async with client(base_url) as meta:
        with pytest.raises(TransientPlatformError) as err:
            await meta.set_budget(ref, 6_000)
    assert err.value.retry_after_s == 120.0
    assert str(code) in str(err.value)
    assert writes(base_url, ref.entity_id) == []


async def test_rate_limit_without_timing_hints_holds_the_account_for_the_default_time(base_url: str) -> None:
    ref = seed(base_url)
    arm(base_url, kind="rate_limit", code=17, regain_access_minutes=0)
    async with client(base_url) as meta:
        with pytest.raises(TransientPlatformError) as err:
            await meta.get_entity(ref)
        assert err.value.retry_after_s == 60.0  # ThrottlePolicy.blocked_default_s: Meta gave no time
        with pytest.raises(PlatformDeferred):   # the next call is held back here, not sent to be refused again
            await meta.get_entity(ref)


async def test_server_error_is_transient(base_url: str) -> None:
    ref = seed(base_url)
    arm(base_url, kind="server_error", http_status=503, retry_after_s=3)
    async with client(base_url) as meta:
        with pytest.raises(TransientPlatformError) as err:
            await meta.set_status(ref, "paused")
    assert err.value.retry_after_s == 3.0
    assert writes(base_url, ref.entity_id) == []


async def test_timeout_is_transient(base_url: str) -> None:
    ref = seed(base_url)
    arm(base_url, kind="timeout", delay_s=1.0, object_id=ref.entity_id)
    async with client(base_url, timeout_s=0.2) as meta:
        with pytest.raises(TransientPlatformError, match="timed out"):
            await meta.get_entity(ref)


async def test_invalid_parameter_is_permanent(base_url: str) -> None:
    ref = seed(base_url)
    async with client(base_url) as meta:
        with pytest.raises(PermanentPlatformError) as err:
            await meta.set_budget(ref, 10)  # below the fake's minimum
    assert err.value.code == 100 and not isinstance(err.value, PlatformAuthError)
    assert "too low" in str(err.value)


async def test_unknown_object_is_permanent(base_url: str) -> None:
    async with client(base_url) as meta:
        with pytest.raises(PermanentPlatformError) as err:
            await meta.get_entity(EntityRef("meta", "act_1001", "adset", "999"))
    assert err.value.code == 100 and "/33" in str(err.value)


async def test_invalid_token_is_permanent_auth_error_and_never_echoed(base_url: str) -> None:
    ref = seed(base_url)
    bad = "EAAB" + uuid.uuid4().hex
    async with client(base_url, token=bad) as meta:
        with pytest.raises(PlatformAuthError) as err:
            await meta.set_budget(ref, 6_000)
    assert err.value.code == 190
    assert bad not in str(err.value) and bad not in repr(err.value) and bad not in repr(err.value.args)
    assert writes(base_url, ref.entity_id) == []


async def test_token_never_appears_even_when_graph_echoes_it(base_url: str) -> None:
    ref = seed(base_url)
    arm(base_url, kind="error", code=100, message=f"bad call with token {TOKEN}")
    async with client(base_url) as meta:
        with pytest.raises(PermanentPlatformError) as err:
            await meta.get_entity(ref)
    assert TOKEN not in str(err.value) and "***" in str(err.value)


async def test_injected_auth_code_is_permanent(base_url: str) -> None:
    ref = seed(base_url)
    arm(base_url, kind="error", code=200, message="(#200) Requires ads_management permission")
    async with client(base_url) as meta:
        with pytest.raises(PlatformAuthError):
            await meta.set_budget(ref, 6_000)


async def test_appsecret_proof_is_sent_when_configured() -> None:
    state = MetaFakeState(access_tokens={TOKEN}, app_secret="s3cret")
    state.add_object("42", "campaign", "7", daily_budget=1_000)
    ref = EntityRef("meta", "act_7", "campaign", "42")
    with serve_app(create_meta_fake(state)) as base_url:
        async with MetaGraphClient(base_url, VERSION, TOKEN, app_secret="s3cret") as meta:
            assert (await meta.get_entity(ref)).budget_cents == 1_000
        async with MetaGraphClient(base_url, VERSION, TOKEN) as meta:
            with pytest.raises(PermanentPlatformError):
                await meta.get_entity(ref)


# ---------------------------------------------------------------- the fake's own HTTP contract


def test_fake_speaks_graph_shapes(base_url: str) -> None:
    ref = seed(base_url, budget=5_000)
    url = f"{base_url}/{VERSION}/{ref.entity_id}"
    got = HTTP.get(url, params={"fields": "daily_budget,status,name,account_id", "access_token": TOKEN})
    assert got.status_code == 200 and got.headers["x-fb-trace-id"]
    assert got.json() == {
        "id": ref.entity_id,
        "daily_budget": "5000",
        "status": "ACTIVE",
        "name": "Retargeting",
        "account_id": "1001",
    }
    # Form, query and JSON params are all accepted for writes.
    assert HTTP.post(url, data={"daily_budget": "5100", "access_token": TOKEN}).json() == {"success": True}
    assert HTTP.post(url, json={"daily_budget": 5200}, params={"access_token": TOKEN}).json() == {"success": True}
    assert HTTP.post(url, params={"status": "PAUSED", "access_token": TOKEN}).json() == {"success": True}
    err = HTTP.post(url, data={"daily_budget": "abc", "access_token": TOKEN})
    assert err.status_code == 400
    body = err.json()["error"]
    assert body["code"] == 100 and body["type"] == "OAuthException" and body["fbtrace_id"]
    assert set(body) >= {"message", "type", "code", "fbtrace_id"}


def test_fake_rejects_missing_token_and_unknown_fields(base_url: str) -> None:
    ref = seed(base_url)
    url = f"{base_url}/{VERSION}/{ref.entity_id}"
    assert HTTP.get(url).json()["error"]["code"] == 104
    bad_field = HTTP.get(url, params={"fields": "bogus"}, headers={"Authorization": f"OAuth {TOKEN}"})
    assert bad_field.status_code == 400 and "bogus" in bad_field.json()["error"]["message"]
    bad_version = HTTP.get(f"{base_url}/latest/{ref.entity_id}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bad_version.status_code == 400


def test_fake_rate_limit_carries_business_use_case_header(base_url: str) -> None:
    ref = seed(base_url)
    arm(base_url, kind="rate_limit", code=80004, regain_access_minutes=5)
    resp = HTTP.get(f"{base_url}/{VERSION}/{ref.entity_id}", headers={"Authorization": f"OAuth {TOKEN}"})
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == 80004 and resp.json()["error"]["error_subcode"] == 2446079
    usage = json.loads(resp.headers["x-business-use-case-usage"])
    assert usage["act_1001"][0]["estimated_time_to_regain_access"] == 5
