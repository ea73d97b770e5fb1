"""Pure helpers of the pools service: config validation, deterministic ids, change sets, outcome roll-up."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from allot.pools.domain import MemberState, MetricInterval, PoolSettings, plan_allocation
from allot.pools.domain.changeset import (
    ActionTarget,
    action_id_for,
    allocation_status,
    manual_key,
    planned_actions,
    request_id_for,
    scheduled_key,
)
from allot.pools.domain.config import MemberBounds, config_problems

POOL = uuid.UUID("6f1c1d2e-0000-4000-8000-000000000001")
NOW = datetime(2026, 9, 10, 12, tzinfo=UTC)


def _fields(**kw: object) -> list[str]:
    args: dict[str, object] = {
        "daily_budget_cents": 10_000,
        "default_min_budget_cents": 0,
        "default_max_budget_cents": None,
        "members": [],
    }
    args.update(kw)
    return [p.field for p in config_problems(**args)]  # type: ignore[arg-type]


def test_pools_config_problems_name_the_field() -> None:
    assert _fields() == []
    assert _fields(default_min_budget_cents=500, default_max_budget_cents=100) == ["defaultMaxBudgetCents"]
    assert _fields(members=[MemberBounds("members.0", "a", 900, 100)]) == ["members.0.minBudgetCents"]
    # a member without its own ceiling falls back to the pool's default ceiling
    assert _fields(default_max_budget_cents=500, members=[MemberBounds("members.0", "a", 900, None)]) == [
        "members.0.minBudgetCents"
    ]
    assert _fields(default_min_budget_cents=900, members=[MemberBounds("members.0", "a", None, 100)]) == [
        "members.0.maxBudgetCents"
    ]
    floors = [MemberBounds(f"members.{i}", f"e{i}", 4_000, None) for i in range(3)]
    assert _fields(members=floors) == ["dailyBudgetCents"]
    # inactive members' floors do not count, and they do not count toward the 20
    assert _fields(members=[*floors[:2], MemberBounds("members.2", "e2", 4_000, None, is_active=False)]) == []
    many = [MemberBounds(f"members.{i}", f"e{i}", None, None) for i in range(21)]
    assert _fields(members=many) == ["members"]
    assert _fields(members=many[:20] + [MemberBounds("members.20", "e20", None, None, is_active=False)]) == []
    assert _fields(
        members=[MemberBounds("members.0", "a", None, None), MemberBounds("members.1", "a", None, None)]
    ) == ["members.1.entityId"]


def test_pools_ids_are_deterministic_and_keys_per_utc_day_or_slot() -> None:
    key, day = manual_key(POOL, datetime(2026, 9, 11, 1, 30, tzinfo=timezone(timedelta(hours=3))))
    assert (key, day) == (f"pool:{POOL}:2026-09-10", "2026-09-10")  # 01:30 +03:00 is still the 10th in UTC
    key, slot = scheduled_key(POOL, datetime(2026, 9, 11, tzinfo=UTC))
    assert key == f"pool:{POOL}:2026-09-11T00:00:00+00:00" and slot == "2026-09-11T00:00:00+00:00"
    assert request_id_for(POOL, key) == request_id_for(POOL, key) != request_id_for(POOL, key + "x")
    assert action_id_for(POOL, slot, "m1") == uuid.uuid5(POOL, f"{slot}/m1") != action_id_for(POOL, slot, "m2")


def _history() -> dict[str, list[MetricInterval]]:
    out: dict[str, list[MetricInterval]] = {}
    midnight = NOW.replace(hour=0)
    for mid, roas in {"m1": 4.0, "m2": 2.0, "m3": 1.0}.items():
        out[mid] = [
            MetricInterval(
                midnight - timedelta(days=d), midnight - timedelta(days=d - 1), 10_000, int(10_000 * roas), roas * 2
            )
            for d in range(10, 0, -1)
        ]
    return out


def test_pools_planned_actions_only_for_changed_members_with_absolute_budgets() -> None:
    pool = PoolSettings(pool_id=str(POOL), daily_budget_cents=32_000)
    members = [MemberState(m, 10_000) for m in ("m1", "m2", "m3")] + [MemberState("m4", 5_000, is_active=False)]
    plan = plan_allocation(pool, members, _history(), now=NOW)
    targets = {m: ActionTarget("sandbox", "act-1", "campaign", m, "EUR") for m in ("m1", "m2", "m3", "m4")}
    actions = planned_actions(plan, targets, pool_id=POOL, slot="2026-09-10")
    assert [(a.member_id, a.from_cents, a.to_cents) for a in actions] == [("m1", 10_000, 12_000)]
    assert actions[0].action_id == action_id_for(POOL, "2026-09-10", "m1") and actions[0].reason.startswith("pool ")
    # a member without a target (no account/budget known) gets no action
    assert planned_actions(plan, {}, pool_id=POOL, slot="2026-09-10") == []


def test_pools_allocation_status_rolls_outcomes_up() -> None:
    assert allocation_status(2, ["succeeded"]) == "executing"
    assert allocation_status(2, ["succeeded", "already_applied"]) == "executed"
    assert allocation_status(2, ["succeeded", "conflict"]) == "partially_failed"
    assert allocation_status(1, ["failed"]) == "failed"
