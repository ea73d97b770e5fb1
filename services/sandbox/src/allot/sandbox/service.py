"""The sandbox ad platform as a process: its HTTP API plus a delivery simulation that publishes metrics.ingested.

It stands in for an ad platform and its reporting connector: Allot's executor calls its /v1 API,
and its simulated delivery reaches Allot as metrics.ingested records, like a real ingestion job's.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, Field

from allot.contracts.codec import encode
from allot.contracts.envelope import new_envelope
from allot.contracts.payloads import MetricsIngested
from allot.contracts.registry import TOPICS
from allot.runtime.clock import Clock, clock_from_settings
from allot.runtime.kafka import ensure_topics, make_producer
from allot.runtime.logging import configure_logging, get_logger
from allot.runtime.settings import Settings
from allot.sandbox.app import create_app
from allot.sandbox.simulator import DeliverySimulator, run_delivery
from allot.sandbox.state import SandboxState

log = get_logger(__name__)


class SandboxSettings(Settings):
    """ALLOT_SANDBOX_* configuration of the sandbox platform process."""

    sandbox_token: str = "sandbox-token"
    sandbox_seed: int = 7
    sandbox_default_workspace: str = "demo"
    sandbox_tick_s: float = Field(default=0.5, gt=0, description="Real seconds between delivery ticks.")
    sandbox_interval_minutes: int = Field(default=60, ge=1, description="Simulated length of one delivery interval.")


class WorkspaceBinding(BaseModel):
    workspace_id: str = Field(min_length=1, max_length=128)


def build(settings: SandboxSettings, clock: Clock | None = None) -> FastAPI:
    """The process's app: the sandbox API, /readyz, and a lifespan that runs delivery into Kafka."""
    from datetime import timedelta

    the_clock = clock or clock_from_settings(settings)
    state = SandboxState(api_token=settings.sandbox_token, clock=the_clock.now, seed=settings.sandbox_seed)
    simulator = DeliverySimulator(state.delivery_entities, seed=settings.sandbox_seed,
                                  interval=timedelta(minutes=settings.sandbox_interval_minutes))
    inner = create_app(state, simulator)
    workspaces: dict[str, str] = {}

    async def sink_factory() -> tuple[Any, Any]:
        producer = make_producer(settings)
        await producer.start()

        async def sink(reports: list[MetricsIngested]) -> None:
            futures = []
            for report in reports:
                step = f"{report.entity_id}/{report.interval_start.isoformat()}/{report.reported_at.isoformat()}"
                env = new_envelope(event_type="metrics.ingested", schema_version=TOPICS["metrics.ingested"].schema_version,
                                   payload=report, producer="sandbox",
                                   workspace_id=workspaces.get(report.ad_account_id, settings.sandbox_default_workspace),
                                   occurred_at=report.reported_at, step=step)
                rec = encode(env)
                futures.append(await producer.send(rec.topic, rec.value, key=rec.key, headers=rec.headers))
            await asyncio.gather(*futures)

        return producer, sink

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging("sandbox", settings.log_level)
        if settings.kafka_create_topics:
            await ensure_topics(settings)
        producer, sink = await sink_factory()
        task = asyncio.create_task(run_delivery(simulator, the_clock.now, sink, settings.sandbox_tick_s))
        app.state.ready = True
        log.info("sandbox_started", token_configured=bool(settings.sandbox_token))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await producer.stop()

    outer = FastAPI(title="Allot sandbox ad platform", lifespan=lifespan)
    outer.state.sandbox = state
    outer.state.ready = False

    @outer.get("/readyz", include_in_schema=False)
    async def readyz() -> dict[str, Any]:
        return {"ready": bool(outer.state.ready)}

    @outer.put("/sandbox/accounts/{account_id}/workspace")
    async def bind_workspace(account_id: str, body: WorkspaceBinding,
                             authorization: str | None = Header(default=None)) -> dict[str, str]:
        """Which Allot workspace receives this ad account's metrics (default: ALLOT_SANDBOX_DEFAULT_WORKSPACE)."""
        if not secrets.compare_digest((authorization or "").encode(), f"Bearer {settings.sandbox_token}".encode()):
            raise HTTPException(401, "missing or invalid bearer token")
        workspaces[account_id] = body.workspace_id
        return {"ad_account_id": account_id, "workspace_id": body.workspace_id}

    outer.mount("/", inner)
    return outer


def main() -> None:
    settings = SandboxSettings()
    if settings.service_name == "allot":
        settings = settings.model_copy(update={"service_name": "sandbox"})
    uvicorn.run(build(settings), host=settings.http_host, port=settings.http_port, log_config=None, access_log=False,
                timeout_graceful_shutdown=5)
