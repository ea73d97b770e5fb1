"""Metric catalogue: composition, sum-then-divide aggregation, division by zero."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from allot.rules.domain import (
    META_ONLY_METRICS,
    METRICS,
    UNIVERSAL_METRICS,
    AggregateCache,
    DailyCounters,
    Entity,
    MetricKind,
    PlatformReach,
    Unit,
    compute_metric,
    get_metric,
    sum_counters,
)

NOW = datetime(2026, 5, 17, 10, 30, tzinfo=UTC)
TODAY = NOW.date()


def entity(buckets: dict[date, DailyCounters], *, budget: int | None = 10_000, **kw: object) -> Entity:
    fields: dict[str, object] = dict(
        entity_id="e1", entity_level="adset", platform="meta", ad_account_id="act_1", name="Prospecting US",
        status="active", currency="USD", daily_budget_cents=budget, buckets=buckets,
    )
    fields.update(kw)
    return Entity(**fields)  # type: ignore[arg-type]


def test_catalogue_has_19_universal_and_15_meta_only_metrics() -> None:
    assert len(METRICS) == 34
    assert len(UNIVERSAL_METRICS) == 19
    assert len(META_ONLY_METRICS) == 15
    assert set(UNIVERSAL_METRICS).isdisjoint(META_ONLY_METRICS)
    assert all(METRICS[m].meta_only for m in META_ONLY_METRICS)
    assert not any(METRICS[m].meta_only for m in UNIVERSAL_METRICS)


@pytest.mark.parametrize(
    "name",
    ["spend", "impressions", "clicks", "ctr", "cpc", "cpm", "conversions", "cpa", "revenue", "roas", "frequency",
     "reach", "budget_spent_pct", "daily_budget", "conversion_rate", "aov", "profit"],
)
def test_required_universal_metrics_are_present(name: str) -> None:
    assert name in UNIVERSAL_METRICS


@pytest.mark.parametrize(
    "name",
    ["link_clicks", "link_ctr", "cost_per_link_click", "landing_page_views", "cost_per_landing_page_view",
     "add_to_cart", "cost_per_add_to_cart", "initiate_checkout", "cost_per_initiate_checkout", "leads",
     "cost_per_lead", "thruplays", "cost_per_thruplay", "hook_rate", "hold_rate"],
)
def test_meta_only_metrics_are_flagged(name: str) -> None:
    assert get_metric(name).meta_only


def test_every_metric_documents_unit_kind_and_description() -> None:
    for metric in METRICS.values():
        assert metric.description
        assert isinstance(metric.unit, Unit)
        assert isinstance(metric.kind, MetricKind)
    assert get_metric("spend").unit is Unit.CENTS
    assert get_metric("spend").kind is MetricKind.SUM
    assert get_metric("roas").kind is MetricKind.DERIVED
    assert get_metric("daily_budget").kind is MetricKind.ATTRIBUTE


def test_unknown_metric_lists_allowed_names() -> None:
    with pytest.raises(KeyError, match="allowed: spend, impressions"):
        get_metric("ctr2")


C = DailyCounters(
    spend_cents=10_000, impressions=20_000, clicks=400, conversions=8, revenue_cents=30_000, reach=5_000,
    link_clicks=300, landing_page_views=200, add_to_cart=40, initiate_checkout=20, leads=10,
    video_views_3s=6_000, video_thruplays=1_500,
)


FORMULA_CASES: list[tuple[str, float]] = [
        ("spend", 10_000), ("impressions", 20_000), ("clicks", 400), ("reach", 5_000), ("conversions", 8),
        ("revenue", 30_000), ("ctr", 2.0), ("cpc", 25.0), ("cpm", 500.0), ("cpa", 1250.0), ("roas", 3.0),
        ("frequency", 4.0), ("conversion_rate", 2.0), ("aov", 3750.0), ("profit", 20_000), ("roi", 200.0),
        ("avg_daily_spend", 10_000 / 7), ("daily_budget", 2_000), ("budget_spent_pct", 10_000 * 100 / (2_000 * 7)),
        ("link_clicks", 300), ("link_ctr", 1.5), ("cost_per_link_click", 10_000 / 300),
        ("landing_page_views", 200), ("cost_per_landing_page_view", 50.0), ("add_to_cart", 40),
        ("cost_per_add_to_cart", 250.0), ("initiate_checkout", 20), ("cost_per_initiate_checkout", 500.0),
        ("leads", 10), ("cost_per_lead", 1000.0), ("thruplays", 1_500), ("cost_per_thruplay", 10_000 / 1_500),
        ("hook_rate", 30.0), ("hold_rate", 25.0),
]


@pytest.mark.parametrize(("name", "expected"), FORMULA_CASES)
def test_metric_formulas(name: str, expected: float) -> None:
    assert compute_metric(name, C, days=7, daily_budget_cents=2_000) == pytest.approx(expected)


def test_formula_table_covers_the_whole_catalogue() -> None:
    assert {name for name, _ in FORMULA_CASES} == set(METRICS)


@pytest.mark.parametrize(
    ("name", "counters"),
    [
        ("cpa", DailyCounters(spend_cents=5_000, conversions=0)),
        ("roas", DailyCounters(spend_cents=0, revenue_cents=9_000)),
        ("roi", DailyCounters(spend_cents=0, revenue_cents=9_000)),
        ("ctr", DailyCounters(impressions=0, clicks=3)),
        ("cpc", DailyCounters(spend_cents=100, clicks=0)),
        ("cpm", DailyCounters(spend_cents=100, impressions=0)),
        ("frequency", DailyCounters(impressions=100, reach=0)),
        ("conversion_rate", DailyCounters(clicks=0, conversions=1)),
        ("aov", DailyCounters(revenue_cents=100, conversions=0)),
        ("link_ctr", DailyCounters()),
        ("cost_per_lead", DailyCounters(spend_cents=100)),
        ("hook_rate", DailyCounters()),
        ("hold_rate", DailyCounters(video_thruplays=3)),
    ],
)
def test_division_by_zero_is_not_computable(name: str, counters: DailyCounters) -> None:
    assert compute_metric(name, counters, days=1, daily_budget_cents=1_000) is None


@pytest.mark.parametrize("budget", [None, 0])
def test_budget_metrics_without_a_budget_are_not_computable(budget: int | None) -> None:
    assert compute_metric("budget_spent_pct", C, days=1, daily_budget_cents=budget) is None
    assert compute_metric("daily_budget", C, days=1, daily_budget_cents=None) is None


def test_profit_and_avg_daily_spend_are_always_computable() -> None:
    assert compute_metric("profit", DailyCounters(), days=1, daily_budget_cents=None) == 0
    assert compute_metric("avg_daily_spend", DailyCounters(), days=30, daily_budget_cents=None) == 0


def test_budget_spent_pct_today_is_todays_spend_over_daily_budget() -> None:
    e = entity({TODAY: DailyCounters(spend_cents=8_100), TODAY - timedelta(days=1): DailyCounters(spend_cents=9_999)})
    today = AggregateCache(NOW).range_counters(e, "today")
    assert compute_metric("budget_spent_pct", today, days=1, daily_budget_cents=10_000) == pytest.approx(81.0)


def test_ratios_are_computed_from_summed_counters_not_averaged() -> None:
    # Day A: ctr 10 % on 100 impressions; day B: ctr 1 % on 10 000 impressions.
    # Mean of daily ratios = 5.5 %; the correct range ratio = 110 / 10 100.
    e = entity({
        TODAY - timedelta(days=1): DailyCounters(impressions=100, clicks=10),
        TODAY - timedelta(days=2): DailyCounters(impressions=10_000, clicks=100),
    })
    summed = AggregateCache(NOW).range_counters(e, "last_3d")
    assert compute_metric("ctr", summed, days=3, daily_budget_cents=None) == pytest.approx(110 / 10_100 * 100)


def test_range_where_some_days_have_no_conversions_uses_total_conversions() -> None:
    e = entity({
        TODAY - timedelta(days=1): DailyCounters(spend_cents=3_000, conversions=0),
        TODAY - timedelta(days=2): DailyCounters(spend_cents=3_000, conversions=2),
    })
    summed = AggregateCache(NOW).range_counters(e, "last_3d")
    assert compute_metric("cpa", summed, days=3, daily_budget_cents=None) == 3_000.0


def test_sum_counters_is_element_wise() -> None:
    total = sum_counters([DailyCounters(spend_cents=1, leads=2), DailyCounters(spend_cents=10, leads=20)])
    assert total == DailyCounters(spend_cents=11, leads=22)
    assert sum_counters([]) == DailyCounters()


def test_range_reach_is_the_platforms_deduplicated_reach_never_the_sum() -> None:
    buckets = {TODAY - timedelta(days=d): DailyCounters(impressions=1_000, reach=500) for d in range(1, 8)}
    summed = AggregateCache(NOW).range_counters(entity(buckets), "last_7d")
    assert compute_metric("frequency", summed, days=7, daily_budget_cents=None) is None  # not 7 000 / 3 500
    reach = PlatformReach(TODAY - timedelta(days=1), {"last_7d": 1_000})
    dedup = AggregateCache(NOW).range_counters(entity(buckets, range_reach=reach), "last_7d")
    assert compute_metric("frequency", dedup, days=7, daily_budget_cents=None) == pytest.approx(7.0)
