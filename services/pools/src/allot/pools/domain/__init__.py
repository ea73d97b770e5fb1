"""Pure budget-pool domain: models, the learning allocation engine, explanations, reports and backtest (standard
library only)."""

from allot.pools.domain.engine import plan_allocation
from allot.pools.domain.models import (
    AllocationPlan,
    CompositeWeights,
    EngineState,
    MemberAllocation,
    MemberMemory,
    MemberState,
    MetricInterval,
    OptimizationMetric,
    PoolSettings,
)

__all__ = [
    "AllocationPlan",
    "CompositeWeights",
    "EngineState",
    "MemberAllocation",
    "MemberMemory",
    "MemberState",
    "MetricInterval",
    "OptimizationMetric",
    "PoolSettings",
    "plan_allocation",
]
