"""Editing a channel (domain only): a merge-patch is checked like a new channel on the merged settings, the kind is
fixed, only active and paused can be set by hand, and a destination edit yields the whole new secret bundle."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from allot.contracts.examples import EXAMPLES
from allot.contracts.payloads import NotificationRequested
from allot.notify.domain.channels import (
    KEEP,
    ChannelPatch,
    EmailInput,
    EmailPatch,
    check_fields_apply,
    edit_channel,
    validate_target,
)
from allot.notify.domain.model import (
    Channel,
    ChannelKind,
    ChannelSecrets,
    EmailConfig,
    NotifyProblem,
    QuietHours,
    Subscription,
    matching_channels,
)

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=5)
SECRET = "s" * 40
NEW_SECRET = "n" * 40
MAIL = EmailConfig(smtp_host="smtp.example.com", smtp_port=587, smtp_username="alerts@example.com", starttls=True,
                   from_address="allot@example.com", to_addresses=["buyer@example.com"])
HOOK_SECRETS = ChannelSecrets(url="https://hooks.example.com/abc", signing_secret=SECRET)
MAIL_SECRETS = ChannelSecrets(smtp_password="smtp-pass")


def channel(kind: ChannelKind = "webhook", *, state: str = "active", failures: int = 0, reason: str = "",
            quiet: QuietHours | None = None) -> Channel:
    return Channel(channel_id="ch_1", workspace_id="ws_1", kind=kind, name="Ops", state=state,  # type: ignore[arg-type]
                   url_hint="" if kind == "email" else "hooks.example.com", email=MAIL if kind == "email" else None,
                   quiet_hours=quiet, secret=None, consecutive_failures=failures, disabled_reason=reason,
                   created_at=T0, updated_at=T0)


def edit(c: Channel, secrets: ChannelSecrets | None = None, **given: Any) -> Any:
    return edit_channel(c, ChannelPatch(**given), secrets=secrets, development=False, now=LATER)


def problem_field(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(NotifyProblem) as caught:
        fn(*args, **kwargs)
    return caught.value.field


# ---------------------------------------------------------------- the checks create and edit share


@pytest.mark.parametrize(("kind", "given", "field", "message"), [
    ("slack", {"signing_secret"}, "signing_secret", "is for webhook channels (Slack URLs carry their own secret)"),
    ("webhook", {"url", "email"}, "email", "is for email channels, not webhook"),
    ("email", {"url"}, "url", "is not used by email channels"),
    ("email", {"signing_secret"}, "signing_secret", "is not used by email channels"),
])
def test_a_field_the_kind_does_not_use_is_refused_by_name(kind: ChannelKind, given: set[str], field: str,
                                                          message: str) -> None:
    with pytest.raises(NotifyProblem) as caught:
        check_fields_apply(kind, given)
    assert (caught.value.field, caught.value.message) == (field, message)


def test_the_fields_a_kind_uses_pass() -> None:
    check_fields_apply("webhook", {"url", "signing_secret"})
    check_fields_apply("slack", {"url"})
    check_fields_apply("email", {"email"})


def mail_input(**changes: Any) -> EmailInput:
    base = EmailInput(smtp_host="smtp.example.com", from_address="allot@example.com",
                      to_addresses=["buyer@example.com"], smtp_username="u", smtp_password="p")
    return replace(base, **changes)


@pytest.mark.parametrize(("kind", "url", "secret", "email", "field"), [
    ("slack", None, None, None, "url"),
    ("webhook", "https://hooks.example.com/x", None, None, "signing_secret"),
    ("webhook", "https://hooks.example.com/x", "short", None, "signing_secret"),
    ("webhook", "ftp://hooks.example.com/x", SECRET, None, "url"),
    ("email", None, None, None, "email"),
    ("email", None, None, mail_input(smtp_password=None), "email.smtp_password"),
    ("email", None, None, mail_input(smtp_password=""), "email.smtp_password"),
    ("email", None, None, mail_input(to_addresses=["nope"]), "email.to_addresses.0"),
    ("email", None, None, mail_input(starttls=False), "email.starttls"),
])
def test_an_invalid_destination_names_its_field(kind: ChannelKind, url: str | None, secret: str | None,
                                                email: EmailInput | None, field: str) -> None:
    assert problem_field(validate_target, kind, url=url, signing_secret=secret, email=email,
                         development=False) == field


def test_a_valid_destination_carries_its_host_settings_and_only_the_secrets_it_uses() -> None:
    hook = validate_target("webhook", url="https://hooks.example.com/p/SECRETPATH", signing_secret=SECRET, email=None,
                           development=False)
    assert hook.host == hook.url_hint("webhook") == "hooks.example.com" and hook.email is None
    assert (hook.secrets.url, hook.secrets.signing_secret) == ("https://hooks.example.com/p/SECRETPATH", SECRET)
    mail = validate_target("email", url=None, signing_secret=None, email=mail_input(), development=False)
    assert mail.host == "smtp.example.com" and mail.url_hint("email") == ""
    assert mail.email is not None and mail.email.smtp_username == "u" and mail.secrets.smtp_password == "p"
    anonymous = validate_target("email", url=None, signing_secret=None, email=mail_input(smtp_username=None),
                                development=False)
    assert anonymous.secrets.smtp_password is None, "no login, no password kept"


# ---------------------------------------------------------------- name, quiet hours, kind


def test_rename_and_quiet_hours_set_then_cleared_leave_the_secrets_alone() -> None:
    quiet = QuietHours("22:00", "07:00", "Europe/Berlin")
    first = edit(channel(), name="  Night ops ", quiet_hours=quiet)
    assert first.channel.name == "Night ops" and first.channel.quiet_hours == quiet
    assert first.channel.updated_at == LATER and first.target is None, "nothing to reseal"
    cleared = edit(first.channel, quiet_hours=None)
    assert cleared.channel.quiet_hours is None and cleared.channel.name == "Night ops"


@pytest.mark.parametrize(("given", "field"), [
    ({}, "body"),
    ({"name": ""}, "name"),
    ({"name": None}, "name"),
    ({"kind": "slack"}, "kind"),
    ({"kind": None}, "kind"),
])
def test_bad_edits_name_the_field(given: dict[str, Any], field: str) -> None:
    assert problem_field(edit, channel(), **given) == field


def test_repeating_the_current_kind_is_no_change() -> None:
    assert edit(channel(), kind="webhook", name="Ops 2").channel.kind == "webhook"


# ---------------------------------------------------------------- state


@pytest.mark.parametrize(("before", "failures", "asked", "after", "failures_after"), [
    ("disabled", 5, "active", "active", 0),
    ("disabled", 5, "paused", "paused", 0),
    ("active", 2, "paused", "paused", 2),
    ("paused", 0, "active", "active", 0),
    ("active", 1, "active", "active", 1),
])
def test_an_admin_pauses_resumes_and_re_enables(before: str, failures: int, asked: str, after: str,
                                                failures_after: int) -> None:
    reason = "5 consecutive failed deliveries; last: HTTP 503" if before == "disabled" else ""
    c = edit(channel(state=before, failures=failures, reason=reason), state=asked).channel
    assert (c.state, c.consecutive_failures) == (after, failures_after)
    assert c.disabled_reason == "", "leaving disabled forgets why"


@pytest.mark.parametrize("asked", ["disabled", "removed", "archived", None])
def test_disabled_and_removed_cannot_be_set_by_hand(asked: str | None) -> None:
    assert problem_field(edit, channel(state="disabled"), state=asked) == "state"


def test_editing_a_disabled_channel_without_a_state_keeps_it_disabled() -> None:
    c = edit(channel(state="disabled", failures=5, reason="HTTP 503"), secrets=HOOK_SECRETS,
             url="https://new.example.com/hook").channel
    assert (c.state, c.consecutive_failures, c.disabled_reason) == ("disabled", 5, "HTTP 503")


def test_paused_and_disabled_channels_get_no_deliveries() -> None:
    n: NotificationRequested = EXAMPLES["notification.requested"].model_copy(  # type: ignore[assignment]
        update={"notification_id": uuid.uuid4(), "workspace_id": "ws_1"})
    subs = [Subscription("s1", "ws_1", "ch_1")]
    for state, expected in (("active", 1), ("paused", 0), ("disabled", 0)):
        assert len(matching_channels(n, subs, {"ch_1": channel(state=state)})) == expected, state


# ---------------------------------------------------------------- URL and signing secret


def test_a_new_url_keeps_the_signing_secret_and_a_new_secret_keeps_the_url() -> None:
    moved = edit(channel(), HOOK_SECRETS, url="https://new.example.com/hook/PATH")
    assert moved.target is not None and moved.url_changed
    assert moved.target.secrets.url == "https://new.example.com/hook/PATH"
    assert moved.target.secrets.signing_secret == SECRET
    assert moved.channel.url_hint == "new.example.com"
    rotated = edit(channel(), HOOK_SECRETS, signing_secret=NEW_SECRET)
    assert rotated.target is not None and not rotated.url_changed
    assert (rotated.target.secrets.url, rotated.target.secrets.signing_secret) == (HOOK_SECRETS.url, NEW_SECRET)


@pytest.mark.parametrize(("kind", "given", "field"), [
    ("webhook", {"url": "http://hooks.example.com/x"}, "url"),  # https outside development
    ("webhook", {"url": None}, "url"),
    ("webhook", {"signing_secret": "too-short"}, "signing_secret"),
    ("webhook", {"signing_secret": None}, "signing_secret"),
    ("webhook", {"email": EmailPatch(to_addresses=["a@example.com"])}, "email"),
    ("slack", {"signing_secret": NEW_SECRET}, "signing_secret"),
    ("email", {"url": "https://hooks.example.com/x"}, "url"),
])
def test_a_bad_or_foreign_destination_field_is_refused_like_on_create(kind: ChannelKind, given: dict[str, Any],
                                                                     field: str) -> None:
    secrets = MAIL_SECRETS if kind == "email" else HOOK_SECRETS
    assert problem_field(edit, channel(kind), secrets, **given) == field


def test_null_for_a_field_the_kind_does_not_use_changes_nothing() -> None:
    result = edit(channel("slack"), ChannelSecrets(url="https://hooks.slack.com/services/T/B/X"), signing_secret=None)
    assert result.target is not None and result.target.secrets.signing_secret is None


def test_unreadable_secrets_must_be_given_anew() -> None:
    assert problem_field(edit, channel(), ChannelSecrets(), url="https://new.example.com/hook") == "signing_secret"
    repaired = edit(channel(), ChannelSecrets(), url="https://new.example.com/hook", signing_secret=NEW_SECRET)
    assert repaired.target is not None and repaired.target.secrets.signing_secret == NEW_SECRET


# ---------------------------------------------------------------- email


def test_new_recipients_keep_the_smtp_password_and_server() -> None:
    result = edit(channel("email"), MAIL_SECRETS, email=EmailPatch(to_addresses=["new@example.com", "b@example.com"]))
    assert result.target is not None and result.channel.email is not None
    assert result.channel.email.to_addresses == ["new@example.com", "b@example.com"]
    assert (result.channel.email.smtp_host, result.channel.email.smtp_username) == (MAIL.smtp_host, MAIL.smtp_username)
    assert result.target.secrets.smtp_password == "smtp-pass"
    assert not result.smtp_server_changed and not result.url_changed


@pytest.mark.parametrize(("patch", "secrets", "field"), [
    (EmailPatch(smtp_username="someone"), ChannelSecrets(), "email.smtp_password"),  # a user name, no password at all
    (EmailPatch(smtp_password=None), MAIL_SECRETS, "email.smtp_password"),  # the password cleared, the user kept
    (EmailPatch(smtp_host=None), MAIL_SECRETS, "email.smtp_host"),
    (EmailPatch(to_addresses=None), MAIL_SECRETS, "email.to_addresses"),
    (EmailPatch(from_address="not-an-address"), MAIL_SECRETS, "email.from_address"),
    (EmailPatch(starttls=False), MAIL_SECRETS, "email.starttls"),
    (None, MAIL_SECRETS, "email"),
])
def test_the_merged_email_settings_are_checked_like_new_ones(patch: EmailPatch | None, secrets: ChannelSecrets,
                                                            field: str) -> None:
    assert problem_field(edit, channel("email"), secrets, email=patch) == field


def test_a_new_password_a_new_server_and_the_port_default_for_implicit_tls() -> None:
    result = edit(channel("email"), MAIL_SECRETS,
                  email=EmailPatch(smtp_host="mail.example.net", smtp_port=465, smtp_password="new-pass"))
    assert result.target is not None and result.channel.email is not None and result.smtp_server_changed
    assert result.channel.email.implicit_tls is True and result.channel.email.starttls is False
    assert result.target.secrets.smtp_password == "new-pass"
    no_login = edit(channel("email"), MAIL_SECRETS, email=EmailPatch(smtp_username=None))
    assert no_login.target is not None and no_login.channel.email is not None
    assert no_login.channel.email.smtp_username is None and no_login.target.secrets.smtp_password is None


def test_a_patch_never_prints_its_secrets() -> None:
    patch = ChannelPatch(url="https://h.example.com/SECRETPATH", signing_secret=NEW_SECRET,
                         email=EmailPatch(smtp_password="pw-123"))
    text = repr(patch) + repr(patch.email) + repr(mail_input(smtp_password="pw-123"))
    assert "SECRETPATH" not in text and NEW_SECRET not in text and "pw-123" not in text
    assert patch.name is KEEP and patch.touches_destination
