"""The notification.requested beside a guardrail.blocked: the check and its numbers, info for observe-only
decisions, nothing for rate_limited; same block event, same notification id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from allot.contracts import new_envelope
from allot.contracts.envelope import derive_event_id
from allot.contracts.examples import EXAMPLES
from allot.guardrails.domain.notices import block_notification, block_notifications

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def blocked(**changes: Any) -> Any:
    payload = EXAMPLES["guardrail.blocked"].model_copy(update=changes)
    return new_envelope(event_type="guardrail.blocked", schema_version=1, payload=payload, producer="guardrails",
                        workspace_id="ws_1", occurred_at=T0, step=f"decision/{sorted(changes.items())}")


def test_a_block_names_the_check_and_its_numbers_and_links_the_pool() -> None:
    event = blocked()
    n = block_notification(event)
    assert n is not None and n == block_notification(event), "deterministic"
    assert n.notification_id == uuid.uuid5(event.event_id, "notification"), "the id notify derived before"
    assert (n.kind, n.severity, n.workspace_id, n.source, n.source_id) == (
        "guardrail_blocked", "warning", "ws_1", "guardrails", "pool_1")
    assert n.title == "Guardrails blocked a pool change: daily_cap"
    assert n.condition == "daily_cap: daily cap 500.00 EUR would be exceeded"
    assert n.facts == {"cap_eur_cents": 50_000, "exposure_eur_cents": 62_500} and n.currency == "EUR"
    assert n.console_path == "/automation/budget-pools/pool_1", "the console's pool page"
    assert [(e.entity_type, e.entity_id) for e in n.entities] == [("pool", "pool_1")]
    assert n.dedupe_key == "guardrail_blocked/pool/pool_1/daily_cap" and n.occurred_at == T0


def test_rules_and_pacing_sources_link_their_pages_other_sources_none() -> None:
    rule = block_notification(blocked(source="rule", source_id="r-9"))
    assert rule is not None and rule.console_path == "/rules/r-9" and rule.entities[0].entity_type == "rule"
    plan = block_notification(blocked(source="pacing", source_id="plan-3"))
    assert plan is not None and plan.console_path == "/pacing/plans/plan-3" and plan.entities[0].entity_type == "plan"
    undo = block_notification(blocked(source="undo", source_id="u-1", details={"kill_switch": True}))
    assert undo is not None and undo.console_path is None and undo.entities == [] and undo.currency is None


def test_rate_limited_says_nothing_and_observe_only_is_info() -> None:
    assert block_notification(blocked(check="rate_limited")) is None
    assert block_notifications(blocked(check="rate_limited")) == []
    observed = block_notification(blocked(observe_only=True))
    assert observed is not None and observed.severity == "info"
    assert observed.title == "Guardrails logged (observe mode) a pool change: daily_cap"


def test_the_envelope_is_caused_by_the_block_and_replays_identically() -> None:
    event = blocked()
    (envelope,) = block_notifications(event)
    assert envelope.event_type == "notification.requested" and envelope.producer == "guardrails"
    assert envelope.event_id == derive_event_id(event.event_id, "notification")
    assert envelope.causation_id == event.event_id and envelope.correlation_id == event.correlation_id
    assert envelope.workspace_id == "ws_1" and envelope.payload == block_notification(event)
    assert block_notifications(event) == [envelope]
