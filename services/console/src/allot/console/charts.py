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


# ---------------------------------------------------------------- a pool's members over time (stacked shares)

#: Fill patterns (drawn by the template's ``<defs>``), told apart without colour; colours add a second cue.
PATTERNS = ("solid", "diagonal", "dots", "horizontal", "cross", "vertical", "backslash", "grid")
COLOURS = ("#1f5fbf", "#c0580c", "#1d7a46", "#7a3fa0", "#8a5a00", "#0f7c8c", "#b3261e", "#5b6478")
#: Marker shapes and curve dashes of the diminishing-returns chart (one per member, repeating).
MARKERS = ("circle", "square", "triangle", "diamond", "cross", "star")
DASHES = ("", "8 4", "2 3", "10 3 2 3", "4 4", "12 4 2 4 2 4")


@dataclass(frozen=True)
class Band:
    """One member's band: its polygon, its fill (pattern id and colour) and where its label goes."""

    key: str
    label: str
    pattern: str
    colour: str
    points: str
    label_x: float
    label_y: float | None
    share_now: float


@dataclass(frozen=True)
class ShareChart:
    width: int
    height: int
    left: int
    top_px: int
    plot_w: int
    plot_h: int
    bands: list[Band]
    y_ticks: list[tuple[float, int]]
    x_ticks: list[tuple[float, datetime]]


def share_chart(members: list[tuple[str, str]], steps: list[tuple[datetime, dict[str, int]]], *, width: int = 640,
                height: int = 240) -> ShareChart | None:
    """Each member's share of the pool's budgets over time, stacked to 100 %. ``steps``: (when, budgets by member)
    in time order; a budget holds until the next step (so the bands change in steps). None without two moments."""
    steps = sorted(steps, key=lambda s: s[0])
    if len(steps) < 2 or not members:
        return None
    left, top_px, right, bottom = 48, 10, 170, 30
    plot_w, plot_h = width - left - right, height - top_px - bottom
    start, end = steps[0][0], steps[-1][0]
    span = max((end - start).total_seconds(), 1.0)

    def x(at: datetime) -> float:
        return round(left + plot_w * (at - start).total_seconds() / span, 1)

    def y(share: float) -> float:
        return round(top_px + plot_h * (1 - share), 1)

    keys = [k for k, _ in members]
    shares = []
    for _, budgets in steps:
        total = sum(max(budgets.get(k, 0), 0) for k in keys)
        shares.append([max(budgets.get(k, 0), 0) / total if total else 0.0 for k in keys])
    # the stair-step outline of the cumulative share below each band edge (edge 0 = bottom, edge n = top)
    xs: list[float] = []
    rows: list[list[float]] = []
    for i, (at, row) in enumerate(zip([s[0] for s in steps], shares, strict=True)):
        if i:
            xs.append(x(at))
            rows.append(shares[i - 1])
        xs.append(x(at))
        rows.append(row)

    def edge(rows_: list[list[float]], upto: int) -> list[float]:
        return [sum(r[:upto]) for r in rows_]

    bands = []
    for i, (key, label) in enumerate(members):
        lower, upper = edge(rows, i), edge(rows, i + 1)
        top_line = [f"{px},{y(v)}" for px, v in zip(xs, upper, strict=True)]
        bottom_line = [f"{px},{y(v)}" for px, v in reversed(list(zip(xs, lower, strict=True)))]
        thick = upper[-1] - lower[-1]
        bands.append(Band(key, label, PATTERNS[i % len(PATTERNS)], COLOURS[i % len(COLOURS)],
                          " ".join(top_line + bottom_line), left + plot_w + 6,
                          y((upper[-1] + lower[-1]) / 2) + 4 if thick * plot_h >= 11 else None, thick))
    y_ticks = [(y(f), round(f * 100)) for f in (0, 0.25, 0.5, 0.75, 1)]
    x_ticks = [(x(start), start), (x(end), end)]
    return ShareChart(width, height, left, top_px, plot_w, plot_h, bands, y_ticks, x_ticks)


# ---------------------------------------------------------------- diminishing returns (spend vs return)


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    spend: int
    value: int
    note: str


@dataclass(frozen=True)
class MemberCurve:
    key: str
    label: str
    marker: str
    dash: str
    colour: str
    points: list[Point]
    curve: str
    """Allot's fitted curve as polyline points ("" when there is none)."""
    label_xy: tuple[float, float] | None
    prior_only: bool = False
    """The curve is the engine's prior only (no evidence for this member yet)."""


@dataclass(frozen=True)
class ReturnsChart:
    width: int
    height: int
    left: int
    top_px: int
    plot_w: int
    plot_h: int
    members: list[MemberCurve]
    x_ticks: list[tuple[float, int]]
    y_ticks: list[tuple[float, int]]


def returns_chart(members: list[tuple[str, str, list[tuple[int, int, str]], list[tuple[int, float]], bool]], *,
                  width: int = 640, height: int = 260) -> ReturnsChart | None:
    """Daily spend (x) against daily return (y) per member: its observed windows as markers and Allot's fitted curve
    (the pools engine's posterior-mean response, dashed differently per member). ``members``: (key, label,
    [(spend, value, note)], [(spend, value)] of the curve, whether the curve is the prior only). None with nothing
    to draw."""
    seen = [(s, v) for _, _, pts, _, _ in members for s, v, _ in pts]
    fitted = [(s, v) for _, _, _, curve, _ in members for s, v in curve]
    if not seen and not fitted:
        return None
    left, top_px, right, bottom = 84, 10, 120, 34
    plot_w, plot_h = width - left - right, height - top_px - bottom
    x_top = _nice(max([s * 1.25 for s, _ in seen] + [s for s, _ in fitted] + [1]))
    y_top = _nice(max([v for _, v in seen] + [v for s, v in fitted if s <= x_top] + [1]) * 1.1)

    def x(v: float) -> float:
        return round(left + plot_w * min(max(v / x_top, 0.0), 1.0), 1)

    def y(v: float) -> float:
        return round(top_px + plot_h * (1 - min(max(v / y_top, 0.0), 1.0)), 1)

    out = []
    for i, (key, label, pts, curve, prior_only) in enumerate(members):
        line = [(s, v) for s, v in curve if s <= x_top]
        drawn = " ".join(f"{x(s)},{y(v)}" for s, v in line)
        label_xy = (x(line[-1][0]) + 4, y(line[-1][1]) + 4) if line else None
        out.append(MemberCurve(key, label, MARKERS[i % len(MARKERS)], DASHES[i % len(DASHES)],
                               COLOURS[i % len(COLOURS)], [Point(x(s), y(v), s, v, n) for s, v, n in pts], drawn,
                               label_xy, prior_only))
    x_ticks = [(x(x_top * f), round(x_top * f)) for f in (0, 0.5, 1)]
    y_ticks = [(y(y_top * f), round(y_top * f)) for f in (0, 0.25, 0.5, 0.75, 1)]
    return ReturnsChart(width, height, left, top_px, plot_w, plot_h, out, x_ticks, y_ticks)
