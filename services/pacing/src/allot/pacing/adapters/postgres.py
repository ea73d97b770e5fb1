"""All SQL of the pacing service: functions taking an asyncpg connection (search_path = the pacing schema)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from allot.pacing.domain.stored import (
    StoredAction,
    StoredBlockedProposal,
    StoredDelivery,
    StoredDuePlan,
    StoredOpenProposal,
    StoredPlan,
    StoredProposal,
    StoredSnapshot,
    StoredTransition,
)
from allot.runtime.db import Conn, json_insert_rows

Row = Any  # asyncpg.Record (asyncpg ships no type stubs)



async def _fetch(conn: Conn, sql: str, *args: Any) -> list[Row]:
    rows: list[Row] = await conn.fetch(sql, *args)
    return rows


# ---------------------------------------------------------------- plans

PLAN_COLUMNS = (
    "plan_id, workspace_id, campaign_id, name, currency, total_budget_cents, flight_start, flight_end, channels, "
    "deals, curve, thresholds, requires_approval, snapshot_interval_s, escalate_after_s, state, held_since, "
    "last_slot_at, created_at, updated_at, created_by"
)


def _plan(row: Row) -> StoredPlan:
    return StoredPlan(**dict(row.items()))


async def insert_plan(conn: Conn, plan: dict[str, Any]) -> None:
    await conn.execute(
        f"INSERT INTO flight_plans ({PLAN_COLUMNS}) VALUES "
        "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
        *(plan[c.strip()] for c in PLAN_COLUMNS.split(",")),
    )


async def update_plan_definition(conn: Conn, plan: dict[str, Any]) -> None:
    """Overwrite the editable fields of a plan (state is changed only by set_plan_state)."""
    await conn.execute(
        "UPDATE flight_plans SET campaign_id = $2, name = $3, total_budget_cents = $4, flight_start = $5, "
        "flight_end = $6, channels = $7, deals = $8, curve = $9, thresholds = $10, requires_approval = $11, "
        "snapshot_interval_s = $12, escalate_after_s = $13, updated_at = $14 WHERE plan_id = $1",
        plan["plan_id"], plan["campaign_id"], plan["name"], plan["total_budget_cents"], plan["flight_start"],
        plan["flight_end"], plan["channels"], plan["deals"], plan["curve"], plan["thresholds"],
        plan["requires_approval"], plan["snapshot_interval_s"], plan["escalate_after_s"], plan["updated_at"],
    )


async def replace_plan_entities(conn: Conn, plan_id: str, workspace_id: str,
                                rows: Sequence[tuple[str, str, str, str, str, str]]) -> None:
    """rows: (kind, name, platform, ad_account_id, entity_type, entity_id)."""
    await conn.execute("DELETE FROM plan_entities WHERE plan_id = $1", plan_id)
    if rows:
        await conn.executemany(
            "INSERT INTO plan_entities (plan_id, workspace_id, kind, name, platform, ad_account_id, entity_type, "
            "entity_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [(plan_id, workspace_id, *r) for r in rows],
        )


async def get_plan(conn: Conn, workspace_id: str, plan_id: str, *,
                   for_update: bool = False) -> StoredPlan | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {PLAN_COLUMNS} FROM flight_plans WHERE workspace_id = $1 AND plan_id = $2{lock}", workspace_id, plan_id
    )
    return None if row is None else _plan(row)


async def list_plans(conn: Conn, workspace_id: str, *, campaign_id: str | None, state: str | None,
                     limit: int) -> list[StoredPlan]:
    rows = await _fetch(
        conn,
        f"SELECT {PLAN_COLUMNS} FROM flight_plans WHERE workspace_id = $1 "
        "AND ($2::text IS NULL OR campaign_id = $2) AND ($3::text IS NULL OR state = $3) "
        "ORDER BY created_at DESC, plan_id LIMIT $4",
        workspace_id, campaign_id, state, limit,
    )
    return [_plan(r) for r in rows]


async def lock_plans(conn: Conn, plan_ids: Sequence[str]) -> list[StoredPlan]:
    """Lock plans in plan_id order (a fixed order keeps concurrent snapshot passes free of deadlocks)."""
    rows = await _fetch(
        conn,
        f"SELECT {PLAN_COLUMNS} FROM flight_plans WHERE plan_id = ANY($1::text[]) ORDER BY plan_id FOR UPDATE",
        list(plan_ids),
    )
    return [_plan(r) for r in rows]


async def due_plans(conn: Conn, now: datetime, limit: int) -> list[StoredDuePlan]:
    """ACTIVE/PACING_HOLD plans whose current slot (epoch-aligned, per-plan interval) has no snapshot yet.

    The first scheduled slot of a plan is the first one starting after its creation; the last is the
    slot containing flight_end (so a final snapshot is taken at or just after the end).
    """
    rows = await _fetch(
        conn,
        """
        SELECT plan_id, slot FROM (
            SELECT plan_id, last_slot_at, created_at, flight_end,
                   to_timestamp(floor(extract(epoch FROM $1::timestamptz) / snapshot_interval_s)
                                * snapshot_interval_s) AS slot
            FROM flight_plans
            WHERE state IN ('ACTIVE', 'PACING_HOLD') AND flight_start <= $1
        ) d
        WHERE (last_slot_at IS NULL OR last_slot_at < slot) AND slot > created_at AND slot <= flight_end
        ORDER BY plan_id LIMIT $2
        """,
        now, limit,
    )
    return [StoredDuePlan(**dict(r.items())) for r in rows]


async def set_plan_state(conn: Conn, plan_id: str, state: str, held_since: datetime | None,
                         now: datetime) -> None:
    await conn.execute(
        "UPDATE flight_plans SET state = $2, held_since = $3, updated_at = $4 WHERE plan_id = $1",
        plan_id, state, held_since, now,
    )


async def record_snapshot_on_plans(conn: Conn,
                                   rows: Sequence[tuple[str, str, datetime | None, datetime]]) -> None:
    """rows: (plan_id, state, held_since, slot_at)."""
    await conn.executemany(
        "UPDATE flight_plans SET state = $2, held_since = $3, "
        "last_slot_at = GREATEST(COALESCE(last_slot_at, $4), $4) WHERE plan_id = $1",
        rows,
    )


async def shift_allocation(conn: Conn, plan_id: str, channels: Any, now: datetime) -> None:
    await conn.execute("UPDATE flight_plans SET channels = $2, updated_at = $3 WHERE plan_id = $1",
                       plan_id, channels, now)


async def insert_transitions(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
    """rows: (plan_id, workspace_id, from_state, to_state, reason, actor, snapshot_id, at)."""
    if rows:
        await conn.executemany(
            "INSERT INTO pacing_transitions (plan_id, workspace_id, from_state, to_state, reason, actor, snapshot_id, "
            "at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            rows,
        )


async def list_transitions(conn: Conn, plan_id: str, limit: int) -> list[StoredTransition]:
    rows = await _fetch(
        conn,
        "SELECT from_state, to_state, reason, actor, snapshot_id, at FROM pacing_transitions "
        "WHERE plan_id = $1 ORDER BY at DESC, id DESC LIMIT $2", plan_id, limit)
    return [StoredTransition(**dict(r.items())) for r in rows]


# ---------------------------------------------------------------- metrics projection


async def upsert_metric_reports(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
    """Keep the latest report per (workspace, platform, entity, interval_start); ties go to the greater event id.

    rows (at most one per key): (workspace_id, platform, entity_id, interval_start, interval_end, reported_at,
    event_id, ad_account_id, entity_type, currency, spend_cents, impressions, daily_budget_cents).
    """
    if not rows:
        return
    await conn.execute(_UPSERT_REPORTS, rows)


_REPORT_COLUMNS = (("workspace_id", "text"), ("platform", "text"), ("entity_id", "text"),
                   ("interval_start", "timestamptz"), ("interval_end", "timestamptz"), ("reported_at", "timestamptz"),
                   ("event_id", "uuid"), ("ad_account_id", "text"), ("entity_type", "text"), ("currency", "text"),
                   ("spend_cents", "bigint"), ("impressions", "bigint"), ("daily_budget_cents", "bigint"))
_UPSERT_REPORTS = f"""
    INSERT INTO metric_reports AS m {json_insert_rows(_REPORT_COLUMNS)}
    ON CONFLICT (workspace_id, platform, entity_id, interval_start) DO UPDATE SET
        interval_end = EXCLUDED.interval_end, reported_at = EXCLUDED.reported_at, event_id = EXCLUDED.event_id,
        ad_account_id = EXCLUDED.ad_account_id, entity_type = EXCLUDED.entity_type,
        currency = EXCLUDED.currency, spend_cents = EXCLUDED.spend_cents, impressions = EXCLUDED.impressions,
        daily_budget_cents = EXCLUDED.daily_budget_cents
    WHERE (EXCLUDED.reported_at, EXCLUDED.event_id) > (m.reported_at, m.event_id)
    """


async def delivery_for(conn: Conn, plan_ids: Sequence[str],
                       taken_ats: Sequence[datetime]) -> list[StoredDelivery]:
    """Spend and impressions per (plan, kind, name): sums over the latest report of every interval that starts
    inside the flight and before the snapshot time, in the plan's currency."""
    rows = await _fetch(
        conn,
        """
        SELECT e.plan_id, e.kind, e.name, sum(m.spend_cents)::bigint AS spend_cents,
               sum(m.impressions)::bigint AS impressions
        FROM unnest($1::text[], $2::timestamptz[]) AS t(plan_id, taken_at)
        JOIN flight_plans p ON p.plan_id = t.plan_id
        JOIN plan_entities e ON e.plan_id = t.plan_id
        JOIN metric_reports m ON m.workspace_id = e.workspace_id AND m.platform = e.platform
                              AND m.entity_id = e.entity_id
        WHERE m.interval_start >= p.flight_start AND m.interval_start < p.flight_end
          AND m.interval_start < t.taken_at AND m.currency = p.currency
        GROUP BY e.plan_id, e.kind, e.name
        """,
        list(plan_ids), list(taken_ats),
    )
    return [StoredDelivery(**dict(r.items())) for r in rows]


async def latest_budgets(conn: Conn, workspace_id: str,
                         refs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int | None]:
    """Current daily budget (cents) of each (platform, entity_id): the most recent observation among the
    entity's latest metrics report (at reported_at) and this service's own budget changes that the executor
    reported as applied (at executed_at); None when the latest observation has no daily budget."""
    keys = sorted(set(refs))
    if not keys:
        return {}
    rows = await conn.fetch(
        """
        SELECT k.platform, k.entity_id, r.daily_budget_cents
        FROM unnest($2::text[], $3::text[]) AS k(platform, entity_id)
        CROSS JOIN LATERAL (
            SELECT daily_budget_cents, observed_at FROM (
                (SELECT m.daily_budget_cents, m.reported_at AS observed_at FROM metric_reports m
                 WHERE m.workspace_id = $1 AND m.platform = k.platform AND m.entity_id = k.entity_id
                 ORDER BY m.reported_at DESC, m.interval_start DESC LIMIT 1)
                UNION ALL
                (SELECT a.to_cents, a.executed_at FROM proposal_actions a
                 JOIN pacing_proposals p ON p.proposal_id = a.proposal_id
                 WHERE p.workspace_id = $1 AND a.platform = k.platform AND a.entity_id = k.entity_id
                   AND a.outcome IN ('succeeded', 'already_applied') AND a.executed_at IS NOT NULL
                 ORDER BY a.executed_at DESC LIMIT 1)
            ) o ORDER BY observed_at DESC LIMIT 1
        ) r
        """,
        workspace_id, [k[0] for k in keys], [k[1] for k in keys],
    )
    return {(r["platform"], r["entity_id"]): r["daily_budget_cents"] for r in rows}


# ---------------------------------------------------------------- snapshots

SNAPSHOT_COLUMNS = (
    "snapshot_id, plan_id, workspace_id, campaign_id, slot_at, taken_at, trigger, currency, total_budget_cents, "
    "total_spend_cents, expected_spend_cents, pacing_pct, deviation_pct, state_before, state, alert, channels, deals, "
    "proposal_ids"
)


def _snapshot(row: Row) -> StoredSnapshot:
    return StoredSnapshot(**dict(row.items()))


async def last_pacing_changes(conn: Conn, workspace_id: str,
                              refs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], datetime]:
    """When this service last changed each (platform, entity_id): the executor's executed_at of an applied
    action, or the decision time of an action still in flight (requested, no outcome yet)."""
    keys = sorted(set(refs))
    if not keys:
        return {}
    rows = await conn.fetch(
        """
        SELECT a.platform, a.entity_id, max(COALESCE(a.executed_at, p.decided_at)) AS changed_at
        FROM unnest($2::text[], $3::text[]) AS k(platform, entity_id)
        JOIN proposal_actions a ON a.platform = k.platform AND a.entity_id = k.entity_id
        JOIN pacing_proposals p ON p.proposal_id = a.proposal_id
        WHERE p.workspace_id = $1
          AND (a.outcome IN ('succeeded', 'already_applied') OR (a.outcome IS NULL AND p.status = 'requested'))
        GROUP BY a.platform, a.entity_id
        """,
        workspace_id, [k[0] for k in keys], [k[1] for k in keys],
    )
    return {(r["platform"], r["entity_id"]): r["changed_at"] for r in rows if r["changed_at"] is not None}


async def insert_snapshots(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
    if rows:
        await conn.executemany(
            f"INSERT INTO pacing_snapshots ({SNAPSHOT_COLUMNS}) VALUES "
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
            rows,
        )


async def snapshot_at_slot(conn: Conn, plan_id: str, slot_at: datetime) -> StoredSnapshot | None:
    row = await conn.fetchrow(
        f"SELECT {SNAPSHOT_COLUMNS} FROM pacing_snapshots WHERE plan_id = $1 AND slot_at = $2", plan_id, slot_at)
    return None if row is None else _snapshot(row)


async def latest_snapshot(conn: Conn, plan_id: str) -> StoredSnapshot | None:
    row = await conn.fetchrow(
        f"SELECT {SNAPSHOT_COLUMNS} FROM pacing_snapshots WHERE plan_id = $1 ORDER BY taken_at DESC, slot_at DESC "
        "LIMIT 1", plan_id)
    return None if row is None else _snapshot(row)


async def list_snapshots(conn: Conn, workspace_id: str, *, plan_id: str | None, campaign_id: str | None,
                         start_time: datetime | None, end_time: datetime | None,
                         limit: int) -> list[StoredSnapshot]:
    """Snapshots with start_time <= taken_at <= end_time, oldest first."""
    rows = await _fetch(
        conn,
        f"SELECT {SNAPSHOT_COLUMNS} FROM pacing_snapshots WHERE workspace_id = $1 "
        "AND ($2::text IS NULL OR plan_id = $2) AND ($3::text IS NULL OR campaign_id = $3) "
        "AND ($4::timestamptz IS NULL OR taken_at >= $4) AND ($5::timestamptz IS NULL OR taken_at <= $5) "
        "ORDER BY taken_at, slot_at LIMIT $6",
        workspace_id, plan_id, campaign_id, start_time, end_time, limit,
    )
    return [_snapshot(r) for r in rows]


# ---------------------------------------------------------------- proposals

PROPOSAL_COLUMNS = (
    "proposal_id, plan_id, workspace_id, snapshot_id, slot_key, source_channel, target_channel, amount_cents, "
    "moved_cents, currency, reason, requires_approval, status, status_reason, request_id, correlation_id, created_at, "
    "decided_at, decided_by, completed_at"
)


def _proposal(row: Row) -> StoredProposal:
    return StoredProposal(**dict(row.items()))


async def insert_proposals(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
    """rows: (proposal_id, plan_id, workspace_id, snapshot_id, slot_key, source, target, amount_cents, currency,
    reason, requires_approval, status, correlation_id, created_at)."""
    if rows:
        await conn.executemany(
            "INSERT INTO pacing_proposals (proposal_id, plan_id, workspace_id, snapshot_id, slot_key, source_channel, "
            "target_channel, amount_cents, currency, reason, requires_approval, status, correlation_id, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING",
            rows,
        )


async def open_proposals(conn: Conn, plan_ids: Sequence[str]) -> list[StoredOpenProposal]:
    """The plans' open proposals (pending_approval, needs_budget), oldest first."""
    rows = await _fetch(
        conn,
        "SELECT proposal_id, plan_id, source_channel, target_channel, amount_cents, status FROM pacing_proposals "
        "WHERE plan_id = ANY($1::text[]) AND status IN ('pending_approval', 'needs_budget') ORDER BY created_at",
        list(plan_ids))
    return [StoredOpenProposal(**dict(r.items())) for r in rows]


async def supersede_proposals(conn: Conn, proposal_ids: Sequence[uuid.UUID], now: datetime) -> int:
    """Close open proposals a newer snapshot replaced (their situation changed materially or ended)."""
    if not proposal_ids:
        return 0
    result = await conn.execute(
        "UPDATE pacing_proposals SET status = 'superseded', status_reason = 'a newer snapshot replaced it', "
        "decided_at = $2 WHERE proposal_id = ANY($1::uuid[]) AND status IN ('pending_approval', 'needs_budget')",
        list(proposal_ids), now)
    return int(result.split()[-1])


async def current_proposal(conn: Conn, plan_id: str, source: str, target: str, *,
                           for_update: bool = False) -> StoredProposal | None:
    """The newest open proposal of a plan's (source, target) pair, if any."""
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {PROPOSAL_COLUMNS} FROM pacing_proposals WHERE plan_id = $1 AND source_channel = $2 "
        f"AND target_channel = $3 AND status IN ('pending_approval', 'needs_budget') "
        f"ORDER BY created_at DESC LIMIT 1{lock}", plan_id, source, target)
    return None if row is None else _proposal(row)


async def get_proposal(conn: Conn, plan_id: str, proposal_id: uuid.UUID, *,
                       for_update: bool = False) -> StoredProposal | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {PROPOSAL_COLUMNS} FROM pacing_proposals WHERE plan_id = $1 AND proposal_id = $2{lock}",
        plan_id, proposal_id)
    return None if row is None else _proposal(row)


async def list_proposals(conn: Conn, plan_id: str, statuses: Sequence[str] | None,
                         limit: int) -> list[StoredProposal]:
    rows = await _fetch(
        conn,
        f"SELECT {PROPOSAL_COLUMNS} FROM pacing_proposals WHERE plan_id = $1 "
        "AND ($2::text[] IS NULL OR status = ANY($2::text[])) ORDER BY created_at DESC, proposal_id LIMIT $3",
        plan_id, list(statuses) if statuses is not None else None, limit)
    return [_proposal(r) for r in rows]


async def proposal_actions(conn: Conn, proposal_ids: Sequence[uuid.UUID]) -> list[StoredAction]:
    rows = await _fetch(
        conn,
        "SELECT action_id, proposal_id, role, platform, ad_account_id, entity_type, entity_id, from_cents, to_cents, "
        "outcome, error, executed_at FROM proposal_actions WHERE proposal_id = ANY($1::uuid[]) ORDER BY role DESC",
        list(proposal_ids))
    return [StoredAction(**dict(r.items())) for r in rows]


async def set_proposal_status(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
    """rows: (proposal_id, status, status_reason, request_id, moved_cents, decided_at, decided_by)."""
    if rows:
        await conn.executemany(
            "UPDATE pacing_proposals SET status = $2, status_reason = $3, request_id = COALESCE($4, request_id), "
            "moved_cents = COALESCE($5, moved_cents), decided_at = COALESCE($6, decided_at), "
            "decided_by = CASE WHEN $7 = '' THEN decided_by ELSE $7 END WHERE proposal_id = $1",
            rows,
        )


async def insert_proposal_actions(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
    """rows: (action_id, proposal_id, role, platform, ad_account_id, entity_type, entity_id, from_cents, to_cents)."""
    if rows:
        await conn.executemany(
            "INSERT INTO proposal_actions (action_id, proposal_id, role, platform, ad_account_id, entity_type, "
            "entity_id, from_cents, to_cents) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
            rows,
        )


async def record_action_outcomes(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> list[uuid.UUID]:
    """rows: (action_id, workspace_id, outcome, error, executed_at). The first outcome of an action is kept.

    Returns the proposals touched (only actions of requested proposals of the same workspace are recorded).
    """
    if not rows:
        return []
    cols = list(zip(*rows, strict=True))
    touched = await conn.fetch(
        """
        UPDATE proposal_actions a SET outcome = u.outcome, error = u.error, executed_at = u.executed_at
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
             AS u(action_id, workspace_id, outcome, error, executed_at),
             pacing_proposals p
        WHERE a.action_id = u.action_id AND a.outcome IS NULL AND p.proposal_id = a.proposal_id
          AND p.workspace_id = u.workspace_id
        RETURNING a.proposal_id
        """,
        *[list(c) for c in cols],
    )
    return sorted({r["proposal_id"] for r in touched})


async def lock_proposals(conn: Conn, proposal_ids: Sequence[uuid.UUID]) -> list[StoredProposal]:
    rows = await _fetch(
        conn,
        f"SELECT {PROPOSAL_COLUMNS} FROM pacing_proposals WHERE proposal_id = ANY($1::uuid[]) "
        "ORDER BY proposal_id FOR UPDATE", list(proposal_ids))
    return [_proposal(r) for r in rows]


async def complete_proposal(conn: Conn, proposal_id: uuid.UUID, status: str, reason: str,
                            at: datetime) -> None:
    await conn.execute(
        "UPDATE pacing_proposals SET status = $2, status_reason = $3, completed_at = $4 WHERE proposal_id = $1",
        proposal_id, status, reason, at)


async def block_proposals(conn: Conn, rows: Sequence[tuple[uuid.UUID, str, str, str]],
                          now: datetime) -> list[StoredBlockedProposal]:
    """rows: (request_id, workspace_id, reason, status). Closes the requested proposal of each change set the
    guardrails refused (only one of the same workspace, and only while requested) with that status and reason."""
    blocked = await _fetch(
        conn,
        """UPDATE pacing_proposals p SET status = u.status, status_reason = u.reason, completed_at = $5
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS u(request_id, ws, reason, status)
            WHERE p.request_id = u.request_id AND p.workspace_id = u.ws AND p.status = 'requested'
        RETURNING p.proposal_id, p.status""",
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows], now)
    return [StoredBlockedProposal(**dict(r.items())) for r in blocked]
