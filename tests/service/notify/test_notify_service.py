"""The notifier on the real broker and Postgres, delivering to real receivers on loopback: a Slack stand-in and a
webhook receiver (HTTP, checking the signature) and an SMTP server (aiosmtpd, with login)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from allot.contracts import decode, new_envelope
from allot.contracts.examples import EXAMPLES
from allot.contracts.payloads import NotificationRequested
from allot.notify.domain.signing import verify
from allot.notify.service import SPEC
from allot.notify.workflow import Deps
from allot.runtime.deps import need
from tests.service.notify.notify_support import HttpReceiver, http_receiver, notify_keys, smtp_receiver
from tests.support.kafka import eventually, publish, read_topic
from tests.support.service import api_keys, auth, running_service

BASE = "/api/v1/notifications"
SECRET = "whsec-" + "k" * 40
FAST = dict(notify_allow_loopback=True, notify_retry_base_s=0.2, notify_retry_max_s=2.0, notify_poll_interval_s=0.05,
            console_url="https://console.example.com")


def notification(ws: str, **changes: Any) -> NotificationRequested:
    base: NotificationRequested = EXAMPLES["notification.requested"]  # type: ignore[assignment]
    return base.model_copy(update={"notification_id": uuid.uuid4(), "workspace_id": ws,
                                   "occurred_at": datetime.now(UTC), **changes})


async def publish_notification(settings: Any, n: NotificationRequested) -> None:
    await publish(settings.kafka_bootstrap, new_envelope(
        event_type="notification.requested", schema_version=1, payload=n, producer="test", workspace_id=n.workspace_id,
        occurred_at=n.occurred_at))


async def add_channel(http: Any, key: str, body: dict[str, Any], *, kinds: list[str] | None = None) -> str:
    r = await http.post(f"{BASE}/channels", headers=auth(key), json=body)
    assert r.status_code == 201, r.text
    cid: str = r.json()["channel_id"]
    r = await http.post(f"{BASE}/subscriptions", headers=auth(key), json={"channel_id": cid, "kinds": kinds or []})
    assert r.status_code == 201, r.text
    return cid


def webhook(receiver: HttpReceiver, name: str = "ops hook") -> dict[str, Any]:
    return {"kind": "webhook", "name": name, "url": receiver.url, "signing_secret": SECRET}


async def attempts(http: Any, key: str, **params: str) -> list[dict[str, Any]]:
    r = await http.get(f"{BASE}/deliveries", headers=auth(key), params=params)
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["deliveries"]
    return rows


async def test_channels_keep_secrets_sealed_validate_input_and_stay_in_their_workspace(
        settings: Any, unique: str) -> None:
    ws, other = f"ws-{unique}", f"ws-{unique}-b"
    (admin, stranger), keys = api_keys((ws, "admin"), (other, "admin"))
    async with http_receiver() as slack, running_service(SPEC, settings, api_keys=keys,
                                                         sealing_private_keys=notify_keys(), **FAST) as (http, ctx):
        r = await http.post(f"{BASE}/channels", headers=auth(admin), json={
            "kind": "slack", "name": "#alerts", "url": slack.url + "/T000/B000/XXXXSECRETPATH"})
        assert r.status_code == 201, r.text
        slack_id = r.json()["channel_id"]
        r = await http.post(f"{BASE}/channels", headers=auth(admin), json=webhook(slack))
        hook = r.json()
        assert hook["url_host"] == "127.0.0.1" and hook["secret_set"] is True and hook["state"] == "active"
        listed = await http.get(f"{BASE}/channels", headers=auth(admin))
        one = await http.get(f"{BASE}/channels/{slack_id}", headers=auth(admin))
        for text in (listed.text, one.text, r.text):
            assert "XXXXSECRETPATH" not in text and SECRET not in text and "ciphertext" not in text
        async with ctx.pool.acquire() as conn:
            rows = await conn.fetch("SELECT * FROM channels WHERE workspace_id = $1", ws)
        stored = orjson.dumps([dict(x) for x in rows], default=str).decode()
        assert len(rows) == 2 and "XXXXSECRETPATH" not in stored and SECRET not in stored

        # bad input: 4xx naming the field, the runtime's error shape
        for body, field in [
            ({"kind": "webhook", "name": "w", "url": slack.url}, "signing_secret"),
            ({"kind": "webhook", "name": "w", "url": "http://10.0.0.7/hook", "signing_secret": SECRET}, "url"),
            ({"kind": "webhook", "name": "w", "url": "http://169.254.169.254/latest", "signing_secret": SECRET}, "url"),
            ({"kind": "slack", "name": "s"}, "url"),
            ({"kind": "email", "name": "e", "email": {"smtp_host": "127.0.0.1", "from_address": "a@example.com",
                                                      "to_addresses": ["not-an-address"]}}, "email.to_addresses.0"),
            ({"kind": "slack", "name": "s", "url": slack.url,
              "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Nowhere/City"}}, "quiet_hours.timezone"),
        ]:
            r = await http.post(f"{BASE}/channels", headers=auth(admin), json=body)
            assert r.status_code == 422, (body, r.text)
            assert r.json()["field"] == field, r.text
        r = await http.post(f"{BASE}/subscriptions", headers=auth(admin), json={"channel_id": slack_id,
                                                                                 "kinds": ["no_such_kind"]})
        assert r.status_code == 422 and "kinds" in r.text

        # another workspace sees nothing of it and cannot subscribe to it
        assert (await http.get(f"{BASE}/channels/{slack_id}", headers=auth(stranger))).status_code == 404
        assert (await http.get(f"{BASE}/channels", headers=auth(stranger))).json() == {"channels": []}
        r = await http.post(f"{BASE}/subscriptions", headers=auth(stranger), json={"channel_id": slack_id})
        assert r.status_code == 404
        assert (await http.post(f"{BASE}/channels/{slack_id}/test", headers=auth(stranger))).status_code == 404
        assert (await http.get(f"{BASE}/channels")).status_code == 401

        # removal drops the secret
        r = await http.delete(f"{BASE}/channels/{slack_id}", headers=auth(admin))
        assert r.status_code == 200 and r.json()["state"] == "removed" and r.json()["secret_set"] is False
        assert (await http.get(f"{BASE}/channels/{slack_id}", headers=auth(admin))).status_code == 404


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # loopback test server
async def test_slack_webhook_and_email_each_get_the_notification_with_its_facts(
        settings: Any, unique: str, capfd: pytest.CaptureFixture[str]) -> None:
    ws = f"ws-{unique}"
    (admin,), keys = api_keys((ws, "admin"))
    with smtp_receiver("alerts@example.com", "smtp-pass-123") as smtp:
        async with http_receiver() as slack, http_receiver() as hook, running_service(
                SPEC, settings, api_keys=keys, sealing_private_keys=notify_keys(), **FAST) as (http, _):
            slack_url = slack.url + "/T1/B2/SLACKSECRET"
            await add_channel(http, admin, {"kind": "slack", "name": "#alerts", "url": slack_url})
            hook_id = await add_channel(http, admin, webhook(hook))
            await add_channel(http, admin, {"kind": "email", "name": "buyers", "email": {
                "smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_username": "alerts@example.com",
                "smtp_password": "smtp-pass-123", "starttls": False, "from_address": "allot@example.com",
                "to_addresses": ["buyer@example.com"]}})
            n = notification(ws)
            await publish_notification(settings, n)

            await eventually(lambda: _async(slack.requests and hook.requests and smtp.inbox.messages),
                             what="a message on every channel")
            # Slack: Block Kit naming the entity, its amount and the condition, linking the console
            slack_body = orjson.loads(slack.requests[0].body)
            blocks = orjson.dumps(slack_body["blocks"]).decode()
            assert slack_body["text"].startswith(n.title)
            assert "Prospecting (adset as_1)" in blocks and "84.12 EUR" in blocks and "80% of daily_budget" in blocks
            assert "https://console.example.com/rules/rule_1" in blocks
            assert slack.requests[0].headers["idempotency-key"] == str(n.notification_id)
            # webhook: signed over timestamp.body, idempotency key = notification id
            req = hook.requests[0]
            assert verify(SECRET, timestamp_header=req.headers["x-allot-timestamp"],
                          signature_header=req.headers["x-allot-signature"], body=req.body, now=int(time.time()))
            assert not verify("another-secret" * 3, timestamp_header=req.headers["x-allot-timestamp"],
                              signature_header=req.headers["x-allot-signature"], body=req.body, now=int(time.time()))
            body = orjson.loads(req.body)
            assert req.headers["idempotency-key"] == str(n.notification_id) == body["notification_id"]
            assert body["workspace_id"] == ws and body["entities"][0]["amount_cents"] == 8412
            # email: logged in, plain text and HTML
            (msg,) = smtp.inbox.messages
            assert smtp.inbox.logins == ["alerts@example.com"]
            assert smtp.inbox.envelopes == [("allot@example.com", ["buyer@example.com"])]
            assert msg["Subject"] == f"[Allot warning] {n.title}"
            assert msg["X-Allot-Notification-Id"] == str(n.notification_id)
            text = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
            html = msg.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
            assert "Prospecting (adset as_1) — 84.12 EUR" in text and "Why: spend_cents > 80%" in text
            assert "<li>Prospecting (adset as_1) — 84.12 EUR" in html

            rows = await eventually(lambda: _delivered(http, admin, 3), what="three delivered attempts")
            assert {r["notification_id"] for r in rows} == {str(n.notification_id)}
            assert [r["outcome"] for r in await attempts(http, admin, channel_id=hook_id)] == ["delivered"]
            assert slack.requests[0].path == "/hook/T1/B2/SLACKSECRET"
    logged = capfd.readouterr().out
    assert "notification_attempt" in logged and "channel_created" in logged, "the logs were captured"
    for secret in ("SLACKSECRET", SECRET, "smtp-pass-123"):
        assert secret not in logged, f"{secret} logged"


async def test_500_three_times_then_200_is_received_once_after_dedupe_and_429_retry_after_is_honoured(
        settings: Any, unique: str) -> None:
    ws = f"ws-{unique}"
    (admin,), keys = api_keys((ws, "admin"))
    flaky_script = [(500, {}), (500, {}), (500, {})]
    limited_script = [(429, {"Retry-After": "2"})]
    async with http_receiver(flaky_script) as flaky, http_receiver(limited_script) as limited, running_service(
            SPEC, settings, api_keys=keys, sealing_private_keys=notify_keys(), **FAST) as (http, _):
        flaky_id = await add_channel(http, admin, webhook(flaky, "flaky"))
        limited_id = await add_channel(http, admin, webhook(limited, "limited"))
        n = notification(ws)
        await publish_notification(settings, n)
        await eventually(lambda: _async(len(flaky.requests) >= 4 and len(limited.requests) >= 2),
                         what="the retries", timeout=40)
        keys_seen = [r.headers["idempotency-key"] for r in flaky.requests]
        assert keys_seen == [str(n.notification_id)] * 4 and len(set(keys_seen)) == 1, "one notification after dedupe"
        flaky_rows = await eventually(lambda: _outcomes(http, admin, flaky_id, 4), what="four recorded attempts")
        assert flaky_rows == ["retry", "retry", "retry", "delivered"]
        statuses = [r["http_status"] for r in await attempts(http, admin, channel_id=flaky_id)]
        assert statuses[::-1] == [500, 500, 500, 200]
        # 429 with Retry-After: 2 → the second request no earlier than 2 s after the first
        assert limited.requests[1].at - limited.requests[0].at >= 1.9
        assert await eventually(lambda: _outcomes(http, admin, limited_id, 2)) == ["retry", "delivered"]
        channel = (await http.get(f"{BASE}/channels/{flaky_id}", headers=auth(admin))).json()
        assert channel["state"] == "active" and channel["consecutive_failures"] == 0


async def test_same_condition_within_the_window_is_sent_once(settings: Any, unique: str) -> None:
    ws = f"ws-{unique}"
    (admin,), keys = api_keys((ws, "admin"))
    async with http_receiver() as hook, running_service(SPEC, settings, api_keys=keys,
                                                         sealing_private_keys=notify_keys(), **FAST) as (http, _):
        hook_id = await add_channel(http, admin, webhook(hook))
        first, second = notification(ws, dedupe_key="spend/as_1"), notification(ws, dedupe_key="spend/as_1")
        await publish_notification(settings, first)
        await eventually(lambda: _async(hook.requests), what="the first message")
        await publish_notification(settings, second)
        rows = await eventually(lambda: _outcomes(http, admin, hook_id, 2), what="the second recorded")
        assert rows == ["delivered", "suppressed"]
        assert [r.headers["idempotency-key"] for r in hook.requests] == [str(first.notification_id)]


async def test_a_channel_that_keeps_failing_is_disabled_admins_are_told_and_the_rest_goes_to_the_dlq(
        settings: Any, unique: str) -> None:
    ws = f"ws-{unique}"
    (admin,), keys = api_keys((ws, "admin"))
    async with http_receiver(default=503) as down, http_receiver() as admins, running_service(
            SPEC, settings, api_keys=keys, sealing_private_keys=notify_keys(), notify_disable_after=3,
            notify_max_attempts=20, **FAST) as (http, _):
        down_id = await add_channel(http, admin, webhook(down, "down"), kinds=["rule_notify_only"])
        await add_channel(http, admin, webhook(admins, "admins"), kinds=["channel_disabled"])
        n = notification(ws)
        await publish_notification(settings, n)
        await eventually(lambda: _async(admins.requests), what="the admins told", timeout=40)
        told = orjson.loads(admins.requests[0].body)
        assert told["kind"] == "channel_disabled" and told["severity"] == "critical"
        assert told["entities"][0]["entity_id"] == down_id and told["facts"]["consecutive_failures"] == 3
        channel = (await http.get(f"{BASE}/channels/{down_id}", headers=auth(admin))).json()
        assert channel["state"] == "disabled" and "503" in channel["disabled_reason"]
        assert len(down.requests) == 3

        records = await read_topic(settings.kafka_bootstrap, "notification.requested.dlq", min_count=1,
                                   predicate=lambda r: r.key == str(n.notification_id).encode())
        headers = {k: v.decode() for k, v in records[0].headers}
        assert headers["x-dlq-reason"] == "channel_disabled" and headers["x-dlq-channel-id"] == down_id
        assert decode("notification.requested", records[0].value).payload.notification_id == n.notification_id

        # a successful test message enables it again
        down.default = 200
        r = await http.post(f"{BASE}/channels/{down_id}/test", headers=auth(admin))
        assert r.status_code == 200 and r.json()["delivered"] is True and r.json()["channel_state"] == "active"
        assert (await http.get(f"{BASE}/channels/{down_id}", headers=auth(admin))).json()["state"] == "active"


async def _async(value: Any) -> Any:
    return value


async def _delivered(http: Any, key: str, count: int) -> list[dict[str, Any]] | None:
    rows = [r for r in await attempts(http, key) if r["outcome"] == "delivered"]
    return rows if len(rows) >= count else None


async def _outcomes(http: Any, key: str, channel_id: str, count: int) -> list[str] | None:
    rows = await attempts(http, key, channel_id=channel_id)
    return [r["outcome"] for r in reversed(rows)] if len(rows) >= count else None


async def test_many_due_messages_for_one_channel_go_out_as_one_digest_and_quiet_hours_hold_non_critical_ones(
        settings: Any, unique: str) -> None:
    """Driven step by step: the worker idles (a long poll interval) while the test queues and sends."""
    from datetime import timedelta

    from allot.notify.workflow import deliver_due, enqueue

    ws = f"ws-{unique}"
    (admin,), keys = api_keys((ws, "admin"))
    idle = {**FAST, "notify_poll_interval_s": 3600.0}
    async with http_receiver() as hook, http_receiver() as night, running_service(
            SPEC, settings, api_keys=keys, sealing_private_keys=notify_keys(), **idle) as (http, ctx):
        deps = need(ctx, Deps)
        hook_id = await add_channel(http, admin, webhook(hook), kinds=["guardrail_blocked"])
        now = datetime.now(UTC)
        quiet = {"start": (now - timedelta(hours=1)).strftime("%H:%M"),
                 "end": (now + timedelta(hours=1)).strftime("%H:%M"), "timezone": "UTC"}
        night_id = await add_channel(http, admin, {**webhook(night, "night"), "quiet_hours": quiet},
                                     kinds=["pacing_critical"])
        blocked = [notification(ws, kind="guardrail_blocked", title=f"Blocked change {i}", source_id=f"pool_{i}",
                                dedupe_key=f"blocked/{i}") for i in range(6)]
        pacing = [notification(ws, kind="pacing_critical", severity=sev, dedupe_key=f"pacing/{sev}")
                  for sev in ("warning", "critical")]
        async with ctx.pool.acquire() as conn, conn.transaction():
            for n in blocked + pacing:
                await enqueue(conn, deps.settings, n, None, now=deps.clock.now())

        assert await deliver_due(ctx.pool, deps) == 7, "six blocked changes and the critical pacing alert are due"
        (digest_req,) = hook.requests
        body = orjson.loads(digest_req.body)
        assert body["title"] == "6 notifications (6 guardrail_blocked)"
        assert sorted(body["includes"]) == sorted(str(n.notification_id) for n in blocked)
        assert [e["entity_id"] for e in body["entities"]] == ["as_1"] * 6
        assert digest_req.headers["idempotency-key"] == body["notification_id"]
        rows = await attempts(http, admin, channel_id=hook_id)
        assert len(rows) == 6 and {r["outcome"] for r in rows} == {"delivered"}
        assert {r["message_id"] for r in rows} == {body["notification_id"]}

        # quiet hours: the critical one went out, the warning waits for the end of the window
        (critical_req,) = night.requests
        assert orjson.loads(critical_req.body)["notification_id"] == str(pacing[1].notification_id)
        assert await deliver_due(ctx.pool, deps) == 0
        async with ctx.pool.acquire() as conn:
            waiting = await conn.fetchrow("SELECT state, next_attempt_at FROM deliveries WHERE notification_id = $1",
                                          pacing[0].notification_id)
        assert waiting["state"] == "pending"
        assert waiting["next_attempt_at"] == datetime.strptime(quiet["end"], "%H:%M").replace(
            year=now.year, month=now.month, day=now.day, tzinfo=UTC) + (
            timedelta(days=1) if quiet["end"] < now.strftime("%H:%M") else timedelta(0))
        assert [r["outcome"] for r in await attempts(http, admin, channel_id=night_id)] == ["delivered"]


async def test_a_channel_gets_at_most_its_rate_and_what_is_over_goes_out_as_one_message(
        settings: Any, unique: str) -> None:
    from datetime import timedelta

    from allot.notify.workflow import deliver_due, enqueue

    ws = f"ws-{unique}"
    (admin,), keys = api_keys((ws, "admin"))
    idle = {**FAST, "notify_poll_interval_s": 3600.0, "notify_rate_per_minute": 2}
    async with http_receiver() as hook, running_service(SPEC, settings, api_keys=keys,
                                                         sealing_private_keys=notify_keys(), **idle) as (http, ctx):
        deps = need(ctx, Deps)
        await add_channel(http, admin, webhook(hook))

        async def queue(count: int) -> list[NotificationRequested]:
            notes = [notification(ws, dedupe_key=f"n/{uuid.uuid4()}") for _ in range(count)]
            async with ctx.pool.acquire() as conn, conn.transaction():
                for n in notes:
                    await enqueue(conn, deps.settings, n, None, now=deps.clock.now())
            return notes

        first = await queue(3)  # more than the 2 a minute allows: one message listing the three
        assert await deliver_due(ctx.pool, deps) == 3
        assert len(hook.requests) == 1
        assert sorted(orjson.loads(hook.requests[0].body)["includes"]) == sorted(str(n.notification_id) for n in first)
        second = await queue(1)  # room for one more this minute
        assert await deliver_due(ctx.pool, deps) == 1
        assert len(hook.requests) == 2
        assert hook.requests[1].headers["idempotency-key"] == str(second[0].notification_id)
        third = await queue(1)  # the minute's two messages went: it waits
        assert await deliver_due(ctx.pool, deps) == 1
        assert len(hook.requests) == 2
        async with ctx.pool.acquire() as conn:
            waiting = await conn.fetchrow("SELECT state, next_attempt_at, last_error FROM deliveries "
                                          "WHERE notification_id = $1", third[0].notification_id)
            first_sent = await conn.fetchval("SELECT min(attempted_at) FROM delivery_attempts WHERE workspace_id = $1",
                                             ws)
        assert waiting["state"] == "pending" and waiting["last_error"] == "rate limit: 2 messages per minute"
        assert waiting["next_attempt_at"] == first_sent + timedelta(seconds=60)
