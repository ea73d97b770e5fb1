"""Small server-rendered SVG charts (no JavaScript, no CDN): geometry computed here, drawn by the templates."""

from __future__ import annotations

from dataclasses import dataclass

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
