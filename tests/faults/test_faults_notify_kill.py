"""SIGKILL of the notifier mid-delivery loses nothing: the restarted process (its lease on the delivery expired)
sends the notification again with the same idempotency key, so a receiver that dedupes sees it once."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from allot.contracts import new_envelope
from allot.contracts.examples import EXAMPLES
from allot.runtime.auth import generate_key
from allot.runtime.stack import start_stack, wait_ready
from tests.service.notify.notify_support import http_receiver
from tests.support.kafka import eventually, publish

pytestmark = pytest.mark.e2e
BASE = "/api/v1/notifications"


async def test_sigkill_mid_delivery_loses_nothing_and_the_receiver_sees_one_notification(
        kafka_bootstrap: str, database_url: str) -> None:
    ws = f"kill-{uuid.uuid4().hex[:8]}"
    raw, entry = generate_key(ws, "admin")
    headers = {"Authorization": f"Bearer {raw}"}
    env = {"ALLOT_ENV": "development", "ALLOT_NOTIFY_ALLOW_LOOPBACK": "true", "ALLOT_NOTIFY_LEASE_S": "2",
           "ALLOT_NOTIFY_POLL_INTERVAL_S": "0.1", "ALLOT_NOTIFY_TIMEOUT_S": "60",
           "ALLOT_DATABASE_SCHEMA": f"notify_{uuid.uuid4().hex[:8]}"}
    async with http_receiver(hold=1) as hook:
        stack = await asyncio.to_thread(
            start_stack, Path(tempfile.mkdtemp(prefix="allot-notify-kill-")), services=["notify"],
            bootstrap=kafka_bootstrap, database_url=database_url, api_keys=[entry.model_dump()], extra_env=env,
            quiet=True, random_ports=True)
        try:
            async with httpx.AsyncClient(base_url=stack.url("notify"), headers=headers, timeout=10) as http:
                r = await http.post(f"{BASE}/channels", json={"kind": "webhook", "name": "k", "url": hook.url,
                                                              "signing_secret": "s" * 40})
                assert r.status_code == 201, r.text
                channel_id = r.json()["channel_id"]
                r = await http.post(f"{BASE}/subscriptions", json={"channel_id": channel_id})
                assert r.status_code == 201, r.text
                n = EXAMPLES["notification.requested"].model_copy(update={  # type: ignore[attr-defined]
                    "notification_id": uuid.uuid4(), "workspace_id": ws, "occurred_at": datetime.now(UTC)})
                await publish(kafka_bootstrap, new_envelope(
                    event_type="notification.requested", schema_version=1, payload=n, producer="test",
                    workspace_id=ws, occurred_at=n.occurred_at))

                await eventually(lambda: _async(hook.requests), timeout=30, what="the first attempt, held open")
                stack.processes["notify"].kill()  # SIGKILL while the receiver has not answered
                await asyncio.to_thread(stack.processes["notify"].wait, 10)
                stack.start_service("notify")
                await asyncio.to_thread(wait_ready, stack, "notify")

                async def delivered() -> Any:
                    r = await http.get(f"{BASE}/deliveries", params={"channel_id": channel_id})
                    rows = r.json()["deliveries"] if r.status_code == 200 else []
                    return rows if [d["outcome"] for d in rows] == ["delivered"] else None

                rows = await eventually(delivered, timeout=40, what="the delivery completed after the restart")
                assert rows[0]["notification_id"] == str(n.notification_id)
                keys = [req.headers["idempotency-key"] for req in hook.requests]
                assert len(keys) == 2 and set(keys) == {str(n.notification_id)}, keys
        finally:
            await asyncio.to_thread(stack.stop)


async def _async(value: Any) -> Any:
    return value
