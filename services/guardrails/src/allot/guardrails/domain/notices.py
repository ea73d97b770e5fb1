"""The notification.requested a guardrail block gives, published beside the guardrail.blocked it explains.

Pure: same block event, same notification (its id is derived from the event's id, so a replay is the same
notification and the notifier delivers it once).
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.payloads import GuardrailBlocked, NotificationRequested, NotifiedEntity
from allot.contracts.registry import TOPICS

TOPIC = "notification.requested"
#: How each change-set source appears as an entity, and where its console page is.
SOURCE_ENTITY = {"pool": ("pool", "/automation/budget-pools/{}"), "rule": ("rule", "/rules/{}"),
                 "pacing": ("plan", "/pacing/plans/{}")}
#: Blocks that retry on their own soon: telling people about each would be noise.
QUIET_CHECKS = frozenset({"rate_limited"})


def _facts(values: dict[str, Any]) -> dict[str, int | float | str | None]:
    kept = {k: v for k, v in values.items() if v is None or isinstance(v, int | float | str)}
    return dict(list(kept.items())[:50])


def block_notification(event: Envelope[GuardrailBlocked]) -> NotificationRequested | None:
    """A refused change set, with the check and its numbers (observe-only decisions are info); None for a
    quiet check."""
    p = event.payload
    if p.check in QUIET_CHECKS:
        return None
    entity = SOURCE_ENTITY.get(p.source)
    entities = [] if entity is None else [NotifiedEntity(entity_type=entity[0], entity_id=p.source_id[:128],  # type: ignore[arg-type]
                                                         detail=p.reason[:300])]
    facts = _facts(p.details)
    currency = "EUR" if any(k.endswith("eur_cents") for k in facts) else None
    verb = "logged (observe mode)" if p.observe_only else "blocked"
    return NotificationRequested(
        notification_id=uuid.uuid5(event.event_id, "notification"), workspace_id=event.workspace_id,
        kind="guardrail_blocked", severity="info" if p.observe_only else "warning",
        title=f"Guardrails {verb} a {p.source} change: {p.check}"[:200], summary=p.reason[:2000],
        condition=f"{p.check}: {p.reason}"[:500], facts=facts, currency=currency, entities=entities,
        source="guardrails", source_id=p.source_id[:128],
        dedupe_key=f"guardrail_blocked/{p.source}/{p.source_id}/{p.check}"[:200],
        console_path=None if entity is None else entity[1].format(p.source_id)[:300], occurred_at=event.occurred_at)


def block_notifications(event: Envelope[GuardrailBlocked]) -> list[Envelope[NotificationRequested]]:
    """The notification.requested envelope of a block (none for a quiet check), caused by the block's event."""
    n = block_notification(event)
    if n is None:
        return []
    return [new_envelope(event_type=TOPIC, schema_version=TOPICS[TOPIC].schema_version, payload=n,
                         producer="guardrails", workspace_id=event.workspace_id, occurred_at=event.occurred_at,
                         cause=cast("Envelope[Any]", event), step="notification")]
