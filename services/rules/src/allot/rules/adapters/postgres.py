"""All SQL of the rules service: functions taking an asyncpg connection (search_path = the rules schema)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from allot.rules.domain.metrics import COUNTER_NAMES, DailyCounters
from allot.rules.domain.stored import (
    FIRE_RESULTS,
    RANGE_REACH_RANGES,
    AuditEntry,
    CronRule,
    DailyBucket,
    DueRule,
    FireStats,
    PendingAction,
    StoredAction,
    StoredEntity,
    StoredExecution,
    StoredExecutionEntity,
    StoredOutcome,
    StoredRangeReach,
    StoredRule,
    TriggerRule,
)
from allot.runtime.db import Conn, json_insert_rows

Row = asyncpg.Record

_COUNTERS = ", ".join(COUNTER_NAMES)
_EXCLUDED_COUNTERS = ", ".join(f"{c} = EXCLUDED.{c}" for c in COUNTER_NAMES)

# ---------------------------------------------------------------- metric projection


async def project_intervals(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> int:
    """rows: (workspace_id, entity_id, interval_start, interval_end, reported_at, event_id, day, *counters), one
    per key.

    One statement: the stored report of an interval is replaced only by a later one (greater
    (reported_at, event_id): the projection's order, ``allot.contracts.projection``), and the change of
    every replaced or new report (new − old, read from the very row version the upsert replaced, under its
    row lock) is added to its daily bucket, whose ``reports`` counts its intervals (+1 for a new one). So a
    bucket always equals the sum of its kept reports without re-reading them, and two writers of one key
    cannot double-count. Needs PostgreSQL 18 (``RETURNING old.*``). Returns the reports kept."""
    if not rows:
        return 0
    return int(await conn.fetchval(_PROJECT_INTERVALS, rows))


_INTERVAL_COLUMNS = (("workspace_id", "text"), ("entity_id", "text"), ("interval_start", "timestamptz"),
                     ("interval_end", "timestamptz"), ("reported_at", "timestamptz"), ("event_id", "uuid"),
                     ("day", "date"),
                     *((c, "bigint") for c in COUNTER_NAMES))


_PROJECT_INTERVALS = f"""
    WITH kept AS (
        INSERT INTO metric_intervals {json_insert_rows(_INTERVAL_COLUMNS)}
        ON CONFLICT (workspace_id, entity_id, interval_start) DO UPDATE
           SET interval_end = EXCLUDED.interval_end, reported_at = EXCLUDED.reported_at, event_id = EXCLUDED.event_id,
               {_EXCLUDED_COUNTERS}
         WHERE (EXCLUDED.reported_at, EXCLUDED.event_id) > (metric_intervals.reported_at, metric_intervals.event_id)
        RETURNING new.workspace_id, new.entity_id, new.day,
                  {", ".join(f"new.{c} - coalesce(old.{c}, 0) AS {c}" for c in COUNTER_NAMES)},
                  (old.workspace_id IS NULL)::integer AS reports
    ), daily AS (
        INSERT INTO metric_daily (workspace_id, entity_id, day, {_COUNTERS}, reports)
        SELECT workspace_id, entity_id, day, {", ".join(f"sum({c})" for c in COUNTER_NAMES)}, sum(reports)
          FROM kept GROUP BY workspace_id, entity_id, day
        ON CONFLICT (workspace_id, entity_id, day) DO UPDATE
           SET {", ".join(f"{c} = metric_daily.{c} + EXCLUDED.{c}" for c in COUNTER_NAMES)},
               reports = metric_daily.reports + EXCLUDED.reports
    )
    SELECT count(*) FROM kept"""


async def rebucket_account(conn: Conn, workspace_id: str, platform: str, ad_account_id: str,
                           timezone_name: str) -> int:
    """Move every kept interval of the account's entities to its local day in ``timezone_name`` and rebuild
    their daily buckets from the intervals (the account's zone became known or changed); returns intervals."""
    moved = await conn.fetchval(
        """WITH ents AS (SELECT entity_id FROM entities
                          WHERE workspace_id = $1 AND platform = $2 AND ad_account_id = $3),
                upd AS (UPDATE metric_intervals m SET day = (m.interval_start AT TIME ZONE $4)::date
                          FROM ents e WHERE m.workspace_id = $1 AND m.entity_id = e.entity_id RETURNING 1)
           SELECT count(*) FROM upd""", workspace_id, platform, ad_account_id, timezone_name)
    await conn.execute(
        """DELETE FROM metric_daily d USING entities e
            WHERE d.workspace_id = $1 AND e.workspace_id = $1 AND e.entity_id = d.entity_id
              AND e.platform = $2 AND e.ad_account_id = $3""", workspace_id, platform, ad_account_id)
    await conn.execute(
        f"""INSERT INTO metric_daily (workspace_id, entity_id, day, {_COUNTERS}, reports)
            SELECT m.workspace_id, m.entity_id, m.day, {", ".join(f"sum(m.{c})" for c in COUNTER_NAMES)}, count(*)
              FROM metric_intervals m JOIN entities e ON e.workspace_id = m.workspace_id AND e.entity_id = m.entity_id
             WHERE m.workspace_id = $1 AND e.platform = $2 AND e.ad_account_id = $3
             GROUP BY m.workspace_id, m.entity_id, m.day""", workspace_id, platform, ad_account_id)
    return int(moved)


async def upsert_entities(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
    """rows: (workspace_id, entity_id, platform, ad_account_id, entity_type, name, status, daily_budget_cents,
    currency, parent_id, reported_at, interval_start, event_id), one per entity; the latest in the projection's
    entity order (reported_at, interval_start, event_id) wins."""
    if not rows:
        return
    await conn.execute(_UPSERT_ENTITIES, rows)


_ENTITY_COLUMNS = (("workspace_id", "text"), ("entity_id", "text"), ("platform", "text"), ("ad_account_id", "text"),
                   ("entity_type", "text"), ("name", "text"), ("status", "text"), ("daily_budget_cents", "bigint"),
                   ("currency", "text"), ("parent_id", "text"), ("reported_at", "timestamptz"),
                   ("interval_start", "timestamptz"), ("event_id", "uuid"))
_UPSERT_ENTITIES = f"""INSERT INTO entities {json_insert_rows(_ENTITY_COLUMNS)}
       ON CONFLICT (workspace_id, entity_id) DO UPDATE
          SET platform = EXCLUDED.platform, ad_account_id = EXCLUDED.ad_account_id,
              entity_type = EXCLUDED.entity_type, name = EXCLUDED.name, status = EXCLUDED.status,
              daily_budget_cents = EXCLUDED.daily_budget_cents, currency = EXCLUDED.currency,
              parent_id = EXCLUDED.parent_id, reported_at = EXCLUDED.reported_at,
              interval_start = EXCLUDED.interval_start, event_id = EXCLUDED.event_id
        WHERE (EXCLUDED.reported_at, EXCLUDED.interval_start, EXCLUDED.event_id)
            > (entities.reported_at, entities.interval_start, entities.event_id)"""


async def upsert_range_reach(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
    """rows: (workspace_id, entity_id, through, yesterday, last_3d, last_7d, last_14d, last_30d, reported_at,
    event_id), one per entity; a stored range reach is replaced only by a later report's (greater (reported_at,
    event_id): the projection's order)."""
    if rows:
        await conn.execute(_UPSERT_RANGE_REACH, rows)


_RANGE_REACH_COLUMNS = (("workspace_id", "text"), ("entity_id", "text"), ("through", "date"),
                        *((r, "bigint") for r in RANGE_REACH_RANGES),
                        ("reported_at", "timestamptz"), ("event_id", "uuid"))
_UPSERT_RANGE_REACH = f"""INSERT INTO range_reach {json_insert_rows(_RANGE_REACH_COLUMNS)}
       ON CONFLICT (workspace_id, entity_id) DO UPDATE
          SET through = EXCLUDED.through, {", ".join(f"{r} = EXCLUDED.{r}" for r in RANGE_REACH_RANGES)},
              reported_at = EXCLUDED.reported_at, event_id = EXCLUDED.event_id
        WHERE (EXCLUDED.reported_at, EXCLUDED.event_id) > (range_reach.reported_at, range_reach.event_id)"""


def _range_reach(row: Row) -> StoredRangeReach:
    return StoredRangeReach(**dict(row.items()))


async def range_reach(conn: Conn, workspace_id: str, entity_ids: Sequence[str]) -> list[StoredRangeReach]:
    """The platform's latest range reach of each entity that has one."""
    if not entity_ids:
        return []
    rows = await conn.fetch(
        f"SELECT entity_id, through, {', '.join(RANGE_REACH_RANGES)} FROM range_reach "
        "WHERE workspace_id = $1 AND entity_id = ANY($2::text[])", workspace_id, list(entity_ids))
    return [_range_reach(r) for r in rows]


async def account_platforms(conn: Conn, workspace_id: str, account_ids: Iterable[str]) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT DISTINCT ON (ad_account_id) ad_account_id, platform FROM entities "
        "WHERE workspace_id = $1 AND ad_account_id = ANY($2::text[]) ORDER BY ad_account_id, reported_at DESC",
        workspace_id, list(account_ids))
    return {r["ad_account_id"]: r["platform"] for r in rows}


def _entity(row: Row) -> StoredEntity:
    return StoredEntity(**dict(row.items()))


async def scope_entities(conn: Conn, workspace_id: str, account_ids: Sequence[str], level: str,
                         include_deleted: bool, entity_ids: Sequence[str] | None = None) -> list[StoredEntity]:
    """Entities of the accounts at the level (only ``entity_ids`` when given)."""
    rows = await conn.fetch(
        "SELECT entity_id, platform, ad_account_id, entity_type, name, status, daily_budget_cents, currency "
        "FROM entities WHERE workspace_id = $1 AND ad_account_id = ANY($2::text[]) AND entity_type = $3 "
        "AND (status <> 'deleted' OR $4) AND ($5::text[] IS NULL OR entity_id = ANY($5::text[])) ORDER BY entity_id",
        workspace_id, list(account_ids), level, include_deleted, None if entity_ids is None else list(entity_ids))
    return [_entity(r) for r in rows]


def _bucket(row: Row) -> DailyBucket:
    return DailyBucket(entity_id=row["entity_id"], day=row["day"],
                       counters=DailyCounters._make(int(row[c]) for c in COUNTER_NAMES), reports=int(row["reports"]))


async def daily_buckets(conn: Conn, workspace_id: str, entity_ids: Sequence[str], first: date,
                        last: date) -> list[DailyBucket]:
    if not entity_ids:
        return []
    rows = await conn.fetch(
        f"SELECT entity_id, day, {_COUNTERS}, reports FROM metric_daily "
        "WHERE workspace_id = $1 AND entity_id = ANY($2::text[]) AND day BETWEEN $3 AND $4",
        workspace_id, list(entity_ids), first, last)
    return [_bucket(r) for r in rows]


async def entity_count(conn: Conn, workspace_id: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM entities WHERE workspace_id = $1", workspace_id))


# ---------------------------------------------------------------- rules

RULE_COLUMNS = (
    "rule_id, workspace_id, name, definition, status, interval_minutes, template, last_evaluated_at, last_slot, "
    "last_error, auto_pause_reason, auto_paused_at, breaker_reset_at, version, created_by, created_at, updated_at"
)


def _stored(row: Row) -> StoredRule:
    return StoredRule(**dict(row.items()))


async def insert_rule(conn: Conn, *, rule_id: uuid.UUID, workspace_id: str, name: str,
                      definition: dict[str, Any], interval_minutes: int, template: str | None, created_by: str,
                      now: datetime) -> StoredRule:
    row = await conn.fetchrow(
        f"""INSERT INTO rules (rule_id, workspace_id, name, definition, status, interval_minutes, template,
                               created_by, created_at, updated_at)
            VALUES ($1, $2, $3, $4, 'paused', $5, $6, $7, $8, $8) RETURNING {RULE_COLUMNS}""",
        rule_id, workspace_id, name, definition, interval_minutes, template, created_by, now)
    assert row is not None
    return _stored(row)


async def get_rule(conn: Conn, workspace_id: str | None, rule_id: uuid.UUID, *,
                   for_update: bool = False) -> StoredRule | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {RULE_COLUMNS} FROM rules WHERE rule_id = $1 AND ($2::text IS NULL OR workspace_id = $2) "
        f"AND deleted_at IS NULL{lock}", rule_id, workspace_id)
    return None if row is None else _stored(row)


async def list_rules(conn: Conn, workspace_id: str, status: str | None, limit: int,
                     offset: int) -> list[StoredRule]:
    rows = await conn.fetch(
        f"SELECT {RULE_COLUMNS} FROM rules WHERE workspace_id = $1 AND deleted_at IS NULL "
        "AND ($2::text IS NULL OR status = $2) ORDER BY created_at, rule_id LIMIT $3 OFFSET $4",
        workspace_id, status, limit, offset)
    return [_stored(r) for r in rows]


async def lock_rules(conn: Conn, workspace_id: str, rule_ids: Sequence[uuid.UUID]) -> list[StoredRule]:
    rows = await conn.fetch(
        f"SELECT {RULE_COLUMNS} FROM rules WHERE workspace_id = $1 AND rule_id = ANY($2::uuid[]) "
        "AND deleted_at IS NULL ORDER BY rule_id FOR UPDATE", workspace_id, list(rule_ids))
    return [_stored(r) for r in rows]


async def update_definition(conn: Conn, rule_id: uuid.UUID, *, name: str, definition: dict[str, Any],
                            interval_minutes: int, now: datetime) -> StoredRule:
    row = await conn.fetchrow(
        f"""UPDATE rules SET name = $2, definition = $3, interval_minutes = $4, updated_at = $5, version = version + 1
            WHERE rule_id = $1 RETURNING {RULE_COLUMNS}""", rule_id, name, definition, interval_minutes, now)
    assert row is not None
    return _stored(row)


async def set_status(conn: Conn, rule_id: uuid.UUID, status: str, now: datetime) -> StoredRule:
    """Manual activate/pause. Re-activating a rule the circuit breaker paused clears ``auto_pause_reason`` and
    restarts the breaker's window (outcomes before now no longer count); ``last_error`` stays for reference."""
    row = await conn.fetchrow(
        f"""UPDATE rules SET status = $2, updated_at = $3, version = version + 1,
                   breaker_reset_at = CASE WHEN $2 = 'active' AND auto_pause_reason IS NOT NULL THEN $3
                                           ELSE breaker_reset_at END,
                   auto_pause_reason = CASE WHEN $2 = 'active' THEN NULL ELSE auto_pause_reason END
            WHERE rule_id = $1 RETURNING {RULE_COLUMNS}""", rule_id, status, now)
    assert row is not None
    return _stored(row)


async def auto_pause(conn: Conn, rule_id: uuid.UUID, *, reason: str, last_error: str | None,
                     now: datetime) -> StoredRule:
    row = await conn.fetchrow(
        f"""UPDATE rules SET status = 'paused', auto_pause_reason = $2, last_error = $3, auto_paused_at = $4,
                   updated_at = $4, version = version + 1
            WHERE rule_id = $1 RETURNING {RULE_COLUMNS}""", rule_id, reason, last_error, now)
    assert row is not None
    return _stored(row)


async def set_cooldown(conn: Conn, rule_id: uuid.UUID, definition: dict[str, Any],
                       now: datetime) -> StoredRule:
    row = await conn.fetchrow(
        f"""UPDATE rules SET definition = $2, updated_at = $3, version = version + 1
            WHERE rule_id = $1 RETURNING {RULE_COLUMNS}""", rule_id, definition, now)
    assert row is not None
    return _stored(row)


async def soft_delete(conn: Conn, rule_id: uuid.UUID, now: datetime) -> None:
    await conn.execute("UPDATE rules SET deleted_at = $2, status = 'paused', updated_at = $2 WHERE rule_id = $1",
                       rule_id, now)


async def mark_evaluated(conn: Conn, rule_id: uuid.UUID, slot: datetime | None, now: datetime) -> None:
    """Record an evaluation at ``now``; ``slot`` None keeps ``last_slot`` (a manual run of a cron rule)."""
    await conn.execute("UPDATE rules SET last_slot = coalesce($2, last_slot), last_evaluated_at = $3 "
                       "WHERE rule_id = $1", rule_id, slot, now)


async def advance_slot(conn: Conn, rule_id: uuid.UUID, slot: datetime) -> None:
    """Move ``last_slot`` forward to ``slot`` (never back): a cron fire time already claimed counts as done."""
    await conn.execute("UPDATE rules SET last_slot = greatest(last_slot, $2) WHERE rule_id = $1", rule_id, slot)


def _due_rule(row: Row) -> DueRule:
    return DueRule(**dict(row.items()))


async def due_rules(conn: Conn, now: datetime, limit: int) -> list[DueRule]:
    """Active scheduled rules not yet evaluated in the slot (epoch-aligned, per rule interval) containing ``now``
    (trigger-mode rules run when their entities' metrics arrive instead)."""
    rows = await conn.fetch(
        """SELECT rule_id, slot FROM (
               SELECT rule_id, last_slot,
                      to_timestamp(floor(extract(epoch FROM $1::timestamptz) / (interval_minutes * 60))
                                   * interval_minutes * 60) AS slot
                 FROM rules WHERE status = 'active' AND deleted_at IS NULL
                  AND coalesce(definition->'schedule'->>'mode', 'schedule') = 'schedule') r
           WHERE last_slot IS NULL OR last_slot < slot ORDER BY slot, rule_id LIMIT $2""", now, limit)
    return [_due_rule(r) for r in rows]


def _cron_rule(row: Row) -> CronRule:
    return CronRule(**{**dict(row.items()), "ad_account_ids": tuple(row["ad_account_ids"])})


async def cron_rules(conn: Conn) -> list[CronRule]:
    """Every active cron-mode rule with what deciding whether it is due needs (the scheduler reads the
    expression in each scoped account's time zone), in rule id order."""
    rows = await conn.fetch(
        """SELECT rule_id, workspace_id, definition->'schedule'->>'cron' AS cron,
                  ARRAY(SELECT jsonb_array_elements_text(definition->'scope'->'ad_account_ids')) AS ad_account_ids,
                  last_slot, updated_at
             FROM rules WHERE status = 'active' AND deleted_at IS NULL
              AND definition->'schedule'->>'mode' = 'cron'
            ORDER BY rule_id""")
    return [_cron_rule(r) for r in rows]


def _trigger_rule(row: Row) -> TriggerRule:
    return TriggerRule(**dict(row.items()))


async def trigger_rules(conn: Conn, workspace_id: str, account_ids: Sequence[str]) -> list[TriggerRule]:
    """Active trigger-mode rules of the workspace whose scope names any of the accounts, in rule id order."""
    rows = await conn.fetch(
        """SELECT rule_id, definition FROM rules
            WHERE workspace_id = $1 AND status = 'active' AND deleted_at IS NULL
              AND definition->'schedule'->>'mode' = 'trigger'
              AND definition->'scope'->'ad_account_ids' ?| $2::text[]
            ORDER BY rule_id""", workspace_id, list(account_ids))
    return [_trigger_rule(r) for r in rows]


# ---------------------------------------------------------------- audit log


async def audit(conn: Conn, *, workspace_id: str, rule_id: uuid.UUID | None, action: str, actor: str,
                at: datetime, before: Any, after: Any, detail: dict[str, Any] | None = None) -> None:
    await conn.execute(
        "INSERT INTO audit_log (workspace_id, rule_id, action, actor, at, before, after, detail) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        workspace_id, rule_id, action, actor, at, before, after, detail or {})


def _audit_entry(row: Row) -> AuditEntry:
    return AuditEntry(**dict(row.items()))


async def audit_log(conn: Conn, workspace_id: str, *, rule_id: uuid.UUID | None, action: str | None,
                    before_id: int | None, limit: int) -> list[AuditEntry]:
    rows = await conn.fetch(
        "SELECT id, rule_id, action, actor, at, before, after, detail FROM audit_log WHERE workspace_id = $1 "
        "AND ($2::uuid IS NULL OR rule_id = $2) AND ($3::text IS NULL OR action = $3) "
        "AND ($4::bigint IS NULL OR id < $4) ORDER BY id DESC LIMIT $5",
        workspace_id, rule_id, action, before_id, limit)
    return [_audit_entry(r) for r in rows]


# ---------------------------------------------------------------- history facts


async def acting_executions_since(conn: Conn, rule_id: uuid.UUID, since: datetime) -> list[datetime]:
    rows = await conn.fetch(
        "SELECT started_at FROM executions WHERE rule_id = $1 AND acted AND started_at >= $2", rule_id, since)
    return [r["started_at"] for r in rows]


async def last_acted(conn: Conn, rule_id: uuid.UUID, since: datetime) -> dict[str, datetime]:
    """When this rule last sent an action per entity, unless that action is known to have failed.

    A guardrail block starts the cooldown too: a policy refusal (cap, net-change window, arbitration)
    does not lift within minutes, so asking again at every evaluation would only repeat it."""
    rows = await conn.fetch(
        "SELECT entity_id, max(sent_at) AS at FROM rule_actions WHERE rule_id = $1 AND sent_at > $2 "
        "AND (outcome IS NULL OR success OR outcome = 'blocked') GROUP BY entity_id", rule_id, since)
    return {r["entity_id"]: r["at"] for r in rows}


def _pending(row: Row) -> PendingAction:
    return PendingAction(**dict(row.items()))


async def pending_actions(conn: Conn, workspace_id: str, entity_ids: Sequence[str],
                          since: datetime) -> list[PendingAction]:
    rows = await conn.fetch(
        "SELECT entity_id, sent_at FROM rule_actions WHERE workspace_id = $1 AND entity_id = ANY($2::text[]) "
        "AND outcome IS NULL AND sent_at > $3", workspace_id, list(entity_ids), since)
    return [_pending(r) for r in rows]


def _outcome(row: Row) -> StoredOutcome:
    return StoredOutcome(**dict(row.items()))


async def entity_outcomes(conn: Conn, workspace_id: str, entity_ids: Sequence[str],
                          since: datetime) -> list[StoredOutcome]:
    rows = await conn.fetch(
        "SELECT entity_id, outcome_at, success, error FROM rule_actions WHERE workspace_id = $1 "
        "AND entity_id = ANY($2::text[]) AND success IS NOT NULL AND outcome_at > $3",
        workspace_id, list(entity_ids), since)
    return [_outcome(r) for r in rows]


async def rule_outcomes(conn: Conn, rule_id: uuid.UUID, since: datetime) -> list[StoredOutcome]:
    rows = await conn.fetch(
        "SELECT entity_id, outcome_at, success, error FROM rule_actions WHERE rule_id = $1 AND success IS NOT NULL "
        "AND outcome_at > $2", rule_id, since)
    return [_outcome(r) for r in rows]


# ---------------------------------------------------------------- executions


async def insert_execution(conn: Conn, row: dict[str, Any]) -> bool:
    inserted = await conn.fetchval(
        """INSERT INTO executions (execution_id, rule_id, workspace_id, slot_start, started_at, trigger, result,
                                   entities_evaluated, matched, skipped, skip_counts, skipped_entities, actions_count,
                                   request_ids, acted, auto_pause_reason)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
           ON CONFLICT DO NOTHING RETURNING true""",
        row["execution_id"], row["rule_id"], row["workspace_id"], row["slot_start"], row["started_at"],
        row["trigger"], row["result"], row["entities_evaluated"], row["matched"], row["skipped"],
        row["skip_counts"], row["skipped_entities"], row["actions_count"], row["request_ids"], row["acted"],
        row["auto_pause_reason"])
    return bool(inserted)


async def insert_execution_entities(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
    """rows: (execution_id, entity_id, rule_id, platform, ad_account_id, entity_level, snapshot, planned,
    skipped_actions, notify_only)."""
    if rows:
        await conn.executemany(
            "INSERT INTO execution_entities (execution_id, entity_id, rule_id, platform, ad_account_id, entity_level, "
            "snapshot, planned, skipped_actions, notify_only) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", rows)


async def insert_sent_actions(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
    """rows: (action_id, rule_id, workspace_id, execution_id, request_id, entity_id, platform, action_type,
    from_cents, to_cents, from_status, to_status, sent_at)."""
    if not rows:
        return
    cols = [list(c) for c in zip(*rows, strict=True)]
    await conn.execute(
        """INSERT INTO rule_actions (action_id, rule_id, workspace_id, execution_id, request_id, entity_id, platform,
                                     action_type, from_cents, to_cents, from_status, to_status, sent_at)
           SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::uuid[], $6::text[], $7::text[],
                                $8::text[], $9::bigint[], $10::bigint[], $11::text[], $12::text[], $13::timestamptz[])
           ON CONFLICT (action_id) DO NOTHING""", *cols)


EXECUTION_COLUMNS = (
    "execution_id, rule_id, workspace_id, slot_start, started_at, trigger, result, entities_evaluated, matched, "
    "skipped, skip_counts, skipped_entities, actions_count, request_ids, acted, auto_pause_reason"
)


def _execution(row: Row) -> StoredExecution:
    return StoredExecution(**{**dict(row.items()), "request_ids": tuple(row["request_ids"])})


async def execution_for_slot(conn: Conn, rule_id: uuid.UUID, slot: datetime) -> StoredExecution | None:
    row = await conn.fetchrow(f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE rule_id = $1 AND slot_start = $2",
                              rule_id, slot)
    return None if row is None else _execution(row)


async def list_executions(conn: Conn, rule_id: uuid.UUID, limit: int,
                          before: datetime | None) -> list[StoredExecution]:
    rows = await conn.fetch(
        f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE rule_id = $1 "
        "AND ($2::timestamptz IS NULL OR slot_start < $2) ORDER BY slot_start DESC LIMIT $3", rule_id, before, limit)
    return [_execution(r) for r in rows]


def _execution_entity(row: Row) -> StoredExecutionEntity:
    return StoredExecutionEntity(**dict(row.items()))


async def execution_entities(conn: Conn, execution_ids: Sequence[uuid.UUID]) -> list[StoredExecutionEntity]:
    rows = await conn.fetch(
        "SELECT execution_id, entity_id, rule_id, platform, ad_account_id, entity_level, snapshot, planned, "
        "skipped_actions, notify_only FROM execution_entities WHERE execution_id = ANY($1::uuid[]) "
        "ORDER BY execution_id, entity_id", list(execution_ids))
    return [_execution_entity(r) for r in rows]


def _action(row: Row) -> StoredAction:
    return StoredAction(**dict(row.items()))


async def execution_actions(conn: Conn, execution_ids: Sequence[uuid.UUID]) -> list[StoredAction]:
    rows = await conn.fetch(
        "SELECT action_id, execution_id, request_id, entity_id, action_type, from_cents, to_cents, from_status, "
        "to_status, sent_at, outcome, outcome_at, error FROM rule_actions WHERE execution_id = ANY($1::uuid[]) "
        "ORDER BY execution_id, entity_id, action_type", list(execution_ids))
    return [_action(r) for r in rows]


#: FIRE_RESULTS as an SQL literal list: the partial index executions_rule_fires (migration 0006) is used only when
#: the query's predicate is literally its own (a parameter would hide it from the planner).
_FIRES = "(" + ", ".join(f"'{r}'" for r in FIRE_RESULTS) + ")"
#: ($1 rule ids, $2 each rule's start of today): rule_id, last_fired_at, fires_today.
FIRE_STATS_SQL = f"""SELECT u.rule_id, last.started_at AS last_fired_at, today.n AS fires_today
          FROM unnest($1::uuid[], $2::timestamptz[]) AS u(rule_id, since)
          LEFT JOIN LATERAL (SELECT e.started_at FROM executions e
                              WHERE e.rule_id = u.rule_id AND e.result IN {_FIRES}
                              ORDER BY e.started_at DESC LIMIT 1) last ON true
          CROSS JOIN LATERAL (SELECT count(*) AS n FROM executions e
                               WHERE e.rule_id = u.rule_id AND e.result IN {_FIRES}
                                 AND e.started_at >= u.since) today"""


async def fire_stats(conn: Conn, since: Sequence[tuple[uuid.UUID, datetime]]) -> dict[uuid.UUID, FireStats]:
    """Each rule's last fire and its fires at or after its own ``since``, for the whole list in one statement
    (two index lookups per rule on the fires-only ``executions_rule_fires``); every asked rule has an entry."""
    if not since:
        return {}
    rows = await conn.fetch(FIRE_STATS_SQL, [r for r, _ in since], [s for _, s in since])
    return {r["rule_id"]: FireStats(rule_id=r["rule_id"], last_fired_at=r["last_fired_at"],
                                    fires_today=int(r["fires_today"])) for r in rows}


# ---------------------------------------------------------------- outcomes


async def record_outcomes(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> list[uuid.UUID]:
    """rows: (action_id, rule_id, workspace_id, request_id, entity_id, platform, action_type, outcome, success,
    outcome_at, error). Only for rules of that workspace; the first final outcome of an action wins.
    Returns the rule ids that got a new outcome."""
    if not rows:
        return []
    cols = [list(c) for c in zip(*rows, strict=True)]
    changed = await conn.fetch(
        """INSERT INTO rule_actions AS a (action_id, rule_id, workspace_id, request_id, entity_id, platform,
                                          action_type, outcome, success, outcome_at, error)
           SELECT u.* FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::text[],
                                  $8::text[], $9::boolean[], $10::timestamptz[], $11::text[])
                  AS u(action_id, rule_id, workspace_id, request_id, entity_id, platform, action_type, outcome,
                       success, outcome_at, error)
             JOIN rules r ON r.rule_id = u.rule_id AND r.workspace_id = u.workspace_id
           ON CONFLICT (action_id) DO UPDATE
              SET outcome = EXCLUDED.outcome, success = EXCLUDED.success, outcome_at = EXCLUDED.outcome_at,
                  error = EXCLUDED.error
            WHERE a.outcome IS NULL AND a.workspace_id = EXCLUDED.workspace_id
           RETURNING a.rule_id""", *cols)
    return sorted({r["rule_id"] for r in changed})


async def record_blocked(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> list[uuid.UUID]:
    """rows: (request_id, workspace_id, outcome, outcome_at, error): every still-pending action of the change set."""
    if not rows:
        return []
    cols = [list(c) for c in zip(*rows, strict=True)]
    changed = await conn.fetch(
        """UPDATE rule_actions a SET outcome = u.outcome, outcome_at = u.at, error = u.error
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::text[])
                  AS u(request_id, workspace_id, outcome, at, error)
            WHERE a.request_id = u.request_id AND a.workspace_id = u.workspace_id AND a.outcome IS NULL
           RETURNING a.rule_id""", *cols)
    return sorted({r["rule_id"] for r in changed})


async def pending_of_requests(conn: Conn, requests: Sequence[tuple[uuid.UUID, str]]
                              ) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    """(request_id, action_id, entity_id) of the still-pending actions of the (request_id, workspace_id) change
    sets, in one statement."""
    if not requests:
        return []
    rows = await conn.fetch(
        """SELECT a.request_id, a.action_id, a.entity_id
             FROM rule_actions a JOIN unnest($1::uuid[], $2::text[]) AS u(request_id, workspace_id)
               ON a.request_id = u.request_id AND a.workspace_id = u.workspace_id
            WHERE a.outcome IS NULL ORDER BY a.action_id""", [r for r, _ in requests], [w for _, w in requests])
    return [(r["request_id"], r["action_id"], r["entity_id"]) for r in rows]


async def record_dropped(conn: Conn, rows: Sequence[tuple[uuid.UUID, datetime, str]]) -> None:
    """rows: (action_id, outcome_at, error) of still-pending actions the guardrails dropped: outcome ``blocked``."""
    if not rows:
        return
    cols = [list(c) for c in zip(*rows, strict=True)]
    await conn.execute(
        """UPDATE rule_actions a SET outcome = 'blocked', outcome_at = u.at, error = u.error
             FROM unnest($1::uuid[], $2::timestamptz[], $3::text[]) AS u(action_id, at, error)
            WHERE a.action_id = u.action_id AND a.outcome IS NULL""", *cols)


def day_start(now: datetime) -> datetime:
    """00:00 UTC of ``now``'s day."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def ago(now: datetime, **kw: float) -> datetime:
    return now - timedelta(**kw)
