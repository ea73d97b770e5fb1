"""All SQL of the pools service: functions taking an asyncpg connection (search_path = the pools schema).

The caller owns the transaction. Every query that an API route reaches filters by workspace id.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeAlias

import asyncpg
import orjson

from allot.pools.domain.stored import (
    StoredAllocation,
    StoredBlockedAllocation,
    StoredDuePool,
    StoredEntity,
    StoredInterval,
    StoredMember,
    StoredMemberPool,
    StoredNote,
    StoredOutcome,
    StoredOutcomeCount,
    StoredOwner,
    StoredPool,
    StoredReportedEntity,
)
from allot.runtime.db import Conn, json_insert_rows

Row: TypeAlias = asyncpg.Record


def _pool(row: Row) -> StoredPool:
    return StoredPool(**dict(row.items()))


def _member(row: Row) -> StoredMember:
    return StoredMember(**dict(row.items()))


def _allocation(row: Row) -> StoredAllocation:
    return StoredAllocation(**dict(row.items()))


def _outcome(row: Row) -> StoredOutcome:
    return StoredOutcome(**dict(row.items()))


def _entity(row: Row) -> StoredEntity:
    return StoredEntity(**dict(row.items()))


def _note(row: Row) -> StoredNote:
    return StoredNote(**dict(row.items()))


def _due_pool(row: Row) -> StoredDuePool:
    return StoredDuePool(**dict(row.items()))


def _owner(row: Row) -> StoredOwner:
    return StoredOwner(**dict(row.items()))


def _blocked(row: Row) -> StoredBlockedAllocation:
    return StoredBlockedAllocation(**dict(row.items()))


def _outcome_count(row: Row) -> StoredOutcomeCount:
    return StoredOutcomeCount(**dict(row.items()))


def _reported_entity(row: Row) -> StoredReportedEntity:
    return StoredReportedEntity(**dict(row.items()))


def _interval(row: Row) -> StoredInterval:
    # A plan reads thousands of these: built from the values in order (history_of selects the columns in the
    # fields' order), at less than half the cost of keywords.
    return StoredInterval(*row)


def _member_pool(row: Row) -> StoredMemberPool:
    return StoredMemberPool(**dict(row.items()))


SETTINGS_COLUMNS = (
    "name",
    "optimization_metric",
    "daily_budget_cents",
    "currency",
    "allocation_frequency_hours",
    "default_min_budget_cents",
    "default_max_budget_cents",
    "min_budget_change_cents",
    "status",
    "autonomy",
    "persistence_intervals",
    "cooldown_hours",
    "deadband_pct",
    "exploration_share",
    "composite_weights",
)
#: The unique partial index that keeps an entity an active member of at most one pool of its workspace.
ONE_ACTIVE_POOL_INDEX = "pool_members_one_active_pool"
MEMBER_COLUMNS = (
    "entity_type",
    "entity_id",
    "ad_account_id",
    "entity_name",
    "platform",
    "currency",
    "min_budget_cents",
    "max_budget_cents",
    "weight",
    "is_active",
)

# ---------------------------------------------------------------- pools


async def insert_pool(
    conn: Conn, pool_id: uuid.UUID, workspace_id: str, settings: dict[str, Any], now: datetime
) -> StoredPool:
    cols = ", ".join(SETTINGS_COLUMNS)
    params = ", ".join(f"${i}" for i in range(5, 5 + len(SETTINGS_COLUMNS)))
    row = await conn.fetchrow(
        f"""INSERT INTO pools (pool_id, workspace_id, created_at, updated_at, {cols})
            VALUES ($1, $2, $3, $4, {params}) RETURNING *""",
        pool_id,
        workspace_id,
        now,
        now,
        *(settings[c] for c in SETTINGS_COLUMNS),
    )
    assert row is not None
    return _pool(row)


async def get_pool(
    conn: Conn,
    workspace_id: str,
    pool_id: uuid.UUID,
    *,
    for_update: bool = False,
    include_deleted: bool = False,
) -> StoredPool | None:
    row = await conn.fetchrow(
        "SELECT * FROM pools WHERE pool_id = $1 AND workspace_id = $2 AND ($3 OR deleted_at IS NULL)"
        + (" FOR UPDATE" if for_update else ""),
        pool_id,
        workspace_id,
        include_deleted,
    )
    return None if row is None else _pool(row)


async def lock_pool(conn: Conn, pool_id: uuid.UUID) -> StoredPool | None:
    row = await conn.fetchrow("SELECT * FROM pools WHERE pool_id = $1 FOR UPDATE", pool_id)
    return None if row is None else _pool(row)


async def list_pools(conn: Conn, workspace_id: str, *, include_deleted: bool) -> list[StoredPool]:
    rows = await conn.fetch(
        "SELECT * FROM pools WHERE workspace_id = $1 AND ($2 OR deleted_at IS NULL) ORDER BY created_at, pool_id",
        workspace_id,
        include_deleted,
    )
    return [_pool(r) for r in rows]


async def update_pool_settings(
    conn: Conn, pool_id: uuid.UUID, settings: dict[str, Any], now: datetime
) -> StoredPool:
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(SETTINGS_COLUMNS, start=3))
    row = await conn.fetchrow(
        f"UPDATE pools SET {sets}, version = version + 1, updated_at = $2 WHERE pool_id = $1 RETURNING *",
        pool_id,
        now,
        *(settings[c] for c in SETTINGS_COLUMNS),
    )
    assert row is not None
    return _pool(row)


async def soft_delete_pool(conn: Conn, pool_id: uuid.UUID, now: datetime) -> None:
    await conn.execute(
        "UPDATE pools SET deleted_at = $2, updated_at = $2, version = version + 1 WHERE pool_id = $1", pool_id, now
    )
    await conn.execute(
        "UPDATE pool_members SET is_active = false, updated_at = $2 WHERE pool_id = $1 AND is_active", pool_id, now
    )


async def bump_membership_version(conn: Conn, pool_id: uuid.UUID) -> int:
    """The pool's next membership version (see migrations/0009_membership_version.sql)."""
    version = await conn.fetchval(
        "UPDATE pools SET membership_version = membership_version + 1 WHERE pool_id = $1 RETURNING membership_version",
        pool_id,
    )
    assert version is not None
    return int(version)


async def set_engine_state(conn: Conn, pool_id: uuid.UUID, state: dict[str, Any]) -> None:
    await conn.execute("UPDATE pools SET engine_state = $2 WHERE pool_id = $1", pool_id, state)


async def touch_manual_allocate(conn: Conn, pool_id: uuid.UUID, now: datetime) -> None:
    await conn.execute("UPDATE pools SET last_manual_allocate_at = $2 WHERE pool_id = $1", pool_id, now)


async def set_scheduled_slot(conn: Conn, pool_id: uuid.UUID, slot: datetime) -> None:
    await conn.execute(
        "UPDATE pools SET last_scheduled_slot = greatest(coalesce(last_scheduled_slot, $2), $2) WHERE pool_id = $1",
        pool_id,
        slot,
    )


async def due_pools(conn: Conn, now: datetime, batch: int) -> list[StoredDuePool]:
    """Active pools whose current slot (epoch-aligned at their frequency, on the service clock) has not run yet.

    A pool's first scheduled slot is the first one that starts at or after its creation."""
    rows = await conn.fetch(
        """SELECT pool_id, workspace_id, slot FROM (
               SELECT pool_id, workspace_id, created_at, last_scheduled_slot,
                      to_timestamp(floor(extract(epoch FROM $1::timestamptz) / (allocation_frequency_hours * 3600))
                                   * (allocation_frequency_hours * 3600)) AS slot
                 FROM pools WHERE deleted_at IS NULL AND status = 'active') p
            WHERE slot >= created_at AND (last_scheduled_slot IS NULL OR last_scheduled_slot < slot)
            ORDER BY slot, pool_id LIMIT $2""",
        now,
        batch,
    )
    return [_due_pool(r) for r in rows]


# ---------------------------------------------------------------- members


async def members_of(
    conn: Conn, pool_ids: Sequence[uuid.UUID], *, active_only: bool = False
) -> list[StoredMember]:
    rows = await conn.fetch(
        "SELECT * FROM pool_members WHERE pool_id = ANY($1::uuid[]) AND (NOT $2 OR is_active) "
        "ORDER BY pool_id, created_at, entity_id",
        list(pool_ids),
        active_only,
    )
    return [_member(r) for r in rows]


async def upsert_member(
    conn: Conn, pool_id: uuid.UUID, workspace_id: str, member: dict[str, Any], now: datetime
) -> tuple[StoredMember, bool]:
    """Insert a member, or update and reactivate the pool's member of that entity; returns (member, created)."""
    cols = ", ".join(MEMBER_COLUMNS)
    params = ", ".join(f"${i}" for i in range(6, 6 + len(MEMBER_COLUMNS)))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in MEMBER_COLUMNS if c != "entity_id")
    row = await conn.fetchrow(
        f"""INSERT INTO pool_members (member_id, pool_id, workspace_id, created_at, updated_at, {cols})
            VALUES ($1, $2, $3, $4, $5, {params})
            ON CONFLICT (pool_id, entity_id) DO UPDATE SET {updates}, updated_at = EXCLUDED.updated_at
            RETURNING *, (xmax = 0) AS created""",
        uuid.uuid4(),
        pool_id,
        workspace_id,
        now,
        now,
        *(member[c] for c in MEMBER_COLUMNS),
    )
    assert row is not None
    values = dict(row.items())
    created = bool(values.pop("created"))
    return StoredMember(**values), created


async def active_owners(
    conn: Conn, workspace_id: str, entity_ids: Sequence[str], *, except_pool: uuid.UUID | None
) -> dict[str, StoredOwner]:
    """The pool where each entity is an active member, other than ``except_pool``."""
    rows = await conn.fetch(
        """SELECT m.entity_id, p.pool_id, p.name AS pool_name FROM pool_members m JOIN pools p ON p.pool_id = m.pool_id
            WHERE m.workspace_id = $1 AND m.entity_id = ANY($2::text[]) AND m.is_active
              AND ($3::uuid IS NULL OR m.pool_id <> $3)""",
        workspace_id,
        list(entity_ids),
        except_pool,
    )
    return {r["entity_id"]: _owner(r) for r in rows}


async def deactivate_member(
    conn: Conn, pool_id: uuid.UUID, member_id: uuid.UUID, now: datetime
) -> StoredMember | None:
    row = await conn.fetchrow(
        "UPDATE pool_members SET is_active = false, updated_at = $3 WHERE pool_id = $1 AND member_id = $2 RETURNING *",
        pool_id,
        member_id,
        now,
    )
    return None if row is None else _member(row)


# ---------------------------------------------------------------- allocations


async def allocation_by_key(conn: Conn, pool_id: uuid.UUID, key: str) -> StoredAllocation | None:
    row = await conn.fetchrow("SELECT * FROM allocations WHERE pool_id = $1 AND idempotency_key = $2", pool_id, key)
    return None if row is None else _allocation(row)


async def get_allocation(conn: Conn, allocation_id: uuid.UUID) -> StoredAllocation | None:
    row = await conn.fetchrow("SELECT * FROM allocations WHERE allocation_id = $1", allocation_id)
    return None if row is None else _allocation(row)


async def insert_allocation(
    conn: Conn,
    *,
    allocation_id: uuid.UUID,
    pool_id: uuid.UUID,
    workspace_id: str,
    kind: str,
    trigger: str,
    idempotency_key: str | None,
    slot: str | None,
    status: str,
    autonomy: str,
    settings: dict[str, Any],
    members: list[dict[str, Any]],
    requested_by: str,
    now: datetime,
) -> StoredAllocation | None:
    """The new log entry, or None when (pool, idempotency key) already has one."""
    row = await conn.fetchrow(
        """INSERT INTO allocations (allocation_id, pool_id, workspace_id, kind, trigger, idempotency_key, slot, status,
                                    autonomy, settings, members, requested_by, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
           ON CONFLICT DO NOTHING RETURNING *""",
        allocation_id,
        pool_id,
        workspace_id,
        kind,
        trigger,
        idempotency_key,
        slot,
        status,
        autonomy,
        settings,
        members,
        requested_by,
        now,
    )
    return None if row is None else _allocation(row)


async def claim_queued(conn: Conn) -> StoredAllocation | None:
    """The oldest queued allocation, locked for this transaction (other workers skip it)."""
    row = await conn.fetchrow(
        "SELECT * FROM allocations WHERE status = 'queued' ORDER BY created_at, allocation_id "
        "LIMIT 1 FOR UPDATE SKIP LOCKED"
    )
    return None if row is None else _allocation(row)


async def save_plan(
    conn: Conn,
    allocation_id: uuid.UUID,
    *,
    status: str,
    inputs: dict[str, Any],
    plan: dict[str, Any],
    actions: list[dict[str, Any]],
    planned_at: datetime,
    event_id: uuid.UUID | None,
) -> None:
    await conn.execute(
        """UPDATE allocations SET status = $2, inputs = $3, plan = $4, actions = $5, planned_at = $6, updated_at = $6,
                                  event_id = $7 WHERE allocation_id = $1""",
        allocation_id,
        status,
        inputs,
        plan,
        actions,
        planned_at,
        event_id,
    )


async def list_allocations(
    conn: Conn, pool_id: uuid.UUID, *, kind: str | None, limit: int
) -> list[StoredAllocation]:
    rows = await conn.fetch(
        "SELECT * FROM allocations WHERE pool_id = $1 AND ($2::text IS NULL OR kind = $2) "
        "ORDER BY created_at DESC, allocation_id DESC LIMIT $3",
        pool_id,
        kind,
        limit,
    )
    return [_allocation(r) for r in rows]


async def outcomes_of(conn: Conn, allocation_ids: Sequence[uuid.UUID]) -> list[StoredOutcome]:
    rows = await conn.fetch(
        "SELECT * FROM allocation_outcomes WHERE allocation_id = ANY($1::uuid[]) ORDER BY executed_at, entity_id",
        list(allocation_ids),
    )
    return [_outcome(r) for r in rows]


async def record_blocked(
    conn: Conn, rows: Sequence[tuple[uuid.UUID, str, str, dict[str, Any]]]
) -> list[StoredBlockedAllocation]:
    """rows: (request_id, workspace_id, status, decision); only allocations still waiting for a decision change.

    Returns the allocations that changed (id, new status)."""
    if not rows:
        return []
    changed = await conn.fetch(
        """UPDATE allocations a SET status = u.status, decision = u.decision::jsonb, updated_at = now()
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS u(request_id, ws, status, decision)
            WHERE a.allocation_id = u.request_id AND a.workspace_id = u.ws AND a.kind = 'allocation'
              AND a.status = 'requested'
        RETURNING a.allocation_id, a.status""",
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [orjson.dumps(r[3]).decode() for r in rows],
    )
    return [_blocked(r) for r in changed]


async def record_outcomes(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> list[uuid.UUID]:
    """rows: (action_id, request_id, workspace_id, entity_id, outcome, before, after, observed, error, executed_at).

    Only outcomes of this service's allocations are stored; a later ``already_applied`` never replaces a real
    outcome. Returns the allocation ids touched."""
    if not rows:
        return []
    cols = [list(c) for c in zip(*rows, strict=True)]
    touched = await conn.fetch(
        """INSERT INTO allocation_outcomes (action_id, allocation_id, entity_id, outcome, before_cents, after_cents,
                                            observed_cents, error, executed_at)
           SELECT u.action_id, u.request_id, u.entity_id, u.outcome, u.before_cents, u.after_cents, u.observed_cents,
                  u.error, u.executed_at
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
                         $8::bigint[], $9::text[], $10::timestamptz[])
                  AS u(action_id, request_id, ws, entity_id, outcome, before_cents, after_cents, observed_cents,
                       error, executed_at)
             JOIN allocations a ON a.allocation_id = u.request_id AND a.workspace_id = u.ws AND a.kind = 'allocation'
           ON CONFLICT (action_id) DO UPDATE SET outcome = EXCLUDED.outcome, before_cents = EXCLUDED.before_cents,
                  after_cents = EXCLUDED.after_cents, observed_cents = EXCLUDED.observed_cents, error = EXCLUDED.error,
                  executed_at = EXCLUDED.executed_at
            WHERE EXCLUDED.outcome <> 'already_applied'
           RETURNING allocation_id""",
        *cols,
    )
    return sorted({r["allocation_id"] for r in touched})


async def outcome_counts(conn: Conn, allocation_ids: Sequence[uuid.UUID]) -> list[StoredOutcomeCount]:
    rows = await conn.fetch(
        """SELECT a.allocation_id, a.status, jsonb_array_length(a.actions) AS action_count,
                  coalesce(array_agg(o.outcome) FILTER (WHERE o.outcome IS NOT NULL), '{}') AS outcomes
             FROM allocations a LEFT JOIN allocation_outcomes o ON o.allocation_id = a.allocation_id
            WHERE a.allocation_id = ANY($1::uuid[]) GROUP BY a.allocation_id, a.status, a.actions""",
        list(allocation_ids),
    )
    return [_outcome_count(r) for r in rows]


async def set_status(conn: Conn, allocation_id: uuid.UUID, status: str) -> None:
    await conn.execute(
        "UPDATE allocations SET status = $2, updated_at = now() WHERE allocation_id = $1", allocation_id, status
    )


# ---------------------------------------------------------------- metric + entity projection


async def upsert_metrics(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
    """rows: (workspace_id, entity_id, interval_start, interval_end, reported_at, event_id, spend, revenue,
    conversions, impressions, clicks, reach), at most one per key; a stored report is replaced only by a later one
    in the projection's order (reported_at, event_id)."""
    if not rows:
        return
    await conn.execute(_UPSERT_METRICS, rows)


_METRIC_COLUMNS = (("workspace_id", "text"), ("entity_id", "text"), ("interval_start", "timestamptz"),
                   ("interval_end", "timestamptz"), ("reported_at", "timestamptz"), ("event_id", "uuid"),
                   ("spend_cents", "bigint"), ("revenue_cents", "bigint"), ("conversions", "bigint"),
                   ("impressions", "bigint"), ("clicks", "bigint"), ("reach", "bigint"))
_UPSERT_METRICS = f"""INSERT INTO member_metrics {json_insert_rows(_METRIC_COLUMNS)}
       ON CONFLICT (workspace_id, entity_id, interval_start) DO UPDATE
          SET interval_end = EXCLUDED.interval_end, reported_at = EXCLUDED.reported_at, event_id = EXCLUDED.event_id,
              spend_cents = EXCLUDED.spend_cents, revenue_cents = EXCLUDED.revenue_cents,
              conversions = EXCLUDED.conversions, impressions = EXCLUDED.impressions,
              clicks = EXCLUDED.clicks, reach = EXCLUDED.reach
        WHERE (EXCLUDED.reported_at, EXCLUDED.event_id) > (member_metrics.reported_at, member_metrics.event_id)"""


async def upsert_entities(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
    """rows: (workspace_id, entity_id, platform, ad_account_id, entity_type, name, status, daily_budget_cents,
    currency, reported_at, interval_start, event_id), one per entity; the latest report in the projection's entity
    order (reported_at, interval_start, event_id) wins (a report without a budget keeps the known one)."""
    if not rows:
        return
    await conn.execute(_UPSERT_ENTITIES, rows)


_ENTITY_COLUMNS = (("workspace_id", "text"), ("entity_id", "text"), ("platform", "text"), ("ad_account_id", "text"),
                   ("entity_type", "text"), ("entity_name", "text"), ("status", "text"),
                   ("daily_budget_cents", "bigint"), ("currency", "text"), ("reported_at", "timestamptz"),
                   ("interval_start", "timestamptz"), ("event_id", "uuid"))
_UPSERT_ENTITIES = f"""INSERT INTO entities {json_insert_rows(_ENTITY_COLUMNS)}
       ON CONFLICT (workspace_id, entity_id) DO UPDATE
          SET platform = EXCLUDED.platform, ad_account_id = EXCLUDED.ad_account_id,
              entity_type = EXCLUDED.entity_type, entity_name = EXCLUDED.entity_name, status = EXCLUDED.status,
              daily_budget_cents = coalesce(EXCLUDED.daily_budget_cents, entities.daily_budget_cents),
              currency = EXCLUDED.currency, reported_at = EXCLUDED.reported_at,
              interval_start = EXCLUDED.interval_start, event_id = EXCLUDED.event_id
        WHERE (EXCLUDED.reported_at, EXCLUDED.interval_start, EXCLUDED.event_id)
            > (entities.reported_at, entities.interval_start, entities.event_id)"""


async def apply_executed_budgets(conn: Conn, rows: Sequence[tuple[str, str, int, datetime]]) -> None:
    """rows: (workspace_id, entity_id, after_cents, executed_at) of successful set_budget actions: the entity's
    budget is what the executor set, unless a later report already says otherwise."""
    if not rows:
        return
    cols = [list(c) for c in zip(*rows, strict=True)]
    await conn.execute(
        """UPDATE entities e SET daily_budget_cents = u.after_cents, reported_at = u.executed_at
             FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[]) AS u(ws, entity_id, after_cents,
                                                                                     executed_at)
            WHERE e.workspace_id = u.ws AND e.entity_id = u.entity_id AND u.executed_at > e.reported_at""",
        *cols,
    )


async def record_budget_changes(
    conn: Conn, rows: Sequence[tuple[Any, str, str, int, int, datetime]]
) -> None:
    """rows: (action_id, workspace_id, entity_id, before_cents, after_cents, executed_at) of applied budget changes."""
    if not rows:
        return
    await conn.execute(
        """INSERT INTO budget_history (action_id, workspace_id, entity_id, before_cents, after_cents, executed_at)
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::timestamptz[])
           ON CONFLICT (action_id) DO NOTHING""",
        *[list(c) for c in zip(*rows, strict=True)],
    )


async def budget_changes(conn: Conn, workspace_id: str, entity_ids: Sequence[str], *,
                         since: datetime) -> dict[str, list[tuple[datetime, int, int]]]:
    """Applied budget changes per entity since ``since``: (executed_at, before_cents, after_cents)."""
    rows = await conn.fetch(
        """SELECT entity_id, executed_at, before_cents, after_cents FROM budget_history
           WHERE workspace_id = $1 AND entity_id = ANY($2::text[]) AND executed_at > $3 ORDER BY executed_at""",
        workspace_id, list(entity_ids), since)
    out: dict[str, list[tuple[datetime, int, int]]] = {}
    for r in rows:
        out.setdefault(r["entity_id"], []).append((r["executed_at"], r["before_cents"], r["after_cents"]))
    return out


async def entities_of(conn: Conn, workspace_id: str, entity_ids: Sequence[str]) -> dict[str, StoredEntity]:
    rows = await conn.fetch(
        "SELECT * FROM entities WHERE workspace_id = $1 AND entity_id = ANY($2::text[])", workspace_id, list(entity_ids)
    )
    return {r["entity_id"]: _entity(r) for r in rows}


async def reported_entities(
    conn: Conn, workspace_id: str, *, pool_id: uuid.UUID | None, limit: int
) -> list[StoredReportedEntity]:
    """The workspace's reported entities (latest report), each with its account's time zone and name and the
    pool it is an active member of, if any; only the members of ``pool_id`` when given."""
    rows = await conn.fetch(
        """SELECT e.entity_id, e.entity_type, e.entity_name, e.platform, e.ad_account_id, e.status,
                  e.daily_budget_cents, e.currency, e.reported_at,
                  a.timezone_name, a.name AS ad_account_name, m.pool_id, p.name AS pool_name
             FROM entities e
             LEFT JOIN ad_accounts a ON a.workspace_id = e.workspace_id AND a.platform = e.platform
                                    AND a.ad_account_id = e.ad_account_id
             LEFT JOIN pool_members m ON m.workspace_id = e.workspace_id AND m.entity_id = e.entity_id AND m.is_active
             LEFT JOIN pools p ON p.pool_id = m.pool_id
            WHERE e.workspace_id = $1 AND ($2::uuid IS NULL OR m.pool_id = $2)
            ORDER BY e.ad_account_id, e.entity_name, e.entity_id
            LIMIT $3""",
        workspace_id,
        pool_id,
        limit,
    )
    return [_reported_entity(r) for r in rows]


#: Intervals that ended more than this long before ``until`` come back rolled up per entity and UTC day (the
#: engine only weighs old days as a whole); the last week comes back in ``HISTORY_BLOCK`` blocks.
HISTORY_DETAIL = timedelta(days=7)
#: The last week's grain: the hours Meta reports, summed per entity and UTC 4-hour block. The engine reads spend
#: per day anyway (``allot.pools.domain.learn.observations``); 4 hours keep the age of recent conversions (data
#: maturity, restatements) and when a budget took effect (delivery caps) close enough, at a quarter of the rows.
HISTORY_BLOCK = timedelta(hours=4)
_HISTORY_SUMS = """sum(spend_cents)::bigint, sum(revenue_cents)::bigint, sum(conversions)::bigint,
                  sum(impressions)::bigint, sum(clicks)::bigint, sum(reach)::bigint"""


async def history_of(
    conn: Conn, workspace_id: str, entity_ids: Sequence[str], *, since: datetime, until: datetime
) -> list[StoredInterval]:
    """Intervals of the entities that ended in (since, until]: those that ended before the UTC day that starts
    ``HISTORY_DETAIL`` before ``until`` summed per entity and UTC day, later ones per entity and UTC
    ``HISTORY_BLOCK`` (one row per group: first start, last end; reach summed)."""
    cutoff = (until - HISTORY_DETAIL).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = await conn.fetch(
        f"""SELECT entity_id, min(interval_start) AS interval_start, max(interval_end), {_HISTORY_SUMS}
             FROM member_metrics
            WHERE workspace_id = $1 AND entity_id = ANY($2::text[])
              AND interval_end > GREATEST($3::timestamptz, $5::timestamptz) AND interval_end <= $4::timestamptz
            GROUP BY entity_id, date_bin($6::interval, interval_start, TIMESTAMPTZ '2000-01-01 00:00:00+00')
           UNION ALL
           SELECT entity_id, min(interval_start), max(interval_end), {_HISTORY_SUMS}
             FROM member_metrics
            WHERE workspace_id = $1 AND entity_id = ANY($2::text[]) AND interval_end > $3::timestamptz
              AND interval_end <= LEAST($4::timestamptz, $5::timestamptz)
            GROUP BY entity_id, date_trunc('day', interval_start, 'UTC')
           ORDER BY entity_id, interval_start""",
        workspace_id,
        list(entity_ids),
        since,
        until,
        cutoff,
        HISTORY_BLOCK,
    )
    return [_interval(r) for r in rows]


# ---------------------------------------------------------------- notes


async def pools_with_member(conn: Conn, workspace_id: str, entity_ids: Sequence[str]) -> list[StoredMemberPool]:
    rows = await conn.fetch(
        """SELECT DISTINCT m.pool_id, m.entity_id FROM pool_members m JOIN pools p ON p.pool_id = m.pool_id
            WHERE m.workspace_id = $1 AND m.entity_id = ANY($2::text[]) AND m.is_active AND p.deleted_at IS NULL""",
        workspace_id,
        list(entity_ids),
    )
    return [_member_pool(r) for r in rows]


async def insert_note(
    conn: Conn,
    note_id: uuid.UUID,
    pool_id: uuid.UUID,
    workspace_id: str,
    kind: str,
    at: datetime,
    body: dict[str, Any],
) -> None:
    await conn.execute(
        "INSERT INTO pool_notes (note_id, pool_id, workspace_id, kind, at, body) VALUES ($1, $2, $3, $4, $5, $6) "
        "ON CONFLICT DO NOTHING",
        note_id,
        pool_id,
        workspace_id,
        kind,
        at,
        body,
    )


async def notes_of(conn: Conn, pool_id: uuid.UUID, limit: int) -> list[StoredNote]:
    rows = await conn.fetch("SELECT * FROM pool_notes WHERE pool_id = $1 ORDER BY at DESC LIMIT $2", pool_id, limit)
    return [_note(r) for r in rows]
