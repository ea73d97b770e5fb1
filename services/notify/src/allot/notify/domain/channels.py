"""What a channel's settings must satisfy, checked alike for a new channel and for an edited one, and how an edit
(a JSON merge-patch) merges into a channel. Pure: no DNS (the caller resolves the hosts this names), no clock.

An edit is checked in this order: ``kind`` cannot change; ``state`` may only be set to active or paused; ``name``;
then, when any part of the destination is given (``url``, ``signing_secret``, ``email``), fields the kind does not
use are refused and the merged destination is validated as a whole by the same ``validate_target`` as a new
channel's, so an edit can never store what create would refuse.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, fields, replace
from datetime import datetime
from enum import Enum
from typing import Any, Final, TypeVar

from allot.notify.domain.model import (
    Channel,
    ChannelKind,
    ChannelSecrets,
    ChannelState,
    EmailConfig,
    NotifyProblem,
    QuietHours,
    validate_email_config,
    validate_name,
    validate_signing_secret,
)
from allot.notify.domain.urls import parse_outbound_url, url_hint


class Keep(Enum):
    """A field an edit does not give (``None`` would mean: clear it)."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP
T = TypeVar("T")

#: The states an admin may set; "disabled" is the notifier's verdict, "removed" is DELETE's.
SETTABLE_STATES: tuple[ChannelState, ...] = ("active", "paused")
#: The destination fields each kind uses.
USES: dict[ChannelKind, frozenset[str]] = {"slack": frozenset({"url"}), "webhook": frozenset({"url", "signing_secret"}),
                                           "email": frozenset({"email"})}


@dataclass(frozen=True)
class EmailInput:
    """Email settings as given (a new channel) or merged (an edit), before validation; the password in the clear."""

    smtp_host: str
    from_address: str
    to_addresses: list[str]
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    starttls: bool = True
    implicit_tls: bool | None = None

    def __repr__(self) -> str:  # never print the password by accident
        return f"EmailInput(smtp_host={self.smtp_host!r}, smtp_port={self.smtp_port}, <password hidden>)"


@dataclass(frozen=True)
class ChannelTarget:
    """A channel's validated destination: the host (URL host or SMTP server), email settings, secrets to seal."""

    host: str
    email: EmailConfig | None
    secrets: ChannelSecrets

    def url_hint(self, kind: ChannelKind) -> str:
        """What the API shows of the destination: the URL's host; nothing for email (its settings are shown)."""
        return "" if kind == "email" else self.host


def check_fields_apply(kind: ChannelKind, given: Collection[str]) -> None:
    """NotifyProblem naming the first destination field in ``given`` that a channel of ``kind`` does not use."""
    for name in ("email", "url", "signing_secret"):
        if name in given and name not in USES[kind]:
            if name == "email":
                raise NotifyProblem("email", f"is for email channels, not {kind}")
            if kind == "email":
                raise NotifyProblem(name, "is not used by email channels")
            raise NotifyProblem(name, "is for webhook channels (Slack URLs carry their own secret)")


def validate_target(kind: ChannelKind, *, url: str | None, signing_secret: str | None, email: EmailInput | None,
                    development: bool) -> ChannelTarget:
    """The destination of a channel of ``kind`` (fields of other kinds are refused first by ``check_fields_apply``);
    NotifyProblem naming the field. The caller still resolves the host (it must be public)."""
    if kind == "email":
        if email is None:
            raise NotifyProblem("email", "is required for an email channel")
        cfg = validate_email_config(
            smtp_host=email.smtp_host, smtp_port=email.smtp_port, smtp_username=email.smtp_username,
            starttls=email.starttls, from_address=email.from_address, to_addresses=email.to_addresses,
            development=development, implicit_tls=email.implicit_tls)
        password = email.smtp_password or None
        if cfg.smtp_username and not password:
            raise NotifyProblem("email.smtp_password", "is required with smtp_username")
        # without a user name no login happens: a password would only be a secret kept for nothing
        return ChannelTarget(cfg.smtp_host, cfg, ChannelSecrets(smtp_password=password if cfg.smtp_username else None))
    if url is None:
        raise NotifyProblem("url", f"is required for a {kind} channel")
    host = url_hint(parse_outbound_url(url, field="url", development=development))
    secret = validate_signing_secret(signing_secret) if kind == "webhook" else None
    return ChannelTarget(host, None, ChannelSecrets(url=url, signing_secret=secret))


# ---------------------------------------------------------------- edits


@dataclass(frozen=True)
class EmailPatch:
    """The email fields an edit gives: each replaces the current one; None clears an optional one (user name,
    password, implicit_tls: back to the port's default)."""

    smtp_host: str | None | Keep = KEEP
    smtp_port: int | None | Keep = KEEP
    smtp_username: str | None | Keep = KEEP
    smtp_password: str | None | Keep = KEEP
    starttls: bool | None | Keep = KEEP
    implicit_tls: bool | None | Keep = KEEP
    from_address: str | None | Keep = KEEP
    to_addresses: list[str] | None | Keep = KEEP

    def given(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not KEEP}

    def __repr__(self) -> str:
        return f"EmailPatch(given={sorted(self.given())})"


_EMAIL_OPTIONAL = frozenset({"smtp_username", "smtp_password", "implicit_tls"})


@dataclass(frozen=True)
class ChannelPatch:
    """A merge-patch of a channel: KEEP = not given; None = clear (only ``quiet_hours`` may be cleared; for the
    rest, None is checked like a missing value on create). ``quiet_hours`` arrives validated."""

    kind: str | None | Keep = KEEP
    name: str | None | Keep = KEEP
    quiet_hours: QuietHours | None | Keep = KEEP
    url: str | None | Keep = KEEP
    signing_secret: str | None | Keep = KEEP
    email: EmailPatch | None | Keep = KEEP
    state: str | None | Keep = KEEP

    def given(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not KEEP]

    @property
    def touches_destination(self) -> bool:
        """Whether the URL, signing secret or email settings are given (then the secrets must be opened)."""
        return any(getattr(self, name) is not KEEP for name in ("url", "signing_secret", "email"))

    def __repr__(self) -> str:
        return f"ChannelPatch(given={self.given()})"


@dataclass(frozen=True)
class ChannelEdit:
    """A channel after an edit. ``target`` is the whole new destination when any part of it was given: seal its
    secrets in place of the old ones; None leaves the sealed secrets as they are."""

    channel: Channel
    target: ChannelTarget | None = None
    #: the URL changed: resolve its host before saving (it must be public)
    url_changed: bool = False
    #: the SMTP server (host or port) changed: resolve it before saving
    smtp_server_changed: bool = False


def edit_channel(channel: Channel, patch: ChannelPatch, *, secrets: ChannelSecrets | None, development: bool,
                 now: datetime) -> ChannelEdit:
    """The channel after ``patch`` (checked in the order the module docstring gives); NotifyProblem naming the
    field. ``secrets``: the channel's current ones in the clear, needed when ``patch.touches_destination``."""
    if not patch.given():
        raise NotifyProblem("body", "nothing to change (name, quiet_hours, url, signing_secret, email or state)")
    if patch.kind is not KEEP and patch.kind != channel.kind:
        raise NotifyProblem("kind", f"cannot change: this is a {channel.kind} channel (create a new channel instead)")
    state, failures, reason = _next_state(channel, patch.state)
    edited = replace(channel, state=state, consecutive_failures=failures, disabled_reason=reason, updated_at=now,
                     name=channel.name if patch.name is KEEP else validate_name(patch.name or ""),
                     quiet_hours=_merged(patch.quiet_hours, channel.quiet_hours))
    if not patch.touches_destination:
        return ChannelEdit(edited)
    if secrets is None:
        raise ValueError("editing a channel's destination needs its current secrets")
    check_fields_apply(channel.kind, [n for n in ("url", "signing_secret", "email")
                                      if getattr(patch, n) not in (KEEP, None)])
    email = None  # email: null on an email channel is checked like a missing email on create
    if channel.kind == "email" and patch.email is not None:
        email = merge_email(channel.email, secrets.smtp_password, _merged(patch.email, EmailPatch()))
    target = validate_target(channel.kind, url=_merged(patch.url, secrets.url),
                             signing_secret=_merged(patch.signing_secret, secrets.signing_secret), email=email,
                             development=development)
    email_given = patch.email.given() if isinstance(patch.email, EmailPatch) else {}
    return ChannelEdit(replace(edited, url_hint=target.url_hint(channel.kind), email=target.email), target,
                       url_changed=patch.url is not KEEP,
                       smtp_server_changed=bool({"smtp_host", "smtp_port"} & email_given.keys()))


def _merged(given: T | Keep, current: T) -> T:
    return current if given is KEEP else given


def merge_email(current: EmailConfig | None, password: str | None, patch: EmailPatch) -> EmailInput:
    """The email settings after ``patch``: each given field replaces the current one (null clears an optional one,
    is refused for the others); a new port without ``implicit_tls`` takes the port's default, as on create."""
    given = patch.given()
    for name, value in given.items():
        if value is None and name not in _EMAIL_OPTIONAL:
            raise NotifyProblem(f"email.{name}", "is required (it can be changed, not removed)")
    if "smtp_port" in given and "implicit_tls" not in given:
        given["implicit_tls"] = None
    base = EmailInput(smtp_host="", from_address="", to_addresses=[]) if current is None else EmailInput(
        smtp_host=current.smtp_host, smtp_port=current.smtp_port, smtp_username=current.smtp_username,
        smtp_password=password, starttls=current.starttls, implicit_tls=current.implicit_tls,
        from_address=current.from_address, to_addresses=list(current.to_addresses))
    return replace(base, **given)


def _next_state(channel: Channel, requested: str | None | Keep) -> tuple[ChannelState, int, str]:
    """(state, consecutive failures, disabled reason) after an edit asking for ``requested``. Leaving "disabled"
    (to active, or to paused) forgets the failures that disabled the channel."""
    if requested is KEEP:
        return channel.state, channel.consecutive_failures, channel.disabled_reason
    if requested == "disabled":
        raise NotifyProblem("state", "cannot be set to disabled: the notifier disables a channel after repeated "
                                     "failures (set paused to stop it by hand)")
    if requested == "removed":
        raise NotifyProblem("state", "cannot be set to removed: remove a channel with DELETE")
    state = next((s for s in SETTABLE_STATES if s == requested), None)
    if state is None:
        raise NotifyProblem("state", f"must be one of {', '.join(SETTABLE_STATES)}")
    if channel.state == "disabled":
        return state, 0, ""
    return state, channel.consecutive_failures, channel.disabled_reason
