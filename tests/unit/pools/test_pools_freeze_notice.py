"""A plan that starts a freeze gives one pool_frozen notification; a freeze that continues gives none.

The engine's oscillation detector holds a member whose changes keep reversing (the rest of the pool keeps
working); a pool-wide freeze in the stored state stops engine moves. Each starts once, whatever the number of
plans it lasts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from allot.pools.domain import EngineState, MemberMemory, MemberState, MetricInterval, PoolSettings, plan_allocation
from allot.pools.domain.freeze import FreezeStart, HeldMember, freeze_started
from allot.pools.workflow import pool_frozen_envelope

NOW = datetime(2024, 1, 31, tzinfo=UTC)
POOL_ID = uuid.UUID("9b1d7c9e-3f0a-4f8e-9d1c-2a6b5e4f3c21")
POOL = PoolSettings(pool_id=str(POOL_ID), daily_budget_cents=100_000, persistence_intervals=1, cooldown_hours=0,
                    freeze_hours=72)
MEMBERS = [MemberState(f"m{i}", 25_000) for i in range(4)]
SNAPSHOT = {"m0": {"entity_id": "m0", "entity_type": "campaign", "entity_name": "Prospecting DE"}}


def history(roas0: float, roas1: float) -> dict[str, list[MetricInterval]]:
    return {
        f"m{i}": [
            MetricInterval(NOW - timedelta(hours=8 * (k + 1)), NOW - timedelta(hours=8 * k), 8_333,
                           int(8_333 * (roas0 if i == 0 else roas1 if i == 1 else 2.0)), 40.0)
            for k in range(9, 42)
        ]
        for i in range(4)
    }


#: m0's last three changes went up, down, up: one more move down is its third reversal.
TWO_REVERSALS = EngineState(members={"m0": MemberMemory(0, 0, NOW - timedelta(days=1), (1, -1, 1))})


def test_the_move_that_makes_the_third_reversal_starts_a_hold_and_later_plans_do_not() -> None:
    down = plan_allocation(POOL, MEMBERS, history(0.5, 2.0), now=NOW, state=TWO_REVERSALS)
    start = freeze_started(TWO_REVERSALS, down)
    assert start == FreezeStart(until=NOW + timedelta(hours=72), pool_wide=False,
                                held=(HeldMember("m0", 25_000, down.budgets["m0"]),))
    assert down.budgets["m0"] < 25_000
    # Eight hours later m0 is still held (the others move): the same hold, nothing new to say.
    later = plan_allocation(POOL, [MemberState(k, v) for k, v in down.budgets.items()], history(0.5, 8.0),
                            now=NOW + timedelta(hours=8), state=down.state)
    assert next(a for a in later.allocations if a.member_id == "m0").reason == "held"
    assert freeze_started(down.state, later) is None


def test_a_move_that_continues_its_direction_starts_nothing() -> None:
    up = plan_allocation(POOL, MEMBERS, history(6.0, 2.0), now=NOW, state=TWO_REVERSALS)
    assert up.budgets["m0"] > 25_000 and freeze_started(TWO_REVERSALS, up) is None


def test_a_pool_wide_freeze_starts_once() -> None:
    until = NOW + timedelta(hours=10)
    frozen = EngineState(frozen_until=until, frozen_reason="operator freeze")
    plan = plan_allocation(POOL, MEMBERS, {}, now=NOW, state=frozen)
    assert plan.frozen
    # Planned from a state that already held this freeze: it continues, it does not start here ...
    assert freeze_started(frozen, plan) is None
    # ... but the same plan after a state without it (or with an expired one) starts it.
    assert freeze_started(EngineState(), plan) == FreezeStart(until=until, pool_wide=True, reason="operator freeze")
    expired = EngineState(frozen_until=NOW - timedelta(hours=1), frozen_reason="old")
    assert freeze_started(expired, plan) is not None


def test_the_hold_notification_names_the_pool_the_member_and_until_when() -> None:
    down = plan_allocation(POOL, MEMBERS, history(0.5, 2.0), now=NOW, state=TWO_REVERSALS)
    start = freeze_started(TWO_REVERSALS, down)
    assert start is not None
    env = pool_frozen_envelope(pool_id=POOL_ID, workspace_id="ws_1", pool_name="Prospecting", pool=POOL,
                               freeze=start, members=SNAPSHOT, live=True, now=NOW)
    n = env.payload
    assert env.event_type == "notification.requested" and env.producer == "pools" and env.workspace_id == "ws_1"
    assert env.event_id == n.notification_id == uuid.uuid5(POOL_ID, f"held/{start.until.isoformat()}")
    assert env == pool_frozen_envelope(pool_id=POOL_ID, workspace_id="ws_1", pool_name="Prospecting", pool=POOL,
                                       freeze=start, members=SNAPSHOT, live=True, now=NOW), "a replay is the same"
    assert (n.kind, n.severity, n.source, n.source_id) == ("pool_frozen", "warning", "pools", str(POOL_ID))
    assert n.title == "Pool 'Prospecting': Prospecting DE (campaign m0) frozen until 2024-02-03 00:00 UTC"
    assert "kept changing direction" in n.summary and "(72 h)" in n.summary
    assert n.condition == "oscillation: 3 direction reversals within the last 6 changes; held for 72 h"
    assert n.facts["frozen_until"] == "2024-02-03T00:00:00+00:00" and n.facts["members_frozen"] == 1
    assert n.currency == "EUR" and n.console_path == f"/automation/budget-pools/{POOL_ID}"
    assert [(e.entity_type, e.entity_id, e.name) for e in n.entities] == [
        ("pool", str(POOL_ID), "Prospecting"), ("campaign", "m0", "Prospecting DE")]
    assert n.entities[1].amount_cents == down.budgets["m0"]
    observed = pool_frozen_envelope(pool_id=POOL_ID, workspace_id="ws_1", pool_name="Prospecting", pool=POOL,
                                    freeze=start, members=SNAPSHOT, live=False, now=NOW)
    assert observed.payload.severity == "info", "an observed pool changes nothing on the platform"


def test_the_pool_wide_notification_says_why_and_until_when() -> None:
    until = NOW + timedelta(hours=10)
    start = FreezeStart(until=until, pool_wide=True, reason="oscillation: member m0 reversed direction 3 times")
    n = pool_frozen_envelope(pool_id=POOL_ID, workspace_id="ws_1", pool_name="Prospecting", pool=POOL,
                             freeze=start, members={}, live=True, now=NOW).payload
    assert n.notification_id == uuid.uuid5(POOL_ID, f"frozen/{until.isoformat()}")
    assert n.title == "Pool 'Prospecting' is frozen until 2024-01-31 10:00 UTC"
    assert n.summary.startswith("Allot makes no budget moves in pool 'Prospecting' until 2024-01-31 10:00 UTC: "
                                "oscillation: member m0 reversed direction 3 times.")
    assert n.condition == start.reason and [e.entity_type for e in n.entities] == ["pool"]
