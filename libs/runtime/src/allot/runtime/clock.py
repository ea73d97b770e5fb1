"""The one clock every service reads time from: real, or simulated and shared across processes."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from allot.runtime.settings import Settings


class Clock(Protocol):
    """Source of the current time; ``sleep`` waits for a span of *clock* time."""

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    """Wall-clock UTC time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class SimulatedClock:
    """Time that runs ``speed`` times faster than real time from a shared anchor.

    Every process configured with the same anchors and speed reads the same simulated time, so a
    week of behaviour can be watched in minutes (speed 3600 = one simulated hour per second).
    """

    def __init__(self, *, anchor_real: float, anchor_sim: datetime, speed: float) -> None:
        if anchor_sim.tzinfo is None:
            raise ValueError("anchor_sim must be timezone-aware")
        self.anchor_real = anchor_real
        self.anchor_sim = anchor_sim.astimezone(UTC)
        self.speed = speed

    def now(self) -> datetime:
        return self.anchor_sim + timedelta(seconds=(time.time() - self.anchor_real) * self.speed)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds / self.speed))


class ManualClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)


def clock_from_settings(settings: Settings) -> Clock:
    """RealClock by default; SimulatedClock when ALLOT_CLOCK=simulated (anchors default to 'now')."""
    if settings.clock == "real":
        return RealClock()
    anchor_real = settings.clock_anchor_real if settings.clock_anchor_real is not None else time.time()
    anchor_sim = settings.clock_anchor_sim or datetime.fromtimestamp(anchor_real, UTC)
    return SimulatedClock(anchor_real=anchor_real, anchor_sim=anchor_sim, speed=settings.clock_speed)
