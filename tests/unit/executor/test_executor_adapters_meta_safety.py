"""MetaGraphClient on a real account's terms, against the Graph fake: appsecret_proof, per-workspace tokens,
deprecated versions, proactive throttling from usage headers, write scope."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterator

import httpx
import pytest

from allot.contracts.platforms import META_DEFAULT_API_VERSION
from allot.executor.adapters.base import (
    EntityRef,
    PermanentPlatformError,
    PlatformAuthError,
    PlatformConfigError,
    PlatformDeferred,
    PlatformNotConnected,
    TransientPlatformError,
)
from allot.executor.adapters.meta import MetaGraphClient, appsecret_proof
from allot.executor.adapters.meta_usage import ThrottlePolicy
from allot.fakes.meta import MetaFakeState, create_meta_fake
from allot.sandbox.testing import serve_app

GLOBAL = "EAAglobal" + uuid.uuid4().hex
WS_A = "EAAwsA" + uuid.uuid4().hex
WS_B = "EAAwsB" + uuid.uuid4().hex
READ_ONLY = "EAAread" + uuid.uuid4().hex
SECRET = "app-secret-" + uuid.uuid4().hex
V = META_DEFAULT_API_VERSION


@pytest.fixture
def fake() -> Iterator[tuple[str, MetaFakeState]]:
    state = MetaFakeState(access_tokens={GLOBAL, WS_A, WS_B, READ_ONLY}, app_secret=SECRET)
    state.reads.grant(READ_ONLY, "ads_read")
    state.add_account("1001", currency="HUF")
    state.add_object("55", "adset", "1001", daily_budget=50_000)
    with serve_app(create_meta_fake(state)) as url:
        yield url, state


REF_A = EntityRef("meta", "act_1001", "adset", "55", workspace_id="ws-a")


def test_appsecret_proof_is_hmac_sha256_of_the_token_keyed_by_the_secret_in_hex() -> None:
    proof = appsecret_proof("secret", "token")
    assert proof == hmac.new(b"secret", b"token", hashlib.sha256).hexdigest()
    assert len(proof) == 64 and proof != appsecret_proof("secret", "token2") != appsecret_proof("other", "token")


async def test_every_call_carries_the_proof_and_a_wrong_secret_is_refused(fake: tuple[str, MetaFakeState]) -> None:
    url, state = fake
    async with MetaGraphClient(url, V, GLOBAL, app_secret=SECRET) as meta:
        assert (await meta.get_entity(REF_A)).currency == "HUF"
        await meta.set_budget(REF_A, 60_000)
    assert state.objects["55"].daily_budget == 60_000
    async with MetaGraphClient(url, V, GLOBAL, app_secret="not-the-secret") as meta:
        with pytest.raises(PermanentPlatformError) as err:
            await meta.get_entity(REF_A)
    assert err.value.code == 100 and "appsecret_proof" in err.value.message
    assert "not-the-secret" not in str(err.value) and GLOBAL not in str(err.value)


async def test_the_workspaces_own_token_is_used(fake: tuple[str, MetaFakeState]) -> None:
    url, state = fake
    asked: list[tuple[str, str]] = []

    async def token_for(workspace: str, account: str) -> str | None:
        asked.append((workspace, account))
        return {"ws-a": WS_A, "ws-b": WS_B}.get(workspace)

    state.access_tokens.discard(GLOBAL)          # the global token would fail: only the workspace's may work
    async with MetaGraphClient(url, V, GLOBAL, token_for=token_for, app_secret=SECRET) as meta:
        await meta.set_budget(REF_A, 61_000)
    assert asked and all(a == ("ws-a", "act_1001") for a in asked)
    assert state.objects["55"].daily_budget == 61_000


async def test_no_connection_and_no_global_token_is_not_connected(fake: tuple[str, MetaFakeState]) -> None:
    url, state = fake

    async def nobody(workspace: str, account: str) -> str | None:
        return None

    async with MetaGraphClient(url, V, token_for=nobody, app_secret=SECRET) as meta:
        with pytest.raises(PlatformNotConnected) as err:
            await meta.set_budget(REF_A, 62_000)
    assert str(err.value) == "no active Meta connection for account act_1001 in workspace ws-a"
    assert state.writes == []
    async with MetaGraphClient(url, V, GLOBAL, token_for=nobody, app_secret=SECRET) as meta:
        await meta.set_budget(REF_A, 62_000)     # the global token is the fallback
    assert state.objects["55"].daily_budget == 62_000


async def test_a_failing_lookup_is_transient_and_says_nothing_of_its_own_message(
        fake: tuple[str, MetaFakeState]) -> None:
    url, _ = fake

    async def broken(workspace: str, account: str) -> str | None:
        raise RuntimeError("password=hunter2")

    async with MetaGraphClient(url, V, token_for=broken) as meta:
        with pytest.raises(TransientPlatformError) as err:
            await meta.get_entity(REF_A)
    assert "hunter2" not in str(err.value) and "RuntimeError" in str(err.value)


def test_client_needs_a_token_or_a_lookup() -> None:
    with pytest.raises(ValueError, match="token_for"):
        MetaGraphClient("http://127.0.0.1:9", V)


async def test_a_deprecated_version_is_a_configuration_problem_naming_it(fake: tuple[str, MetaFakeState]) -> None:
    url, state = fake
    state.deprecated_versions = {"v24.0"}
    async with MetaGraphClient(url, "v24.0", GLOBAL, app_secret=SECRET, config_retry_s=123) as meta:
        with pytest.raises(PlatformConfigError) as err:
            await meta.set_budget(REF_A, 63_000)
        assert isinstance(err.value, PlatformDeferred) and err.value.retry_after_s == 123
        assert "v24.0" in str(err.value) and "2635" in str(err.value) and "ALLOT_META_API_VERSION" in str(err.value)
        assert meta.config_problem is not None and "v24.0" in meta.config_problem
    assert state.writes == []
    async with MetaGraphClient(url, V, GLOBAL, app_secret=SECRET) as meta:
        await meta.get_entity(REF_A)
        assert meta.config_problem is None


async def test_a_read_only_token_cannot_write(fake: tuple[str, MetaFakeState]) -> None:
    url, state = fake
    async with MetaGraphClient(url, V, READ_ONLY, app_secret=SECRET) as meta:
        await meta.get_entity(REF_A)
        with pytest.raises(PlatformAuthError) as err:
            await meta.set_budget(REF_A, 64_000)
    assert err.value.code == 200 and state.writes == []


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_high_usage_spaces_calls_and_a_long_wait_releases_the_action(fake: tuple[str, MetaFakeState]) -> None:
    url, state = fake
    clock = _Clock()
    policy = ThrottlePolicy(slow_at_pct=75, max_spacing_s=20)
    async with MetaGraphClient(url, V, GLOBAL, app_secret=SECRET, throttle=policy, max_inline_wait_s=5,
                               sleep=clock.sleep, monotonic=clock.monotonic) as meta:
        await meta.get_entity(REF_A)                         # usage 1 %: nothing held
        await meta.get_entity(REF_A)
        assert clock.slept == []
        httpx.post(f"{url}/_fake/usage", json={"account_id": "1001", "pct": 80}).raise_for_status()
        await meta.get_entity(REF_A)                         # learns 80 %: spacing 4 s from now on
        await meta.get_entity(REF_A)
        assert clock.slept == [pytest.approx(4.0)]
        httpx.post(f"{url}/_fake/usage", json={"account_id": "1001", "pct": 95}).raise_for_status()
        await meta.get_entity(REF_A)                         # learns 95 %: 16 s, longer than 5 s inline
        before = len(state.writes)
        with pytest.raises(PlatformDeferred) as err:
            await meta.set_budget(REF_A, 65_000)
        assert err.value.retry_after_s == pytest.approx(16.0) and len(state.writes) == before
        clock.now += 16
        await meta.set_budget(REF_A, 65_000)
    assert state.objects["55"].daily_budget == 65_000


async def test_throttling_error_holds_only_that_account(fake: tuple[str, MetaFakeState]) -> None:
    url, state = fake
    state.add_object("77", "adset", "2002", daily_budget=10_000)
    other = EntityRef("meta", "act_2002", "adset", "77", workspace_id="ws-a")
    clock = _Clock()
    state.add_fault("rate_limit", code=80004, regain_access_minutes=2, object_id="55")
    async with MetaGraphClient(url, V, GLOBAL, app_secret=SECRET, sleep=clock.sleep,
                               monotonic=clock.monotonic) as meta:
        with pytest.raises(TransientPlatformError) as err:
            await meta.get_entity(REF_A)
        assert err.value.retry_after_s == 120.0 and not isinstance(err.value, PlatformDeferred)
        with pytest.raises(PlatformDeferred):
            await meta.get_entity(REF_A)                     # held here for ~2 minutes, not sent again
        assert (await meta.get_entity(other)).budget_cents == 10_000
        clock.now += 121
        assert (await meta.get_entity(REF_A)).budget_cents == 50_000
