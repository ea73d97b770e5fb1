"""Executor-specific Prometheus metrics (exposed at /metrics beside the shared runtime metrics)."""

from __future__ import annotations

from prometheus_client import Counter

REJECTED_APPROVALS = Counter("allot_executor_rejected_approvals_total", "Approvals refused before execution", ["why"])
OUTCOMES = Counter("allot_executor_outcomes_total", "Executed action outcomes", ["platform", "action_type", "outcome"])
PLATFORM_CALLS = Counter("allot_executor_platform_calls_total", "Platform API calls", ["platform", "call", "result"])
