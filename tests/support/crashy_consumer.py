"""A consumer process for the crash test: with CRASH=1 it dies (os._exit(137)) inside its transaction."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from allot.runtime.clock import RealClock
from allot.runtime.consumer import BatchContext, IdempotentConsumer
from allot.runtime.db import open_database
from allot.runtime.kafka import make_broker
from allot.runtime.settings import Settings


async def main() -> int:
    settings = Settings(kafka_session_timeout_ms=3000, kafka_heartbeat_interval_ms=500)
    workspace = os.environ["WORKSPACE"]
    crash = os.environ.get("CRASH") == "1"
    pool = await open_database(settings.database_url, settings.schema, None, "test")
    await pool.execute("CREATE TABLE IF NOT EXISTS applied (event_id uuid)")
    done = asyncio.Event()

    async def handler(ctx: BatchContext, events: list[Any]) -> None:
        mine = [e for e in events if e.workspace_id == workspace]
        for e in mine:
            await ctx.conn.execute("INSERT INTO applied VALUES ($1)", e.event_id)
        if mine and crash:
            os._exit(137)  # the process dies with the transaction open: Postgres rolls it back
        if mine:
            done.set()

    consumer = IdempotentConsumer(service="crashy", group=f"crashy-{workspace}", pool=pool, clock=RealClock())
    consumer.handle("metrics.ingested", handler)
    broker = make_broker(settings)
    consumer.subscribe(broker, ["metrics.ingested"], session_timeout_ms=3000, heartbeat_interval_ms=500)
    await broker.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=60)
        await asyncio.sleep(0.5)  # let the ack (offset commit) happen
    finally:
        await broker.stop()
        await pool.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
