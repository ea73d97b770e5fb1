"""Channels, subscriptions and the rules their input must follow. Pure: callers pass ``now`` and do the I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from allot.contracts.payloads import SEVERITIES, NotificationRequested
from allot.runtime.problems import Problem

ChannelKind = Literal["slack", "email", "webhook"]
CHANNEL_KINDS: tuple[ChannelKind, ...] = ("slack", "email", "webhook")
ChannelState = Literal["active", "paused", "disabled", "removed"]
"""paused: set by an admin (nothing is queued or sent); disabled: set by the notifier after repeated failures."""
#: Shortest webhook signing secret accepted (characters; `openssl rand -hex 32` gives 64).
MIN_SIGNING_SECRET_LEN = 32
MAX_RECIPIENTS = 20
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$|^\[?[0-9A-Fa-f:.]+\]?$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


class NotifyProblem(Problem):
    """Input that cannot become a channel or subscription; ``field`` names the request field."""


@dataclass(frozen=True)
class SealedSecret:
    """Channel secrets sealed to the notifier's key ``key_id`` (URL-safe base64 ciphertext)."""

    key_id: str
    ciphertext: str

    def as_dict(self) -> dict[str, str]:
        return {"key_id": self.key_id, "ciphertext": self.ciphertext}


@dataclass(frozen=True)
class QuietHours:
    """Local time window (``start`` to ``end``, may wrap midnight) in which non-critical messages wait."""

    start: str
    end: str
    timezone: str

    def as_dict(self) -> dict[str, str]:
        return {"start": self.start, "end": self.end, "timezone": self.timezone}


@dataclass(frozen=True)
class EmailConfig:
    """Where email goes and through which SMTP server (the password is in the channel's sealed secrets)."""

    smtp_host: str
    smtp_port: int
    smtp_username: str | None
    starttls: bool
    from_address: str
    to_addresses: list[str]
    implicit_tls: bool = False
    """SMTPS (RFC 8314): TLS from the first byte, as on port 465; STARTTLS is then not used."""

    def as_dict(self) -> dict[str, object]:
        return {"smtp_host": self.smtp_host, "smtp_port": self.smtp_port, "smtp_username": self.smtp_username,
                "starttls": self.starttls, "implicit_tls": self.implicit_tls, "from_address": self.from_address,
                "to_addresses": list(self.to_addresses)}


@dataclass(frozen=True)
class ChannelSecrets:
    """What is sealed at rest: the Slack or webhook URL, the webhook signing secret, the SMTP password."""

    url: str | None = None
    signing_secret: str | None = None
    smtp_password: str | None = None

    def __repr__(self) -> str:  # never print a secret by accident
        return "ChannelSecrets(<hidden>)"


@dataclass(frozen=True)
class Channel:
    """One place a workspace's notifications go. Secrets are held sealed (``secret``), never in the clear."""

    channel_id: str
    workspace_id: str
    kind: ChannelKind
    name: str
    state: ChannelState
    url_hint: str
    email: EmailConfig | None
    quiet_hours: QuietHours | None
    secret: SealedSecret | None
    consecutive_failures: int
    disabled_reason: str
    created_at: datetime
    updated_at: datetime

    def view(self) -> dict[str, object]:
        """The API view: no URL (only its host), no secret (only whether one is set)."""
        return {
            "channel_id": self.channel_id,
            "workspace_id": self.workspace_id,
            "kind": self.kind,
            "name": self.name,
            "state": self.state,
            "url_host": self.url_hint or None,
            "email": self.email.as_dict() if self.email else None,
            "quiet_hours": self.quiet_hours.as_dict() if self.quiet_hours else None,
            "secret_set": self.secret is not None,
            "consecutive_failures": self.consecutive_failures,
            "disabled_reason": self.disabled_reason or None,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class Subscription:
    """Which notifications (kinds, lowest severity) a channel receives; no kinds = every kind."""

    subscription_id: str
    workspace_id: str
    channel_id: str
    kinds: list[str] = field(default_factory=list)
    min_severity: str = "info"
    created_at: datetime | None = None

    def matches(self, n: NotificationRequested) -> bool:
        return (not self.kinds or n.kind in self.kinds) and severity_at_least(n.severity, self.min_severity)

    def view(self) -> dict[str, object]:
        return {"subscription_id": self.subscription_id, "workspace_id": self.workspace_id,
                "channel_id": self.channel_id, "kinds": list(self.kinds), "min_severity": self.min_severity,
                "created_at": self.created_at}


def severity_at_least(severity: str, minimum: str) -> bool:
    return SEVERITIES.index(severity) >= SEVERITIES.index(minimum)


def matching_channels(n: NotificationRequested, subscriptions: list[Subscription],
                      channels: dict[str, Channel]) -> list[Channel]:
    """Active channels of the notification's workspace subscribed to it, each once, in subscription order."""
    out: list[Channel] = []
    for s in subscriptions:
        c = channels.get(s.channel_id)
        if (c is None or c.state != "active" or c.workspace_id != n.workspace_id or s.workspace_id != n.workspace_id
                or not s.matches(n) or c in out):
            continue
        out.append(c)
    return out


def validate_name(name: str) -> str:
    value = name.strip()
    if not value:
        raise NotifyProblem("name", "is required")
    return value


def validate_signing_secret(secret: str | None) -> str:
    if not secret:
        raise NotifyProblem("signing_secret", "is required for a webhook channel (receivers verify with it)")
    if len(secret) < MIN_SIGNING_SECRET_LEN:
        raise NotifyProblem("signing_secret", f"is {len(secret)} characters long; at least "
                                              f"{MIN_SIGNING_SECRET_LEN} are required (e.g. `openssl rand -hex 32`)")
    return secret


def validate_email(field_name: str, address: str) -> str:
    value = address.strip()
    if not _EMAIL.match(value):
        raise NotifyProblem(field_name, "is not an email address")
    return value


def validate_email_config(*, smtp_host: str, smtp_port: int, smtp_username: str | None, starttls: bool,
                          from_address: str, to_addresses: list[str], development: bool,
                          implicit_tls: bool | None = None) -> EmailConfig:
    """The email settings of a channel. ``implicit_tls`` (SMTPS, RFC 8314) defaults to true on port 465; without
    it, STARTTLS may be off only in development."""
    implicit = smtp_port == 465 if implicit_tls is None else implicit_tls
    host = smtp_host.strip()
    if not host or not _HOST.match(host):
        raise NotifyProblem("email.smtp_host", "must be a host name or an IP address")
    if not 1 <= smtp_port <= 65535:
        raise NotifyProblem("email.smtp_port", "must be 1-65535")
    if not starttls and not implicit and not development:
        raise NotifyProblem("email.starttls", "must be true: mail and SMTP passwords never cross the network in "
                                              "the clear outside development")
    if not to_addresses:
        raise NotifyProblem("email.to_addresses", "at least one recipient is required")
    if len(to_addresses) > MAX_RECIPIENTS:
        raise NotifyProblem("email.to_addresses", f"at most {MAX_RECIPIENTS} recipients")
    return EmailConfig(
        smtp_host=host, smtp_port=smtp_port, smtp_username=(smtp_username or None), starttls=starttls and not implicit,
        implicit_tls=implicit, from_address=validate_email("email.from_address", from_address),
        to_addresses=[validate_email(f"email.to_addresses.{i}", a) for i, a in enumerate(to_addresses)])


def validate_quiet_hours(start: str, end: str, timezone: str, *, known_timezone: bool) -> QuietHours:
    """``known_timezone``: whether the caller's time zone database knows ``timezone`` (looked up by the caller)."""
    for name, value in (("quiet_hours.start", start), ("quiet_hours.end", end)):
        if not _HHMM.match(value):
            raise NotifyProblem(name, "must be a local time 'HH:MM' (24 h)")
    if start == end:
        raise NotifyProblem("quiet_hours.end", "must differ from start")
    if not known_timezone:
        raise NotifyProblem("quiet_hours.timezone", f"{timezone[:64]!r} is not an IANA time zone")
    return QuietHours(start, end, timezone)


@dataclass(frozen=True)
class Delivery:
    """One notification for one channel and where its delivery stands."""

    delivery_id: str
    workspace_id: str
    notification_id: str
    channel_id: str
    notification: NotificationRequested
    envelope: dict[str, object] | None
    state: Literal["pending", "delivered", "suppressed", "failed"]
    attempts: int
    next_attempt_at: datetime
    last_error: str = ""


def delivery_id(notification_id: object, channel_id: str) -> str:
    """One delivery per notification and channel: the same id whenever the notification comes again."""
    return f"dlv_{notification_id}_{channel_id}"[:200]


def channel_disabled_notification(channel: Channel, *, failures: int, threshold: int, last_error: str,
                                  now: datetime) -> NotificationRequested:
    """What the workspace's admins hear when a channel is disabled (one per disabling: the id names the instant)."""
    import uuid

    from allot.contracts.envelope import EVENT_NAMESPACE
    from allot.contracts.payloads import NotifiedEntity

    return NotificationRequested(
        notification_id=uuid.uuid5(EVENT_NAMESPACE, f"notify/channel-disabled/{channel.channel_id}/{now.isoformat()}"),
        workspace_id=channel.workspace_id, kind="channel_disabled", severity="critical",
        title=f"Notification channel '{channel.name}' was disabled"[:200],
        summary=(f"{failures} deliveries in a row to this {channel.kind} channel failed; it receives nothing until "
                 "an admin fixes it and sends a test message (a successful test enables it again) or sets it "
                 "active again.")[:2000],
        condition=f"consecutive failed attempts {failures} >= threshold {threshold}",
        facts={"consecutive_failures": failures, "threshold": threshold, "last_error": last_error[:300]},
        entities=[NotifiedEntity(entity_type="channel", entity_id=channel.channel_id, name=channel.name[:200],
                                 detail=last_error[:300])],
        source="notify", source_id=channel.channel_id, dedupe_key=f"channel_disabled/{channel.channel_id}",
        console_path=f"/notifications/channels/{channel.channel_id}", occurred_at=now)
