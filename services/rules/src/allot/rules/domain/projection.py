"""Mapping a metrics report onto the domain's daily counters (pure).

``metrics.ingested`` carries the universal counters as fields and the
platform-specific ones in ``extra``; this module names which ``extra`` keys
feed which :class:`~allot.rules.domain.metrics.DailyCounters` field. Unknown
``extra`` keys are ignored; several aliases of one counter are summed never —
the first alias present wins (platforms send one spelling).

A report is the FULL counters of its interval as of ``reported_at`` (never a
delta): the projection keeps, per (entity, interval_start), the report with the
greatest ``reported_at`` (ties: the greater counters tuple, so the choice does
not depend on arrival order), and a UTC day's bucket is the sum of the kept
reports whose ``interval_start`` falls on that day.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from allot.rules.domain.metrics import DailyCounters

#: DailyCounters field → accepted ``extra`` keys, in order of preference.
EXTRA_COUNTER_ALIASES: Final[Mapping[str, tuple[str, ...]]] = {
    "link_clicks": ("link_clicks", "inline_link_clicks"),
    "landing_page_views": ("landing_page_views", "landing_page_view"),
    "add_to_cart": ("add_to_cart", "adds_to_cart"),
    "initiate_checkout": ("initiate_checkout", "checkouts_initiated"),
    "leads": ("leads", "lead"),
    "video_views_3s": ("video_views_3s", "video_3s_views", "video_view"),
    "video_thruplays": ("video_thruplays", "video_thruplay", "thruplays"),
}


def report_counters(
    *,
    spend_cents: int,
    impressions: int,
    clicks: int,
    conversions: int,
    revenue_cents: int,
    reach: int,
    extra: Mapping[str, int] | None = None,
) -> DailyCounters:
    """The counters of one report (universal fields + the known ``extra`` counters)."""
    if not extra:  # the common case (no platform-specific counters): no per-alias lookups
        return DailyCounters(spend_cents, impressions, clicks, conversions, revenue_cents, reach, 0, 0, 0, 0, 0, 0, 0)
    meta = [max(0, int(next((extra[a] for a in aliases if a in extra), 0))) for aliases in _ALIASES]
    return DailyCounters(spend_cents, impressions, clicks, conversions, revenue_cents, reach, *meta)


# The extra counters in DailyCounters' positional order (checked at import).
_ALIASES: Final[tuple[tuple[str, ...], ...]] = tuple(EXTRA_COUNTER_ALIASES.values())
if tuple(EXTRA_COUNTER_ALIASES) != DailyCounters._fields[6:]:
    raise RuntimeError("EXTRA_COUNTER_ALIASES must list DailyCounters' extra fields in order")


def newer_report(a: tuple[object, DailyCounters], b: tuple[object, DailyCounters]) -> bool:
    """Whether report ``a`` = (reported_at, counters) supersedes ``b`` (later wins; ties → greater counters)."""
    return (a[0], tuple(a[1])) > (b[0], tuple(b[1]))  # type: ignore[operator]
