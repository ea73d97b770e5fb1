"""The sandbox ad platform as a process: its HTTP API plus a delivery simulation that publishes metrics.ingested.

It stands in for an ad platform and its reporting connector: Allot's executor calls its /v1 API,
and its simulated delivery reaches Allot as metrics.ingested records, like a real ingestion job's.
Like ingest, it also publishes account.profiled for each account it delivers for (currency, time zone),
before the account's first report and again whenever its workspace or time zone changes. That report is the
sandbox's registration of an account to a workspace (the binding below, else ALLOT_SANDBOX_DEFAULT_WORKSPACE):
services then let only that workspace reference the account (tenancy, issue #14). An account bound to another
workspace is first reported ``disconnected`` in the one it leaves, like ingest does for a removed connection.
Time zones are
UTC unless configured (ALLOT_SANDBOX_ACCOUNT_TIMEZONES, ALLOT_SANDBOX_DEFAULT_TIMEZONE, or the
workspace binding's ``timezone_name``), so the demo's days stay UTC days unless asked otherwise. They are
also the local days of the range reach the reports carry (``allot.sandbox.simulator``).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import tzinfo
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, Field, field_validator

from allot.contracts.codec import encode
from allot.contracts.envelope import new_envelope
from allot.contracts.localday import UnknownTimeZone, zone_named
from allot.contracts.payloads import AccountProfiled, MetricsIngested
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
    sandbox_default_timezone: str = Field(default="UTC", description="IANA time zone of accounts not listed below.")
    sandbox_account_timezones: dict[str, str] = Field(
        default_factory=dict, description='Ad account id -> IANA time zone (JSON, e.g. {"act_1": "America/New_York"}).')

    @field_validator("sandbox_default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _zone_name(value)

    @field_validator("sandbox_account_timezones")
    @classmethod
    def _known_zones(cls, value: dict[str, str]) -> dict[str, str]:
        return {account: _zone_name(zone) for account, zone in value.items()}


def _zone_name(value: str) -> str:
    try:
        zone_named(value)
    except UnknownTimeZone as exc:
        raise ValueError(str(exc)) from None
    return value


class WorkspaceBinding(BaseModel):
    workspace_id: str = Field(min_length=1, max_length=128)
    timezone_name: str | None = Field(default=None, max_length=64,
                                      description="IANA time zone of the account's day (default: the configured one).")

    @field_validator("timezone_name")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else _zone_name(value)


def account_profile(report: MetricsIngested, timezone_name: str, observed_at: Any, *,
                    state: Literal["connected", "disconnected"] = "connected") -> AccountProfiled:
    """What the sandbox says about the account of ``report``: its currency and time zone, always readable
    (``disconnected``: no longer delivered to the workspace the report is published in)."""
    return AccountProfiled(platform=report.platform, ad_account_id=report.ad_account_id, name=report.ad_account_id,
                           currency=report.currency, timezone_name=timezone_name, observed_at=observed_at,
                           state=state)


def build(settings: SandboxSettings, clock: Clock | None = None) -> FastAPI:
    """The process's app: the sandbox API, /readyz, and a lifespan that runs delivery into Kafka."""
    from datetime import timedelta

    the_clock = clock or clock_from_settings(settings)
    state = SandboxState(api_token=settings.sandbox_token, clock=the_clock.now, seed=settings.sandbox_seed)
    workspaces: dict[str, str] = {}
    timezones: dict[str, str] = dict(settings.sandbox_account_timezones)

    def zone_of(account: str) -> tzinfo:
        """The account's zone now (a binding may change it): its local days are those of its range reach."""
        return zone_named(timezones.get(account, settings.sandbox_default_timezone))

    simulator = DeliverySimulator(state.delivery_entities, seed=settings.sandbox_seed,
                                  interval=timedelta(minutes=settings.sandbox_interval_minutes), zone_of=zone_of)
    inner = create_app(state, simulator)
    #: ad account → the (workspace, currency, zone) last published on account.profiled by this process
    profiled: dict[str, tuple[str, str, str]] = {}

    async def sink_factory() -> tuple[Any, Any]:
        producer = make_producer(settings)
        await producer.start()

        async def sink(reports: list[MetricsIngested]) -> None:
            futures = []
            for report in reports:
                workspace = workspaces.get(report.ad_account_id, settings.sandbox_default_workspace)
                zone = timezones.get(report.ad_account_id, settings.sandbox_default_timezone)
                facts = (workspace, report.currency, zone)
                held = profiled.get(report.ad_account_id)
                if held != facts:
                    # before the account's reports: services bucket them in its zone from the first one on
                    now = the_clock.now()
                    profiles = [(workspace, account_profile(report, zone, now))]
                    if held is not None and held[0] != workspace:  # the workspace it leaves loses it first
                        profiles.insert(0, (held[0], account_profile(report, held[2], now, state="disconnected")))
                    for owner, payload in profiles:
                        profile = new_envelope(
                            event_type="account.profiled", schema_version=TOPICS["account.profiled"].schema_version,
                            payload=payload, producer="sandbox", workspace_id=owner, occurred_at=now,
                            step=f"profile/{owner}/{report.ad_account_id}/{now.isoformat()}")
                        rec = encode(profile)
                        await (await producer.send(rec.topic, rec.value, key=rec.key, headers=rec.headers))
                    profiled[report.ad_account_id] = facts
                step = f"{report.entity_id}/{report.interval_start.isoformat()}/{report.reported_at.isoformat()}"
                env = new_envelope(event_type="metrics.ingested",
                                   schema_version=TOPICS["metrics.ingested"].schema_version,
                                   payload=report, producer="sandbox", workspace_id=workspace,
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
        """Which Allot workspace receives this ad account's metrics (default: ALLOT_SANDBOX_DEFAULT_WORKSPACE), and
        optionally the account's time zone; the next delivery publishes the account's profile again."""
        if not secrets.compare_digest((authorization or "").encode(), f"Bearer {settings.sandbox_token}".encode()):
            raise HTTPException(401, "missing or invalid bearer token")
        workspaces[account_id] = body.workspace_id
        if body.timezone_name is not None:
            timezones[account_id] = body.timezone_name
        return {"ad_account_id": account_id, "workspace_id": body.workspace_id,
                "timezone_name": timezones.get(account_id, settings.sandbox_default_timezone)}

    outer.mount("/", inner)
    return outer


def main() -> None:
    settings = SandboxSettings()
    if settings.service_name == "allot":
        settings = settings.model_copy(update={"service_name": "sandbox"})
    configure_logging("sandbox", settings.log_level)  # JSON before uvicorn's first line (log_config=None: no handlers)
    uvicorn.run(build(settings), host=settings.http_host, port=settings.http_port, log_config=None, access_log=False,
                timeout_graceful_shutdown=5)
