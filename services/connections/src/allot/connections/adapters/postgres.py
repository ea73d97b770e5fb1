"""Connections SQL (only here). Every query is scoped to a workspace, except the account-claim check."""

from __future__ import annotations

from typing import Any

import asyncpg

from allot.connections.domain import Connection
from allot.contracts.payloads import SealedToken
from allot.runtime.db import Conn

_COLUMNS = ("connection_id, workspace_id, platform, ad_account_ids, state, read_token, write_token, "
            "read_token_hint, write_token_hint, graph_api_version, version, created_at, updated_at")


def _sealed(value: Any) -> SealedToken | None:
    return None if value is None else SealedToken.model_validate(value)


def _connection(row: asyncpg.Record) -> Connection:
    return Connection(
        connection_id=row["connection_id"], workspace_id=row["workspace_id"], platform=row["platform"],
        ad_account_ids=list(row["ad_account_ids"]), state=row["state"], read_token=_sealed(row["read_token"]),
        write_token=_sealed(row["write_token"]), read_token_hint=row["read_token_hint"],
        write_token_hint=row["write_token_hint"], graph_api_version=row["graph_api_version"],
        version=row["version"], created_at=row["created_at"], updated_at=row["updated_at"])


def _dump(token: SealedToken | None) -> dict[str, Any] | None:
    return None if token is None else token.model_dump(mode="json")


async def get(conn: Conn, workspace_id: str, connection_id: str, *,
              for_update: bool = False) -> Connection | None:
    """The workspace's connection, or None (also when it belongs to another workspace)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM connections WHERE workspace_id = $1 AND connection_id = $2"
        + (" FOR UPDATE" if for_update else ""), workspace_id, connection_id)
    return None if row is None else _connection(row)


async def list_for(conn: Conn, workspace_id: str, *, include_removed: bool) -> list[Connection]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM connections WHERE workspace_id = $1 AND ($2 OR state = 'active') "
        "ORDER BY created_at, connection_id", workspace_id, include_removed)
    return [_connection(r) for r in rows]


async def claims(conn: Conn, platform: str, ad_account_ids: list[str]) -> dict[str, tuple[str, str]]:
    """ad account id → (workspace id, connection id) of the active connection holding it (any workspace)."""
    rows = await conn.fetch(
        "SELECT ad_account_id, workspace_id, connection_id FROM connection_accounts "
        "WHERE platform = $1 AND ad_account_id = ANY($2::text[])", platform, ad_account_ids)
    return {r["ad_account_id"]: (r["workspace_id"], r["connection_id"]) for r in rows}


async def insert(conn: Conn, c: Connection, *, created_by: str) -> None:
    await conn.execute(
        "INSERT INTO connections (connection_id, workspace_id, platform, ad_account_ids, state, read_token, "
        "write_token, read_token_hint, write_token_hint, graph_api_version, version, created_by, created_at, "
        "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        c.connection_id, c.workspace_id, c.platform, c.ad_account_ids, c.state, _dump(c.read_token),
        _dump(c.write_token), c.read_token_hint, c.write_token_hint, c.graph_api_version, c.version, created_by,
        c.created_at, c.updated_at)


async def update(conn: Conn, c: Connection) -> None:
    await conn.execute(
        "UPDATE connections SET ad_account_ids = $3, state = $4, read_token = $5, write_token = $6, "
        "read_token_hint = $7, write_token_hint = $8, graph_api_version = $9, version = $10, updated_at = $11 "
        "WHERE workspace_id = $1 AND connection_id = $2",
        c.workspace_id, c.connection_id, c.ad_account_ids, c.state, _dump(c.read_token), _dump(c.write_token),
        c.read_token_hint, c.write_token_hint, c.graph_api_version, c.version, c.updated_at)


async def set_claims(conn: Conn, c: Connection) -> None:
    """Make the connection's claims its accounts (none once removed); UniqueViolation when another holds one."""
    await conn.execute("DELETE FROM connection_accounts WHERE connection_id = $1", c.connection_id)
    if c.state != "active":
        return
    await conn.executemany(
        "INSERT INTO connection_accounts (platform, ad_account_id, connection_id, workspace_id) "
        "VALUES ($1, $2, $3, $4)",
        [(c.platform, a, c.connection_id, c.workspace_id) for a in c.ad_account_ids])


async def lock_accounts(conn: Conn, platform: str, ad_account_ids: list[str]) -> None:
    """Serialise claims on the same accounts (transaction-scoped advisory locks, sorted to avoid deadlocks)."""
    for account in sorted(ad_account_ids):
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                           f"allot-connection-account:{platform}:{account}")

