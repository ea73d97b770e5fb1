"""The executor's per-workspace write tokens: a projection of ``connection.changed`` and the ``token_for`` lookup.

Tokens stay sealed at rest (to the executor's key; see allot.runtime.sealing). ``token_for(workspace, account)``
reads the projection on every call (one indexed row), so a removed or replaced connection takes effect at the
next write; only the opened token is kept in memory, for ``ttl_s`` seconds, keyed by the change that delivered
it. The workspace is part of every lookup, so an approval for one workspace can never be applied with another
workspace's token, and a removed connection yields nothing: this is the last tenancy check before a platform call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import asyncpg

from allot.contracts.envelope import Envelope
from allot.contracts.payloads import ConnectionChanged, SealedToken
from allot.executor.adapters.base import PlatformNotConnected
from allot.runtime.consumer import BatchContext, PoisonEvent
from allot.runtime.deps import need
from allot.runtime.logging import get_logger
from allot.runtime.sealing import Keyring, SealingError

log = get_logger(__name__)



def _account(ad_account_id: str) -> str:
    return ad_account_id[4:] if ad_account_id.lower().startswith("act_") else ad_account_id


class TokenProjection:
    """Looks write tokens up by (workspace, ad account) and opens them with the executor's keyring."""

    def __init__(self, pool: asyncpg.Pool, keyring: Keyring, *, platform: str = "meta", ttl_s: float = 60.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._pool = pool
        self._keyring = keyring
        self._platform = platform
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        #: change event id → (opened token, expires at): plaintext only in memory, only briefly
        self._opened: dict[Any, tuple[str, float]] = {}

    def forget(self) -> None:
        """Drop every opened token from memory."""
        self._opened.clear()

    async def token_for(self, workspace_id: str, ad_account_id: str) -> str | None:
        """The workspace's write token for the account, or None (not connected here, removed, or unusable)."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT t.connection_id, t.event_id, t.write_token FROM connection_token_accounts a "
                "JOIN connection_tokens t ON t.connection_id = a.connection_id "
                "WHERE a.workspace_id = $1 AND a.platform = $2 AND a.ad_account_id = $3 AND t.state = 'active' "
                "AND t.workspace_id = $1 ORDER BY t.changed_at DESC LIMIT 1",
                workspace_id, self._platform, _account(ad_account_id))
        if row is None:
            await self._refuse_if_claimed_elsewhere(workspace_id, ad_account_id)
            return None
        if row["write_token"] is None:
            return None
        now = self._monotonic()
        hit = self._opened.get(row["event_id"])
        if hit is not None and hit[1] > now:
            return hit[0]
        try:
            token = self._keyring.open(SealedToken.model_validate(row["write_token"]))
        except SealingError as exc:
            # stored after a check that it opened: a key dropped from the keyring since (rotation done too early)
            log.error("connection_token_unusable", workspace_id=workspace_id, connection_id=row["connection_id"],
                      reason=str(exc))
            return None
        self._opened = {k: v for k, v in self._opened.items() if v[1] > now}
        self._opened[row["event_id"]] = (token, now + self._ttl_s)
        return token


    async def _refuse_if_claimed_elsewhere(self, workspace_id: str, ad_account_id: str) -> None:
        """An account another workspace has connected is never written with a global (single-tenant) token."""
        async with self._pool.acquire() as conn:
            claimed = await conn.fetchval(
                "SELECT 1 FROM connection_token_accounts a "
                "JOIN connection_tokens t ON t.connection_id = a.connection_id "
                "WHERE a.platform = $1 AND a.ad_account_id = $2 AND t.state = 'active' "
                "AND t.workspace_id <> $3 LIMIT 1",
                self._platform, _account(ad_account_id), workspace_id)
        if claimed:
            raise PlatformNotConnected(
                f"no active {self._platform} connection for account {_account(ad_account_id)} in workspace "
                f"{workspace_id or '(none)'}")


def _check_opens(keyring: Keyring, event: Envelope[Any], sealed: SealedToken) -> None:
    """Refuse (DLQ with the reason) a write token this executor cannot open, rather than store a dead one."""
    try:
        keyring.open(sealed)
    except SealingError as exc:
        raise PoisonEvent(event.event_id, f"write_token: {exc}") from None


async def on_connection_changed(ctx: BatchContext, events: list[Envelope[ConnectionChanged]]) -> None:
    """Keep the latest state per connection (older changes arriving late are ignored)."""
    keyring = need(ctx, Keyring)
    for event in events:
        p: ConnectionChanged = event.payload
        ws = event.workspace_id
        token = p.write_token if p.state == "active" else None
        if token is not None:
            _check_opens(keyring, event, token)
        owner = await ctx.conn.fetchval(
            "SELECT workspace_id FROM connection_tokens WHERE connection_id = $1 FOR UPDATE", p.connection_id)
        if owner is not None and owner != ws:
            raise PoisonEvent(event.event_id, f"connection {p.connection_id} belongs to another workspace; a "
                                              "connection never changes workspace")
        applied = await ctx.conn.fetchval(
            "INSERT INTO connection_tokens (connection_id, workspace_id, platform, state, write_token, "
            "graph_api_version, changed_at, event_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT (connection_id) DO UPDATE SET platform = EXCLUDED.platform, state = EXCLUDED.state, "
            "write_token = EXCLUDED.write_token, graph_api_version = EXCLUDED.graph_api_version, "
            "changed_at = EXCLUDED.changed_at, event_id = EXCLUDED.event_id "
            "WHERE connection_tokens.changed_at <= EXCLUDED.changed_at RETURNING true",
            p.connection_id, ws, p.platform, p.state, None if token is None else token.model_dump(mode="json"),
            p.graph_api_version, p.changed_at, event.event_id)
        if not applied:
            log.info("connection_change_stale", workspace_id=ws, connection_id=p.connection_id)
            continue
        await ctx.conn.execute("DELETE FROM connection_token_accounts WHERE connection_id = $1", p.connection_id)
        if p.state == "active":
            await ctx.conn.executemany(
                "INSERT INTO connection_token_accounts (connection_id, workspace_id, platform, ad_account_id) "
                "VALUES ($1, $2, $3, $4)",
                [(p.connection_id, ws, p.platform, _account(a)) for a in dict.fromkeys(p.ad_account_ids)])
        log.info("connection_token_updated", workspace_id=ws, connection_id=p.connection_id, state=p.state,
                 ad_accounts=len(p.ad_account_ids), key_id=None if token is None else token.key_id)
