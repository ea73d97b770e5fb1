"""PATCH /api/v1/notifications/channels/{id} on the real broker and Postgres, sending to real receivers on loopback:
renames, quiet hours, rotated URLs and secrets (the next send goes to the new receiver, signed with the new secret),
pausing, re-enabling a channel the notifier disabled, new email recipients, and the refusals."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from allot.contracts import new_envelope
from allot.contracts.examples import EXAMPLES
from allot.contracts.payloads import NotificationRequested
from allot.notify.domain.signing import verify
from allot.notify.service import SPEC
from allot.notify.workflow import Deps, deliver_due, enqueue
from allot.runtime.deps import need
from tests.service.notify.notify_support import http_receiver, notify_keys, smtp_receiver
from tests.support.kafka import eventually, publish, read_topic
from tests.support.service import api_keys, auth, running_service

BASE = "/api/v1/notifications"
SECRET = "whsec-" + "k" * 40
NEW_SECRET = "whsec-" + "n" * 40
FAST = dict(notify_allow_loopback=True, notify_retry_base_s=0.2, notify_retry_max_s=2.0, notify_poll_interval_s=0.05,
            console_url="https://console.example.com")
#: the delivery worker idles: the test queues and sends step by step
IDLE = {**FAST, "notify_poll_interval_s": 3600.0}


def notification(ws: str) -> NotificationRequested:
    base: NotificationRequested = EXAMPLES["notification.requested"]  # type: ignore[assignment]
    return base.model_copy(update={"notification_id": uuid.uuid4(), "workspace_id": ws,
                                   "occurred_at": datetime.now(UTC), "dedupe_key": f"edit/{uuid.uuid4()}"})


async def add_channel(http: Any, key: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await http.post(f"{BASE}/channels", headers=auth(key), json=body)
    assert r.status_code == 201, r.text
    channel: dict[str, Any] = r.json()
    r = await http.post(f"{BASE}/subscriptions", headers=auth(key), json={"channel_id": channel["channel_id"]})
    assert r.status_code == 201, r.text
    return channel


async def patch(http: Any, key: str, channel_id: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    r = await http.patch(f"{BASE}/channels/{channel_id}", headers=auth(key), json=body)
    assert r.status_code == status, (body, r.text)
    out: dict[str, Any] = r.json()
    return out


async def get(http: Any, key: str, channel_id: str) -> dict[str, Any]:
    r = await http.get(f"{BASE}/channels/{channel_id}", headers=auth(key))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def named_fields(problem: dict[str, Any]) -> set[str]:
    """The fields a 422 names: the domain's ``field`` and every ``errors[].field`` (request-model refusals)."""
    return ({problem.get("field")} | {e["field"] for e in problem.get("errors", [])}) - {None}


async def test_a_channel_is_renamed_and_its_quiet_hours_set_then_cleared(settings: Any, unique: str) -> None:
    ws = f"ws-{unique}"
    (admin,), keys = api_keys((ws, "admin"))
    async with http_receiver() as hook, running_service(SPEC, settings, api_keys=keys,
                                                         sealing_private_keys=notify_keys(), **IDLE) as (http, _):
        created = await add_channel(http, admin, {"kind": "webhook", "name": "ops", "url": hook.url,
                                                  "signing_secret": SECRET})
        cid = created["channel_id"]
        quiet = {"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"}
        renamed = await patch(http, admin, cid, {"name": "Night ops", "quiet_hours": quiet})
        assert renamed["name"] == "Night ops" and renamed["quiet_hours"] == quiet
        assert renamed["updated_at"] > created["updated_at"] and renamed["created_at"] == created["created_at"]
        assert {k: v for k, v in renamed.items() if k not in ("name", "quiet_hours", "updated_at")} == {
            k: v for k, v in created.items() if k not in ("name", "quiet_hours", "updated_at")}
        assert await get(http, admin, cid) == renamed

        cleared = await patch(http, admin, cid, {"quiet_hours": None})
        assert cleared["quiet_hours"] is None and cleared["name"] == "Night ops"
        assert await get(http, admin, cid) == cleared


async def test_a_paused_channel_is_not_queued_for_nor_sent_to_until_it_is_active_again(
        settings: Any, unique: str) -> None:
    ws = f"ws-{unique}"
    (admin,), keys = api_keys((ws, "admin"))
    async with http_receiver() as hook, running_service(SPEC, settings, api_keys=keys,
                                                         sealing_private_keys=notify_keys(), **IDLE) as (http, ctx):
        deps = need(ctx, Deps)
        cid = (await add_channel(http, admin, {"kind": "webhook", "name": "ops", "url": hook.url,
                                               "signing_secret": SECRET}))["channel_id"]

        async def queue() -> list[tuple[str, str]]:
            async with ctx.pool.acquire() as conn, conn.transaction():
                return await enqueue(conn, deps.settings, notification(ws), None, now=deps.clock.now())

        waiting = notification(ws)  # queued while active, due after the pause
        async with ctx.pool.acquire() as conn, conn.transaction():
            await enqueue(conn, deps.settings, waiting, None, now=deps.clock.now())
        assert (await patch(http, admin, cid, {"state": "paused"}))["state"] == "paused"
        assert await queue() == [], "nothing is queued for a paused channel"
        assert await deliver_due(ctx.pool, deps) == 1
        assert hook.requests == [], "nor sent to it"
        records = await read_topic(settings.kafka_bootstrap, "notification.requested.dlq", min_count=1,
                                   predicate=lambda r: r.key == str(waiting.notification_id).encode())
        assert dict(records[0].headers)["x-dlq-reason"] == b"channel_paused"

        assert (await patch(http, admin, cid, {"state": "active"}))["state"] == "active"
        assert await queue() == [(cid, "pending")]
        assert await deliver_due(ctx.pool, deps) == 1
        assert len(hook.requests) == 1


async def test_a_rotated_webhook_url_and_secret_take_effect_at_the_next_send_and_are_never_shown(
        settings: Any, unique: str, capfd: pytest.CaptureFixture[str]) -> None:
    ws = f"ws-{unique}"
    (admin,), keys = api_keys((ws, "admin"))
    async with http_receiver() as old, http_receiver() as new, running_service(
            SPEC, settings, api_keys=keys, sealing_private_keys=notify_keys(), **IDLE) as (http, ctx):
        cid = (await add_channel(http, admin, {"kind": "webhook", "name": "ops", "url": old.url + "/OLDPATH",
                                               "signing_secret": SECRET}))["channel_id"]
        r = await http.patch(f"{BASE}/channels/{cid}", headers=auth(admin),
                             json={"url": new.url + "/ROTATEDPATH", "signing_secret": NEW_SECRET})
        assert r.status_code == 200, r.text
        assert r.json()["url_host"] == "127.0.0.1" and r.json()["secret_set"] is True
        listed = await http.get(f"{BASE}/channels", headers=auth(admin))
        for text in (r.text, listed.text):
            assert "ROTATEDPATH" not in text and NEW_SECRET not in text and "ciphertext" not in text

        sent = await http.post(f"{BASE}/channels/{cid}/test", headers=auth(admin))
        assert sent.status_code == 200 and sent.json()["delivered"] is True, sent.text
        assert old.requests == [] and len(new.requests) == 1
        req = new.requests[0]
        assert req.path == "/hook/ROTATEDPATH"
        signed = dict(timestamp_header=req.headers["x-allot-timestamp"],
                      signature_header=req.headers["x-allot-signature"], body=req.body, now=int(time.time()))
        assert verify(NEW_SECRET, **signed) and not verify(SECRET, **signed)

        # the secret alone rotated again: the URL stays (the whole bundle is merged and sealed again)
        await patch(http, admin, cid, {"signing_secret": SECRET})
        await http.post(f"{BASE}/channels/{cid}/test", headers=auth(admin))
        assert len(new.requests) == 2 and old.requests == []
        req = new.requests[1]
        assert verify(SECRET, timestamp_header=req.headers["x-allot-timestamp"],
                      signature_header=req.headers["x-allot-signature"], body=req.body, now=int(time.time()))

        async with ctx.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM channels WHERE channel_id = $1", cid)
        stored = orjson.dumps(dict(row), default=str).decode()
        assert "ROTATEDPATH" not in stored and NEW_SECRET not in stored and SECRET not in stored
    logged = capfd.readouterr().out
    assert "channel_changed" in logged, "the logs were captured"
    for secret in ("ROTATEDPATH", NEW_SECRET, SECRET):
        assert secret not in logged, f"{secret} logged"


async def test_a_disabled_channel_set_active_gets_deliveries_again(settings: Any, unique: str) -> None:
    ws = f"ws-{unique}"
    (admin,), keys = api_keys((ws, "admin"))
    async with http_receiver(default=503) as hook, running_service(
            SPEC, settings, api_keys=keys, sealing_private_keys=notify_keys(), notify_disable_after=2,
            notify_max_attempts=20, **FAST) as (http, _):
        cid = (await add_channel(http, admin, {"kind": "webhook", "name": "ops", "url": hook.url,
                                               "signing_secret": SECRET}))["channel_id"]
        await _publish(settings, notification(ws))

        async def disabled() -> dict[str, Any] | None:
            channel = await get(http, admin, cid)
            return channel if channel["state"] == "disabled" else None

        channel = await eventually(disabled, what="the channel disabled after two failures", timeout=40)
        assert channel["consecutive_failures"] == 2 and "503" in channel["disabled_reason"]
        failed_before = len(hook.requests)

        hook.default = 200  # the receiver is fixed; the admin turns the channel back on
        enabled = await patch(http, admin, cid, {"state": "active"})
        assert (enabled["state"], enabled["consecutive_failures"], enabled["disabled_reason"]) == ("active", 0, None)
        n = notification(ws)
        await _publish(settings, n)

        async def received() -> bool:
            return any(r.headers.get("idempotency-key") == str(n.notification_id)
                       for r in hook.requests[failed_before:])

        await eventually(received, what="the next notification delivered")

        async def recorded() -> list[dict[str, Any]] | None:
            rows = (await http.get(f"{BASE}/deliveries", headers=auth(admin),
                                   params={"notification_id": str(n.notification_id)})).json()["deliveries"]
            return rows if rows and rows[0]["outcome"] == "delivered" else None

        await eventually(recorded, what="the delivery recorded")
        assert (await get(http, admin, cid))["state"] == "active"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # loopback test server
async def test_new_email_recipients_receive_the_next_message_through_the_same_login(
        settings: Any, unique: str) -> None:
    ws = f"ws-{unique}"
    (admin,), keys = api_keys((ws, "admin"))
    with smtp_receiver("alerts@example.com", "smtp-pass-123") as smtp:
        async with running_service(SPEC, settings, api_keys=keys, sealing_private_keys=notify_keys(),
                                   **IDLE) as (http, _):
            cid = (await add_channel(http, admin, {"kind": "email", "name": "buyers", "email": {
                "smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_username": "alerts@example.com",
                "smtp_password": "smtp-pass-123", "starttls": False, "from_address": "allot@example.com",
                "to_addresses": ["buyer@example.com"]}}))["channel_id"]
            changed = await patch(http, admin, cid, {"email": {"to_addresses": ["new@example.com",
                                                                                 "boss@example.com"]}})
            assert changed["email"]["to_addresses"] == ["new@example.com", "boss@example.com"]
            assert changed["email"]["smtp_username"] == "alerts@example.com" and "smtp-pass" not in str(changed)

            sent = await http.post(f"{BASE}/channels/{cid}/test", headers=auth(admin))
            assert sent.json()["delivered"] is True, sent.text
            assert smtp.inbox.envelopes == [("allot@example.com", ["new@example.com", "boss@example.com"])]
            assert smtp.inbox.logins == ["alerts@example.com"], "the sealed password survived the edit"


async def test_bad_edits_are_422_naming_the_field_and_change_nothing_viewers_403_other_workspaces_404(
        settings: Any, unique: str) -> None:
    ws, other = f"ws-{unique}", f"ws-{unique}-b"
    (admin, viewer, stranger), keys = api_keys((ws, "admin"), (ws, "viewer"), (other, "admin"))
    async with http_receiver() as hook, running_service(SPEC, settings, api_keys=keys,
                                                         sealing_private_keys=notify_keys(), **IDLE) as (http, _):
        cid = (await add_channel(http, admin, {"kind": "webhook", "name": "ops", "url": hook.url,
                                               "signing_secret": SECRET}))["channel_id"]
        slack_id = (await add_channel(http, admin, {"kind": "slack", "name": "#alerts", "url": hook.url}))["channel_id"]
        mail_id = (await add_channel(http, admin, {"kind": "email", "name": "buyers", "email": {
            "smtp_host": "127.0.0.1", "smtp_port": 2525, "starttls": False, "from_address": "allot@example.com",
            "to_addresses": ["buyer@example.com"]}}))["channel_id"]
        before = {c: await get(http, admin, c) for c in (cid, slack_id, mail_id)}

        for target, body, field in [
            (cid, {"kind": "slack"}, "kind"),
            (cid, {"state": "disabled"}, "state"),
            (cid, {"state": "removed"}, "state"),
            (cid, {"url": "ftp://hooks.example.com/x"}, "url"),
            (cid, {"url": "http://169.254.169.254/latest"}, "url"),
            (cid, {"url": "http://10.0.0.7/hook"}, "url"),
            (cid, {"signing_secret": "too-short"}, "signing_secret"),
            (cid, {"email": {"to_addresses": ["a@example.com"]}}, "email"),
            (slack_id, {"signing_secret": NEW_SECRET}, "signing_secret"),
            (mail_id, {"email": {"smtp_username": "someone"}}, "email.smtp_password"),
            (mail_id, {"email": {"to_addresses": ["not-an-address"]}}, "email.to_addresses.0"),
            (mail_id, {"url": hook.url}, "url"),
            (cid, {"quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Nowhere/City"}},
             "quiet_hours.timezone"),
            (cid, {"name": "ok", "colour": "red"}, "colour"),
            (mail_id, {"email": {"smtp_pasword": "typo"}}, "email.smtp_pasword"),
            (cid, {}, "body"),
        ]:
            problem = await patch(http, admin, target, body, status=422)
            assert field in named_fields(problem), (body, problem)
            assert problem["message"] and "errors" in problem
            assert NEW_SECRET not in str(problem) and "too-short" not in str(problem)
        assert {c: await get(http, admin, c) for c in before} == before, "a refused edit changes nothing"

        r = await http.patch(f"{BASE}/channels/{cid}", headers=auth(viewer), json={"name": "mine"})
        assert r.status_code == 403, r.text
        r = await http.patch(f"{BASE}/channels/{cid}", headers=auth(stranger), json={"name": "taken over"})
        assert r.status_code == 404 and ws not in r.text
        assert (await http.patch(f"{BASE}/channels/{cid}", json={"name": "x"})).status_code == 401
        assert (await http.delete(f"{BASE}/channels/{slack_id}", headers=auth(admin))).status_code == 200
        r = await http.patch(f"{BASE}/channels/{slack_id}", headers=auth(admin), json={"name": "back"})
        assert r.status_code == 404, "a removed channel cannot be edited"
        assert await get(http, admin, cid) == before[cid]


async def _publish(settings: Any, n: NotificationRequested) -> None:
    await publish(settings.kafka_bootstrap, new_envelope(
        event_type="notification.requested", schema_version=1, payload=n, producer="test", workspace_id=n.workspace_id,
        occurred_at=n.occurred_at))
