"""The notification.requested an executed action gives when a person should hear about it: a budget changed
outside Allot (conflict) or a platform write that failed. Published beside the action.executed it explains.

Pure: same action.executed event, same notification (its id is derived from the event's id, so a replay is the
same notification and the notifier delivers it once).
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.payloads import ActionExecuted, NotificationRequested, NotifiedEntity
from allot.contracts.registry import TOPICS

TOPIC = "notification.requested"
#: The outcomes people hear about; the others (succeeded, already_applied, pending, expired, rejected) say nothing.
NOTIFIED_OUTCOMES = frozenset({"conflict", "failed"})


def _facts(values: dict[str, Any]) -> dict[str, int | float | str | None]:
    kept = {k: v for k, v in values.items() if v is None or isinstance(v, int | float | str)}
    return dict(list(kept.items())[:50])


def executed_notification(event: Envelope[ActionExecuted]) -> NotificationRequested | None:
    """A conflict (warning) or a failure (critical), with the amounts; None for every other outcome."""
    p = event.payload
    if p.outcome not in NOTIFIED_OUTCOMES:
        return None
    amount = p.observed_cents if p.outcome == "conflict" else p.after_cents
    entity = NotifiedEntity(entity_type=p.entity_type, entity_id=p.entity_id[:128], amount_cents=amount,
                            currency=p.currency if amount is not None else None, detail=(p.error or "")[:300])
    if p.outcome == "conflict":
        title = f"The budget of {p.entity_type} {p.entity_id} was changed outside Allot"
        summary = ("Allot did not apply its change: the platform's budget differs from what Allot last saw (someone "
                   "changed it in the ad manager). The next plan starts from the platform's value.")
        kind, severity = "executor_conflict", "warning"
    else:
        title = f"A change to {p.entity_type} {p.entity_id} failed on the platform"
        summary = f"The platform refused or did not answer after {p.attempts} attempts: {p.error or 'no detail'}"
        kind, severity = "executor_failed", "critical"
    return NotificationRequested(
        notification_id=uuid.uuid5(event.event_id, "notification"), workspace_id=event.workspace_id,
        kind=kind, severity=severity,  # type: ignore[arg-type]
        title=title[:200], summary=summary[:2000], condition=f"{p.action_type}: {p.outcome}"[:500],
        facts=_facts({"before_cents": p.before_cents, "after_cents": p.after_cents,
                      "observed_cents": p.observed_cents, "attempts": p.attempts, "source": p.source,
                      "source_id": p.source_id}),
        currency=p.currency, entities=[entity], source="executor", source_id=p.source_id[:128],
        dedupe_key=f"{kind}/{p.entity_id}"[:200], occurred_at=event.occurred_at)


def executed_notifications(event: Envelope[ActionExecuted]) -> list[Envelope[NotificationRequested]]:
    """The notification.requested envelope of a conflict or failure (none otherwise), caused by its event."""
    n = executed_notification(event)
    if n is None:
        return []
    return [new_envelope(event_type=TOPIC, schema_version=TOPICS[TOPIC].schema_version, payload=n,
                         producer="executor", workspace_id=event.workspace_id, occurred_at=event.occurred_at,
                         cause=cast("Envelope[Any]", event), step="notification")]
