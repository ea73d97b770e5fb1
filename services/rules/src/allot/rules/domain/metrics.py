"""Metric catalogue: the 34 condition metrics (19 universal + 15 Meta-only) and how each is computed.

Raw input is one :class:`DailyCounters` per entity per UTC day. For a time range
the counters are **summed first** and every derived metric is then computed
from those sums (CTR over 7 days = Σclicks / Σimpressions, never the mean of
seven daily CTRs). A division by zero (CPA with no conversions, ROAS with no
spend, CTR with no impressions) gives ``None`` = "not computable"; a condition
on a ``None`` metric is not matched and the entity is skipped with reason
``metric_unavailable``.

Units. Money is integer cents (minor units of the entity's account currency)
in the counters; the metric names carry no ``_cents`` suffix but their unit is
``cents``, so a threshold "spend > 50 USD" is written ``5000``. Per-unit
money metrics (cpa, cpc…) are fractional cents (floats). ``percent`` metrics
are 0–100 (ctr 1.5 = 1.5 %); ``ratio`` metrics are plain quotients
(roas 2.0 = revenue is twice the spend).

Universal (19), available on every platform:

==================  ======  =======  ==================================================
name                unit    kind     definition
==================  ======  =======  ==================================================
spend               cents   sum      Σ spend_cents
impressions         count   sum      Σ impressions
clicks              count   sum      Σ clicks (all clicks)
reach               count   sum      Σ daily reach, or the entity's deduplicated range reach if supplied
conversions         count   sum      Σ conversions
revenue             cents   sum      Σ revenue_cents (conversion value)
ctr                 percent derived  clicks / impressions × 100
cpc                 cents   derived  spend / clicks  (cost per click)
cpm                 cents   derived  spend / impressions × 1000
cpa                 cents   derived  spend / conversions
roas                ratio   derived  revenue / spend
frequency           ratio   derived  impressions / reach
conversion_rate     percent derived  conversions / clicks × 100
aov                 cents   derived  revenue / conversions (average order value)
profit              cents   derived  revenue − spend (never None)
roi                 percent derived  (revenue − spend) / spend × 100
avg_daily_spend     cents   derived  spend / days in range (never None)
daily_budget        cents   attr     the entity's current daily budget (None if it has none)
budget_spent_pct    percent derived  spend / (daily_budget × days in range) × 100;
                                     for ``today`` that is today's spend / daily budget × 100
==================  ======  =======  ==================================================

Meta-only (15), computed from counters only Meta reports; a rule whose scope
includes a non-Meta ad account may not reference them (validation error), and
a non-Meta entity met at evaluation is skipped with
``metric_not_supported_on_platform``:

==========================  ======  =======  ========================================
link_clicks                 count   sum      Σ link_clicks
link_ctr                    percent derived  link_clicks / impressions × 100
cost_per_link_click         cents   derived  spend / link_clicks
landing_page_views          count   sum      Σ landing_page_views
cost_per_landing_page_view  cents   derived  spend / landing_page_views
add_to_cart                 count   sum      Σ add_to_cart
cost_per_add_to_cart        cents   derived  spend / add_to_cart
initiate_checkout           count   sum      Σ initiate_checkout
cost_per_initiate_checkout  cents   derived  spend / initiate_checkout
leads                       count   sum      Σ leads
cost_per_lead               cents   derived  spend / leads
thruplays                   count   sum      Σ video_thruplays
cost_per_thruplay           cents   derived  spend / thruplays
hook_rate                   percent derived  3-second video views / impressions × 100
hold_rate                   percent derived  thruplays / 3-second video views × 100
==========================  ======  =======  ========================================

Reach is not additive across days (a person reached on Monday and Tuesday is
counted twice when daily reach is summed), so summed reach is an upper bound
and the frequency derived from it a lower bound; ingestion may pass the
platform's deduplicated reach per range on the entity to get exact values.
Meta's quality ranking is deliberately absent: it is a categorical, per-ad
snapshot that cannot be aggregated over a time range.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from operator import add
from typing import Final, NamedTuple


class DailyCounters(NamedTuple):
    """Raw, additive counters of one entity for one UTC day (money in integer cents)."""

    spend_cents: int = 0
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0
    revenue_cents: int = 0
    reach: int = 0
    link_clicks: int = 0
    landing_page_views: int = 0
    add_to_cart: int = 0
    initiate_checkout: int = 0
    leads: int = 0
    video_views_3s: int = 0
    video_thruplays: int = 0


ZERO_COUNTERS: Final[DailyCounters] = DailyCounters()
COUNTER_NAMES: Final[tuple[str, ...]] = DailyCounters._fields


class Unit(StrEnum):
    CENTS = "cents"
    COUNT = "count"
    PERCENT = "percent"
    RATIO = "ratio"


class MetricKind(StrEnum):
    SUM = "sum"  # a raw counter summed over the range
    DERIVED = "derived"  # computed from the summed counters of the range
    ATTRIBUTE = "attribute"  # an entity attribute, independent of the range


#: (summed counters, days in range, entity daily budget in cents) → value or None.
MetricFn = Callable[[DailyCounters, int, "int | None"], "float | None"]


@dataclass(frozen=True, slots=True)
class MetricDef:
    """One catalogue entry; ``compute`` returns ``None`` when the metric is not computable."""

    name: str
    description: str
    unit: Unit
    kind: MetricKind
    meta_only: bool
    compute: MetricFn


def _ratio(num: float, den: float, scale: float = 1.0) -> float | None:
    return None if den == 0 else num * scale / den


def _budget_spent_pct(c: DailyCounters, days: int, budget: int | None) -> float | None:
    if not budget:
        return None
    return c.spend_cents * 100.0 / (budget * days)


def _m(name: str, description: str, unit: Unit, kind: MetricKind, fn: MetricFn, *, meta: bool = False) -> MetricDef:
    return MetricDef(name, description, unit, kind, meta, fn)


_S, _D, _A = MetricKind.SUM, MetricKind.DERIVED, MetricKind.ATTRIBUTE
_CENTS, _COUNT, _PCT, _RATIO = Unit.CENTS, Unit.COUNT, Unit.PERCENT, Unit.RATIO

_UNIVERSAL: Final[tuple[MetricDef, ...]] = (
    _m("spend", "Amount spent", _CENTS, _S, lambda c, d, b: c.spend_cents),
    _m("impressions", "Impressions", _COUNT, _S, lambda c, d, b: c.impressions),
    _m("clicks", "Clicks (all)", _COUNT, _S, lambda c, d, b: c.clicks),
    _m("reach", "People reached (summed daily unless deduplicated reach is supplied)", _COUNT, _S,
       lambda c, d, b: c.reach),
    _m("conversions", "Conversions", _COUNT, _S, lambda c, d, b: c.conversions),
    _m("revenue", "Conversion value", _CENTS, _S, lambda c, d, b: c.revenue_cents),
    _m("ctr", "Click-through rate: clicks / impressions × 100", _PCT, _D,
       lambda c, d, b: _ratio(c.clicks, c.impressions, 100.0)),
    _m("cpc", "Cost per click: spend / clicks", _CENTS, _D, lambda c, d, b: _ratio(c.spend_cents, c.clicks)),
    _m("cpm", "Cost per 1000 impressions", _CENTS, _D, lambda c, d, b: _ratio(c.spend_cents, c.impressions, 1000.0)),
    _m("cpa", "Cost per conversion: spend / conversions", _CENTS, _D,
       lambda c, d, b: _ratio(c.spend_cents, c.conversions)),
    _m("roas", "Return on ad spend: revenue / spend", _RATIO, _D,
       lambda c, d, b: _ratio(c.revenue_cents, c.spend_cents)),
    _m("frequency", "Average impressions per person: impressions / reach", _RATIO, _D,
       lambda c, d, b: _ratio(c.impressions, c.reach)),
    _m("conversion_rate", "Conversions / clicks × 100", _PCT, _D,
       lambda c, d, b: _ratio(c.conversions, c.clicks, 100.0)),
    _m("aov", "Average order value: revenue / conversions", _CENTS, _D,
       lambda c, d, b: _ratio(c.revenue_cents, c.conversions)),
    _m("profit", "Revenue − spend", _CENTS, _D, lambda c, d, b: c.revenue_cents - c.spend_cents),
    _m("roi", "Return on investment: (revenue − spend) / spend × 100", _PCT, _D,
       lambda c, d, b: _ratio(c.revenue_cents - c.spend_cents, c.spend_cents, 100.0)),
    _m("avg_daily_spend", "Spend / days in range", _CENTS, _D, lambda c, d, b: c.spend_cents / d),
    _m("daily_budget", "Current daily budget of the entity", _CENTS, _A, lambda c, d, b: b),
    _m("budget_spent_pct", "Spend / (daily budget × days in range) × 100", _PCT, _D, _budget_spent_pct),
)

_META_ONLY: Final[tuple[MetricDef, ...]] = (
    _m("link_clicks", "Link clicks", _COUNT, _S, lambda c, d, b: c.link_clicks, meta=True),
    _m("link_ctr", "Link clicks / impressions × 100", _PCT, _D,
       lambda c, d, b: _ratio(c.link_clicks, c.impressions, 100.0), meta=True),
    _m("cost_per_link_click", "Spend / link clicks", _CENTS, _D,
       lambda c, d, b: _ratio(c.spend_cents, c.link_clicks), meta=True),
    _m("landing_page_views", "Landing page views", _COUNT, _S, lambda c, d, b: c.landing_page_views, meta=True),
    _m("cost_per_landing_page_view", "Spend / landing page views", _CENTS, _D,
       lambda c, d, b: _ratio(c.spend_cents, c.landing_page_views), meta=True),
    _m("add_to_cart", "Adds to cart", _COUNT, _S, lambda c, d, b: c.add_to_cart, meta=True),
    _m("cost_per_add_to_cart", "Spend / adds to cart", _CENTS, _D,
       lambda c, d, b: _ratio(c.spend_cents, c.add_to_cart), meta=True),
    _m("initiate_checkout", "Checkouts initiated", _COUNT, _S, lambda c, d, b: c.initiate_checkout, meta=True),
    _m("cost_per_initiate_checkout", "Spend / checkouts initiated", _CENTS, _D,
       lambda c, d, b: _ratio(c.spend_cents, c.initiate_checkout), meta=True),
    _m("leads", "Leads", _COUNT, _S, lambda c, d, b: c.leads, meta=True),
    _m("cost_per_lead", "Spend / leads", _CENTS, _D, lambda c, d, b: _ratio(c.spend_cents, c.leads), meta=True),
    _m("thruplays", "Video ThruPlays", _COUNT, _S, lambda c, d, b: c.video_thruplays, meta=True),
    _m("cost_per_thruplay", "Spend / ThruPlays", _CENTS, _D,
       lambda c, d, b: _ratio(c.spend_cents, c.video_thruplays), meta=True),
    _m("hook_rate", "3-second video views / impressions × 100", _PCT, _D,
       lambda c, d, b: _ratio(c.video_views_3s, c.impressions, 100.0), meta=True),
    _m("hold_rate", "ThruPlays / 3-second video views × 100", _PCT, _D,
       lambda c, d, b: _ratio(c.video_thruplays, c.video_views_3s, 100.0), meta=True),
)

#: The catalogue, by name, in documentation order.
METRICS: Final[Mapping[str, MetricDef]] = {m.name: m for m in (*_UNIVERSAL, *_META_ONLY)}
UNIVERSAL_METRICS: Final[tuple[str, ...]] = tuple(m.name for m in _UNIVERSAL)
META_ONLY_METRICS: Final[frozenset[str]] = frozenset(m.name for m in _META_ONLY)


def get_metric(name: str) -> MetricDef:
    """The catalogue entry for ``name``; ``KeyError`` naming the allowed metrics otherwise."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; allowed: {', '.join(METRICS)}") from None


def compute_metric(name: str, counters: DailyCounters, *, days: int, daily_budget_cents: int | None) -> float | None:
    """Value of metric ``name`` from counters already summed over a range of ``days`` days; None if not computable."""
    return get_metric(name).compute(counters, days, daily_budget_cents)


def sum_counters(days: list[DailyCounters] | tuple[DailyCounters, ...]) -> DailyCounters:
    """Element-wise sum of daily counters (the only way ranges are aggregated)."""
    total: tuple[int, ...] = ZERO_COUNTERS
    for day in days:
        total = tuple(map(add, total, day))
    return DailyCounters._make(total)
