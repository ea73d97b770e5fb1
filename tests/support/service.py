"""Run a service in-process (its real lifespan: Postgres, broker, consumer, relay, tasks) for service tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import uvicorn

from allot.runtime.auth import Role, generate_key
from allot.runtime.clock import Clock
from allot.runtime.service import ServiceContext, ServiceSpec, create_app
from allot.runtime.settings import Settings


def api_keys(*grants: tuple[str, Role]) -> tuple[list[str], str]:
    """Raw keys (in order) and the ALLOT_API_KEYS JSON that configures their hashes."""
    raws, entries = [], []
    for workspace, role in grants:
        raw, entry = generate_key(workspace, role)
        raws.append(raw)
        entries.append(entry.model_dump())
    return raws, orjson.dumps(entries).decode()


@asynccontextmanager
async def running_service(spec: ServiceSpec, settings: Settings, *, clock: Clock | None = None,
                          **overrides: Any) -> AsyncIterator[tuple[httpx.AsyncClient, ServiceContext]]:
    """Start the service's lifespan and give an HTTP client bound to its app plus its context."""
    values = {**settings.model_dump(), "service_name": spec.name, **overrides}
    # A consumer group of the test's own (per service and schema): a service left running by another suite (the fuzz
    # runners keep one alive) must never share a group with this one and take half of its partitions.
    values["consumer_group"] = values.get("consumer_group") or f"{spec.name}-{values['database_schema']}"
    settings = spec.settings_class(**values)
    app = create_app(spec, settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client, app.state.ctx


def auth(raw_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw_key}"}


@asynccontextmanager
async def serve_on_loopback(spec: ServiceSpec, settings: Settings) -> AsyncIterator[str]:
    """The service on a real loopback port (uvicorn, its own lifespan), yielding its base URL: for tests where
    one service calls another over HTTP."""
    schema = f"{settings.database_schema}_{spec.name}"  # its own schema beside the test's other service
    values = {**settings.model_dump(), "service_name": spec.name, "database_schema": schema,
              "consumer_group": f"{spec.name}-{schema}"}
    app = create_app(spec, spec.settings_class(**values))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(600):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        assert server.started, f"{spec.name} did not start on loopback"
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
