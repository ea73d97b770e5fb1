"""SandboxClient against the real sandbox app served by uvicorn on a loopback socket."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from allot.executor.adapters import (
    EntityRef,
    PermanentPlatformError,
    PlatformAuthError,
    TransientPlatformError,
)
from allot.executor.adapters.sandbox import SandboxClient
from allot.sandbox.app import create_app
from allot.sandbox.state import SandboxState
from allot.sandbox.testing import serve_app

TOKEN = "sbx-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HTTP = httpx.Client(timeout=10)  # one pool for the setup calls: creating a client per call costs ~50 ms


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve_app(create_app(SandboxState(api_token=TOKEN))) as base_url:
        yield base_url


@pytest.fixture
def base_url(server: str) -> Iterator[str]:
    yield server
    HTTP.delete(f"{server}/sandbox/faults", headers=AUTH).raise_for_status()


def admin(base_url: str, method: str, path: str, **kwargs: Any) -> Any:
    resp = HTTP.request(method, f"{base_url}{path}", headers=AUTH, **kwargs)
    resp.raise_for_status()
    return resp.json()


def new_adset(base_url: str, budget: int = 10_000, status: str = "active") -> EntityRef:
    account = f"acc-{uuid.uuid4().hex[:8]}"
    campaign = admin(
        base_url, "POST", "/sandbox/entities", json={"ad_account_id": account, "entity_type": "campaign", "name": "C"}
    )
    adset = admin(
        base_url,
        "POST",
        "/sandbox/entities",
        json={
            "id": f"as-{uuid.uuid4().hex[:10]}",
            "ad_account_id": account,
            "entity_type": "adset",
            "name": "Prospecting",
            "currency": "USD",
            "daily_budget_cents": budget,
            "status": status,
            "parent_id": campaign["id"],
        },
    )
    return EntityRef("sandbox", account, "adset", adset["id"])


def calls(base_url: str, entity_id: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = admin(base_url, "GET", "/sandbox/calls", params={"entity_id": entity_id})["calls"]
    return result


def arm(base_url: str, **fault: Any) -> None:
    admin(base_url, "POST", "/sandbox/faults", json=fault)


async def test_reads_and_sets_budget_and_status(base_url: str) -> None:
    ref = new_adset(base_url, budget=10_000)
    async with SandboxClient(base_url, TOKEN, timeout_s=5) as client:
        state = await client.get_entity(ref)
        assert (state.budget_cents, state.status, state.currency, state.name) == (
            10_000,
            "active",
            "USD",
            "Prospecting",
        )

        write = await client.set_budget(ref, 12_500, idempotency_key="action-1")
        assert write.response_id
        await client.set_status(ref, "paused")
        state = await client.get_entity(ref)
    assert (state.budget_cents, state.status) == (12_500, "paused")
    log = calls(base_url, ref.entity_id)
    assert [(c["field"], c["old"], c["new"], c["source"]) for c in log] == [
        ("daily_budget_cents", 10_000, 12_500, "api"),
        ("status", "active", "paused", "api"),
    ]
    assert log[0]["write_id"] == write.response_id and log[0]["idempotency_key"] == "action-1"


async def test_each_write_is_logged_exactly_once(base_url: str) -> None:
    ref = new_adset(base_url)
    async with SandboxClient(base_url, TOKEN) as client:
        results = [await client.set_budget(ref, 11_000 + i) for i in range(3)]
    log = calls(base_url, ref.entity_id)
    assert [c["write_id"] for c in log] == [r.response_id for r in results]
    assert len({c["write_id"] for c in log}) == 3


async def test_relaunch_creates_a_copy(base_url: str) -> None:
    ref = new_adset(base_url)
    async with SandboxClient(base_url, TOKEN) as client:
        result = await client.relaunch(ref)
        assert result.new_entity_id and result.new_entity_id != ref.entity_id
        copy = await client.get_entity(EntityRef("sandbox", ref.ad_account_id, "adset", result.new_entity_id))
    assert copy.status == "active" and copy.budget_cents == 10_000
    assert [c["field"] for c in calls(base_url, ref.entity_id)] == ["relaunch"]


async def test_rate_limit_is_transient_with_retry_after(base_url: str) -> None:
    ref = new_adset(base_url)
    arm(base_url, kind="rate_limit", count=1, retry_after_s=7, entity_id=ref.entity_id)
    async with SandboxClient(base_url, TOKEN) as client:
        with pytest.raises(TransientPlatformError) as err:
            await client.set_budget(ref, 12_000)
        assert err.value.retry_after_s == 7.0
        await client.set_budget(ref, 12_000)  # the fault was for one call only
    assert [c["new"] for c in calls(base_url, ref.entity_id)] == [12_000]


async def test_server_error_is_transient_and_nothing_is_applied(base_url: str) -> None:
    ref = new_adset(base_url)
    arm(base_url, kind="server_error", count=2, status_code=502)
    async with SandboxClient(base_url, TOKEN) as client:
        for _ in range(2):
            with pytest.raises(TransientPlatformError) as err:
                await client.set_budget(ref, 15_000)
            assert err.value.retry_after_s is None and "502" in str(err.value)
        assert (await client.get_entity(ref)).budget_cents == 10_000
    assert calls(base_url, ref.entity_id) == []


async def test_timeout_is_transient(base_url: str) -> None:
    ref = new_adset(base_url)
    arm(base_url, kind="timeout", count=1, delay_s=1.0, entity_id=ref.entity_id)
    async with SandboxClient(base_url, TOKEN, timeout_s=0.2) as client:
        with pytest.raises(TransientPlatformError, match="timed out"):
            await client.get_entity(ref)


async def test_timeout_after_the_write_landed_is_transient_but_logged_once(base_url: str) -> None:
    ref = new_adset(base_url)
    arm(base_url, kind="timeout", count=1, delay_s=0.8, on="write", applied=True)
    async with SandboxClient(base_url, TOKEN, timeout_s=0.2) as client:
        with pytest.raises(TransientPlatformError):
            await client.set_budget(ref, 14_000)
        # The ambiguous outcome: the executor must re-read before retrying.
        assert (await client.get_entity(ref)).budget_cents == 14_000
    assert [c["new"] for c in calls(base_url, ref.entity_id)] == [14_000]


async def test_connection_refused_is_transient() -> None:
    async with SandboxClient("http://127.0.0.1:9", TOKEN, timeout_s=1) as client:
        with pytest.raises(TransientPlatformError) as err:
            await client.get_entity(EntityRef("sandbox", "a", "adset", "x"))
    assert TOKEN not in str(err.value)


async def test_invalid_parameter_is_permanent_and_names_the_field(base_url: str) -> None:
    ref = new_adset(base_url)
    async with SandboxClient(base_url, TOKEN) as client:
        with pytest.raises(PermanentPlatformError) as err:
            await client.set_budget(ref, 50)  # below the platform minimum
    assert err.value.code == "invalid_parameter" and "daily_budget_cents" in str(err.value)
    assert calls(base_url, ref.entity_id) == []


async def test_unknown_entity_is_permanent_not_found(base_url: str) -> None:
    async with SandboxClient(base_url, TOKEN) as client:
        with pytest.raises(PermanentPlatformError) as err:
            await client.get_entity(EntityRef("sandbox", "a", "adset", "does-not-exist"))
    assert err.value.code == "not_found"


async def test_bad_token_is_permanent_auth_error_without_the_token(base_url: str) -> None:
    ref = new_adset(base_url)
    bad = "wrong-" + uuid.uuid4().hex
    async with SandboxClient(base_url, bad) as client:
        with pytest.raises(PlatformAuthError) as err:
            await client.set_budget(ref, 12_000)
    assert err.value.code == "unauthorized" and "401" in str(err.value)
    assert bad not in str(err.value) and bad not in repr(err.value)
    assert calls(base_url, ref.entity_id) == []


async def test_faults_target_only_their_entity(base_url: str) -> None:
    hit, spared = new_adset(base_url), new_adset(base_url)
    arm(base_url, kind="server_error", count=5, entity_id=hit.entity_id)
    async with SandboxClient(base_url, TOKEN) as client:
        await client.set_budget(spared, 13_000)
        with pytest.raises(TransientPlatformError):
            await client.set_budget(hit, 13_000)
    assert len(calls(base_url, spared.entity_id)) == 1 and calls(base_url, hit.entity_id) == []


async def test_out_of_band_edit_is_visible_and_logged_as_human(base_url: str) -> None:
    ref = new_adset(base_url)
    admin(
        base_url,
        "POST",
        "/sandbox/out-of-band",
        json={"entity_id": ref.entity_id, "daily_budget_cents": 9_000, "actor": "jane@agency"},
    )
    async with SandboxClient(base_url, TOKEN) as client:
        assert (await client.get_entity(ref)).budget_cents == 9_000
    (record,) = calls(base_url, ref.entity_id)
    assert (record["source"], record["actor"], record["old"], record["new"]) == ("human", "jane@agency", 10_000, 9_000)
