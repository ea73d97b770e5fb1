"""Small server-rendered SVG charts (no JavaScript, no CDN): geometry computed here, drawn by the templates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

WIDTH = 420  # drawing width of the bars (px inside the viewBox)


@dataclass(frozen=True)
class Bar:
    label: str
    y: int
    width: int
    value: int
    after_width: int = 0
    after: int = 0


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    height: int


def budget_bars(rows: list[tuple[str, int]]) -> Chart:
    top = max([v for _, v in rows] + [1])
    return Chart([Bar(label, 10 + i * 28, max(1, round(WIDTH * v / top)), v) for i, (label, v) in enumerate(rows)],
                 20 + 28 * len(rows))


def move_bars(rows: list[tuple[str, int, int]]) -> Chart:
    """Before (upper, grey) and after (lower, coloured) per member."""
    top = max([max(b, a) for _, b, a in rows] + [1])
    return Chart([Bar(label, 10 + i * 36, max(1, round(WIDTH * b / top)), b, max(1, round(WIDTH * a / top)), a)
                  for i, (label, b, a) in enumerate(rows)], 20 + 36 * len(rows))


# ---------------------------------------------------------------- spend over a flight (pacing)

Series = list[tuple[datetime, int]]


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    value: int
    at: datetime


@dataclass(frozen=True)
class FlightChart:
    """Expected (dashed) and actual (solid) spend over a flight, with the warning and critical bands around the
    expected line; x from flight start to end, y from 0 to ``top`` (minor units)."""

    width: int
    height: int
    left: int
    top_px: int
    plot_w: int
    plot_h: int
    top: int
    expected: str
    actual: str
    dots: list[Dot]
    warning_band: str
    critical_band: str
    now_x: float | None
    y_ticks: list[tuple[float, int]]
    x_ticks: list[tuple[float, datetime]]


def _nice(value: float) -> int:
    """The smallest 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 × 10^k at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** (len(str(int(value))) - 1)
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * power >= value:
            return math.ceil(step * power)
    return int(10 * power)  # pragma: no cover


def _thin(series: Series, most: int) -> Series:
    """At most ``most`` points, evenly picked, the last one always kept."""
    if len(series) <= most:
        return series
    step = len(series) / (most - 1)
    picked = [series[int(i * step)] for i in range(most - 1)]
    return [*picked, series[-1]]


def flight_chart(start: datetime, end: datetime, now: datetime, expected: Series, actual: Series,
                 bands: tuple[float, float, float, float] | None = None, *, width: int = 640,
                 height: int = 230) -> FlightChart:
    """``bands``: (underpacing warning %, underpacing critical %, overpacing warning %, overpacing critical %)."""
    left, top_px, right, bottom = 84, 12, 16, 34
    plot_w, plot_h = width - left - right, height - top_px - bottom
    span = max((end - start).total_seconds(), 1.0)
    expected = sorted(expected)
    actual = _thin(sorted(actual), 240)
    over_crit = (bands[3] if bands else 0.0) / 100
    top = _nice(max([v * (1 + over_crit) for _, v in expected] + [v for _, v in actual] + [1]))

    def x(at: datetime) -> float:
        return round(left + plot_w * min(max((at - start).total_seconds() / span, 0.0), 1.0), 1)

    def y(value: float) -> float:
        return round(top_px + plot_h * (1 - max(value, 0) / top), 1)

    def line(series: list[tuple[datetime, float]]) -> str:
        return " ".join(f"{x(at)},{y(v)}" for at, v in series)

    def band(under: float, over: float) -> str:
        if not expected:
            return ""
        upper = [(at, v * (1 + over / 100)) for at, v in expected]
        lower = [(at, v * (1 - under / 100)) for at, v in reversed(expected)]
        return line([*upper, *lower])

    warning = band(bands[0], bands[2]) if bands else ""
    critical = band(bands[1], bands[3]) if bands else ""
    dots = [Dot(x(at), y(v), v, at) for at, v in (actual if len(actual) <= 60 else actual[-1:])]
    now_x = x(now) if start <= now <= end else None
    y_ticks = [(y(top * f), round(top * f)) for f in (0, 0.25, 0.5, 0.75, 1)]
    x_ticks = [(x(start + (end - start) * f), start + (end - start) * f) for f in (0, 0.5, 1)]
    return FlightChart(width, height, left, top_px, plot_w, plot_h, top, line(list(expected)), line(list(actual)),
                       dots, warning, critical, now_x, y_ticks, x_ticks)
