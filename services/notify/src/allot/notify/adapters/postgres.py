"""Notify SQL (only here). Every API query is scoped to a workspace; the delivery worker's claims are not."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import orjson

from allot.contracts.payloads import NotificationRequested
from allot.notify.domain.model import Channel, Delivery, EmailConfig, QuietHours, SealedSecret, Subscription
from allot.runtime.db import Conn

_CHANNEL = ("channel_id, workspace_id, kind, name, state, url_hint, email, quiet_hours, secret, consecutive_failures, "
            "disabled_reason, created_at, updated_at")
_DELIVERY = ("delivery_id, workspace_id, notification_id, channel_id, notification, envelope, state, attempts, "
             "next_attempt_at, last_error")


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str) else value


def _channel(row: asyncpg.Record) -> Channel:
    email = _json(row["email"])
    quiet = _json(row["quiet_hours"])
    secret = _json(row["secret"])
    return Channel(
        channel_id=row["channel_id"], workspace_id=row["workspace_id"], kind=row["kind"], name=row["name"],
        state=row["state"], url_hint=row["url_hint"], email=None if email is None else EmailConfig(**email),
        quiet_hours=None if quiet is None else QuietHours(**quiet),
        secret=None if secret is None else SealedSecret(**secret),
        consecutive_failures=row["consecutive_failures"], disabled_reason=row["disabled_reason"],
        created_at=row["created_at"], updated_at=row["updated_at"])


def _dump(value: Any) -> Any:
    return value  # the pool's json codec encodes (see allot.runtime.db)


async def insert_channel(conn: Conn, c: Channel, *, created_by: str) -> None:
    await conn.execute(
        "INSERT INTO channels (channel_id, workspace_id, kind, name, state, url_hint, email, quiet_hours, secret, "
        "consecutive_failures, disabled_reason, created_by, created_at, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9::jsonb, $10, $11, $12, $13, $14)",
        c.channel_id, c.workspace_id, c.kind, c.name, c.state, c.url_hint,
        _dump(c.email.as_dict() if c.email else None), _dump(c.quiet_hours.as_dict() if c.quiet_hours else None),
        _dump(c.secret.as_dict() if c.secret else None), c.consecutive_failures, c.disabled_reason,
        created_by, c.created_at, c.updated_at)


async def get_channel(conn: Conn, workspace_id: str, channel_id: str, *,
                      for_update: bool = False) -> Channel | None:
    """The workspace's channel, or None (also when it belongs to another workspace)."""
    row = await conn.fetchrow(
        f"SELECT {_CHANNEL} FROM channels WHERE workspace_id = $1 AND channel_id = $2"
        + (" FOR UPDATE" if for_update else ""), workspace_id, channel_id)
    return None if row is None else _channel(row)


async def list_channels(conn: Conn, workspace_id: str, *, include_removed: bool) -> list[Channel]:
    rows = await conn.fetch(
        f"SELECT {_CHANNEL} FROM channels WHERE workspace_id = $1 AND ($2 OR state <> 'removed') "
        "ORDER BY created_at, channel_id", workspace_id, include_removed)
    return [_channel(r) for r in rows]


async def channels_by_id(conn: Conn, channel_ids: list[str]) -> dict[str, Channel]:
    rows = await conn.fetch(f"SELECT {_CHANNEL} FROM channels WHERE channel_id = ANY($1::text[])", channel_ids)
    return {r["channel_id"]: _channel(r) for r in rows}


async def set_channel_state(conn: Conn, c: Channel, *, state: str, secret_cleared: bool = False,
                            reason: str = "", now: datetime) -> None:
    await conn.execute(
        "UPDATE channels SET state = $3, disabled_reason = $4, updated_at = $5"
        + (", secret = NULL" if secret_cleared else "") + " WHERE workspace_id = $1 AND channel_id = $2",
        c.workspace_id, c.channel_id, state, reason, now)


async def update_channel(conn: Conn, c: Channel) -> Channel:
    """Store an edited channel (settings, state, health, sealed secrets; the caller holds its row lock) and return
    it as stored."""
    row = await conn.fetchrow(
        "UPDATE channels SET name = $3, state = $4, url_hint = $5, email = $6::jsonb, quiet_hours = $7::jsonb, "
        "secret = $8::jsonb, consecutive_failures = $9, disabled_reason = $10, updated_at = $11 "
        f"WHERE workspace_id = $1 AND channel_id = $2 RETURNING {_CHANNEL}",
        c.workspace_id, c.channel_id, c.name, c.state, c.url_hint, _dump(c.email.as_dict() if c.email else None),
        _dump(c.quiet_hours.as_dict() if c.quiet_hours else None), _dump(c.secret.as_dict() if c.secret else None),
        c.consecutive_failures, c.disabled_reason, c.updated_at)
    assert row is not None, "the caller locked the row"
    return _channel(row)


async def record_channel_result(conn: Conn, channel_id: str, *, ok: bool, now: datetime) -> int:
    """Reset (success) or count (failure) the channel's consecutive failures; returns the new count."""
    value: int = await conn.fetchval(
        "UPDATE channels SET consecutive_failures = CASE WHEN $2 THEN 0 ELSE consecutive_failures + 1 END, "
        "updated_at = $3 WHERE channel_id = $1 RETURNING consecutive_failures", channel_id, ok, now)
    return value or 0


# ---------------------------------------------------------------- subscriptions


def _subscription(row: asyncpg.Record) -> Subscription:
    return Subscription(subscription_id=row["subscription_id"], workspace_id=row["workspace_id"],
                        channel_id=row["channel_id"], kinds=list(row["kinds"]), min_severity=row["min_severity"],
                        created_at=row["created_at"])


async def insert_subscription(conn: Conn, s: Subscription) -> None:
    await conn.execute(
        "INSERT INTO subscriptions (subscription_id, workspace_id, channel_id, kinds, min_severity, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6)", s.subscription_id, s.workspace_id, s.channel_id, s.kinds, s.min_severity,
        s.created_at)


async def list_subscriptions(conn: Conn, workspace_id: str) -> list[Subscription]:
    rows = await conn.fetch("SELECT * FROM subscriptions WHERE workspace_id = $1 ORDER BY created_at, subscription_id",
                            workspace_id)
    return [_subscription(r) for r in rows]


async def delete_subscription(conn: Conn, workspace_id: str, subscription_id: str) -> bool:
    done = await conn.execute("DELETE FROM subscriptions WHERE workspace_id = $1 AND subscription_id = $2",
                              workspace_id, subscription_id)
    return bool(done.endswith(" 1"))


async def delete_subscriptions_of(conn: Conn, workspace_id: str, channel_id: str) -> None:
    await conn.execute("DELETE FROM subscriptions WHERE workspace_id = $1 AND channel_id = $2", workspace_id,
                       channel_id)


# ---------------------------------------------------------------- deliveries


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(
        delivery_id=row["delivery_id"], workspace_id=row["workspace_id"], notification_id=str(row["notification_id"]),
        channel_id=row["channel_id"], notification=NotificationRequested.model_validate(_json(row["notification"])),
        envelope=_json(row["envelope"]), state=row["state"], attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"], last_error=row["last_error"])


async def last_sent_at(conn: Conn, channel_id: str, dedupe_key: str) -> datetime | None:
    """When a notification with this key was last queued or sent to the channel (suppressed and failed ones
    do not count)."""
    value: datetime | None = await conn.fetchval(
        "SELECT max(created_at) FROM deliveries WHERE channel_id = $1 AND dedupe_key = $2 "
        "AND state IN ('pending', 'delivered')", channel_id, dedupe_key)
    return value


async def insert_delivery(conn: Conn, d: Delivery, *, dedupe_key: str, now: datetime) -> bool:
    """False when this notification was already queued for this channel (a replay)."""
    done = await conn.execute(
        "INSERT INTO deliveries (delivery_id, workspace_id, notification_id, channel_id, kind, severity, dedupe_key, "
        "notification, envelope, state, attempts, next_attempt_at, last_error, created_at, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10, 0, $11, $12, $13, $13) "
        "ON CONFLICT DO NOTHING",
        d.delivery_id, d.workspace_id, d.notification.notification_id, d.channel_id, d.notification.kind,
        d.notification.severity, dedupe_key, d.notification.model_dump(mode="json"), _dump(d.envelope), d.state,
        d.next_attempt_at, d.last_error, now)
    return bool(done.endswith(" 1"))


async def claim_due(conn: Conn, *, now: datetime, lease_until: datetime, limit: int) -> list[Delivery]:
    """Pending deliveries due now and not held by a live lease; held until ``lease_until``."""
    rows = await conn.fetch(
        f"UPDATE deliveries SET locked_until = $2 WHERE delivery_id IN ("
        "  SELECT delivery_id FROM deliveries WHERE state = 'pending' AND next_attempt_at <= $1 "
        "  AND (locked_until IS NULL OR locked_until < $1) ORDER BY next_attempt_at LIMIT $3 "
        f"  FOR UPDATE SKIP LOCKED) RETURNING {_DELIVERY}", now, lease_until, limit)
    return sorted((_delivery(r) for r in rows), key=lambda d: (d.next_attempt_at, d.delivery_id))


async def finish(conn: Conn, delivery_ids: list[str], *, state: str, attempts_add: int,
                 next_attempt_at: datetime | None, error: str, digest_id: str | None, now: datetime) -> None:
    await conn.execute(
        "UPDATE deliveries SET state = $2, attempts = attempts + $3, next_attempt_at = COALESCE($4, next_attempt_at), "
        "last_error = $5, digest_id = $6::uuid, locked_until = NULL, updated_at = $7 "
        "WHERE delivery_id = ANY($1::text[])",
        delivery_ids, state, attempts_add, next_attempt_at, error, digest_id, now)


async def recent_messages(conn: Conn, channel_id: str, *, since: datetime) -> list[datetime]:
    """When each message (a digest counts once) was last attempted on the channel since ``since``."""
    rows = await conn.fetch(
        "SELECT max(attempted_at) AS at FROM delivery_attempts WHERE channel_id = $1 AND attempted_at >= $2 "
        "AND outcome <> 'suppressed' GROUP BY message_id", channel_id, since)
    return [r["at"] for r in rows]


async def pending_of_channel(conn: Conn, channel_id: str) -> list[Delivery]:
    rows = await conn.fetch(f"SELECT {_DELIVERY} FROM deliveries WHERE channel_id = $1 AND state = 'pending' "
                            "FOR UPDATE", channel_id)
    return [_delivery(r) for r in rows]


async def record_attempt(conn: Conn, d: Delivery, *, message_id: str, attempt: int, outcome: str,
                         http_status: int | None, smtp_code: int | None, error: str, duration_ms: int,
                         now: datetime) -> None:
    await conn.execute(
        "INSERT INTO delivery_attempts (delivery_id, workspace_id, channel_id, notification_id, message_id, attempt, "
        "outcome, http_status, smtp_code, error, duration_ms, attempted_at) "
        "VALUES ($1, $2, $3, $4::uuid, $5::uuid, $6, $7, $8, $9, $10, $11, $12)",
        d.delivery_id, d.workspace_id, d.channel_id, d.notification_id, message_id, attempt, outcome, http_status,
        smtp_code, error[:1000], duration_ms, now)


async def list_attempts(conn: Conn, workspace_id: str, *, channel_id: str | None,
                        notification_id: str | None, limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT a.attempt_id, a.delivery_id, a.channel_id, a.notification_id, a.message_id, a.attempt, a.outcome, "
        "a.http_status, a.smtp_code, a.error, a.duration_ms, a.attempted_at, d.state AS delivery_state, d.kind, "
        "d.severity FROM delivery_attempts a LEFT JOIN deliveries d ON d.delivery_id = a.delivery_id "
        "WHERE a.workspace_id = $1 AND ($2::text IS NULL OR a.channel_id = $2) "
        "AND ($3::uuid IS NULL OR a.notification_id = $3::uuid) ORDER BY a.attempt_id DESC LIMIT $4",
        workspace_id, channel_id, notification_id, limit)
    out = []
    for r in rows:
        item = dict(r)
        item["notification_id"] = str(item["notification_id"])
        item["message_id"] = str(item["message_id"])
        out.append(item)
    return out
