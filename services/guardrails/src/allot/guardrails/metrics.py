"""Guardrails-specific Prometheus metrics (exposed at /metrics beside the shared runtime metrics)."""

from __future__ import annotations

from prometheus_client import Counter

DECISIONS = Counter(
    "allot_guardrail_decisions_total",
    "Guardrail decisions by the check that decided (none = approved) and status",
    ["check", "status"],
)
