"""The notify workflows shared by the consumer, the delivery scheduler and the HTTP routes: queue a notification for
its subscribed channels (in the consumer's transaction) and send what is due (the scheduler, one attempt per call).
At least once: a delivery row is written before anything is sent, claimed with a lease while it is
being sent, and finished only after the receiver answered; a killed worker's claims expire and are sent again with
the same idempotency key (the notification id, or a digest's id).

Delivery timing (retries, Retry-After, quiet hours, dedupe window) runs on the real clock: receivers and people
live in real time, also when the rest of the system runs on a simulated one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson

from allot.contracts.codec import EncodedRecord
from allot.contracts.envelope import EVENT_NAMESPACE, new_envelope
from allot.contracts.payloads import NotificationRequested
from allot.contracts.registry import TOPICS
from allot.notify.adapters import postgres as db
from allot.notify.adapters.sealing import SecretBox
from allot.notify.adapters.senders import HttpSender, SmtpSender
from allot.notify.domain.grouping import dedupe_key, digest, is_duplicate, quiet_until, rate_limited_until
from allot.notify.domain.model import (
    Channel,
    ChannelSecrets,
    Delivery,
    SealedSecret,
    channel_disabled_notification,
    delivery_id,
    matching_channels,
)
from allot.notify.domain.policy import AttemptResult, Outcome, decide, should_disable
from allot.notify.domain.render import render_email, render_slack, render_webhook
from allot.notify.domain.signing import IDEMPOTENCY_HEADER, signed_headers
from allot.notify.settings import NotifySettings
from allot.runtime.clock import Clock, RealClock
from allot.runtime.db import Conn
from allot.runtime.logging import get_logger
from allot.runtime.outbox import add_events, add_records
from allot.runtime.sealing import SealingError

log = get_logger(__name__)
TOPIC = "notification.requested"
DELIVERY_CLOCK: Clock = RealClock()


@dataclass
class Deps:
    """What sending needs: settings, the keyring for channel secrets, the HTTP and SMTP senders, a clock."""

    settings: NotifySettings
    keyring: SecretBox
    http: HttpSender
    smtp: SmtpSender
    clock: Clock = DELIVERY_CLOCK


def seal_secrets(keyring: SecretBox, secrets: ChannelSecrets) -> SealedSecret:
    """The channel's secrets sealed to the notifier's current key (only this service opens them)."""
    plain = orjson.dumps({"url": secrets.url, "signing_secret": secrets.signing_secret,
                          "smtp_password": secrets.smtp_password}).decode()
    return keyring.seal(plain)


def open_secrets(keyring: SecretBox, sealed: SealedSecret | None) -> ChannelSecrets:
    if sealed is None:
        return ChannelSecrets()
    return ChannelSecrets(**orjson.loads(keyring.open(sealed)))


# ---------------------------------------------------------------- queueing (consumer)


async def enqueue(conn: Conn, settings: NotifySettings, n: NotificationRequested,
                  envelope: dict[str, Any] | None, *, now: datetime) -> list[tuple[str, str]]:
    """One delivery per subscribed active channel: pending (due now, or when quiet hours end) or suppressed (the
    same condition went to that channel within the dedupe window). Returns (channel id, state) of new ones."""
    subscriptions = await db.list_subscriptions(conn, n.workspace_id)
    channels = await db.channels_by_id(conn, sorted({s.channel_id for s in subscriptions}))
    key = dedupe_key(n)
    queued: list[tuple[str, str]] = []
    for channel in matching_channels(n, subscriptions, channels):
        previous = await db.last_sent_at(conn, channel.channel_id, key)
        duplicate = is_duplicate(previous, now=now, window_s=settings.notify_dedupe_window_s)
        d = Delivery(
            delivery_id=delivery_id(n.notification_id, channel.channel_id), workspace_id=n.workspace_id,
            notification_id=str(n.notification_id), channel_id=channel.channel_id, notification=n, envelope=envelope,
            state="suppressed" if duplicate else "pending", attempts=0,
            next_attempt_at=quiet_until(channel.quiet_hours, now=now, severity=n.severity) or now,
            last_error=f"same condition ({key}) sent to this channel within the dedupe window" if duplicate else "")
        if not await db.insert_delivery(conn, d, dedupe_key=key, now=now):
            continue  # this notification was queued for this channel before (a replay)
        if duplicate:
            await db.record_attempt(conn, d, message_id=d.notification_id, attempt=0, outcome="suppressed",
                                    http_status=None, smtp_code=None, error=d.last_error, duration_ms=0, now=now)
        queued.append((channel.channel_id, d.state))
    return queued


# ---------------------------------------------------------------- sending (worker and test sends)


async def send(deps: Deps, channel: Channel, n: NotificationRequested, *,
               includes: list[str] | None = None) -> AttemptResult:
    """One attempt to put ``n`` on ``channel``; never raises for what the receiver or network did."""
    try:
        secrets = open_secrets(deps.keyring, channel.secret)
    except (SealingError, ValueError, TypeError) as exc:
        return AttemptResult(refused=True, error=f"channel secret cannot be opened: {exc}")
    console = deps.settings.console_url
    headers = {IDEMPOTENCY_HEADER: str(n.notification_id), "X-Allot-Notification-Id": str(n.notification_id)}
    if channel.kind == "email":
        if channel.email is None:
            return AttemptResult(refused=True, error="email channel without email settings")
        return await deps.smtp.send(channel.email, secrets.smtp_password, render_email(n, console_url=console),
                                    message_id=str(n.notification_id))
    if not secrets.url:
        return AttemptResult(refused=True, error=f"{channel.kind} channel without a URL")
    if channel.kind == "slack":
        return await deps.http.post(secrets.url, orjson.dumps(render_slack(n, console_url=console)), headers)
    body = orjson.dumps(render_webhook(n, console_url=console, includes=includes))
    if not secrets.signing_secret:
        return AttemptResult(refused=True, error="webhook channel without a signing secret")
    headers.update(signed_headers(secrets.signing_secret, int(time.time()), body))
    return await deps.http.post(secrets.url, body, headers)


def dlq_record(d: Delivery, *, reason: str, detail: str, now: datetime) -> tuple[EncodedRecord, uuid.UUID]:
    """The record as it came in, to ``notification.requested.dlq`` with the reason (the runtime's DLQ headers)."""
    value = orjson.dumps(d.envelope if d.envelope is not None else d.notification.model_dump(mode="json"))
    headers = [
        ("event_type", TOPIC.encode()),
        ("x-dlq-reason", reason.encode()),
        ("x-dlq-error", detail[:2000].encode("utf-8", "replace")),
        ("x-dlq-source-topic", TOPIC.encode()),
        ("x-dlq-consumer-group", b"notify"),
        ("x-dlq-channel-id", d.channel_id.encode()),
        ("x-dlq-delivery-id", d.delivery_id.encode()),
        ("x-dlq-failed-at", now.isoformat().encode()),
    ]
    record = EncodedRecord(TOPICS[TOPIC].dlq, d.notification_id.encode(), value, headers)
    return record, uuid.uuid5(EVENT_NAMESPACE, f"dlq/notify/{d.delivery_id}")


async def _fail(conn: Conn, deliveries: Sequence[Delivery], *, reason: str, detail: str,
                now: datetime) -> None:
    if not deliveries:
        return
    await db.finish(conn, [d.delivery_id for d in deliveries], state="failed", attempts_add=0, next_attempt_at=None,
                    error=detail[:1000], digest_id=None, now=now)
    records = [dlq_record(d, reason=reason, detail=detail, now=now) for d in deliveries]
    await add_records(conn, [r for r, _ in records], [i for _, i in records])
    for d in deliveries:
        log.warning("notification_undeliverable", workspace_id=d.workspace_id, channel_id=d.channel_id,
                    notification_id=d.notification_id, reason=reason, error=detail[:300])


async def _disable(conn: Conn, deps: Deps, channel: Channel, *, failures: int, last_error: str,
                   now: datetime) -> None:
    """Disable the channel, dead-letter what waits for it, and tell the workspace's admins (notification.requested,
    through the outbox: it reaches the channels subscribed to ``channel_disabled``)."""
    await db.set_channel_state(conn, channel, state="disabled", now=now,
                               reason=f"{failures} consecutive failed deliveries; last: {last_error}"[:500])
    await _fail(conn, await db.pending_of_channel(conn, channel.channel_id), reason="channel_disabled",
                detail=f"channel {channel.channel_id} disabled after {failures} consecutive failures: {last_error}",
                now=now)
    n = channel_disabled_notification(channel, failures=failures, threshold=deps.settings.notify_disable_after,
                                      last_error=last_error, now=now)
    await add_events(conn, [new_envelope(event_type=TOPIC, schema_version=TOPICS[TOPIC].schema_version, payload=n,
                                         producer="notify", workspace_id=channel.workspace_id, occurred_at=now,
                                         event_id=n.notification_id)])
    log.error("channel_disabled", workspace_id=channel.workspace_id, channel_id=channel.channel_id,
              failures=failures, error=last_error[:300])


async def _deliver_batch(pool: asyncpg.Pool, deps: Deps, channel: Channel, batch: list[Delivery]) -> bool:
    """Send one message (one delivery, or a digest of several) and record the outcome; False when the channel was
    disabled (stop sending to it)."""
    single = len(batch) == 1
    message = batch[0].notification if single else digest([d.notification for d in batch])
    started = time.perf_counter()
    result = await send(deps, channel, message, includes=None if single else [d.notification_id for d in batch])
    duration_ms = int((time.perf_counter() - started) * 1000)
    now = deps.clock.now()
    attempt = max(d.attempts for d in batch) + 1
    outcome: Outcome = decide(deps.settings.retry_policy(), result, attempt=attempt, key=batch[0].delivery_id, now=now)
    ids = [d.delivery_id for d in batch]
    async with pool.acquire() as conn, conn.transaction():
        for d in batch:
            await db.record_attempt(conn, d, message_id=str(message.notification_id), attempt=d.attempts + 1,
                                    outcome=outcome.verdict, http_status=result.status, smtp_code=result.smtp_code,
                                    error=outcome.reason, duration_ms=duration_ms, now=now)
        if outcome.verdict == "delivered":
            await db.finish(conn, ids, state="delivered", attempts_add=1, next_attempt_at=None, error="",
                            digest_id=None if single else str(message.notification_id), now=now)
        elif outcome.verdict == "retry":
            await db.finish(conn, ids, state="pending", attempts_add=1, next_attempt_at=outcome.next_attempt_at,
                            error=outcome.reason, digest_id=None, now=now)
        else:
            await db.finish(conn, ids, state="pending", attempts_add=1, next_attempt_at=None, error=outcome.reason,
                            digest_id=None, now=now)
            await _fail(conn, batch, reason="undeliverable", detail=outcome.reason, now=now)
        failures = await db.record_channel_result(conn, channel.channel_id, ok=outcome.verdict == "delivered",
                                                  now=now)
        disable = outcome.verdict != "delivered" and should_disable(deps.settings.retry_policy(), failures)
        if disable:
            await _disable(conn, deps, channel, failures=failures, last_error=outcome.reason, now=now)
    log.info("notification_attempt", workspace_id=channel.workspace_id, channel_id=channel.channel_id,
             message_id=str(message.notification_id), deliveries=len(batch), outcome=outcome.verdict,
             http_status=result.status, smtp_code=result.smtp_code, error=outcome.reason[:200] or None)
    return not disable


async def _deliver_channel(pool: asyncpg.Pool, deps: Deps, channel: Channel | None, due: list[Delivery]) -> None:
    now = deps.clock.now()
    if channel is None or channel.state != "active":
        state = "missing" if channel is None else channel.state
        async with pool.acquire() as conn, conn.transaction():
            await _fail(conn, due, reason="channel_" + state, detail=f"channel is {state}", now=now)
        return
    async with pool.acquire() as conn:
        recent = await db.recent_messages(conn, channel.channel_id, since=now - timedelta(seconds=60))
    limit = deps.settings.notify_rate_per_minute
    wait_until = rate_limited_until(recent, limit=limit, now=now)
    if wait_until is not None:  # the channel had its messages for this minute: what is due waits, then goes as one
        async with pool.acquire() as conn:
            await db.finish(conn, [d.delivery_id for d in due], state="pending", attempts_add=0,
                            next_attempt_at=wait_until, error=f"rate limit: {limit} messages per minute",
                            digest_id=None, now=now)
        return
    room = limit - len(recent)
    many = len(due) >= deps.settings.notify_digest_threshold or len(due) > room
    batches = [due] if many else [[d] for d in due]
    for batch in batches:
        if not await _deliver_batch(pool, deps, channel, batch):
            return


async def deliver_due(pool: asyncpg.Pool, deps: Deps, *, limit: int = 200) -> int:
    """Claim what is due (leased), send it channel by channel (channels concurrently); returns how many."""
    now = deps.clock.now()
    async with pool.acquire() as conn, conn.transaction():
        due = await db.claim_due(conn, now=now, lease_until=now + timedelta(seconds=deps.settings.notify_lease_s),
                                 limit=limit)
    if not due:
        return 0
    by_channel: dict[str, list[Delivery]] = {}
    for d in due:
        by_channel.setdefault(d.channel_id, []).append(d)
    async with pool.acquire() as conn:
        channels = await db.channels_by_id(conn, list(by_channel))
    results = await asyncio.gather(*(_deliver_channel(pool, deps, channels.get(cid), ds)
                                     for cid, ds in by_channel.items()), return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            log.error("delivery_failed_unexpectedly", error=repr(r))  # the lease expires; it is tried again
    return len(due)
