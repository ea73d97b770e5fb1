"""The #12 migrations on a database that already breaks "one pool per entity" (rows written before 0004): each
entity keeps one membership (an active pool's before a paused one's, then the oldest), the others are deactivated
with a note on their pool; then the unique index holds. 0005 adds the engine settings as NULL (engine defaults),
0006 drops tier."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from allot.runtime.db import create_pool, load_migrations, migrate

T0 = datetime(2026, 9, 1, tzinfo=UTC)


async def test_one_pool_per_entity_migration_resolves_existing_duplicates(settings: Any) -> None:
    pools_migrations = load_migrations("pools", "allot.pools.migrations")
    before = [m for m in pools_migrations if m.version <= 3]
    pool = await create_pool(settings.database_url, settings.schema, max_size=2)
    try:
        await migrate(pool, settings.schema, load_migrations("runtime", "allot.runtime.migrations") + before)
        old, paused, new, other_ws = (uuid.uuid4() for _ in range(4))
        for pid, ws, status, age in [
            (old, "ws", "active", 3),
            (paused, "ws", "paused", 4),
            (new, "ws", "active", 1),
            (other_ws, "ws2", "active", 1),
        ]:
            await pool.execute(
                """INSERT INTO pools (pool_id, workspace_id, name, optimization_metric, daily_budget_cents, currency,
                                      allocation_frequency_hours, default_min_budget_cents, min_budget_change_cents,
                                      status, tier, autonomy, created_at, updated_at)
                   VALUES ($1, $2, $3, 'roas', 10000, 'EUR', 24, 0, 100, $4, 2, 'observe', $5, $5)""",
                pid, ws, f"pool {status} {age}", status, T0 - timedelta(days=age),
            )

        async def member(pid: uuid.UUID, ws: str, entity: str, age: int, active: bool = True) -> uuid.UUID:
            mid = uuid.uuid4()
            await pool.execute(
                """INSERT INTO pool_members (member_id, pool_id, workspace_id, entity_type, entity_id, platform,
                                             currency, is_active, created_at, updated_at)
                   VALUES ($1, $2, $3, 'adset', $4, 'meta', 'EUR', $5, $6, $6)""",
                mid, pid, ws, entity, active, T0 - timedelta(days=age),
            )
            return mid

        # e1: in the old and the new active pool → the old keeps it
        e1_old, e1_new = await member(old, "ws", "e1", 3), await member(new, "ws", "e1", 1)
        # e2: in a paused pool (older) and an active one → the active pool keeps it
        e2_paused, e2_new = await member(paused, "ws", "e2", 4), await member(new, "ws", "e2", 1)
        # e3: once active, once inactive → nothing to do; e4: same id in another workspace → nothing to do
        await member(old, "ws", "e3", 3)
        await member(new, "ws", "e3", 1, active=False)
        await member(new, "ws", "e4", 1)
        await member(other_ws, "ws2", "e4", 1)

        applied = await migrate(pool, settings.schema, pools_migrations)
        assert applied[:3] == ["pools:0004_one_pool_per_entity", "pools:0005_pool_engine_settings",
                               "pools:0006_drop_pool_tier"]
        assert len(applied) == len(pools_migrations) - len(before)  # later ones (0007 ad_accounts, ...) too
        rows = await pool.fetch("SELECT member_id, is_active FROM pool_members")
        active = {r["member_id"]: r["is_active"] for r in rows}
        assert active[e1_old] and not active[e1_new]
        assert active[e2_new] and not active[e2_paused]
        assert sum(active.values()) == 5  # e1, e2, e3, e4 twice (two workspaces)
        notes = {r["pool_id"]: r for r in await pool.fetch("SELECT * FROM pool_notes")}
        assert set(notes) == {new, paused}
        assert notes[new]["kind"] == "member_deactivated_duplicate" and notes[new]["body"]["entityId"] == "e1"
        assert notes[new]["body"]["keptInPoolId"] == str(old) and str(old) in notes[new]["body"]["message"]
        assert notes[paused]["body"]["keptInPoolId"] == str(new) and notes[paused]["body"]["entityId"] == "e2"

        # now the database refuses a second active membership itself
        with pytest.raises(asyncpg.UniqueViolationError):
            await pool.execute("UPDATE pool_members SET is_active = true WHERE member_id = $1", e1_new)
        # 0005: the engine settings are NULL (engine defaults) for existing pools; 0006: tier is gone
        row = await pool.fetchrow("SELECT * FROM pools WHERE pool_id = $1", old)
        assert row["persistence_intervals"] is None and row["composite_weights"] is None and "tier" not in dict(row)
        with pytest.raises(asyncpg.CheckViolationError):
            await pool.execute("UPDATE pools SET exploration_share = 0.2 WHERE pool_id = $1", old)
    finally:
        await pool.close()
