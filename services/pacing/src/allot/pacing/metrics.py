"""Prometheus metrics of the pacing service (exposed at /metrics with the shared ones)."""

from __future__ import annotations

from prometheus_client import Counter

SNAPSHOTS_TAKEN = Counter("allot_pacing_snapshots_total", "Pacing snapshots taken", ["service", "trigger"])
DEVIATIONS = Counter("allot_pacing_deviations_total", "Campaign deviations detected, by level", ["service", "level"])
PROPOSALS = Counter("allot_pacing_proposals_total", "Reallocation proposals entering a status", ["service", "status"])
TRANSITIONS = Counter("allot_pacing_transitions_total", "Campaign pacing state changes", ["service", "to_state"])
