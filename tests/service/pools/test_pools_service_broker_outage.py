"""/readyz during a broker outage (#17): the read API stays up (200, pools still listed), the consumer's health is
reported apart (`consumer` in the body, /readyz/consumer 503), and both recover when the broker is back.

The pools service runs in-process against a broker of this test's own (the embedded Tansu broker), which the test
stops and starts again on the same port; Postgres is the session's.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from allot.runtime.embedded import start_broker
from tests.service.pools.pools_support import BASE, PoolsCase, auth


async def _until(client: httpx.AsyncClient, path: str, status: int, timeout_s: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        r = await client.get(path)
        if r.status_code == status or time.monotonic() > deadline:
            return r
        await asyncio.sleep(0.3)


async def test_readyz_keeps_the_read_api_up_while_the_broker_is_down(settings: Any, unique: str) -> None:
    broker = start_broker()
    port = broker.port
    try:
        P = PoolsCase(settings.model_copy(update={"kafka_bootstrap": broker.bootstrap}), unique)
        async with P.service() as (client, _ctx, _clock):
            pool = await P.create_pool(client)
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            body = ready.json()
            assert body["ready"] is True and body["checks"] == {"started": True, "postgres": True, "kafka": True}
            assert body["consumer"]["healthy"] is True and body["consumer"]["group"] == _ctx.consumer.group
            assert "metrics.ingested" in body["consumer"]["topics"]
            assert (await client.get("/readyz/consumer")).status_code == 200

            broker.stop()
            # The consumer's side goes unhealthy ...
            consumer = await _until(client, "/readyz/consumer", 503)
            assert consumer.status_code == 503, consumer.text
            assert consumer.json()["healthy"] is False and consumer.json()["kafka"] is False
            # ... while the service stays ready and its read API answers from Postgres.
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            body = ready.json()
            assert body["ready"] is True and body["checks"]["postgres"] is True and body["checks"]["kafka"] is False
            assert body["consumer"]["healthy"] is False
            listed = await client.get(BASE, headers=auth(P.viewer))
            assert listed.status_code == 200, listed.text
            assert pool["id"] in {p["id"] for p in listed.json()["pools"]}
            assert (await client.get(f"{BASE}/{pool['id']}", headers=auth(P.viewer))).status_code == 200

            # The broker is back (same address): the consumer's side recovers by itself.
            broker = start_broker(port=port)
            back = await _until(client, "/readyz/consumer", 200, timeout_s=60.0)
            assert back.status_code == 200, back.text
            assert (await client.get("/readyz")).json()["consumer"]["healthy"] is True
    finally:
        broker.stop()
