"""Serve the Graph fake on a loopback port: ``python -m allot.fakes.meta [--demo]`` (development only).

With ``--demo`` it holds the `make run` demo's ad account (``allot.fakes.meta.world``) and a :class:`MetaMarket`
that delivers every hour on the stack's clock (``ALLOT_CLOCK*`` like the services, so simulated time works),
starting with a week of history. The port comes from ``--port`` or ``ALLOT_HTTP_PORT``; ``GET /readyz`` answers
once it listens. Tokens and the app secret come from ``ALLOT_FAKE_META_READ_TOKEN``,
``ALLOT_FAKE_META_WRITE_TOKEN`` and ``ALLOT_META_APP_SECRET`` (``allot.runtime.stack`` sets them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os

import uvicorn

from allot.fakes.meta.graph import MetaFakeState, create_meta_fake
from allot.fakes.meta.world import HISTORY, demo_world


async def _serve(port: int, demo: bool) -> None:
    if demo:
        from allot.runtime.clock import clock_from_settings
        from allot.runtime.settings import Settings

        clock = clock_from_settings(Settings())
        state, market = demo_world(os.environ.get("ALLOT_FAKE_META_READ_TOKEN", "demo-read-token-0000000000"),
                                   os.environ.get("ALLOT_FAKE_META_WRITE_TOKEN", "demo-write-token-000000000"),
                                   os.environ.get("ALLOT_META_APP_SECRET"))
        market.advance(clock.now(), start=clock.now() - HISTORY)
    else:
        state, market, clock = MetaFakeState(), None, None
    app = create_meta_fake(state)

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))

    async def deliver() -> None:
        while market is not None and clock is not None:
            market.advance(clock.now())
            await asyncio.sleep(0.25)

    task = asyncio.create_task(deliver())
    try:
        await server.serve()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m allot.fakes.meta", description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("ALLOT_HTTP_PORT", "8108")))
    parser.add_argument("--demo", action="store_true", help="the make-run demo's account and a live market")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.port, args.demo))


if __name__ == "__main__":
    main()

