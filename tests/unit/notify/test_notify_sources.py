"""Notifications derived from bus facts: a guardrail block, a critical pacing deviation, an executor conflict or
failure; everything else says nothing. Same event, same notification id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from allot.contracts import new_envelope
from allot.contracts.examples import EXAMPLES
from allot.notify.domain.render import render_slack
from allot.notify.domain.sources import from_action_executed, from_guardrail_blocked, from_pacing_deviation

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def env(topic: str, **changes: Any) -> Any:
    payload = EXAMPLES[topic].model_copy(update=changes)
    return new_envelope(event_type=topic, schema_version=1, payload=payload, producer="test", workspace_id="ws_1",
                        occurred_at=T0, step=f"{topic}/{sorted(changes.items())}")


def test_a_guardrail_block_names_the_check_and_its_numbers() -> None:
    event = env("guardrail.blocked")
    n = from_guardrail_blocked(event)
    assert n is not None and n == from_guardrail_blocked(event), "deterministic"
    assert (n.kind, n.severity, n.workspace_id, n.source_id) == ("guardrail_blocked", "warning", "ws_1", "pool_1")
    assert n.title == "Guardrails blocked a pool change: daily_cap"
    assert n.facts == {"cap_eur_cents": 50_000, "exposure_eur_cents": 62_500} and n.currency == "EUR"
    assert n.console_path == "/budget-pools/pool_1" and n.entities[0].entity_type == "pool"
    text = str(render_slack(n))
    assert "500.00 EUR" in text and "625.00 EUR" in text and "daily cap 500.00 EUR would be exceeded" in text
    assert from_guardrail_blocked(env("guardrail.blocked", check="rate_limited")) is None
    observed = from_guardrail_blocked(env("guardrail.blocked", observe_only=True))
    assert observed is not None and observed.severity == "info"


def test_only_a_critical_pacing_deviation_notifies() -> None:
    n = from_pacing_deviation(env("pacing.deviation_detected"))
    assert n is not None and (n.kind, n.severity) == ("pacing_critical", "critical")
    assert n.title == "Pacing plan plan_1 is underpacing by -32.2%"
    assert n.condition == "deviation -32.20% beyond the critical threshold -25.00%"
    assert n.facts["state_after"] == "PACING_HOLD" and n.console_path == "/pacing/plans/plan_1"
    assert from_pacing_deviation(env("pacing.deviation_detected", alert_level="warning")) is None


def test_executor_conflicts_and_failures_notify_other_outcomes_do_not() -> None:
    conflict = from_action_executed(env("action.executed", outcome="conflict", observed_cents=20_000))
    assert conflict is not None and (conflict.kind, conflict.severity) == ("executor_conflict", "warning")
    assert conflict.entities[0].amount_cents == 20_000 and conflict.entities[0].currency == "EUR"
    assert conflict.facts["observed_cents"] == 20_000 and conflict.currency == "EUR"
    failed = from_action_executed(env("action.executed", outcome="failed", error="platform refused (500)",
                                      attempts=3))
    assert failed is not None and (failed.kind, failed.severity) == ("executor_failed", "critical")
    assert "after 3 attempts: platform refused (500)" in failed.summary
    for outcome in ("succeeded", "already_applied", "expired", "pending", "rejected"):
        assert from_action_executed(env("action.executed", outcome=outcome)) is None
