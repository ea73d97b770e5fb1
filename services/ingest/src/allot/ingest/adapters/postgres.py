"""SQL of the ingest schema; returns domain types."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

from allot.contracts.payloads import ConnectionChanged, SealedToken
from allot.runtime.db import Conn


@dataclass(frozen=True)
class AccountToRead:
    """One (connection, account) ingest reads, with what it knows about it."""

    connection_id: str
    workspace_id: str
    ad_account_id: str
    read_token: SealedToken | None
    graph_api_version: str | None
    timezone_name: str | None
    accepted_timezone: str | None
    currency: str | None
    state: str
    detail: str
    profile_fp: str | None
    last_attempt_at: datetime | None


@dataclass(frozen=True)
class StoppedAccount:
    """An account ingest stops reading because its connection was removed or no longer lists it."""

    ad_account_id: str
    currency: str | None
    timezone_name: str | None


async def apply_connection(conn: Conn, workspace_id: str, event_id: uuid.UUID,
                           c: ConnectionChanged) -> list[StoppedAccount] | None:
    """Latest change per connection wins (an older record arriving late changes nothing: None); returns the
    accounts that were being read and no longer are."""
    row = await conn.fetchrow(
        """INSERT INTO connections (connection_id, workspace_id, platform, state, read_token, graph_api_version,
                                    changed_at, event_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (connection_id) DO UPDATE SET workspace_id = EXCLUDED.workspace_id,
               platform = EXCLUDED.platform, state = EXCLUDED.state, read_token = EXCLUDED.read_token,
               graph_api_version = EXCLUDED.graph_api_version, changed_at = EXCLUDED.changed_at,
               event_id = EXCLUDED.event_id
           WHERE connections.changed_at <= EXCLUDED.changed_at
           RETURNING connection_id""",
        c.connection_id, workspace_id, c.platform, c.state,
        c.read_token.model_dump() if c.read_token else None, c.graph_api_version, c.changed_at, event_id)
    if row is None:
        return None
    active = c.state == "active"
    account_ids = list(dict.fromkeys(a.removeprefix("act_") for a in c.ad_account_ids))  # the contract says no
    # 'act_', but a leading one is harmless to strip and fatal to keep ("act_act_1" does not exist)
    stopped = await conn.fetch(
        """UPDATE accounts SET active = false WHERE connection_id = $1 AND active
               AND (NOT ad_account_id = ANY($2) OR NOT $3)
           RETURNING ad_account_id, currency, timezone_name""", c.connection_id, account_ids, active)
    # A (re)connection resets the accepted time zone and the error: the next read takes the platform's as given.
    await conn.executemany(
        """INSERT INTO accounts (connection_id, ad_account_id, active) VALUES ($1, $2, $3)
           ON CONFLICT (connection_id, ad_account_id) DO UPDATE SET active = EXCLUDED.active,
               accepted_timezone = NULL, state = 'pending', detail = '', last_attempt_at = NULL""",
        [(c.connection_id, a, active) for a in account_ids])
    return [StoppedAccount(r["ad_account_id"], r["currency"], r["timezone_name"]) for r in stopped]


def _account(r: asyncpg.Record) -> AccountToRead:
    token = SealedToken.model_validate(r["read_token"]) if r["read_token"] else None
    return AccountToRead(r["connection_id"], r["workspace_id"], r["ad_account_id"], token, r["graph_api_version"],
                         r["timezone_name"], r["accepted_timezone"], r["currency"], r["state"], r["detail"],
                         r["profile_fp"], r["last_attempt_at"])


_SELECT = """SELECT a.*, c.workspace_id, c.read_token, c.graph_api_version FROM accounts a
             JOIN connections c USING (connection_id)
             WHERE a.active AND c.state = 'active' AND c.platform = 'meta'"""


async def accounts_to_read(conn: Conn, due_before: datetime | None = None) -> list[AccountToRead]:
    """Active Meta accounts; with ``due_before``, only those not attempted since then."""
    if due_before is None:
        rows = await conn.fetch(_SELECT + " ORDER BY connection_id, ad_account_id")
    else:
        rows = await conn.fetch(_SELECT + " AND (a.last_attempt_at IS NULL OR a.last_attempt_at <= $1)"
                                " ORDER BY connection_id, ad_account_id", due_before)
    return [_account(r) for r in rows]


@dataclass(frozen=True)
class AccountStatus:
    """What ingest can say about one account it reads for a workspace (no token, ever)."""

    connection_id: str
    ad_account_id: str
    state: str
    detail: str
    currency: str | None
    timezone_name: str | None
    read_since: date | None
    read_until: date | None
    last_read_at: datetime | None
    last_attempt_at: datetime | None


async def account_statuses(conn: Conn, workspace_id: str) -> list[AccountStatus]:
    """The workspace's active accounts, by connection and account id."""
    rows = await conn.fetch(
        "SELECT a.connection_id, a.ad_account_id, a.state, a.detail, a.currency, a.timezone_name, a.read_since,"
        " a.read_until, a.last_read_at, a.last_attempt_at FROM accounts a JOIN connections c USING (connection_id)"
        " WHERE c.workspace_id = $1 AND a.active AND c.state = 'active' ORDER BY a.connection_id, a.ad_account_id",
        workspace_id)
    return [AccountStatus(**dict(r)) for r in rows]


async def request_read(conn: Conn, workspace_id: str, ad_account_id: str) -> bool:
    """Make the workspace's account due at the next scan ("sync now"); False when it reads no such account."""
    done = await conn.fetch(
        "UPDATE accounts a SET last_attempt_at = NULL FROM connections c WHERE c.connection_id = a.connection_id"
        " AND c.workspace_id = $1 AND a.ad_account_id = $2 AND a.active AND c.state = 'active'"
        " RETURNING a.ad_account_id", workspace_id, ad_account_id)
    return bool(done)


async def mark_attempt(conn: Conn, a: AccountToRead, at: datetime) -> None:
    await conn.execute("UPDATE accounts SET last_attempt_at = $3 WHERE connection_id = $1 AND ad_account_id = $2",
                       a.connection_id, a.ad_account_id, at)


async def save_profile(conn: Conn, a: AccountToRead, *, state: str, detail: str,
                       profile_fp: str | None, currency: str | None = None, timezone_name: str | None = None,
                       accept_timezone: bool = False) -> None:
    await conn.execute(
        """UPDATE accounts SET state = $3, detail = $4, profile_fp = COALESCE($5, profile_fp),
               currency = COALESCE($6, currency), timezone_name = COALESCE($7, timezone_name),
               accepted_timezone = CASE WHEN $8 THEN $7 ELSE accepted_timezone END
           WHERE connection_id = $1 AND ad_account_id = $2""",
        a.connection_id, a.ad_account_id, state, detail[:500], profile_fp, currency, timezone_name, accept_timezone)


async def lock_account(conn: Conn, a: AccountToRead) -> str | None:
    """Lock the account's row for the caller's transaction and return its last published profile fingerprint, so
    two reads of one account (two instances, or an on-demand cycle) never publish the same change twice."""
    fp: str | None = await conn.fetchval(
        "SELECT profile_fp FROM accounts WHERE connection_id = $1 AND ad_account_id = $2 FOR UPDATE",
        a.connection_id, a.ad_account_id)
    return fp


async def published_fingerprints(conn: Conn, a: AccountToRead,
                                 since: datetime) -> dict[tuple[str, str, datetime], str]:
    """What was published per interval since ``since`` (call ``lock_account`` first in the same transaction)."""
    rows = await conn.fetch(
        """SELECT entity_type, entity_id, interval_start, fingerprint FROM published
           WHERE connection_id = $1 AND ad_account_id = $2 AND interval_start >= $3""",
        a.connection_id, a.ad_account_id, since)
    return {(r["entity_type"], r["entity_id"], r["interval_start"]): r["fingerprint"] for r in rows}


async def record_published(conn: Conn, a: AccountToRead,
                           rows: list[tuple[str, str, datetime, str, uuid.UUID]], at: datetime) -> None:
    await conn.executemany(
        """INSERT INTO published (connection_id, ad_account_id, entity_type, entity_id, interval_start, fingerprint,
                                  event_id, published_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (connection_id, ad_account_id, entity_type, entity_id, interval_start) DO UPDATE
           SET fingerprint = EXCLUDED.fingerprint, event_id = EXCLUDED.event_id,
               published_at = EXCLUDED.published_at""",
        [(a.connection_id, a.ad_account_id, et, eid, start, fp, ev, at) for et, eid, start, fp, ev in rows])


async def forget_published_before(conn: Conn, a: AccountToRead, start: datetime) -> None:
    await conn.execute("DELETE FROM published WHERE connection_id = $1 AND ad_account_id = $2 AND interval_start < $3",
                       a.connection_id, a.ad_account_id, start)


async def claim(conn: Conn, a: AccountToRead, now: datetime, due_before: datetime) -> bool:
    """True for exactly one instance per due read of this account (several ingest instances may run)."""
    row = await conn.fetchrow(
        """UPDATE accounts SET last_attempt_at = $3 WHERE connection_id = $1 AND ad_account_id = $2
           AND (last_attempt_at IS NULL OR last_attempt_at <= $4) RETURNING ad_account_id""",
        a.connection_id, a.ad_account_id, now, due_before)
    return row is not None


async def save_cursor(conn: Conn, a: AccountToRead, since: date, until: date, at: datetime) -> None:
    await conn.execute(
        """UPDATE accounts SET read_since = $3, read_until = $4, last_read_at = $5
           WHERE connection_id = $1 AND ad_account_id = $2""", a.connection_id, a.ad_account_id, since, until, at)
