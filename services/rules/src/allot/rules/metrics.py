"""Prometheus metrics of the rules service (module-level, labelled with the service)."""

from __future__ import annotations

from prometheus_client import Counter

RULE_EVALUATIONS = Counter(
    "allot_rule_evaluations_total", "Rule evaluations (one per rule per slot)", ["service", "trigger", "result"]
)
RULE_FIRES = Counter(
    "allot_rule_fires_total", "Rule fires: evaluations that matched at least one entity", ["service", "outcome"]
)
RULE_NOTIFY_ONLY = Counter("allot_rule_notify_only_total", "Entities matched by notify_only rules", ["service"])
RULE_SKIPS = Counter("allot_rule_entity_skips_total", "In-scope entities skipped, by reason", ["service", "reason"])
RULE_OUTCOMES = Counter("allot_rule_action_outcomes_total", "Outcomes of rule actions received", ["service", "outcome"])
RULE_AUTO_PAUSES = Counter("allot_rule_auto_pauses_total", "Rules paused by the circuit breaker", ["service"])
RULE_PREVIEWS = Counter("allot_rule_previews_total", "Rule previews run", ["service"])
