"""The notifier's pure domain: rendering, signatures, retry policy, URL checks, dedupe, digests, quiet hours."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from allot.contracts.examples import EXAMPLES
from allot.contracts.payloads import NotificationRequested, NotifiedEntity
from allot.notify.domain.grouping import dedupe_key, digest, is_duplicate, quiet_until
from allot.notify.domain.model import (
    Channel,
    ChannelSecrets,
    NotifyProblem,
    QuietHours,
    Subscription,
    channel_disabled_notification,
    matching_channels,
    validate_email_config,
    validate_quiet_hours,
    validate_signing_secret,
)
from allot.notify.domain.policy import AttemptResult, RetryPolicy, backoff_s, classify, decide, parse_retry_after
from allot.notify.domain.render import format_money, render_email, render_slack, render_webhook
from allot.notify.domain.signing import signature, signed_headers, verify
from allot.notify.domain.urls import address_problem, check_addresses, parse_outbound_url

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
BASE: NotificationRequested = EXAMPLES["notification.requested"]  # type: ignore[assignment]


def note(**changes: object) -> NotificationRequested:
    return BASE.model_copy(update={"notification_id": uuid.uuid4(), **changes})


def channel(cid: str = "ch_1", *, ws: str = "ws_1", state: str = "active", quiet: QuietHours | None = None) -> Channel:
    return Channel(channel_id=cid, workspace_id=ws, kind="webhook", name="Ops", state=state,  # type: ignore[arg-type]
                   url_hint="hooks.example.com", email=None, quiet_hours=quiet, secret=None, consecutive_failures=0,
                   disabled_reason="", created_at=T0, updated_at=T0)


# ---------------------------------------------------------------- rendering


def test_money_is_formatted_with_the_currency_decimals() -> None:
    assert format_money(8412, "EUR") == "84.12 EUR"
    assert format_money(-5, "USD") == "-0.05 USD"
    assert format_money(1500, "JPY") == "1500 JPY"
    assert format_money(12345, "BHD") == "12.345 BHD"
    assert format_money(7, "XYZ") == "7 minor units of XYZ"


def test_slack_message_names_entities_amounts_condition_numbers_and_links_the_console() -> None:
    n = note(facts={"threshold_pct": 80, "spend_cents": 9_000}, currency="EUR")
    body = render_slack(n, console_url="https://console.example.com/")
    text = str(body)
    assert body["text"].startswith(n.title)
    assert "Prospecting (adset as_1)" in text and "84.12 EUR" in text
    assert "*Why:* spend_cents &gt; 80% of daily_budget_cents" in text
    assert "90.00 EUR" in text and "threshold pct" in text
    (button,) = [b for b in body["blocks"] if b["type"] == "actions"][0]["elements"]
    assert button["url"] == "https://console.example.com/rules/rule_1"
    assert not [b for b in render_slack(n)["blocks"] if b["type"] == "actions"], "no console URL, no link"


def test_slack_lists_at_most_twenty_entities_and_says_how_many_more() -> None:
    many = [NotifiedEntity(entity_type="adset", entity_id=f"as_{i}", name=f"Set {i}") for i in range(25)]
    text = str(render_slack(note(entities=many)))
    assert "Set 19" in text and "Set 20" not in text and "and 5 more" in text


def test_email_has_plain_text_and_escaped_html() -> None:
    n = note(title="Spend <b>alert</b> & more")
    mail = render_email(n, console_url="https://c.example.com")
    assert mail.subject == "[Allot warning] Spend <b>alert</b> & more"
    assert "Why: spend_cents > 80% of daily_budget_cents" in mail.text and "84.12 EUR" in mail.text
    assert "Spend &lt;b&gt;alert&lt;/b&gt; &amp; more" in mail.html and "<b>alert</b>" not in mail.html
    assert 'href="https://c.example.com/rules/rule_1"' in mail.html


def test_webhook_body_is_the_notification_plus_console_url_and_digest_members() -> None:
    n = note()
    body = render_webhook(n, console_url="https://c.example.com", includes=["a", "b"])
    assert body["notification_id"] == str(n.notification_id) and body["entities"][0]["amount_cents"] == 8412
    assert body["console_url"] == "https://c.example.com/rules/rule_1" and body["includes"] == ["a", "b"]
    assert "includes" not in render_webhook(n)


# ---------------------------------------------------------------- signatures


def test_signature_verifies_and_rejects_tampering_replay_and_wrong_secret() -> None:
    secret, body, ts = "s" * 40, b'{"a":1}', 1_765_000_000
    headers = signed_headers(secret, ts, body)
    assert headers["X-Allot-Signature"] == signature(secret, ts, body)
    assert headers["X-Allot-Signature"].startswith("v1=")
    ok = dict(timestamp_header=headers["X-Allot-Timestamp"], signature_header=headers["X-Allot-Signature"])
    assert verify(secret, body=body, now=ts + 10, **ok)
    assert not verify(secret, body=b'{"a":2}', now=ts, **ok), "body changed"
    assert not verify(secret, body=body, now=ts + 301, **ok), "replayed after the tolerance"
    assert not verify("t" * 40, body=body, now=ts, **ok), "other secret"
    assert not verify(secret, body=body, now=ts, timestamp_header=str(ts + 1),
                      signature_header=headers["X-Allot-Signature"]), "timestamp is signed too"
    assert not verify(secret, body=body, now=ts, timestamp_header=None, signature_header="v1=00")


# ---------------------------------------------------------------- retry policy


def test_classification_of_answers() -> None:
    assert classify(AttemptResult(status=204)) == "delivered"
    assert classify(AttemptResult(smtp_code=250)) == "delivered"
    for status in (500, 503, 429, 408):
        assert classify(AttemptResult(status=status)) == "transient"
    for status in (400, 403, 404, 410):
        assert classify(AttemptResult(status=status)) == "permanent"
    assert classify(AttemptResult(error="timeout")) == "transient"
    assert classify(AttemptResult(smtp_code=451, error="try later")) == "transient"
    assert classify(AttemptResult(smtp_code=550, error="no such user")) == "permanent"
    assert classify(AttemptResult(refused=True, error="private address")) == "permanent"


def test_backoff_grows_is_capped_and_is_the_same_for_the_same_delivery() -> None:
    p = RetryPolicy(base_s=2, factor=2, max_delay_s=60)
    delays = [backoff_s(p, a, key="d1") for a in range(1, 9)]
    assert delays == [backoff_s(p, a, key="d1") for a in range(1, 9)]
    assert 2 <= delays[0] <= 2.4 and 4 <= delays[1] <= 4.8 and 8 <= delays[2] <= 9.6
    assert max(delays) == 60 and delays[-1] == 60


def test_429_waits_as_long_as_retry_after_says() -> None:
    p = RetryPolicy(base_s=1)
    out = decide(p, AttemptResult(status=429, retry_after="7"), attempt=1, key="d", now=T0)
    assert (out.verdict, out.next_attempt_at) == ("retry", T0 + timedelta(seconds=7))
    http_date = "Sun, 06 Dec 2026 12:00:30 GMT"
    out = decide(p, AttemptResult(status=429, retry_after=http_date), attempt=1, key="d", now=T0)
    assert out.next_attempt_at == T0 + timedelta(seconds=30)
    assert parse_retry_after("soon", now=T0) is None
    capped = decide(RetryPolicy(max_retry_after_s=100), AttemptResult(status=429, retry_after="99999"), attempt=1,
                    key="d", now=T0)
    assert capped.next_attempt_at == T0 + timedelta(seconds=100)


def test_retries_end_after_max_attempts_and_permanent_answers_are_not_retried() -> None:
    p = RetryPolicy(max_attempts=3)
    assert decide(p, AttemptResult(status=500), attempt=2, key="d", now=T0).verdict == "retry"
    last = decide(p, AttemptResult(status=500), attempt=3, key="d", now=T0)
    assert last.verdict == "failed" and "gave up after 3 attempts: HTTP 500" in last.reason
    gone = decide(p, AttemptResult(status=404), attempt=1, key="d", now=T0)
    assert gone.verdict == "failed" and gone.reason == "permanent: HTTP 404"
    assert decide(p, AttemptResult(status=200), attempt=1, key="d", now=T0).verdict == "delivered"


# ---------------------------------------------------------------- outbound URLs


def test_https_only_outside_development() -> None:
    with pytest.raises(NotifyProblem) as exc:
        parse_outbound_url("http://hooks.example.com/x", field="url", development=False)
    assert exc.value.field == "url" and "https" in exc.value.message
    assert parse_outbound_url("http://127.0.0.1:9/x", field="url", development=True).port == 9
    target = parse_outbound_url("https://hooks.slack.com/services/T/B/X", field="url", development=False)
    assert (target.host, target.port) == ("hooks.slack.com", 443)


@pytest.mark.parametrize("url", ["https://user:pw@example.com/", "ftp://example.com/", "https://localhost/",
                                 "https://metadata.google.internal/", "https:///nohost", "https://a b.com/"])
def test_urls_that_are_refused(url: str) -> None:
    with pytest.raises(NotifyProblem):
        parse_outbound_url(url, field="url", development=False)


@pytest.mark.parametrize("address", ["10.0.0.5", "172.16.1.1", "192.168.1.1", "169.254.169.254", "fe80::1",
                                     "0.0.0.0", "::ffff:10.0.0.1", "fd00::1", "100.64.0.1", "224.0.0.1"])
def test_private_link_local_and_metadata_addresses_are_refused(address: str) -> None:
    assert address_problem(address, allow_loopback=True) is not None


def test_loopback_only_when_allowed_and_public_addresses_pass() -> None:
    assert address_problem("127.0.0.1", allow_loopback=False) == "is a loopback address"
    assert address_problem("127.0.0.1", allow_loopback=True) is None
    assert address_problem("::1", allow_loopback=True) is None
    assert address_problem("93.184.216.34", allow_loopback=False) is None
    with pytest.raises(NotifyProblem, match="resolves to 10.1.2.3"):
        check_addresses("evil.example.com", ["93.184.216.34", "10.1.2.3"], field="url", allow_loopback=False)
    with pytest.raises(NotifyProblem, match="does not resolve"):
        check_addresses("nx.example.com", [], field="url", allow_loopback=False)


# ---------------------------------------------------------------- channels, subscriptions, input


def test_subscriptions_match_kind_and_minimum_severity_and_each_channel_once() -> None:
    channels = {"a": channel("a"), "b": channel("b"), "off": channel("off", state="disabled"),
                "other": channel("other", ws="ws_2")}
    subs = [Subscription("s1", "ws_1", "a", kinds=["guardrail_blocked"]),
            Subscription("s2", "ws_1", "b", min_severity="warning"),
            Subscription("s3", "ws_1", "b"),
            Subscription("s4", "ws_1", "off"),
            Subscription("s5", "ws_1", "other")]
    assert [c.channel_id for c in matching_channels(note(severity="warning"), subs, channels)] == ["b"]
    assert [c.channel_id for c in matching_channels(note(kind="guardrail_blocked", severity="info"), subs,
                                                    channels)] == ["a", "b"]
    assert not matching_channels(note(workspace_id="ws_2"), subs, channels), "never another workspace's channel"


def test_channel_input_rules_name_the_field() -> None:
    with pytest.raises(NotifyProblem) as exc:
        validate_signing_secret("short")
    assert exc.value.field == "signing_secret"
    with pytest.raises(NotifyProblem) as exc:
        validate_email_config(smtp_host="smtp.example.com", smtp_port=587, smtp_username=None, starttls=False,
                              from_address="a@example.com", to_addresses=["b@example.com"], development=False)
    assert exc.value.field == "email.starttls"
    with pytest.raises(NotifyProblem) as exc:
        validate_email_config(smtp_host="smtp.example.com", smtp_port=587, smtp_username=None, starttls=True,
                              from_address="a@example.com", to_addresses=["b@example.com", "nope"],
                              development=False)
    assert exc.value.field == "email.to_addresses.1"
    with pytest.raises(NotifyProblem) as exc:
        validate_quiet_hours("22:00", "25:00", "Europe/Berlin", known_timezone=True)
    assert exc.value.field == "quiet_hours.end"
    with pytest.raises(NotifyProblem) as exc:
        validate_quiet_hours("22:00", "07:00", "Mars/Olympus", known_timezone=False)
    assert exc.value.field == "quiet_hours.timezone"
    shown = repr(ChannelSecrets(url="https://hooks.example.com/T0/B0/xyz", signing_secret="s" * 40))
    assert "xyz" not in shown and "s" * 40 not in shown


# ---------------------------------------------------------------- storms: dedupe, digests, quiet hours


def test_dedupe_within_the_window_only() -> None:
    assert dedupe_key(note(dedupe_key="")) == "rule_notify_only/rule_1"
    assert dedupe_key(note(dedupe_key="k")) == "k"
    assert is_duplicate(T0, now=T0 + timedelta(seconds=599), window_s=600)
    assert not is_duplicate(T0, now=T0 + timedelta(seconds=600), window_s=600)
    assert not is_duplicate(None, now=T0, window_s=600)
    assert not is_duplicate(T0, now=T0, window_s=0)


def test_quiet_hours_in_the_channel_time_zone_wrap_midnight_and_let_critical_through() -> None:
    qh = QuietHours("22:00", "07:00", "Europe/Berlin")  # UTC+1 in December
    late = datetime(2026, 12, 6, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
    assert quiet_until(qh, now=late, severity="warning") == datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    early = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)  # 06:00 in Berlin
    assert quiet_until(qh, now=early, severity="info") == datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    assert quiet_until(qh, now=datetime(2026, 12, 6, 12, 0, tzinfo=UTC), severity="info") is None
    assert quiet_until(qh, now=late, severity="critical") is None
    assert quiet_until(None, now=late, severity="info") is None
    day = QuietHours("12:00", "14:00", "America/New_York")  # UTC-5
    assert quiet_until(day, now=datetime(2026, 12, 6, 17, 30, tzinfo=UTC), severity="info") == datetime(
        2026, 12, 6, 19, 0, tzinfo=UTC)


def test_digest_lists_every_notification_once_with_a_stable_id() -> None:
    blocked = [note(kind="guardrail_blocked", severity="warning", title=f"Blocked change {i}", source="guardrails",
                    source_id=f"pool_{i}", entities=[], occurred_at=T0 + timedelta(seconds=i)) for i in range(40)]
    blocked[7] = blocked[7].model_copy(update={"severity": "critical"})
    d = digest(blocked)
    assert d.notification_id == digest(list(reversed(blocked))).notification_id
    assert d.severity == "critical" and d.kind == "guardrail_blocked" and d.workspace_id == "ws_1"
    assert d.title == "40 notifications (40 guardrail_blocked)" and d.facts["notifications"] == 40
    assert [e.entity_id for e in d.entities] == [f"pool_{i}" for i in range(40)]
    assert d.occurred_at == T0 + timedelta(seconds=39)
    assert d.notification_id != digest(blocked[:39]).notification_id


def test_channel_disabled_notification_is_critical_and_names_the_channel() -> None:
    n = channel_disabled_notification(channel("ch_9"), failures=5, threshold=5, last_error="HTTP 500", now=T0)
    assert (n.kind, n.severity, n.workspace_id, n.source_id) == ("channel_disabled", "critical", "ws_1", "ch_9")
    assert n.entities[0].entity_id == "ch_9" and n.facts["consecutive_failures"] == 5
    assert n.notification_id == channel_disabled_notification(channel("ch_9"), failures=5, threshold=5,
                                                              last_error="x", now=T0).notification_id


def test_the_readme_verification_recipe_accepts_a_signed_request_and_refuses_a_forged_one() -> None:
    import re
    import time
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme[readme.index("**Verify a webhook.**"):]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    scope: dict[str, object] = {}
    exec(code.group(1), scope)  # noqa: S102 - the README's own recipe
    recipe = scope["verify"]
    secret, body, now = "w" * 40, b'{"notification_id":"n1"}', int(time.time())
    h = signed_headers(secret, now, body)
    assert recipe(secret, h["X-Allot-Timestamp"], h["X-Allot-Signature"], body)  # type: ignore[operator]
    assert not recipe(secret, h["X-Allot-Timestamp"], h["X-Allot-Signature"], body + b" ")  # type: ignore[operator]
    old = signed_headers(secret, now - 3600, body)
    assert not recipe(secret, old["X-Allot-Timestamp"], old["X-Allot-Signature"], body)  # type: ignore[operator]


def test_rate_limit_per_channel_per_minute() -> None:
    from allot.notify.domain.grouping import rate_limited_until

    sent = [T0, T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)]
    now = T0 + timedelta(seconds=30)
    assert rate_limited_until(sent, limit=4, now=now) is None
    assert rate_limited_until(sent, limit=3, now=now) == T0 + timedelta(seconds=60)
    assert rate_limited_until(sent, limit=2, now=now) == T0 + timedelta(seconds=70)
    assert rate_limited_until(sent, limit=3, now=T0 + timedelta(seconds=61)) is None, "the oldest left the window"
    assert rate_limited_until([], limit=1, now=now) is None
