"""The executor's projection of connection.changed on the real broker and Postgres: token_for yields a
workspace's own write token only, nothing once removed, and a token the executor cannot open goes to the DLQ."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from allot.contracts import new_envelope
from allot.contracts.payloads import ConnectionChanged
from allot.executor.adapters.base import PlatformNotConnected
from allot.executor.service import SPEC
from allot.executor.workflow import TokenProjection
from allot.runtime.deps import need
from allot.runtime.sealing import Keyring, RecipientKey, generate_keypair, parse_public_keys, seal
from tests.support.kafka import eventually, publish, read_topic
from tests.support.service import running_service

T0 = datetime(2026, 12, 5, 9, tzinfo=UTC)


def _keys(key_id: str) -> tuple[str, RecipientKey, RecipientKey]:
    """(executor private-key setting, executor public key, ingest public key)."""
    ex, ing = generate_keypair(key_id), generate_keypair("in-1")
    public = parse_public_keys(f"executor={key_id}:{ex.public_key},ingest=in-1:{ing.public_key}")
    return f"{key_id}:{ex.private_key}", public["executor"], public["ingest"]


def change(ws: str, cid: str, accounts: list[str], *, write: str | None, key: RecipientKey, read_key: RecipientKey,
           state: str = "active", at: datetime = T0) -> Any:
    payload = ConnectionChanged(
        connection_id=cid, platform="meta", ad_account_ids=accounts, state=state,  # type: ignore[arg-type]
        read_token=None if write is None else seal("read-" + write, read_key),
        write_token=None if write is None else seal(write, key), changed_at=at)
    return new_envelope(event_type="connection.changed", schema_version=1, payload=payload, producer="connections",
                        workspace_id=ws, occurred_at=at)


def _settings(private: str) -> dict[str, Any]:
    return {"sealing_private_keys": private, "approval_secret": "test-approval-secret",
            "sandbox_url": "http://127.0.0.1:9", "retry_base_s": 0.05, "retry_cap_s": 0.2}


async def test_token_for_yields_the_workspaces_own_token_until_removed(settings: Any, unique: str) -> None:
    private, key, read_key = _keys("ex-1")
    ws_a, ws_b = f"a-{unique}", f"b-{unique}"
    acct_a, acct_b = f"7{uuid.uuid4().int % 10**9}", f"8{uuid.uuid4().int % 10**9}"
    cid_a, cid_b = f"conn_a_{unique}", f"conn_b_{unique}"
    async with running_service(SPEC, settings, **_settings(private)) as (_, ctx):
        tokens: TokenProjection = need(ctx, TokenProjection)
        await publish(settings.kafka_bootstrap,
                      change(ws_a, cid_a, [acct_a], write="token-of-a", key=key, read_key=read_key),
                      change(ws_b, cid_b, [acct_b], write="token-of-b", key=key, read_key=read_key))

        async def both() -> bool:
            return (await tokens.token_for(ws_a, acct_a), await tokens.token_for(ws_b, acct_b)) == (
                "token-of-a", "token-of-b")

        await eventually(both, what="both workspaces' tokens projected")
        assert await tokens.token_for(ws_a, f"act_{acct_a}") == "token-of-a", "act_ prefix accepted"
        # the last-line tenancy check: another workspace's account is refused outright (so not even a global
        # single-tenant token can be used for it); an account nobody connected yields nothing
        for ws, account in ((ws_b, acct_a), (ws_a, acct_b)):
            with pytest.raises(PlatformNotConnected, match=f"account {account} in workspace {ws}"):
                await tokens.token_for(ws, account)
        assert await tokens.token_for(ws_a, "999") is None

        # no plaintext at rest
        async with ctx.pool.acquire() as conn:
            stored = str(await conn.fetch("SELECT * FROM connection_tokens WHERE connection_id = ANY($1::text[])",
                                          [cid_a, cid_b]))
        assert "token-of-a" not in stored and "token-of-b" not in stored

        # a new token replaces the old at once (the opened-token cache is keyed by the change)
        await publish(settings.kafka_bootstrap, change(ws_a, cid_a, [acct_a], write="token-of-a-2", key=key,
                                                       read_key=read_key, at=T0 + timedelta(minutes=5)))
        await eventually(lambda: _is(tokens, ws_a, acct_a, "token-of-a-2"), what="replaced token")
        # a late, older change is ignored
        await publish(settings.kafka_bootstrap, change(ws_a, cid_a, [acct_a], write="token-of-a-old", key=key,
                                                       read_key=read_key, at=T0 + timedelta(minutes=1)),
                      change(ws_a, cid_a, [acct_a], write=None, key=key, read_key=read_key, state="removed",
                             at=T0 + timedelta(minutes=10)))
        await eventually(lambda: _is(tokens, ws_a, acct_a, None), what="removed connection yields no token")
        assert await tokens.token_for(ws_b, acct_b) == "token-of-b", "the other workspace is untouched"


async def _is(tokens: TokenProjection, ws: str, account: str, expected: str | None) -> bool:
    return await tokens.token_for(ws, account) == expected


async def test_unopenable_token_and_a_workspace_swap_go_to_the_dlq(settings: Any, unique: str) -> None:
    private, key, read_key = _keys("ex-1")
    _, stranger_key, _ = _keys("ex-other")
    ws, acct, cid = f"a-{unique}", f"6{uuid.uuid4().int % 10**9}", f"conn_{unique}"
    async with running_service(SPEC, settings, **_settings(private)) as (_, ctx):
        tokens: TokenProjection = need(ctx, TokenProjection)
        sealed_to_unknown_key = change(ws, f"{cid}_x", [acct], write="nope", key=stranger_key, read_key=read_key)
        good = change(ws, cid, [acct], write="token", key=key, read_key=read_key)
        swapped = change(f"b-{unique}", cid, [acct], write="token-b", key=key, read_key=read_key,
                         at=T0 + timedelta(minutes=1))
        await publish(settings.kafka_bootstrap, sealed_to_unknown_key, good)
        await eventually(lambda: _is(tokens, ws, acct, "token"), what="good token projected")
        await publish(settings.kafka_bootstrap, swapped)
        dlq = await read_topic(settings.kafka_bootstrap, "connection.changed.dlq", min_count=2,
                               predicate=lambda r: r.key in (cid.encode(), f"{cid}_x".encode()))
        reasons = {r.key.decode(): dict(r.headers)["x-dlq-error"].decode() for r in dlq}
        assert "ex-other" in reasons[f"{cid}_x"] and "does not hold" in reasons[f"{cid}_x"]
        assert "another workspace" in reasons[cid]
        assert await tokens.token_for(ws, acct) == "token", "the swap changed nothing"
        with pytest.raises(PlatformNotConnected):
            await tokens.token_for(f"b-{unique}", acct)


async def test_executor_without_keys_still_starts_and_has_no_tokens(settings: Any, unique: str) -> None:
    async with running_service(SPEC, settings, **_settings("")) as (_, ctx):
        keyring = need(ctx, Keyring)
        assert not keyring
        assert await need(ctx, TokenProjection).token_for(f"ws-{unique}", "1") is None
