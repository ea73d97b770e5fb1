"""Notify HTTP API (admin role; every route is scoped to the caller's workspace).

- POST   /api/v1/notifications/channels            a Slack, email or webhook channel (secrets sealed at once)
- GET    /api/v1/notifications/channels            this workspace's channels (?include_removed=true)
- GET    /api/v1/notifications/channels/{id}       one channel
- PATCH  /api/v1/notifications/channels/{id}       change name, quiet hours, URL / secrets / email settings, or
                                                   state (active | paused; active re-enables a disabled channel)
- DELETE /api/v1/notifications/channels/{id}       remove it (its secrets are dropped, its subscriptions too)
- POST   /api/v1/notifications/channels/{id}/test  send a test message now; a success enables a disabled channel
- POST   /api/v1/notifications/subscriptions       which kinds, from which severity, go to which channel
- GET    /api/v1/notifications/subscriptions
- DELETE /api/v1/notifications/subscriptions/{id}
- GET    /api/v1/notifications/deliveries          every attempt, newest first (?channel_id, ?notification_id)

No response and no log line carries a URL path, signing secret or SMTP password (only the URL's host).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from allot.contracts.payloads import NotificationKind, NotificationRequested, NotifiedEntity, Severity
from allot.notify.adapters import postgres as db
from allot.notify.adapters.senders import check_host, check_url
from allot.notify.domain.channels import (
    KEEP,
    ChannelPatch,
    ChannelTarget,
    EmailInput,
    EmailPatch,
    check_fields_apply,
    edit_channel,
    validate_target,
)
from allot.notify.domain.model import (
    Channel,
    ChannelSecrets,
    Delivery,
    NotifyProblem,
    QuietHours,
    Subscription,
    validate_name,
    validate_quiet_hours,
)
from allot.notify.domain.policy import classify, describe
from allot.notify.workflow import Deps, open_secrets, seal_secrets, send
from allot.runtime.auth import Principal, require
from allot.runtime.db import Conn
from allot.runtime.deps import need
from allot.runtime.http import ApiError, problem_error
from allot.runtime.logging import get_logger
from allot.runtime.openapi import Body as ResponseBody
from allot.runtime.openapi import documented
from allot.runtime.sealing import SealingError
from allot.runtime.service import ServiceContext, get_ctx

log = get_logger(__name__)
router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])
_ID = r"^[A-Za-z0-9_-]{1,64}$"


class EmailIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    smtp_host: str = Field(min_length=1, max_length=253)
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = Field(default=None, max_length=200)
    smtp_password: SecretStr | None = Field(default=None, description="Write-only: sealed at once, never shown.")
    starttls: bool = Field(default=True, description="May be false only in development (or with implicit_tls).")
    implicit_tls: bool | None = Field(
        default=None, description="SMTPS (RFC 8314): TLS from the first byte instead of STARTTLS. Default: true on "
                                  "port 465, false otherwise.")
    from_address: str = Field(min_length=3, max_length=320)
    to_addresses: list[str] = Field(min_length=1, max_length=20)


class QuietHoursIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: str = Field(description="Local 'HH:MM'.", max_length=5)
    end: str = Field(description="Local 'HH:MM' (may be before start: the window wraps midnight).", max_length=5)
    timezone: str = Field(min_length=1, max_length=64, description="IANA time zone of the workspace.")


class ChannelCreate(BaseModel):
    """A new channel. URLs and secrets are write-only: sealed at once and never shown again."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["slack", "email", "webhook"]
    name: str = Field(min_length=1, max_length=100)
    url: SecretStr | None = Field(default=None, description="slack: the incoming-webhook URL; webhook: the "
                                                            "endpoint (https).")
    signing_secret: SecretStr | None = Field(default=None, description="webhook: HMAC-SHA256 key, >= 32 characters.")
    email: EmailIn | None = None
    quiet_hours: QuietHoursIn | None = None


class EmailPatchIn(BaseModel):
    """Email settings to replace; the fields not given stay. null clears smtp_username, smtp_password or implicit_tls
    (back to the port's default)."""

    model_config = ConfigDict(extra="forbid")

    smtp_host: str | None = Field(default=None, min_length=1, max_length=253)
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_username: str | None = Field(default=None, max_length=200)
    smtp_password: SecretStr | None = Field(default=None, description="Write-only: sealed at once, never shown.")
    starttls: bool | None = None
    implicit_tls: bool | None = None
    from_address: str | None = Field(default=None, min_length=3, max_length=320)
    to_addresses: list[str] | None = Field(default=None, min_length=1, max_length=20)


class ChannelPatchIn(BaseModel):
    """A JSON merge-patch of a channel: only the fields given change; ``quiet_hours: null`` clears them. The kind
    cannot change; ``state`` may be set to active (also re-enabling a disabled channel) or paused."""

    model_config = ConfigDict(extra="forbid")

    kind: str | None = Field(default=None, max_length=20, description="Cannot change (may repeat the current one).")
    name: str | None = Field(default=None, min_length=1, max_length=100)
    url: SecretStr | None = Field(default=None, description="slack / webhook: a new URL (write-only).")
    signing_secret: SecretStr | None = Field(default=None, description="webhook: a new HMAC key (write-only).")
    email: EmailPatchIn | None = None
    quiet_hours: QuietHoursIn | None = None
    state: str | None = Field(default=None, max_length=20, description="active or paused.")


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel_id: str = Field(pattern=_ID)
    kinds: list[NotificationKind] = Field(default_factory=list, max_length=20, description="Empty: every kind.")
    min_severity: Severity = "info"


class EmailView(ResponseBody):
    smtp_host: str
    smtp_port: int
    smtp_username: str | None
    starttls: bool
    implicit_tls: bool
    from_address: str
    to_addresses: list[str]


class QuietHoursView(ResponseBody):
    start: str = Field(description="HH:MM, local")
    end: str = Field(description="HH:MM, local (may be before start: the window wraps midnight)")
    timezone: str


class ChannelView(ResponseBody):
    """A channel as the API shows it: where it delivers and whether a secret is set; never the secret."""

    channel_id: str
    workspace_id: str
    kind: str = Field(description="webhook | slack | email")
    name: str
    state: str = Field(description="active | disabled | removed")
    url_host: str | None = Field(description="The receiver's host (never the whole URL: it may hold a token).")
    email: EmailView | None
    quiet_hours: QuietHoursView | None
    secret_set: bool
    consecutive_failures: int
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


class ChannelList(ResponseBody):
    channels: list[ChannelView]


class ChannelTestResult(ResponseBody):
    notification_id: uuid.UUID | str
    delivered: bool
    http_status: int | None = Field(description="The receiver's answer (webhook, Slack).")
    smtp_code: int | None = Field(description="The SMTP server's answer (email).")
    error: str | None
    channel_state: str


class SubscriptionView(ResponseBody):
    subscription_id: str
    workspace_id: str
    channel_id: str
    kinds: list[str] = Field(description="The notification kinds it takes (empty: every kind).")
    min_severity: str
    created_at: datetime


class SubscriptionList(ResponseBody):
    subscriptions: list[SubscriptionView]


class SubscriptionDeleted(ResponseBody):
    subscription_id: str
    deleted: bool


class DeliveryAttempt(ResponseBody):
    attempt_id: int
    delivery_id: str
    channel_id: str
    notification_id: str
    message_id: str = Field(description="The idempotency key sent (a digest's id when part of one).")
    attempt: int
    outcome: str = Field(description="delivered | retry | failed | suppressed")
    http_status: int | None
    smtp_code: int | None
    error: str
    duration_ms: int
    attempted_at: datetime
    delivery_state: str | None
    kind: str | None
    severity: str | None


class DeliveryList(ResponseBody):
    deliveries: list[DeliveryAttempt] = Field(description="Newest first.")


def _deps(ctx: ServiceContext) -> Deps:
    return need(ctx, Deps)


def _known_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _quiet_hours(q: QuietHoursIn) -> QuietHours:
    return validate_quiet_hours(q.start, q.end, q.timezone, known_timezone=_known_timezone(q.timezone))


def _plain(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


async def _check_reachable(deps: Deps, target: ChannelTarget, *, url: bool, smtp: bool) -> None:
    """DNS: the (new) URL's host or SMTP server must resolve to public addresses; NotifyProblem naming the field."""
    s = deps.settings
    if url and target.secrets.url:
        await check_url(target.secrets.url, field="url", development=s.development, allow_loopback=s.loopback_allowed)
    if smtp and target.email is not None:
        await check_host(target.email.smtp_host, target.email.smtp_port, field="email.smtp_host",
                         allow_loopback=s.loopback_allowed)


async def _validated(body: ChannelCreate, deps: Deps) -> tuple[ChannelTarget, QuietHours | None]:
    """The destination and quiet hours of a valid new channel; NotifyProblem naming the field (the same checks an
    edit's merged settings pass: allot.notify.domain.channels)."""
    quiet = None if body.quiet_hours is None else _quiet_hours(body.quiet_hours)
    check_fields_apply(body.kind, [n for n in ("url", "signing_secret", "email") if getattr(body, n) is not None])
    e = body.email
    email = None if e is None else EmailInput(
        smtp_host=e.smtp_host, smtp_port=e.smtp_port, smtp_username=e.smtp_username,
        smtp_password=_plain(e.smtp_password), starttls=e.starttls, implicit_tls=e.implicit_tls,
        from_address=e.from_address, to_addresses=e.to_addresses)
    target = validate_target(body.kind, url=_plain(body.url), signing_secret=_plain(body.signing_secret), email=email,
                             development=deps.settings.development)
    await _check_reachable(deps, target, url=True, smtp=True)
    return target, quiet


@router.post("/channels", status_code=201, **documented(ChannelView))
async def create_channel(body: ChannelCreate, principal: Principal = Depends(require("admin")),
                         ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    deps = _deps(ctx)
    try:
        name = validate_name(body.name)
        target, quiet = await _validated(body, deps)
    except NotifyProblem as exc:
        raise problem_error(exc) from None
    now = ctx.clock.now()
    channel = Channel(
        channel_id=f"ch_{uuid.uuid4().hex[:20]}", workspace_id=principal.workspace_id, kind=body.kind, name=name,
        state="active", url_hint=target.url_hint(body.kind), email=target.email, quiet_hours=quiet,
        secret=seal_secrets(deps.keyring, target.secrets), consecutive_failures=0, disabled_reason="", created_at=now,
        updated_at=now)
    async with ctx.pool.acquire() as conn:
        await db.insert_channel(conn, channel, created_by=principal.key_id)
    log.info("channel_created", workspace_id=principal.workspace_id, channel_id=channel.channel_id, kind=body.kind,
             host=target.host, key_id=principal.key_id)
    return channel.view()


@router.get("/channels", **documented(ChannelList))
async def list_channels(include_removed: bool = Query(False), principal: Principal = Depends(require("admin")),
                        ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await db.list_channels(conn, principal.workspace_id, include_removed=include_removed)
    return {"channels": [c.view() for c in rows]}


async def _existing(conn: Conn, principal: Principal, channel_id: str, *,
                    for_update: bool = False) -> Channel:
    found = await db.get_channel(conn, principal.workspace_id, channel_id, for_update=for_update)
    if found is None or found.state == "removed":
        raise ApiError(404, "not_found", f"channel_id: no channel {channel_id} in this workspace", field="channel_id")
    return found


@router.get("/channels/{channel_id}", **documented(ChannelView, 404))
async def get_channel(channel_id: str = Path(pattern=_ID), principal: Principal = Depends(require("admin")),
                      ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        return (await _existing(conn, principal, channel_id)).view()


def _given(model: BaseModel, name: str) -> Any:
    """The field's value when the request gave it (null included; secrets in the clear), KEEP when it did not."""
    if name not in model.model_fields_set:
        return KEEP
    value = getattr(model, name)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _patch(body: ChannelPatchIn) -> ChannelPatch:
    quiet, email = _given(body, "quiet_hours"), _given(body, "email")
    return ChannelPatch(
        kind=_given(body, "kind"), name=_given(body, "name"), url=_given(body, "url"),
        signing_secret=_given(body, "signing_secret"), state=_given(body, "state"),
        quiet_hours=_quiet_hours(quiet) if isinstance(quiet, QuietHoursIn) else quiet,
        email=EmailPatch(**{n: _given(email, n) for n in EmailPatchIn.model_fields})
        if isinstance(email, EmailPatchIn) else email)


def _current_secrets(deps: Deps, channel: Channel) -> ChannelSecrets:
    """The secrets an edit merges into. Unreadable ones (sealed to a key the notifier no longer holds) count as
    unset: the edit must then give them anew, which is how such a channel is repaired."""
    try:
        return open_secrets(deps.keyring, channel.secret)
    except (SealingError, ValueError, TypeError) as exc:
        log.warning("channel_secret_unreadable", workspace_id=channel.workspace_id, channel_id=channel.channel_id,
                    error=str(exc)[:200])
        return ChannelSecrets()


@router.patch("/channels/{channel_id}", **documented(ChannelView, 404))
async def update_channel(body: ChannelPatchIn, channel_id: str = Path(pattern=_ID),
                         principal: Principal = Depends(require("admin")),
                         ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    """Change what was given (a merge-patch), under the channel's row lock; a new URL, secret or password is checked
    like on create and the whole secret bundle sealed again."""
    deps = _deps(ctx)
    async with ctx.pool.acquire() as conn, conn.transaction():
        channel = await _existing(conn, principal, channel_id, for_update=True)
        try:
            patch = _patch(body)
            secrets = _current_secrets(deps, channel) if patch.touches_destination else None
            edit = edit_channel(channel, patch, secrets=secrets, development=deps.settings.development,
                                now=ctx.clock.now())
            if edit.target is not None:
                await _check_reachable(deps, edit.target, url=edit.url_changed, smtp=edit.smtp_server_changed)
        except NotifyProblem as exc:
            raise problem_error(exc) from None
        after = edit.channel if edit.target is None else replace(
            edit.channel, secret=seal_secrets(deps.keyring, edit.target.secrets))
        saved = await db.update_channel(conn, after)
    log.info("channel_changed", workspace_id=principal.workspace_id, channel_id=channel_id, fields=patch.given(),
             state=saved.state, host=saved.url_hint or None, key_id=principal.key_id)
    return saved.view()


@router.delete("/channels/{channel_id}", **documented(ChannelView, 404))
async def delete_channel(channel_id: str = Path(pattern=_ID), principal: Principal = Depends(require("admin")),
                         ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn, conn.transaction():
        channel = await _existing(conn, principal, channel_id, for_update=True)
        await db.set_channel_state(conn, channel, state="removed", secret_cleared=True, now=now)
        await db.delete_subscriptions_of(conn, principal.workspace_id, channel_id)
        removed = await db.get_channel(conn, principal.workspace_id, channel_id)
    assert removed is not None
    log.info("channel_removed", workspace_id=principal.workspace_id, channel_id=channel_id, key_id=principal.key_id)
    return removed.view()


@router.post("/channels/{channel_id}/test", **documented(ChannelTestResult, 404))
async def test_channel(channel_id: str = Path(pattern=_ID), principal: Principal = Depends(require("admin")),
                       ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    """Send a test message now (recorded like every attempt); a success enables a disabled channel again."""
    deps = _deps(ctx)
    async with ctx.pool.acquire() as conn:
        channel = await _existing(conn, principal, channel_id)
    now = deps.clock.now()
    n = NotificationRequested(
        notification_id=uuid.uuid4(), workspace_id=principal.workspace_id, kind="test", severity="info",
        title=f"Test message for channel '{channel.name}'"[:200],
        summary="If you read this, Allot's notifications reach this channel.",
        entities=[NotifiedEntity(entity_type="channel", entity_id=channel.channel_id, name=channel.name[:200])],
        source="notify", source_id=channel.channel_id, dedupe_key=f"test/{uuid.uuid4()}",
        console_path=f"/notifications/channels/{channel.channel_id}", occurred_at=now)
    result = await send(deps, channel if channel.state == "active" else _as_active(channel), n)
    ok = classify(result) == "delivered"
    done = deps.clock.now()
    d = Delivery(delivery_id=f"dlv_{n.notification_id}_{channel.channel_id}", workspace_id=principal.workspace_id,
                 notification_id=str(n.notification_id), channel_id=channel.channel_id, notification=n, envelope=None,
                 state="delivered" if ok else "failed", attempts=1, next_attempt_at=done,
                 last_error="" if ok else describe(result))
    async with ctx.pool.acquire() as conn, conn.transaction():
        await db.insert_delivery(conn, d, dedupe_key=n.dedupe_key, now=done)
        await db.record_attempt(conn, d, message_id=d.notification_id, attempt=1,
                                outcome="delivered" if ok else "failed", http_status=result.status,
                                smtp_code=result.smtp_code, error=d.last_error, duration_ms=0, now=done)
        if ok:
            await db.record_channel_result(conn, channel.channel_id, ok=True, now=done)
            if channel.state == "disabled":
                await db.set_channel_state(conn, channel, state="active", now=done)
    log.info("channel_tested", workspace_id=principal.workspace_id, channel_id=channel_id, delivered=ok,
             http_status=result.status, smtp_code=result.smtp_code)
    return {"notification_id": d.notification_id, "delivered": ok, "http_status": result.status,
            "smtp_code": result.smtp_code, "error": d.last_error or None, "channel_state":
            "active" if ok and channel.state == "disabled" else channel.state}


def _as_active(c: Channel) -> Channel:
    return replace(c, state="active")


@router.post("/subscriptions", status_code=201, **documented(SubscriptionView, 404))
async def create_subscription(body: SubscriptionCreate, principal: Principal = Depends(require("admin")),
                              ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    s = Subscription(subscription_id=f"sub_{uuid.uuid4().hex[:20]}", workspace_id=principal.workspace_id,
                     channel_id=body.channel_id, kinds=sorted(set(body.kinds)), min_severity=body.min_severity,
                     created_at=ctx.clock.now())
    async with ctx.pool.acquire() as conn, conn.transaction():
        await _existing(conn, principal, body.channel_id, for_update=True)
        await db.insert_subscription(conn, s)
    log.info("subscription_created", workspace_id=principal.workspace_id, subscription_id=s.subscription_id,
             channel_id=s.channel_id, kinds=s.kinds, min_severity=s.min_severity)
    return s.view()


@router.get("/subscriptions", **documented(SubscriptionList))
async def list_subscriptions(principal: Principal = Depends(require("admin")),
                             ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await db.list_subscriptions(conn, principal.workspace_id)
    return {"subscriptions": [s.view() for s in rows]}


@router.delete("/subscriptions/{subscription_id}", **documented(SubscriptionDeleted, 404))
async def delete_subscription(subscription_id: str = Path(pattern=_ID),
                              principal: Principal = Depends(require("admin")),
                              ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        if not await db.delete_subscription(conn, principal.workspace_id, subscription_id):
            raise ApiError(404, "not_found", f"subscription_id: no subscription {subscription_id} in this workspace",
                           field="subscription_id")
    return {"subscription_id": subscription_id, "deleted": True}


@router.get("/deliveries", **documented(DeliveryList))
async def list_deliveries(channel_id: str | None = Query(None, pattern=_ID),
                          notification_id: uuid.UUID | None = Query(None),
                          limit: int = Query(100, ge=1, le=1000),
                          principal: Principal = Depends(require("admin")),
                          ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await db.list_attempts(conn, principal.workspace_id, channel_id=channel_id,
                                      notification_id=None if notification_id is None else str(notification_id),
                                      limit=limit)
    return {"deliveries": rows}


__all__ = ["router"]
