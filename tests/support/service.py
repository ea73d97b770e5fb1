"""Run a service in-process (its real lifespan: Postgres, broker, consumer, relay, tasks) for service tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson

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
