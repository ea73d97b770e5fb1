"""Assembling a service: settings → logging → Postgres + migrations → topics → consumer, relay, tasks → HTTP.

A service is one process: uvicorn serves its FastAPI app, whose lifespan owns every resource, so
SIGTERM (handled by uvicorn) stops HTTP, lets the consumer finish its batch, drains the relay and
closes the pool in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from allot.contracts.envelope import Envelope
from allot.contracts.registry import TOPICS
from allot.runtime.accounts import ACCOUNT_TOPIC
from allot.runtime.auth import ApiKeyStore
from allot.runtime.clock import Clock, clock_from_settings
from allot.runtime.consumer import Handler, IdempotentConsumer, handler_payloads
from allot.runtime.db import Conn, MigrationChecksumMismatch, open_database
from allot.runtime.deps import ReadyDetails, maybe, provide
from allot.runtime.dryrun import GuardrailsClient
from allot.runtime.http import install_error_handlers
from allot.runtime.kafka import ensure_topics, make_broker, make_producer
from allot.runtime.logging import configure_logging, get_logger
from allot.runtime.metrics import HTTP_REQUESTS
from allot.runtime.openapi import install_openapi, operation_ids, service_version
from allot.runtime.outbox import OutboxRelay, add_events
from allot.runtime.settings import InsecureConfiguration, Settings

log = get_logger(__name__)


@dataclass
class ServiceContext:
    """Everything a route, handler or task of a running service may use."""

    settings: Settings
    clock: Clock
    pool: asyncpg.Pool
    broker: KafkaBroker
    producer: AIOKafkaProducer
    relay: OutboxRelay
    consumer: IdempotentConsumer
    extra: dict[Any, Any] = field(default_factory=dict)
    """What on_start provides, by class (``allot.runtime.deps``: provide / need / settings_of)."""
    ready: bool = False
    instance_id: str = ""
    """This process among the service's replicas (claims of scheduled slots name it)."""

    async def emit(self, conn: Conn, *envelopes: Envelope[Any]) -> None:
        """Write events to the outbox in the caller's transaction; call ``flush()`` after commit."""
        await add_events(conn, envelopes)

    def flush(self) -> None:
        self.relay.notify()


Task = Callable[[ServiceContext], Awaitable[None]]


@dataclass
class ServiceSpec:
    """What a service is: its name, migrations, topics it consumes (with handlers), topics it produces,
    HTTP routers and background tasks."""

    name: str
    migrations_package: str | None = None
    consumes: dict[str, Handler] = field(default_factory=dict)
    #: consumed topics whose handler writes only rows owned by the record key (see consumer.py, ``by_key``)
    consumes_by_key: frozenset[str] = frozenset()
    produces: Sequence[str] = ()
    routers: Sequence[APIRouter] = ()
    tasks: Sequence[Task] = ()
    on_start: Task | None = None
    on_stop: Task | None = None
    title: str = ""
    description: str = ""
    settings_class: type[Settings] = Settings
    #: signs or verifies guardrail approvals: refuses to start with a default or short secret outside development
    uses_approval_secret: bool = False

    def __post_init__(self) -> None:
        """Every handler declares the payload of the topic it consumes (``events: list[Envelope[Payload]]``): the
        registry and the handler's signature agree, and the AsyncAPI document is generated from that signature."""
        for topic_name, handler in self.consumes.items():
            declared = handler_payloads(handler)
            expected = TOPICS[topic_name].payload
            if expected not in declared:
                raise TypeError(f"{self.name}: {handler.__qualname__} consumes {topic_name} ({expected.__name__}) "
                                f"but declares {' | '.join(p.__name__ for p in declared) or 'Any'}")


def create_app(spec: ServiceSpec, settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    """The service's FastAPI app; nothing connects until its lifespan starts."""
    if settings.service_name == "allot":
        settings = settings.model_copy(update={"service_name": spec.name})
    if not isinstance(settings, spec.settings_class):
        settings = spec.settings_class(**settings.model_dump())
    if spec.uses_approval_secret:
        settings.check_approval_secrets()  # InsecureConfiguration: refuse before anything connects
    the_clock = clock or clock_from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(spec.name, settings.log_level)
        instance = settings.instance_id or f"{socket.gethostname()}-{os.getpid()}"
        try:
            pool = await open_database(settings.database_url, settings.schema, spec.migrations_package, spec.name,
                                       accounts=ACCOUNT_TOPIC in spec.consumes,
                                       min_size=settings.database_pool_min, max_size=settings.database_pool_max)
        except MigrationChecksumMismatch as exc:
            log.error("refusing_to_start", reason=str(exc))
            raise
        if settings.kafka_create_topics:
            await ensure_topics(settings)
        producer = make_producer(settings)
        await producer.start()
        relay = OutboxRelay(pool, producer, service=spec.name, schema=settings.schema)
        extra: dict[Any, Any] = {Settings: settings}
        consumer = IdempotentConsumer(service=spec.name, group=settings.consumer_group or spec.name, pool=pool,
                                      clock=the_clock, on_commit=relay.notify, extra=extra,
                                      parallelism=settings.consumer_parallelism)
        broker = make_broker(settings)
        ctx = ServiceContext(settings=settings, clock=the_clock, pool=pool, broker=broker, producer=producer,
                             relay=relay, consumer=consumer, extra=extra, instance_id=instance)
        app.state.ctx = ctx
        for topic_name, handler in spec.consumes.items():
            consumer.handle(topic_name, handler, by_key=topic_name in spec.consumes_by_key)
        if spec.consumes:
            consumer.subscribe(broker, list(spec.consumes), max_records=settings.kafka_max_batch,
                               session_timeout_ms=settings.kafka_session_timeout_ms,
                               heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms)
        relay.start()
        if settings.guardrails_url and spec.name != "guardrails":
            provide(ctx, GuardrailsClient(settings.guardrails_url))
        if spec.on_start:
            await spec.on_start(ctx)
        # Everything allocated so far lives as long as the process: keep it out of the cyclic collector's
        # scans, which otherwise grow with it and cost every consumed batch (measured in bench/load.py).
        gc.collect()
        gc.freeze()
        await broker.start()
        tasks = [asyncio.create_task(_guarded(t, ctx), name=f"{spec.name}-task") for t in spec.tasks]
        ctx.ready = True
        log.info("service_started", instance=instance, consumes=list(spec.consumes), http_port=settings.http_port)
        try:
            yield
        finally:
            ctx.ready = False
            log.info("service_stopping")
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            await broker.stop()
            if spec.on_stop:
                await spec.on_stop(ctx)
            if (guardrails := maybe(ctx, GuardrailsClient)) is not None:
                await guardrails.aclose()
            await relay.stop()
            await producer.stop()
            await pool.close()
            log.info("service_stopped")

    app = FastAPI(title=spec.title or f"Allot {spec.name}", description=spec.description,
                  version=service_version(spec.name), generate_unique_id_function=operation_ids(spec.name),
                  lifespan=lifespan)
    install_openapi(app, spec.name)  # the real error shape, the API-key schemes, stable operation ids
    app.state.api_keys = ApiKeyStore.from_json(settings.api_keys)
    app.state.settings = settings
    install_error_handlers(app)

    @app.middleware("http")
    async def _count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        route = request.scope.get("route")
        HTTP_REQUESTS.labels(spec.name, request.method, getattr(route, "path", "unmatched"),
                             str(response.status_code)).inc()
        return response

    @app.get("/healthz", tags=["ops"], include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "alive", "service": spec.name}

    @app.get("/readyz", tags=["ops"], include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        ctx: ServiceContext | None = getattr(request.app.state, "ctx", None)
        checks: dict[str, bool] = {"started": bool(ctx and ctx.ready)}
        if ctx is not None:
            try:
                async with ctx.pool.acquire(timeout=2) as conn:
                    checks["postgres"] = await conn.fetchval("SELECT 1") == 1
            except Exception:  # noqa: BLE001
                checks["postgres"] = False
            try:
                checks["kafka"] = bool(await ctx.broker.ping(timeout=2))
            except Exception:  # noqa: BLE001
                checks["kafka"] = False
        # Ready = can serve its API: started and Postgres. The broker feeds only the consumer (and the outbox relay,
        # which keeps rows in Postgres until it is back), so a broker outage keeps the read API up and is reported
        # under "consumer" (and by /readyz/consumer with its own status code).
        ok = checks["started"] and checks.get("postgres", False)
        body: dict[str, Any] = {"ready": ok, "checks": checks,
                                "consumer": _consumer_health(spec, ctx, checks.get("kafka", False))}
        details = maybe(ctx, ReadyDetails) if ctx is not None else None
        if details is not None and (detail := details()):
            body["details"] = detail  # what an operator must know (e.g. an account ingest cannot read)
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/readyz/consumer", tags=["ops"], include_in_schema=False)
    async def readyz_consumer(request: Request) -> JSONResponse:
        """The consumer's side alone: 200 while it can reach the brokers, 503 otherwise (/readyz stays 200)."""
        ctx: ServiceContext | None = getattr(request.app.state, "ctx", None)
        kafka = False
        if ctx is not None and ctx.ready:
            try:
                kafka = bool(await ctx.broker.ping(timeout=2))
            except Exception:  # noqa: BLE001
                kafka = False
        health = _consumer_health(spec, ctx, kafka)
        return JSONResponse(health, status_code=200 if health["healthy"] else 503)

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in spec.routers:
        app.include_router(router)
    return app


def _consumer_health(spec: ServiceSpec, ctx: ServiceContext | None, kafka: bool) -> dict[str, Any]:
    """The consumer's health, apart from the API's readiness: started and the brokers reachable."""
    healthy = bool(ctx and ctx.ready) and kafka
    return {"healthy": healthy, "kafka": kafka, "group": ctx.consumer.group if ctx is not None else None,
            "topics": list(spec.consumes)}


async def _guarded(task: Task, ctx: ServiceContext) -> None:
    """Run a background task forever; crash → log and restart after a pause (never silently die)."""
    while True:
        try:
            await task(ctx)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            log.error("background_task_crashed", task=getattr(task, "__name__", "?"), error=repr(exc))
            await asyncio.sleep(1.0)


def module_exists(name: str) -> bool:
    """True when ``name`` can be imported (a service that is not built yet is simply absent)."""
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def get_ctx(request: Request) -> ServiceContext:
    """FastAPI dependency: the running service's context."""
    ctx: ServiceContext = request.app.state.ctx
    return ctx


def run(spec: ServiceSpec, settings: Settings | None = None) -> None:
    """Serve the service in the foreground until SIGTERM/SIGINT."""
    try:
        settings = settings or spec.settings_class()  # a settings class may refuse its configuration
        if settings.service_name == "allot":
            settings = settings.model_copy(update={"service_name": spec.name})
        app = create_app(spec, settings)
    except InsecureConfiguration as exc:
        configure_logging(spec.name, settings.log_level if settings else "INFO")
        log.error("refusing_to_start", reason=str(exc))
        sys.exit(f"allot {spec.name}: {exc}")
    # Our JSON logging before uvicorn's first line; log_config=None: uvicorn installs no plain-text handlers.
    configure_logging(spec.name, settings.log_level)
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None, access_log=False,
                timeout_graceful_shutdown=15)
