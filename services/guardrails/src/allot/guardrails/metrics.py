"""Guardrails-specific Prometheus metrics (exposed at /metrics beside the shared runtime metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DECISIONS = Counter(
    "allot_guardrail_decisions_total",
    "Guardrail decisions by the check that decided (none = approved) and status",
    ["check", "status"],
)

KILL_SWITCHES_ON = Gauge(
    "allot_guardrail_kill_switches_on",
    "Kill switches on across all workspaces (read from the database, so every replica reports the same value): "
    "scope=workspace counts workspaces stopped whole, scope=ad_account ad accounts stopped individually",
    ["scope"],
)


def show_kill_switches(counts: tuple[int, int]) -> None:
    """Set the gauge from ``adapters.postgres.kill_switches_on``: (workspaces, ad accounts)."""
    workspaces, ad_accounts = counts
    KILL_SWITCHES_ON.labels("workspace").set(workspaces)
    KILL_SWITCHES_ON.labels("ad_account").set(ad_accounts)
