"""A tiny TCP proxy for fault tests: forwards 127.0.0.1:listen_port → target, and can drop every connection.

It runs its own asyncio loop in a background thread, so sync and async tests can drive it alike:

    proxy = TcpProxy(listen_port, "127.0.0.1", broker_port).start()
    proxy.cut()      # abort every open connection (RST) and stop listening: new connects are refused
    proxy.restore()  # listen again on the same port
    proxy.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any


class TcpProxy:
    def __init__(self, listen_port: int, target_host: str, target_port: int) -> None:
        self.listen_port = listen_port
        self.target = (target_host, target_port)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"tcpproxy-{listen_port}", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.accepted = 0
        self.dropped = 0

    # ---------------------------------------------------------------- control (any thread)

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def cut(self) -> int:
        """Drop every open connection and refuse new ones; returns how many were dropped."""
        return self._call(self._cut())  # type: ignore[no-any-return]

    def restore(self) -> None:
        self._call(self._listen())

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self._cut())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    @property
    def open_connections(self) -> int:
        return len(self._writers) // 2

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    # ---------------------------------------------------------------- the loop's side

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.listen_port,
                                                      reuse_address=True)

    async def _cut(self) -> int:
        if self._server is not None:
            self._server.close()
            self._server = None
        writers = list(self._writers)
        self._writers.clear()
        for w in writers:
            w.transport.abort()  # RST, like a network drop seen by the peer
        self.dropped += len(writers) // 2
        return len(writers) // 2

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self.accepted += 1
        pair = {client_w, upstream_w}
        self._writers |= pair

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                with contextlib.suppress(ConnectionError, OSError):  # a cut connection simply ends the pipe
                    while data := await reader.read(65536):
                        writer.write(data)
                        await writer.drain()
            finally:
                for w in pair:
                    w.close()

        try:
            await asyncio.gather(pipe(client_r, upstream_w), pipe(upstream_r, client_w))
        finally:
            self._writers -= pair
