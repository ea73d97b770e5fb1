"""No alert storms: deduplication within a window, digests of many pending messages, quiet hours. Pure."""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from allot.contracts.envelope import EVENT_NAMESPACE
from allot.contracts.payloads import SEVERITIES, NotificationRequested, NotifiedEntity
from allot.notify.domain.model import QuietHours


def dedupe_key(n: NotificationRequested) -> str:
    """Same condition, same key: the publisher's key, else the kind and what it concerns."""
    return n.dedupe_key or f"{n.kind}/{n.source_id or n.title}"


def is_duplicate(previous_at: datetime | None, *, now: datetime, window_s: float) -> bool:
    """A notification with this key went to this channel less than ``window_s`` ago."""
    return previous_at is not None and window_s > 0 and now - previous_at < timedelta(seconds=window_s)


def _parse(hhmm: str) -> time:
    h, m = hhmm.split(":")
    return time(int(h), int(m))


def quiet_until(qh: QuietHours | None, *, now: datetime, severity: str) -> datetime | None:
    """When ``now`` falls in the channel's quiet hours (local time of its time zone) and the message is not
    critical: the UTC instant the quiet hours end. Else None (send now)."""
    if qh is None or severity == "critical":
        return None
    tz = ZoneInfo(qh.timezone)
    local = now.astimezone(tz)
    start, end = _parse(qh.start), _parse(qh.end)
    t = local.time().replace(second=0, microsecond=0, tzinfo=None)
    inside = (start <= t < end) if start < end else (t >= start or t < end)
    if not inside:
        return None
    end_day = local.date() if t < end else local.date() + timedelta(days=1)
    return datetime.combine(end_day, end, tzinfo=tz).astimezone(now.tzinfo)


def rate_limited_until(sent_at: list[datetime], *, limit: int, now: datetime,
                       window_s: float = 60.0) -> datetime | None:
    """A channel may get ``limit`` messages per ``window_s``: None when one more may go now, else the instant the
    oldest message of the window leaves it (what waits meanwhile goes out as one digest)."""
    recent = sorted(t for t in sent_at if now - t < timedelta(seconds=window_s))
    if len(recent) < limit:
        return None
    return recent[len(recent) - limit] + timedelta(seconds=window_s)


def digest(notifications: list[NotificationRequested]) -> NotificationRequested:
    """Many pending notifications of one channel as one message listing them (same inputs, same digest id)."""
    if not notifications:
        raise ValueError("a digest needs notifications")
    ordered = sorted(notifications, key=lambda n: (n.occurred_at, str(n.notification_id)))
    first = ordered[0]
    ids = sorted(str(n.notification_id) for n in ordered)
    severity = max((n.severity for n in ordered), key=SEVERITIES.index)
    kinds: dict[str, int] = {}
    for n in ordered:
        kinds[n.kind] = kinds.get(n.kind, 0) + 1
    kind = max(kinds, key=lambda k: kinds[k])
    entities: list[NotifiedEntity] = []
    for n in ordered:
        for e in n.entities:
            if len(entities) < 200:
                entities.append(e.model_copy(update={"detail": (f"{n.title}: {e.detail}" if e.detail
                                                                else n.title)[:300]}))
        if not n.entities and len(entities) < 200:
            entities.append(NotifiedEntity(entity_type="rule" if n.source == "rules" else "channel",
                                           entity_id=(n.source_id or str(n.notification_id))[:128],
                                           detail=n.title[:300]))
    counts = ", ".join(f"{c} {k}" for k, c in sorted(kinds.items()))
    return NotificationRequested(
        notification_id=uuid.uuid5(EVENT_NAMESPACE, "digest/" + ",".join(ids)),
        workspace_id=first.workspace_id, kind=kind,  # type: ignore[arg-type]
        severity=severity, title=f"{len(ordered)} notifications ({counts})"[:200],
        summary=("; ".join(n.title for n in ordered))[:2000],
        facts={"notifications": len(ordered), **{f"{k}_count": c for k, c in sorted(kinds.items())}},
        entities=entities, source="notify", source_id="digest", dedupe_key="",
        occurred_at=ordered[-1].occurred_at)
