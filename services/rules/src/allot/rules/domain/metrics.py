"""Metric catalogue: the 34 condition metrics (19 universal + 15 Meta-only) and how each is computed.

Raw input is one :class:`DailyCounters` per entity per local day of its ad
account. For a time range the additive counters are **summed first** and every
derived metric is then computed from those sums (CTR over 7 days = Σclicks /
Σimpressions, never the mean of seven daily CTRs). Reach is the exception: it
is never summed (see "Reach" below). A division by zero (CPA with no
conversions, ROAS with no spend, CTR with no impressions) or a reach the
platform has not reported gives ``None`` = "not computable"; a condition on a
``None`` metric is not matched and the entity is skipped with reason
``metric_unavailable`` (the detail names the ``metric@range`` and, for reach,
says it is not reported by the platform yet).

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
reach               count   report   the platform's deduplicated reach of the range,
                                     never Σ (see "Reach" below)
conversions         count   sum      Σ conversions
revenue             cents   sum      Σ revenue_cents (conversion value)
ctr                 percent derived  clicks / impressions × 100
cpc                 cents   derived  spend / clicks  (cost per click)
cpm                 cents   derived  spend / impressions × 1000
cpa                 cents   derived  spend / conversions
roas                ratio   derived  revenue / spend
frequency           ratio   derived  impressions / reach (the range's reach, as above)
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

Reach. Reach is not additive: a person reached on Monday and on Tuesday is one
person over the two days but two in the sum of the daily reaches, and likewise
across the hourly intervals of one day. So reach (and frequency, Σ impressions
/ reach) is never summed over intervals or days; the value used is:

- ``last_3d`` / ``last_7d`` / ``last_14d`` / ``last_30d``: the platform's
  deduplicated reach for exactly those complete local days, as carried by
  ``metrics.ingested.range_reach`` (Meta: an insights read of those days
  without ``time_increment``). It is used only while current: its ``through``
  must be the evaluation's yesterday in the account's zone; after the local day
  rolls over and until a report with the new ``through`` arrives, reach is not
  computable;
- ``yesterday``: the platform's reach for that day from the same
  ``range_reach`` (its ``yesterday``) when current; otherwise the day's
  reported reach if the day holds a single interval report;
- ``today``: the day's reported reach if the day holds a single interval
  report (a platform reporting whole-day intervals);
- a day made of several interval reports (hourly intervals: Meta ingest and
  the sandbox), or a report that has impressions but reach 0 (the platform did
  not report reach, as ingest's hourly Meta rows), gives no daily reach: it is
  not computable rather than a sum or a maximum of the intervals' reach
  (either would be wrong, the sum too high and the maximum too low);
- a range without impressions reached nobody: reach 0 (frequency then has no
  denominator and is not computable).

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
    """Raw counters of one entity for one local day (money in integer cents); in a range aggregate, the range's.

    Every counter but ``reach`` is additive. ``reach`` of a day is the sum of its interval reports' reach as
    stored, which is a person count only when the day is one report; in a range aggregate it is the value
    the module docstring names, or :data:`REACH_NOT_REPORTED` when there is none.
    """

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
#: ``reach`` of a range aggregate whose deduplicated reach is not known: reach and frequency are not computable.
REACH_NOT_REPORTED: Final[int] = -1
#: Metrics read from ``reach`` (not computable while it is :data:`REACH_NOT_REPORTED`).
REACH_METRICS: Final[frozenset[str]] = frozenset({"reach", "frequency"})
COUNTER_NAMES: Final[tuple[str, ...]] = DailyCounters._fields


class Unit(StrEnum):
    CENTS = "cents"
    COUNT = "count"
    PERCENT = "percent"
    RATIO = "ratio"


class MetricKind(StrEnum):
    SUM = "sum"  # a raw counter summed over the range
    REPORTED = "reported"  # the platform's figure for the whole range (reach: deduplicated, never summed)
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


_S, _D, _A, _R = MetricKind.SUM, MetricKind.DERIVED, MetricKind.ATTRIBUTE, MetricKind.REPORTED
_CENTS, _COUNT, _PCT, _RATIO = Unit.CENTS, Unit.COUNT, Unit.PERCENT, Unit.RATIO

_UNIVERSAL: Final[tuple[MetricDef, ...]] = (
    _m("spend", "Amount spent", _CENTS, _S, lambda c, d, b: c.spend_cents),
    _m("impressions", "Impressions", _COUNT, _S, lambda c, d, b: c.impressions),
    _m("clicks", "Clicks (all)", _COUNT, _S, lambda c, d, b: c.clicks),
    _m("reach", "People reached in the range, deduplicated by the platform (never summed)", _COUNT, _R,
       lambda c, d, b: None if c.reach == REACH_NOT_REPORTED else c.reach),
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
       lambda c, d, b: None if c.reach == REACH_NOT_REPORTED else _ratio(c.impressions, c.reach)),
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


def unavailable_because(name: str, counters: DailyCounters, time_range: str) -> str:
    """Why metric ``name`` is not computable over ``time_range`` in plain words, when the counters say ("" else)."""
    if name in REACH_METRICS and counters.reach == REACH_NOT_REPORTED:
        return f"reach for {time_range} not reported by the platform yet"
    return ""


def sum_counters(days: list[DailyCounters] | tuple[DailyCounters, ...]) -> DailyCounters:
    """Element-wise sum of daily counters, ``reach`` included: a range's reach is not this sum (``AggregateCache``)."""
    total: tuple[int, ...] = ZERO_COUNTERS
    for day in days:
        total = tuple(map(add, total, day))
    return DailyCounters._make(total)
