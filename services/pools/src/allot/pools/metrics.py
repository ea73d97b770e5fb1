"""Pools-specific Prometheus metrics (exposed at /metrics beside the shared runtime metrics)."""

from __future__ import annotations

from prometheus_client import Counter

ALLOCATIONS = Counter(
    "allot_pool_allocations_total",
    "Pool allocation outcomes: requested, observed, frozen, no_change, blocked, guardrail_observed, executed, "
    "partially_failed, failed, simulated, rate_limited, replayed",
    ["outcome"],
)
PACING_RECOMMENDATIONS = Counter(
    "allot_pool_pacing_recommendations_total",
    "pacing.reallocation_recommended events: logged against a pool, or ignored (not a pool member)",
    ["result"],
)
