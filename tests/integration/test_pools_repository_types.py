"""The pools repository on the real Postgres returns the domain's types (domain/stored.py), never asyncpg rows: every
reading function gives its frozen dataclass, each field holding what its annotation says; history_of's intervals
(built from the values in order) keep each column in its field; and domain/stored.py needs only the standard
library."""

from __future__ import annotations

import types
import typing
import uuid
from dataclasses import FrozenInstanceError, fields, is_dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from allot.pools import workflow
from allot.pools.adapters import postgres as db
from allot.pools.domain import stored
from allot.runtime.db import open_database
from tests.support.stored_types import assert_frozen_and_slotted, imports_beyond_stdlib

NOW = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
WS = "ws-types"


@pytest.fixture
async def pool(settings: Any) -> Any:
    pool = await open_database(settings.database_url, settings.schema, "allot.pools.migrations", "pools",
                               accounts=True)
    yield pool
    await pool.close()


def _holds(value: Any, annotation: Any) -> bool:
    """Whether ``value`` is what ``annotation`` (a resolved field type of domain/stored.py) says."""
    if annotation is Any:
        return True
    if isinstance(annotation, types.UnionType):
        return any(_holds(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    origin = typing.get_origin(annotation)
    if origin is list:
        (item,) = typing.get_args(annotation)
        return isinstance(value, list) and all(_holds(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(annotation)
        return isinstance(value, dict) and all(_holds(k, key) and _holds(v, item) for k, v in value.items())
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, float)
    return isinstance(value, annotation)


def _check(obj: Any, cls: type) -> None:
    assert type(obj) is cls, (type(obj), cls)
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        value = getattr(obj, f.name)
        assert _holds(value, hints[f.name]), (cls.__name__, f.name, type(value), value)


def _settings(name: str) -> dict[str, Any]:
    return {"name": name, "optimization_metric": "roas", "daily_budget_cents": 30_000, "currency": "EUR",
            "allocation_frequency_hours": 8, "default_min_budget_cents": 1_000, "default_max_budget_cents": None,
            "min_budget_change_cents": 500, "status": "active", "autonomy": "live", "persistence_intervals": None,
            "cooldown_hours": 6.0, "deadband_pct": None, "exploration_share": None,
            "composite_weights": {"roas": 0.7, "cpa": 0.1, "frequency_risk": 0.1, "engagement_decay": 0.1}}


def _member(entity_id: str) -> dict[str, Any]:
    return {"entity_type": "adset", "entity_id": entity_id, "ad_account_id": "act-1", "entity_name": entity_id,
            "platform": "sandbox", "currency": "EUR", "min_budget_cents": None, "max_budget_cents": 9_000,
            "weight": 1.0, "is_active": True}


async def test_every_reading_function_returns_its_domain_type(pool: Any) -> None:
    created = NOW - timedelta(days=3)
    p1, p2 = uuid.UUID(int=1), uuid.UUID(int=2)
    async with pool.acquire() as conn:
        first = await db.insert_pool(conn, p1, WS, _settings("one"), created)
        await db.insert_pool(conn, p2, WS, _settings("two"), created)
        for pool_id, entity in ((p1, "e1"), (p1, "e2"), (p2, "e3")):
            await db.upsert_member(conn, pool_id, WS, _member(entity), created)
        await conn.execute(
            "INSERT INTO ad_accounts (workspace_id, platform, ad_account_id, name, currency, timezone_name,"
            " account_status, state, observed_at, updated_at)"
            " VALUES ($1, 'sandbox', 'act-1', 'Account', 'EUR', 'Europe/Berlin', 'active', 'connected', $2, $2)",
            WS, created)
        reported = NOW - timedelta(hours=1)
        await db.upsert_entities(conn, [
            (WS, "e1", "sandbox", "act-1", "adset", "e1", "active", 10_000, "EUR", reported, reported, uuid.uuid4()),
            (WS, "e2", "sandbox", "act-1", "adset", "e2", "paused", None, "EUR", reported, reported, uuid.uuid4()),
            (WS, "e4", "sandbox", "act-2", "adset", "e4", "active", 5_000, "EUR", reported, reported, uuid.uuid4()),
        ])
        start = NOW - timedelta(days=1)
        await db.upsert_metrics(conn, [
            (WS, "e1", start, start + timedelta(hours=1), reported, uuid.uuid4(), 101, 202, 3, 404, 5, 6),
            (WS, "e1", start - timedelta(days=9), start - timedelta(days=9, hours=-1), reported, uuid.uuid4(),
             1, 2, 3, 4, 5, 6),
        ])
        await db.insert_note(conn, uuid.uuid4(), p1, WS, "pacing_reallocation_recommended", NOW, {"amountCents": 5})
        members = await db.members_of(conn, [p1], active_only=True)
        alloc, _ = await workflow.queue_allocation(conn, first, members, trigger="manual", key="k", slot="s",
                                                   requested_by="test", now=NOW)
        other, _ = await workflow.queue_allocation(conn, first, members, trigger="manual", key="k2", slot="s2",
                                                   requested_by="test", now=NOW)
        await db.save_plan(conn, alloc.allocation_id, status="requested", inputs={}, plan={},
                           actions=[{"actionId": "a"}, {"actionId": "b"}], planned_at=NOW, event_id=None)
        await db.save_plan(conn, other.allocation_id, status="requested", inputs={}, plan={}, actions=[],
                           planned_at=NOW, event_id=None)
        touched = await db.record_outcomes(conn, [
            (uuid.uuid4(), alloc.allocation_id, WS, "e1", "succeeded", 10_000, 11_000, 11_000, None, NOW),
            (uuid.uuid4(), alloc.allocation_id, WS, "e2", "failed", None, None, None, "boom", NOW),
        ])

        got: list[tuple[Any, type]] = [
            (await db.get_pool(conn, WS, p1), stored.StoredPool),
            (members[0], stored.StoredMember),
            (await db.get_allocation(conn, alloc.allocation_id), stored.StoredAllocation),
        ]
        [due, _] = await db.due_pools(conn, NOW, 10)
        got.append((due, stored.StoredDuePool))
        owners = await db.active_owners(conn, WS, ["e1", "e3", "e9"], except_pool=p1)
        assert list(owners) == ["e3"] and owners["e3"].pool_id == p2 and owners["e3"].pool_name == "two"
        got.append((owners["e3"], stored.StoredOwner))
        outcomes = await db.outcomes_of(conn, [alloc.allocation_id])
        assert [o.outcome for o in outcomes] == ["succeeded", "failed"] and outcomes[1].before_cents is None
        got += [(o, stored.StoredOutcome) for o in outcomes]
        [blocked] = await db.record_blocked(conn, [(other.allocation_id, WS, "blocked", {"check": "daily_cap"})])
        assert (blocked.allocation_id, blocked.status) == (other.allocation_id, "blocked")
        got.append((blocked, stored.StoredBlockedAllocation))
        [count] = await db.outcome_counts(conn, touched)
        assert (count.action_count, sorted(count.outcomes)) == (2, ["failed", "succeeded"])
        got.append((count, stored.StoredOutcomeCount))
        entities = await db.entities_of(conn, WS, ["e1", "e2", "e9"])
        assert sorted(entities) == ["e1", "e2"] and entities["e2"].daily_budget_cents is None
        got += [(e, stored.StoredEntity) for e in entities.values()]
        listed = {e.entity_id: e for e in await db.reported_entities(conn, WS, pool_id=None, limit=10)}
        assert (listed["e1"].pool_id, listed["e1"].pool_name, listed["e1"].ad_account_name) == (p1, "one", "Account")
        assert (listed["e4"].pool_id, listed["e4"].timezone_name) == (None, None)
        got += [(e, stored.StoredReportedEntity) for e in listed.values()]
        history = await db.history_of(conn, WS, ["e1"], since=NOW - timedelta(days=20), until=NOW)
        assert history[-1] == stored.StoredInterval("e1", start, start + timedelta(hours=1), 101, 202, 3, 404, 5, 6)
        got += [(h, stored.StoredInterval) for h in history]
        [member_pool] = await db.pools_with_member(conn, WS, ["e3"])
        assert (member_pool.pool_id, member_pool.entity_id) == (p2, "e3")
        got.append((member_pool, stored.StoredMemberPool))
        [note] = await db.notes_of(conn, p1, 10)
        assert note.body == {"amountCents": 5}
        got.append((note, stored.StoredNote))

    for obj, cls in got:
        _check(obj, cls)
    # Every type of domain/stored.py came back from some function.
    assert {cls for _, cls in got} == {v for v in vars(stored).values() if is_dataclass(v)}


def test_every_stored_type_is_frozen_and_slotted() -> None:
    assert_frozen_and_slotted(stored)
    member_pool = stored.StoredMemberPool(uuid.UUID(int=1), "e1")
    with pytest.raises(FrozenInstanceError):
        member_pool.entity_id = "e2"  # type: ignore[misc]


def test_the_stored_module_imports_only_the_standard_library() -> None:
    assert imports_beyond_stdlib(stored) == set()
