"""The market's history as the pools service hands it to the engine when the platform reports HOURLY rows.

``bench/market.py`` reports one row per plan interval (4-24 h) with delivery spread evenly over it. Meta's
insights come hourly (``hourly_stats_aggregated_by_advertiser_time_zone``, what ``services/ingest`` reads), and
delivery is not even over a day: the auction spends and converts more in the afternoon and evening than at night.
The pools service stores those hours and reads the last 7 days summed per UTC 4-hour block, older ones per UTC
day (``allot.pools.adapters.postgres.history_of``: ``HISTORY_DETAIL``, ``HISTORY_BLOCK``). :class:`HourlyView`
turns the market's rows into that shape:

- an interval that ended after the UTC day that starts 7 days before ``now`` is split into its hours, each taking
  the share ``INTRADAY[hour]`` of the interval's spend, revenue, conversions, impressions and clicks (the ROAS of
  every hour is the interval's: the hours carry NO information about the response to a daily budget; daily totals
  are unchanged, so the truth and the oracle are the same as without this view), and the hours are summed per
  UTC block of ``HISTORY_BLOCK`` (night blocks spend less than afternoon ones);
- older intervals are summed per UTC day of their start.

Used by ``bench/pools_quality.py --hourly``. Pure; caches what it built per scenario run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from allot.pools.adapters.postgres import HISTORY_BLOCK, HISTORY_DETAIL
from allot.pools.domain import MetricInterval

#: Relative delivery by UTC hour (mean 1): a trough before dawn, a peak late afternoon.
INTRADAY: tuple[float, ...] = tuple(1.0 + 0.6 * math.sin(2.0 * math.pi * (h - 10) / 24.0) for h in range(24))
_BLOCK_H = round(HISTORY_BLOCK.total_seconds() / 3600.0)


def _split(total: float, weights: Sequence[float]) -> list[int]:
    """``total`` (an integer amount) in shares proportional to ``weights``, rounded so the parts sum to it."""
    out, acc, done = [], 0.0, 0
    s = sum(weights)
    for w in weights:
        acc += total * w / s
        part = round(acc) - done
        out.append(part)
        done += part
    return out


def split_hours(iv: MetricInterval) -> list[MetricInterval]:
    """One interval as its hours, delivery shaped by ``INTRADAY`` (totals kept)."""
    hours = round(iv.hours)
    if hours <= 1:
        return [iv]
    starts = [iv.start_at + timedelta(hours=j) for j in range(hours)]
    weights = [INTRADAY[t.hour] for t in starts]
    spend = _split(iv.spend_cents, weights)
    revenue = _split(iv.revenue_cents, weights)
    impressions = _split(iv.impressions, weights)
    clicks = _split(iv.clicks, weights)
    s = sum(weights)
    return [
        MetricInterval(
            start_at=t, end_at=t + timedelta(hours=1), spend_cents=sp, revenue_cents=rv,
            conversions=iv.conversions * w / s, impressions=im, clicks=ck, frequency=iv.frequency,
            reported_at=iv.reported_at,
        )
        for t, w, sp, rv, im, ck in zip(starts, weights, spend, revenue, impressions, clicks, strict=True)
    ]


def blocks(iv: MetricInterval) -> list[MetricInterval]:
    """One interval as ``history_of`` reads its hours back: summed per UTC block of ``HISTORY_BLOCK``."""
    groups: dict[int, list[MetricInterval]] = {}
    for hour in split_hours(iv):
        groups.setdefault(hour.start_at.hour // _BLOCK_H, []).append(hour)
    return [summed(rows) for _, rows in sorted(groups.items())]


def summed(rows: Sequence[MetricInterval]) -> MetricInterval:
    """Rows summed into one (first start, last end), as ``history_of`` sums a block or a UTC day."""
    impressions = sum(r.impressions for r in rows)
    freq_w = sum((r.frequency or 0.0) * r.impressions for r in rows)
    return MetricInterval(
        start_at=min(r.start_at for r in rows), end_at=max(r.end_at for r in rows),
        spend_cents=sum(r.spend_cents for r in rows), revenue_cents=sum(r.revenue_cents for r in rows),
        conversions=sum(r.conversions for r in rows), impressions=impressions, clicks=sum(r.clicks for r in rows),
        frequency=freq_w / impressions if impressions else None, reported_at=rows[-1].reported_at,
    )


class HourlyView:
    """History → history as ``history_of`` would read it (call with the market's history and ``now``); caches the
    blocks and days it built (one view per scenario run)."""

    def __init__(self) -> None:
        self._blocks: dict[tuple[object, ...], list[MetricInterval]] = {}
        self._days: dict[tuple[object, ...], MetricInterval] = {}

    def __call__(
        self, history: Mapping[str, Sequence[MetricInterval]], now: datetime
    ) -> dict[str, list[MetricInterval]]:
        cutoff = (now - HISTORY_DETAIL).replace(hour=0, minute=0, second=0, microsecond=0)
        out: dict[str, list[MetricInterval]] = {}
        for mid, rows in history.items():
            old: dict[datetime, list[MetricInterval]] = {}
            recent: list[MetricInterval] = []
            for iv in rows:
                if iv.end_at <= cutoff:
                    old.setdefault(iv.start_at.replace(hour=0, minute=0, second=0, microsecond=0), []).append(iv)
                else:
                    key = (mid, iv.start_at, iv.spend_cents, iv.revenue_cents, iv.conversions, iv.reported_at)
                    rows_of = self._blocks.get(key)
                    if rows_of is None:
                        rows_of = self._blocks[key] = blocks(iv)
                    recent.extend(rows_of)
            days = []
            for day, group in sorted(old.items()):
                key = (mid, day, len(group), group[-1].end_at, sum(r.conversions for r in group))
                row = self._days.get(key)
                if row is None:
                    row = self._days[key] = summed(group)
                days.append(row)
            out[mid] = days + recent
        return out
