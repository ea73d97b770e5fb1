"""The action ledger and the write-token projection in Postgres (all of the executor's SQL lives here)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from allot.contracts.payloads import BudgetAction, ConnectionChanged, GuardrailApproved, SealedToken
from allot.executor.domain import EntityMemory
from allot.executor.domain.tokens import StoredToken, account_number
from allot.runtime.db import Conn


async def record_approval(conn: Conn, approval: GuardrailApproved, *, workspace_id: str,
                          correlation_id: uuid.UUID, event_id: uuid.UUID, now: datetime) -> list[uuid.UUID]:
    """Insert the approval's actions as pending; returns the ids that were ALREADY in the ledger."""
    rows = [
        (a.action_id, approval.decision_id, approval.request_id, workspace_id, approval.source, approval.source_id,
         correlation_id, event_id, a.model_dump(mode="json"), a.platform, a.ad_account_id, a.entity_id, now, now)
        for a in approval.actions
    ]
    inserted = await conn.fetch(
        """INSERT INTO actions (action_id, decision_id, request_id, workspace_id, source, source_id, correlation_id,
                                approval_event_id, action, platform, ad_account_id, entity_id, next_attempt_at,
                                created_at)
           SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::uuid[],
                                $8::uuid[], $9::jsonb[], $10::text[], $11::text[], $12::text[], $13::timestamptz[],
                                $14::timestamptz[])
           ON CONFLICT (action_id) DO NOTHING RETURNING action_id""",
        *[list(col) for col in zip(*rows, strict=True)],
    )
    new = {r["action_id"] for r in inserted}
    return [a.action_id for a in approval.actions if a.action_id not in new]


async def expire(conn: Conn, action_ids: list[uuid.UUID], *, now: datetime, reason: str) -> None:
    """Close just-recorded actions of an expired approval: never applied, never picked by the worker."""
    await conn.execute(
        """UPDATE actions SET status = 'expired', finished_at = $2, error = $3
           WHERE action_id = ANY($1::uuid[]) AND status = 'pending'""", action_ids, now, reason)


async def get_action(conn: Conn, action_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM actions WHERE action_id = $1", action_id)


async def due_actions(conn: Conn, now: datetime, limit: int) -> list[uuid.UUID]:
    """Pending actions whose time has come, at most one per entity (the earliest), in ledger order."""
    rows = await conn.fetch(
        """SELECT action_id FROM (
               SELECT DISTINCT ON (platform, entity_id) action_id, seq, next_attempt_at
               FROM actions WHERE status = 'pending' ORDER BY platform, entity_id, seq) first_per_entity
           WHERE next_attempt_at <= $1 ORDER BY seq LIMIT $2""", now, limit)
    return [r["action_id"] for r in rows]


async def lock_pending(conn: Conn, action_id: uuid.UUID) -> asyncpg.Record | None:
    """Lock one pending action for this transaction (None if another instance holds it or it is done)."""
    return await conn.fetchrow(
        "SELECT * FROM actions WHERE action_id = $1 AND status = 'pending' FOR UPDATE SKIP LOCKED", action_id)


async def load_memory(conn: Conn, platform: str, entity_id: str) -> EntityMemory:
    row = await conn.fetchrow(
        "SELECT * FROM entity_memory WHERE platform = $1 AND entity_id = $2 FOR UPDATE", platform, entity_id)
    if row is None:
        return EntityMemory()
    return EntityMemory(row["last_budget_cents"], row["last_status"], row["consecutive_failures"],
                        row["first_failure_at"])


async def schedule_retry(conn: Conn, action_id: uuid.UUID, attempts: int, at: datetime,
                         error: str) -> None:
    await conn.execute("UPDATE actions SET attempts = $2, next_attempt_at = $3, error = $4 WHERE action_id = $1",
                       action_id, attempts, at, error)


async def finish(conn: Conn, action_id: uuid.UUID, *, status: str, attempts: int, now: datetime,
                 fields: dict[str, Any]) -> None:
    await conn.execute(
        """UPDATE actions SET status = $2, attempts = $3, finished_at = $4, platform_response_id = $5,
               before_cents = $6, after_cents = $7, observed_cents = $8, before_status = $9, after_status = $10,
               observed_status = $11, error = $12 WHERE action_id = $1""",
        action_id, status, attempts, now, fields.get("platform_response_id"), fields.get("before_cents"),
        fields.get("after_cents"), fields.get("observed_cents"), fields.get("before_status"),
        fields.get("after_status"), fields.get("observed_status"), fields.get("error"))


async def remember_success(conn: Conn, action: BudgetAction, budget_cents: int | None,
                           status: str | None, now: datetime) -> None:
    await conn.execute(
        """INSERT INTO entity_memory (platform, entity_id, last_budget_cents, last_status, applied_at,
                                      consecutive_failures, first_failure_at)
           VALUES ($1, $2, $3, $4, $5, 0, NULL)
           ON CONFLICT (platform, entity_id) DO UPDATE SET
               last_budget_cents = COALESCE(EXCLUDED.last_budget_cents, entity_memory.last_budget_cents),
               last_status = COALESCE(EXCLUDED.last_status, entity_memory.last_status),
               applied_at = EXCLUDED.applied_at, consecutive_failures = 0, first_failure_at = NULL""",
        action.platform, action.entity_id, budget_cents, status, now)


async def remember_failure(conn: Conn, action: BudgetAction, now: datetime, window_s: float) -> None:
    """Extend the entity's failure streak (a streak older than the window starts again at 1)."""
    await conn.execute(
        """INSERT INTO entity_memory (platform, entity_id, consecutive_failures, first_failure_at)
           VALUES ($1, $2, 1, $3)
           ON CONFLICT (platform, entity_id) DO UPDATE SET
             consecutive_failures = CASE WHEN entity_memory.first_failure_at IS NULL
                   OR $3 - entity_memory.first_failure_at > make_interval(secs => $4)
                 THEN 1 ELSE entity_memory.consecutive_failures + 1 END,
             first_failure_at = CASE WHEN entity_memory.first_failure_at IS NULL
                   OR $3 - entity_memory.first_failure_at > make_interval(secs => $4)
                 THEN $3 ELSE entity_memory.first_failure_at END""",
        action.platform, action.entity_id, now, window_s)


async def change_set(conn: Conn, request_id: uuid.UUID, workspace_id: str) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM actions WHERE request_id = $1 AND workspace_id = $2 ORDER BY seq",
                            request_id, workspace_id)


async def recent_change_sets(conn: Conn, workspace_id: str, limit: int) -> list[asyncpg.Record]:
    """Every action of the workspace's ``limit`` most recent change sets (newest first), each with the undo
    issued for its change set, if any."""
    return await conn.fetch(
        """WITH recent AS (
               SELECT request_id, max(seq) AS last_seq FROM (
                   SELECT request_id, seq FROM actions WHERE workspace_id = $1 ORDER BY seq DESC LIMIT $2 * 50) a
               GROUP BY request_id ORDER BY last_seq DESC LIMIT $2)
           SELECT a.*, u.undo_request_id, u.requested_at AS undo_requested_at
             FROM actions a JOIN recent r USING (request_id)
             LEFT JOIN undo_requests u ON u.request_id = a.request_id
            WHERE a.workspace_id = $1
            ORDER BY r.last_seq DESC, a.seq""",
        workspace_id, limit)


async def claim_undo(conn: Conn, request_id: uuid.UUID, undo_request_id: uuid.UUID, by: str,
                     now: datetime) -> tuple[uuid.UUID, bool]:
    """Record the undo once: (the undo's request id, True) the first time; a repeated undo returns the first
    undo's request id and False, so the caller issues the inverse change set only once."""
    row = await conn.fetchrow(
        """INSERT INTO undo_requests (request_id, undo_request_id, requested_by, requested_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (request_id) DO NOTHING RETURNING undo_request_id""",
        request_id, undo_request_id, by, now)
    if row is not None:
        return row["undo_request_id"], True
    existing = await conn.fetchval("SELECT undo_request_id FROM undo_requests WHERE request_id = $1", request_id)
    assert existing is not None
    return existing, False


async def active_token(conn: Conn, workspace_id: str, platform: str, ad_account_id: str) -> StoredToken | None:
    """The workspace's latest active connection holding the account, or None (not connected here, or removed)."""
    row = await conn.fetchrow(
        "SELECT t.connection_id, t.event_id, t.write_token FROM connection_token_accounts a "
        "JOIN connection_tokens t ON t.connection_id = a.connection_id "
        "WHERE a.workspace_id = $1 AND a.platform = $2 AND a.ad_account_id = $3 AND t.state = 'active' "
        "AND t.workspace_id = $1 ORDER BY t.changed_at DESC LIMIT 1",
        workspace_id, platform, account_number(ad_account_id))
    if row is None:
        return None
    sealed = None if row["write_token"] is None else SealedToken.model_validate(row["write_token"])
    return StoredToken(connection_id=row["connection_id"], event_id=row["event_id"], write_token=sealed)


async def claimed_elsewhere(conn: Conn, platform: str, ad_account_id: str, workspace_id: str) -> bool:
    """True when another workspace's active connection holds the account."""
    claimed = await conn.fetchval(
        "SELECT 1 FROM connection_token_accounts a "
        "JOIN connection_tokens t ON t.connection_id = a.connection_id "
        "WHERE a.platform = $1 AND a.ad_account_id = $2 AND t.state = 'active' "
        "AND t.workspace_id <> $3 LIMIT 1",
        platform, account_number(ad_account_id), workspace_id)
    return bool(claimed)


async def lock_connection_owner(conn: Conn, connection_id: str) -> str | None:
    """The workspace a connection's token belongs to (row locked), or None when none was stored yet."""
    owner: str | None = await conn.fetchval(
        "SELECT workspace_id FROM connection_tokens WHERE connection_id = $1 FOR UPDATE", connection_id)
    return owner


async def save_connection_change(conn: Conn, workspace_id: str, change: ConnectionChanged,
                                 token: SealedToken | None, *, event_id: uuid.UUID) -> bool:
    """Store the connection's state and its accounts unless a later change is already stored; False = stale."""
    applied = await conn.fetchval(
        "INSERT INTO connection_tokens (connection_id, workspace_id, platform, state, write_token, "
        "graph_api_version, changed_at, event_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
        "ON CONFLICT (connection_id) DO UPDATE SET platform = EXCLUDED.platform, state = EXCLUDED.state, "
        "write_token = EXCLUDED.write_token, graph_api_version = EXCLUDED.graph_api_version, "
        "changed_at = EXCLUDED.changed_at, event_id = EXCLUDED.event_id "
        "WHERE connection_tokens.changed_at <= EXCLUDED.changed_at RETURNING true",
        change.connection_id, workspace_id, change.platform, change.state,
        None if token is None else token.model_dump(mode="json"), change.graph_api_version, change.changed_at,
        event_id)
    if not applied:
        return False
    await conn.execute("DELETE FROM connection_token_accounts WHERE connection_id = $1", change.connection_id)
    if change.state == "active":
        await conn.executemany(
            "INSERT INTO connection_token_accounts (connection_id, workspace_id, platform, ad_account_id) "
            "VALUES ($1, $2, $3, $4)",
            [(change.connection_id, workspace_id, change.platform, account_number(a))
             for a in dict.fromkeys(change.ad_account_ids)])
    return True
