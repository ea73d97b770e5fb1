"""Per-pool engine settings outside the database: range problems name the API field, and settings snapshots
written before the knobs existed (with the old ``tier``) still build PoolSettings with the engine defaults."""

from __future__ import annotations

import math

from allot.pools import workflow
from allot.pools.domain import PoolSettings
from allot.pools.domain.config import knob_problems

OLD_SNAPSHOT = {
    "pool_id": "p1", "name": "old", "optimization_metric": "cpa", "daily_budget_cents": 10_000, "currency": "EUR",
    "allocation_frequency_hours": 8, "default_min_budget_cents": 0, "default_max_budget_cents": None,
    "min_budget_change_cents": 100, "status": "active", "tier": 2, "autonomy": "observe",
}


def test_knob_problems_name_the_field_and_range() -> None:
    assert knob_problems({}) == [] and knob_problems({k: None for k in workflow.ENGINE_KNOBS}) == []
    ok = {"persistence_intervals": 24, "cooldown_hours": 0, "deadband_pct": 50, "exploration_share": 0.1,
          "composite_weights": {"roas": 0, "cpa": 100, "frequency_risk": 0.25, "engagement_decay": 0.25}}
    assert knob_problems(ok) == []
    bad = {"persistence_intervals": True, "cooldown_hours": math.inf, "deadband_pct": math.nan,
           "exploration_share": 0.1000001,
           "composite_weights": {"roas": 1, "cpa": 0, "frequency_risk": 0.5, "engagement_decay": 0.01}}
    found = {p.field: p.message for p in knob_problems(bad)}
    assert set(found) == {"persistenceIntervals", "cooldownHours", "deadbandPct", "explorationShare",
                          "compositeWeights.frequencyRisk"}
    assert "[1, 24]" in found["persistenceIntervals"] and "[0, 0.10]" in found["explorationShare"]
    zero = knob_problems({"composite_weights": {"roas": 0, "cpa": 0, "frequency_risk": 0, "engagement_decay": 0}})
    assert [p.field for p in zero] == ["compositeWeights.roas"]
    assert [p.field for p in knob_problems({"persistence_intervals": 1}, prefix="pool.")] == []


def test_old_snapshots_build_with_the_engine_defaults() -> None:
    built = workflow.pool_settings(OLD_SNAPSHOT)
    default = PoolSettings(pool_id="p1", daily_budget_cents=10_000)
    assert built.persistence_intervals == default.persistence_intervals
    assert built.cooldown_hours == default.cooldown_hours and built.deadband_pct == default.deadband_pct
    assert built.exploration_share == default.exploration_share and built.composite_weights is None
    assert built.composite.cpa > 0  # derived from the cpa metric
    # a cooldown below the engine's ramp cooldown still builds (the ramp cooldown is capped by it)
    built = workflow.pool_settings(OLD_SNAPSHOT | {"cooldown_hours": 0.0})
    assert built.cooldown_hours == 0 and built.continuation_cooldown_hours == 0
