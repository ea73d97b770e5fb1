"""All of the guardrails service's SQL: limits + audit, decisions, the spend ledger and entity history.

Every function takes an asyncpg connection (the caller owns the transaction) and a workspace id;
nothing here reads another workspace's rows.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import asyncpg

from allot.contracts.localday import local_day
from allot.contracts.payloads import AllocationRequested, PoolMembersChanged
from allot.guardrails.domain import (
    ChangeRecord,
    Decision,
    LedgerFacts,
    ManualRequest,
    PoolMember,
    Release,
    WorkspaceLimits,
)
from allot.guardrails.domain.membership import HeldMember, MembershipReplacement, replace_membership
from allot.runtime.db import Conn

# ------------------------------------------------------------------ locks


async def lock_workspaces_for_decisions(conn: Conn, workspace_ids: list[str]) -> None:
    """Serialise decisions of a workspace across instances for this transaction (sorted: no deadlocks).

    Caps and the net-change window are read-then-written; two instances deciding for the same
    workspace at once (different partitions) would both see the old totals without this.
    """
    for ws in sorted(set(workspace_ids)):
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"allot-guardrails:decide:{ws}")


async def kill_switches_on(conn: Conn) -> tuple[int, int]:
    """(workspaces whose kill switch is on, ad accounts stopped individually), across every workspace: the one read
    that spans workspaces, for the kill-switch gauge (counts only, no workspace's data)."""
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE (limits->>'kill_switch')::boolean) AS workspaces,
                  coalesce(sum(jsonb_array_length(coalesce(limits->'killed_ad_accounts', '[]'::jsonb))), 0)
                      AS ad_accounts
           FROM workspace_limits""")
    assert row is not None  # an aggregate without GROUP BY returns one row
    return int(row["workspaces"]), int(row["ad_accounts"])


async def lock_workspace_limits(conn: Conn, workspace_id: str) -> None:
    """Serialise changes of one workspace's limits (read-modify-write + audit) for this transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                       f"allot-guardrails:limits:{workspace_id}")


# ------------------------------------------------------------------ limits and audit


async def load_limits_row(conn: Conn, workspace_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM workspace_limits WHERE workspace_id = $1", workspace_id)


async def load_limits(conn: Conn, workspace_id: str) -> WorkspaceLimits:
    """The workspace's limits, or the defaults when it never stored any."""
    row = await load_limits_row(conn, workspace_id)
    return WorkspaceLimits() if row is None else WorkspaceLimits.model_validate(row["limits"])


async def save_limits(conn: Conn, workspace_id: str, limits: WorkspaceLimits, *, key_id: str,
                      role: str, action: str, changes: dict[str, Any], now: datetime) -> int:
    """Store new limits and their audit entry (same transaction); returns the new version."""
    version: int = await conn.fetchval(
        """INSERT INTO workspace_limits (workspace_id, limits, version, updated_at, updated_by)
           VALUES ($1, $2, 1, $3, $4)
           ON CONFLICT (workspace_id) DO UPDATE SET limits = EXCLUDED.limits,
               version = workspace_limits.version + 1, updated_at = EXCLUDED.updated_at,
               updated_by = EXCLUDED.updated_by
           RETURNING version""",
        workspace_id, limits.model_dump(mode="json"), now, key_id)
    await conn.execute(
        """INSERT INTO settings_audit (workspace_id, key_id, role, action, at, version, changes)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        workspace_id, key_id, role, action, now, version, changes)
    return version


async def audit_log(conn: Conn, workspace_id: str, *, limit: int,
                    before_id: int | None = None) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT * FROM settings_audit WHERE workspace_id = $1 AND ($2::bigint IS NULL OR id < $2)
           ORDER BY id DESC LIMIT $3""", workspace_id, before_id, limit)


# ------------------------------------------------------------------ facts


async def load_facts(conn: Conn, workspace_id: str, request: AllocationRequested,
                     limits: WorkspaceLimits, *, now: datetime, zone: tzinfo) -> LedgerFacts:
    """Everything decide() reads, from this service's tables as of now (earlier writes of the batch included).

    The ledger rows are those of ``zone``'s local day and month (the account's); the idempotency key's day is UTC.
    """
    day = local_day(now, zone)
    month = f"{day:%Y-%m}"
    entities = sorted({a.entity_id for a in request.actions})
    today = await conn.fetchval(
        "SELECT exposure_eur_cents FROM spend_daily WHERE workspace_id = $1 AND day = $2", workspace_id, day)
    this_month = await conn.fetchval(
        "SELECT exposure_eur_cents FROM spend_monthly WHERE workspace_id = $1 AND month = $2", workspace_id, month)
    pool_counted = 0
    if request.source == "pool":
        pool_counted = await conn.fetchval(
            """SELECT exposure_eur_cents FROM spend_pool_daily
               WHERE workspace_id = $1 AND day = $2 AND pool_id = $3""",
            workspace_id, day, request.source_id) or 0
    since = now - timedelta(hours=limits.net_change_window_h)
    change_rows = await conn.fetch(
        """SELECT entity_id, source, source_id, from_cents, to_cents, at, decision_id FROM entity_changes
           WHERE workspace_id = $1 AND entity_id = ANY($2::text[]) AND at > $3 ORDER BY at, id""",
        workspace_id, entities, since)
    members = await pool_members(conn, workspace_id, entities)
    manual: list[ManualRequest] = []
    if request.manual:
        window_start = now - timedelta(seconds=limits.manual_rate_limit.window_s)
        manual_rows = await conn.fetch(
            """SELECT source, source_id, at FROM manual_requests
               WHERE workspace_id = $1 AND source = $2 AND source_id = $3 AND at > $4 ORDER BY at""",
            workspace_id, request.source, request.source_id, window_start)
        manual = [ManualRequest(source=r["source"], source_id=r["source_id"], at=r["at"]) for r in manual_rows]
    existing = await find_decision_by_key(conn, workspace_id, request.source, request.idempotency_key,
                                          now.astimezone(UTC).date())
    return LedgerFacts(
        today_exposure_eur_cents=today or 0,
        month_exposure_eur_cents=this_month or 0,
        pool_counted_today_eur_cents=pool_counted,
        changes=tuple(ChangeRecord(**dict(r)) for r in change_rows),
        pool_membership={m.entity_id: m.pool_id for m in members},
        recent_manual_requests=tuple(manual),
        existing_decision=existing,
    )


async def pool_members(conn: Conn, workspace_id: str, entity_ids: list[str]) -> list[PoolMember]:
    """Which of ``entity_ids`` belong to a pool (the arbiter's view: announced by pools on pool.members_changed;
    for a pool that never announced, learned from its approved allocations)."""
    rows = await conn.fetch(
        """SELECT entity_id, pool_id, updated_at AS seen_at FROM pool_members
           WHERE workspace_id = $1 AND entity_id = ANY($2::text[]) ORDER BY entity_id""",
        workspace_id, entity_ids)
    return [PoolMember(**dict(r)) for r in rows]


async def find_decision_by_key(conn: Conn, workspace_id: str, source: str, idempotency_key: str,
                               day: date) -> Decision | None:
    row = await conn.fetchrow(
        """SELECT decision FROM decisions
           WHERE workspace_id = $1 AND source = $2 AND idempotency_key = $3 AND utc_day = $4""",
        workspace_id, source, idempotency_key, day)
    return None if row is None else Decision.model_validate(row["decision"])


# ------------------------------------------------------------------ recording a decision


async def record_decision(conn: Conn, workspace_id: str, decision: Decision,
                          request: AllocationRequested, *, event_id: uuid.UUID, now: datetime) -> None:
    """Persist a decision and everything it counts: ledger, change history, pool membership, rate limit.

    A replayed decision only maps the (new) request id to the stored decision: nothing is counted twice.
    """
    if not decision.replayed:
        await conn.execute(
            """INSERT INTO decisions (decision_id, workspace_id, request_id, source, source_id, idempotency_key,
                                      utc_day, status, "check", observe_only, exposure_eur_cents, decided_at,
                                      decision, request, event_id, ledger_day)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)""",
            decision.decision_id, workspace_id, decision.request_id, decision.source, decision.source_id,
            decision.idempotency_key, decision.utc_day, decision.status, decision.check, decision.observe_only,
            decision.exposure_eur_cents, decision.decided_at, decision.model_dump(mode="json"),
            request.model_dump(mode="json"), event_id, decision.ledger.day)
    await conn.execute(
        """INSERT INTO decision_requests (workspace_id, request_id, decision_id, event_id, seen_at)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (workspace_id, request_id) DO NOTHING""",
        workspace_id, request.request_id, decision.decision_id, event_id, now)
    if decision.replayed or not decision.approved:
        return
    ledger = decision.ledger
    await conn.execute(
        """INSERT INTO spend_daily (workspace_id, day, exposure_eur_cents, approvals, updated_at)
           VALUES ($1, $2, $3, 1, $4)
           ON CONFLICT (workspace_id, day) DO UPDATE SET
               exposure_eur_cents = spend_daily.exposure_eur_cents + EXCLUDED.exposure_eur_cents,
               approvals = spend_daily.approvals + 1, updated_at = EXCLUDED.updated_at""",
        workspace_id, ledger.day, ledger.eur_cents, now)
    await conn.execute(
        """INSERT INTO spend_monthly (workspace_id, month, exposure_eur_cents, updated_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (workspace_id, month) DO UPDATE SET
               exposure_eur_cents = spend_monthly.exposure_eur_cents + EXCLUDED.exposure_eur_cents,
               updated_at = EXCLUDED.updated_at""",
        workspace_id, ledger.month, ledger.eur_cents, now)
    if ledger.pool_id is not None:
        await conn.execute(
            """INSERT INTO spend_pool_daily (workspace_id, day, pool_id, exposure_eur_cents)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (workspace_id, day, pool_id) DO UPDATE SET
                   exposure_eur_cents = spend_pool_daily.exposure_eur_cents + EXCLUDED.exposure_eur_cents""",
            workspace_id, ledger.day, ledger.pool_id, ledger.eur_cents)
    if decision.change_records:
        await conn.executemany(
            """INSERT INTO entity_changes (workspace_id, entity_id, source, source_id, from_cents, to_cents, at,
                                           decision_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            [(workspace_id, c.entity_id, c.source, c.source_id, c.from_cents, c.to_cents, c.at,
              c.decision_id or decision.decision_id) for c in decision.change_records])
    if decision.source == "pool":
        # Fallback for a pool that never announced its membership (pool.members_changed; created before pools
        # published it): learn from its allocations. Never over an announced membership, in either direction.
        await conn.executemany(
            """INSERT INTO pool_members (workspace_id, entity_id, pool_id, updated_at)
               SELECT $1, $2, $3, $4 WHERE NOT EXISTS (
                   SELECT 1 FROM pool_membership_versions WHERE workspace_id = $1 AND pool_id = $3)
               ON CONFLICT (workspace_id, entity_id) DO UPDATE SET pool_id = EXCLUDED.pool_id,
                   updated_at = EXCLUDED.updated_at WHERE pool_members.changed_at IS NULL""",
            [(workspace_id, a.entity_id, decision.source_id, now) for a in decision.actions])
    if decision.counts_toward_rate_limit:
        await conn.execute(
            """INSERT INTO manual_requests (workspace_id, source, source_id, at, decision_id)
               VALUES ($1, $2, $3, $4, $5)""",
            workspace_id, decision.source, decision.source_id, decision.decided_at, decision.decision_id)


# ------------------------------------------------------------------ pool membership announced by pools


async def replace_pool_membership(conn: Conn, workspace_id: str, state: PoolMembersChanged, *,
                                  now: datetime) -> MembershipReplacement:
    """Apply one pool.members_changed state (domain.membership.replace_membership) in the caller's transaction.

    Serialised per workspace: two pools' states naming the same entity (handled by two instances) must not both
    read it as free."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                       f"allot-guardrails:pool-membership:{workspace_id}")
    stored = await conn.fetchval(
        "SELECT version FROM pool_membership_versions WHERE workspace_id = $1 AND pool_id = $2",
        workspace_id, state.pool_id)
    rows = await conn.fetch(
        """SELECT entity_id, pool_id, changed_at FROM pool_members
           WHERE workspace_id = $1 AND (pool_id = $2 OR entity_id = ANY($3::text[]))""",
        workspace_id, state.pool_id, [m.entity_id for m in state.members])
    change = replace_membership(state, stored_version=stored,
                                held={r["entity_id"]: HeldMember(**dict(r)) for r in rows})
    if not change.applied:
        return change
    await conn.execute(
        """INSERT INTO pool_membership_versions (workspace_id, pool_id, version, changed_at, deleted)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (workspace_id, pool_id) DO UPDATE SET version = EXCLUDED.version,
               changed_at = EXCLUDED.changed_at, deleted = EXCLUDED.deleted""",
        workspace_id, state.pool_id, state.version, state.changed_at, state.deleted)
    await conn.execute("DELETE FROM pool_members WHERE workspace_id = $1 AND pool_id = $2 AND entity_id = ANY($3)",
                       workspace_id, state.pool_id, list(change.release))
    await conn.executemany(
        """INSERT INTO pool_members (workspace_id, entity_id, pool_id, updated_at, changed_at)
           VALUES ($1, $2, $3, $4, $4)
           ON CONFLICT (workspace_id, entity_id) DO UPDATE SET pool_id = EXCLUDED.pool_id,
               updated_at = EXCLUDED.updated_at, changed_at = EXCLUDED.changed_at""",
        [(workspace_id, e, state.pool_id, state.changed_at) for e in change.take])
    return change


# ------------------------------------------------------------------ releasing an expired approval


async def approved_decision(conn: Conn, workspace_id: str,
                            decision_id: uuid.UUID) -> Decision | None:
    """The stored decision ``decision_id`` of this workspace (None when unknown here)."""
    row = await conn.fetchrow("SELECT decision FROM decisions WHERE workspace_id = $1 AND decision_id = $2",
                              workspace_id, decision_id)
    return None if row is None else Decision.model_validate(row["decision"])


async def release(conn: Conn, workspace_id: str, release: Release, *, reason: str,
                  now: datetime) -> bool:
    """Give back what an expired approval reserved, once per decision; False when it was already released."""
    first = await conn.fetchval(
        """INSERT INTO released_decisions (decision_id, workspace_id, eur_cents, reason, released_at)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (decision_id) DO NOTHING RETURNING true""",
        release.decision_id, workspace_id, release.ledger.eur_cents, reason, now)
    if not first:
        return False
    ledger = release.ledger
    await conn.execute(
        """UPDATE spend_daily SET exposure_eur_cents = GREATEST(0, exposure_eur_cents - $3),
               approvals = GREATEST(0, approvals - $4), updated_at = $5
           WHERE workspace_id = $1 AND day = $2""",
        workspace_id, ledger.day, ledger.eur_cents, release.approvals, now)
    await conn.execute(
        """UPDATE spend_monthly SET exposure_eur_cents = GREATEST(0, exposure_eur_cents - $3), updated_at = $4
           WHERE workspace_id = $1 AND month = $2""", workspace_id, ledger.month, ledger.eur_cents, now)
    if ledger.pool_id is not None:
        await conn.execute(
            """UPDATE spend_pool_daily SET exposure_eur_cents = GREATEST(0, exposure_eur_cents - $4)
               WHERE workspace_id = $1 AND day = $2 AND pool_id = $3""",
            workspace_id, ledger.day, ledger.pool_id, ledger.eur_cents)
    await conn.execute("DELETE FROM entity_changes WHERE workspace_id = $1 AND decision_id = $2",
                       workspace_id, release.decision_id)
    return True


# ------------------------------------------------------------------ reads for the API


async def decision_by_request(conn: Conn, workspace_id: str,
                              request_id: uuid.UUID) -> asyncpg.Record | None:
    """The decision on ``request_id`` (a retry with its own request id included), or None."""
    return await conn.fetchrow(
        """SELECT d.decision, d.request, r.event_id, r.request_id AS looked_up_request_id
           FROM decision_requests r JOIN decisions d ON d.decision_id = r.decision_id
           WHERE r.workspace_id = $1 AND r.request_id = $2 AND d.workspace_id = $1""",
        workspace_id, request_id)


async def list_decisions(conn: Conn, workspace_id: str, *, source_id: str | None,
                         limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT decision, event_id FROM decisions
           WHERE workspace_id = $1 AND ($2::text IS NULL OR source_id = $2)
           ORDER BY decided_at DESC, decision_id LIMIT $3""",
        workspace_id, source_id, limit)


async def ledger_for_day(conn: Conn, workspace_id: str, day: date) -> dict[str, Any]:
    """The spend ledger of one day (accounts' local days of that date): exposure of the day and its month, per
    pool, and the counts of decisions counted on it."""
    daily = await conn.fetchrow("SELECT * FROM spend_daily WHERE workspace_id = $1 AND day = $2",
                                workspace_id, day)
    month = f"{day:%Y-%m}"
    monthly = await conn.fetchval(
        "SELECT exposure_eur_cents FROM spend_monthly WHERE workspace_id = $1 AND month = $2", workspace_id, month)
    pools = await conn.fetch(
        """SELECT pool_id, exposure_eur_cents FROM spend_pool_daily WHERE workspace_id = $1 AND day = $2
           ORDER BY pool_id""", workspace_id, day)
    counts = await conn.fetch(
        """SELECT status, observe_only, count(*) AS n FROM decisions WHERE workspace_id = $1 AND ledger_day = $2
           GROUP BY status, observe_only""", workspace_id, day)
    released = await conn.fetchval(
        """SELECT sum(r.eur_cents)::bigint FROM released_decisions r JOIN decisions d ON d.decision_id = r.decision_id
           WHERE r.workspace_id = $1 AND d.ledger_day = $2""", workspace_id, day)
    by = {"approved": 0, "blocked": 0, "observed": 0}
    for r in counts:
        by["observed" if r["observe_only"] else r["status"]] += r["n"]
    return {
        "day": day.isoformat(),
        "month": month,
        "exposure_eur_cents": daily["exposure_eur_cents"] if daily else 0,
        "month_exposure_eur_cents": monthly or 0,
        "approvals_counted": daily["approvals"] if daily else 0,
        "released_eur_cents": released or 0,
        "pools": [{"pool_id": r["pool_id"], "exposure_eur_cents": r["exposure_eur_cents"]} for r in pools],
        "decisions": by,
    }


# ------------------------------------------------------------------ housekeeping


async def prune_history(conn: Conn, *, changes_before: datetime,
                        manual_before: datetime) -> tuple[int, int]:
    """Drop change history and manual-request rows older than any window can reach; returns rows deleted."""
    changes = await conn.fetchval(
        "WITH d AS (DELETE FROM entity_changes WHERE at <= $1 RETURNING 1) SELECT count(*) FROM d", changes_before)
    manual = await conn.fetchval(
        "WITH d AS (DELETE FROM manual_requests WHERE at <= $1 RETURNING 1) SELECT count(*) FROM d", manual_before)
    return changes, manual
