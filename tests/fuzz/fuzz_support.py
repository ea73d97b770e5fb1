"""A running service for schemathesis' (synchronous) property tests.

Schemathesis/hypothesis tests are plain synchronous functions, while a service's lifespan (asyncpg pool, consumer,
relay, tasks) lives on an asyncio loop. ``ServiceRunner`` runs ``running_service(...)`` (the REAL lifespan against the
session's Postgres and broker) on an event loop of its own thread and lets a test send HTTP requests to it from the
outside; one service runs at a time (started on first use, stopped when another service or the session needs it).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
ClientFactory = Callable[[], AbstractAsyncContextManager[httpx.AsyncClient]]


class ServiceRunner:
    """Holds ``factory()`` open on a background event loop; ``run(coro)`` executes a coroutine on that loop."""

    def __init__(self, name: str, factory: ClientFactory, *, start_timeout_s: float = 90.0) -> None:
        self.name = name
        self._factory = factory
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.client: httpx.AsyncClient | None = None
        self.data: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._main, name=f"fuzz-{name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(start_timeout_s):
            raise TimeoutError(f"{name} did not start in {start_timeout_s}s")
        if self._error is not None:
            raise RuntimeError(f"{name} failed to start") from self._error

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            async with self._factory() as client:
                self.client = client
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._ready.set()

    def run(self, coro: Awaitable[T], timeout_s: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)  # type: ignore[arg-type]

    def request(self, method: str, url: str, *, headers: dict[str, str], content: bytes | None,
                timeout_s: float = 60.0) -> httpx.Response:
        assert self.client is not None
        client = self.client
        return self.run(client.request(method, url, headers=headers, content=content), timeout_s)

    def close(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


class Runners:
    """One service at a time: ``get(name, factory)`` stops the previous service before starting another."""

    def __init__(self) -> None:
        self.current: ServiceRunner | None = None

    def get(self, name: str, factory: Callable[[], ServiceRunner]) -> ServiceRunner:
        if self.current is not None and self.current.name == name:
            return self.current
        self.close()
        self.current = factory()
        return self.current

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None
