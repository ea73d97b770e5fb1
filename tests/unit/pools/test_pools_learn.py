"""What the engine learns (pure): maturity from restatements, delivery caps, the response fit."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from allot.pools.domain import EngineState, MemberState, MetricInterval, PoolSettings, plan_allocation
from allot.pools.domain.learn import (
    AGE_BUCKETS_H,
    Curve,
    MaturityModel,
    add_pairs,
    age_bucket,
    delivery_cap,
    fit_curve,
    fit_maturity,
    hill,
    maturity_pairs,
    observations,
)

NOW = datetime(2026, 3, 2, tzinfo=UTC)
NO_LAG = MaturityModel(1.0, 24.0, 0.0, ((0.0, 1.0),))


def _poisson(rng: random.Random, lam: float) -> int:
    limit, p, k = math.exp(-lam), 1.0, 0
    while True:
        p *= rng.random()
        if p < limit:
            return k
        k += 1


def _history(
    h: float, k: float, *, sat_per_day: float, days: int = 14, levels: tuple[float, ...] = (0.6, 1.0, 1.6),
    seed: int = 3,
) -> list[MetricInterval]:
    """4-hour intervals of a member with Hill response ``sat_per_day x^h / (x^h + k^h)`` conversions a day; the
    budget cycles through ``levels`` x 20,000 a day."""
    rng = random.Random(seed)
    out = []
    for j in range(days * 6):
        end = NOW - timedelta(hours=4 * j)
        x = 20_000 * levels[(j // 6) % len(levels)]
        conv = _poisson(rng, sat_per_day / (1 + (k / x) ** h) / 6)
        out.append(MetricInterval(end - timedelta(hours=4), end, int(x / 6), conv * 5_000, float(conv)))
    return out


def _fit(ivs: list[MetricInterval], *, prior_value: float = 100_000.0, half_life_h: float = 1e6) -> Curve:
    """The member's curve; the default prior (100,000 a day at 20,000) is far below the truth on purpose."""
    obs = observations(
        ivs, NOW.timestamp(), lookback_h=21 * 24, half_life_h=half_life_h, maturity=NO_LAG, revenue_w=1.0, conv_w=0.0,
        min_maturity=0.3, maturity_cache={},
    )
    return fit_curve(
        obs, x_ref=20_000, prior_value=prior_value, unit=5_000, prior_elasticity=0.6, prior_elasticity_sd=0.5
    )


def _elasticity(h: float, k: float, x: float) -> float:
    return h * (k / x) ** h / (1 + (k / x) ** h)


@pytest.mark.parametrize(("h", "k"), [(0.7, 10_000.0), (1.0, 30_000.0), (2.2, 30_000.0)])
def test_the_response_shape_is_learned_from_budget_variation_when_volume_allows(h: float, k: float) -> None:
    """Concave and S-shaped members: the posterior-mean curve finds the elasticity and the level at 20,000/day."""
    sat = 600.0
    curve = _fit(_history(h, k, sat_per_day=sat))
    truth = sat * 5_000 / (1 + (k / 20_000) ** h)
    assert curve.has_data
    assert abs(curve.value_at(20_000) / truth - 1) < 0.1, (curve.value_at(20_000), truth)
    assert abs(curve.elasticity_at(20_000) - _elasticity(h, k, 20_000)) < 0.25, (curve.elasticity_at(20_000), h, k)
    # And between the budgets it saw (x0.6 .. x1.6), the curve follows the truth.
    for x in (14_000.0, 28_000.0):
        assert abs(curve.value_at(x) / (sat * 5_000 / (1 + (k / x) ** h)) - 1) < 0.15


def test_an_s_shaped_member_is_told_apart_from_a_concave_one() -> None:
    """The same value at 20,000/day, different shapes: the S-shaped one's marginal return there is far higher."""
    concave = _fit(_history(0.7, 10_000.0, sat_per_day=600.0))
    s_shaped = _fit(_history(2.2, 30_000.0, sat_per_day=600.0 * (1 + 1.5**2.2) / (1 + 0.5**0.7)))
    assert abs(concave.value_at(20_000) / s_shaped.value_at(20_000) - 1) < 0.15
    assert s_shaped.marginal_at(20_000) > 2.5 * concave.marginal_at(20_000)


def test_without_spend_variation_the_shape_stays_at_the_prior() -> None:
    """Data at one spend says the level there, nothing about the shape: the elasticity stays near the prior's."""
    curve = _fit(_history(2.2, 30_000.0, sat_per_day=600.0, levels=(1.0,)), prior_value=600.0 * 5_000 / (1 + 1.5**2.2))
    assert abs(curve.elasticity_at(20_000) - 0.6) < 0.25, curve.elasticity_at(20_000)


def _hourly(days: int, *, per_day: float = 20_000.0, roas: float = 3.0) -> list[MetricInterval]:
    """Hourly rows as Meta's hourly insights report them: one daily budget, delivery (spend and revenue alike, so the
    same return every hour) shaped over the day from 0.4x at night to 1.6x in the afternoon."""
    out = []
    for j in range(days * 24):
        end = NOW - timedelta(hours=j)
        shape = 1.0 + 0.6 * math.sin(2.0 * math.pi * ((end.hour - 1) % 24 - 10) / 24.0)
        spend = per_day / 24.0 * shape
        value = roas * spend
        out.append(MetricInterval(end - timedelta(hours=1), end, round(spend), round(value), value / 5_000))
    return out


def test_hourly_rows_are_read_as_days_of_delivery() -> None:
    """The intraday pattern of delivery is no response to the budget: hours whose spend rate runs from 0.4x to 1.6x
    of one daily budget are one day of spend each, a single spend level (read hour by hour they were dozens, and
    their constant return pulled the elasticity toward 1), and the shape stays at the prior."""
    ivs = _hourly(14)
    obs = observations(
        ivs, NOW.timestamp(), lookback_h=21 * 24, half_life_h=1e6, maturity=NO_LAG, revenue_w=1.0, conv_w=0.0,
        min_maturity=0.3, maturity_cache={},
    )
    assert obs is not None and len(obs.u) == 1, obs
    assert abs(obs.x0 - 20_000) < 20 and abs(obs.days - 14.0) < 1e-9
    fitted = fit_curve(obs, x_ref=20_000, prior_value=60_000, unit=5_000, prior_elasticity=0.6, prior_elasticity_sd=0.5)
    prior = fit_curve(None, x_ref=20_000, prior_value=60_000, unit=5_000, prior_elasticity=0.6, prior_elasticity_sd=0.5)
    assert abs(fitted.elasticity_at(20_000) - prior.elasticity_at(20_000)) < 0.02
    assert abs(fitted.value_at(20_000) / 60_000 - 1) < 0.05  # the level is learned all the same


def test_days_at_different_budgets_stay_apart() -> None:
    """Summing hours into days keeps what does carry the shape: days at different budgets are separate levels."""
    ivs = []
    for d, per_day in enumerate((10_000.0, 20_000.0, 40_000.0)):  # today, yesterday, the day before
        for iv in _hourly(1, per_day=per_day):
            back = timedelta(days=d)
            ivs.append(MetricInterval(iv.start_at - back, iv.end_at - back, iv.spend_cents, iv.revenue_cents,
                                      iv.conversions))
    obs = observations(
        ivs, NOW.timestamp(), lookback_h=21 * 24, half_life_h=1e6, maturity=NO_LAG, revenue_w=1.0, conv_w=0.0,
        min_maturity=0.3, maturity_cache={},
    )
    assert obs is not None
    rates = sorted(obs.x0 * math.exp(u) for u in obs.u)
    assert len(rates) == 3, rates
    assert all(abs(r / x - 1) < 0.01 for r, x in zip(rates, (10_000, 20_000, 40_000), strict=True)), rates


def test_a_member_without_history_gets_the_pool_prior() -> None:
    curve = fit_curve(None, x_ref=20_000, prior_value=40_000, unit=1.0, prior_elasticity=0.6, prior_elasticity_sd=0.5)
    assert not curve.has_data and curve.counts == 0
    assert curve.value_at(20_000) == pytest.approx(40_000, rel=1e-6)
    assert 0.4 < curve.elasticity_at(20_000) < 0.8


def test_thompson_samples_scatter_around_the_posterior_mean() -> None:
    curve = _fit(_history(1.0, 30_000.0, sat_per_day=60.0))
    rng = random.Random(11)
    draws = [a * hill(20_000, h, k) for a, h, k in (curve.sample(rng) for _ in range(4_000))]
    mean = sum(draws) / len(draws)
    assert abs(mean / curve.value_at(20_000) - 1) < 0.05
    assert max(draws) > 1.1 * mean and min(draws) < 0.9 * mean  # uncertain: the samples differ


def test_a_fading_member_is_judged_on_its_recent_level() -> None:
    """8 % a day lower toward now: with recency weighting the level follows the last days, not the 14-day mean."""
    rng = random.Random(5)
    ivs = []
    for j in range(14 * 6):
        end = NOW - timedelta(hours=4 * j)
        age_days = (j * 4) / 24
        conv = _poisson(rng, 200 * math.exp(0.08 * age_days) / 6)
        ivs.append(MetricInterval(end - timedelta(hours=4), end, 3_333, conv * 5_000, float(conv)))
    recent = _fit(ivs, prior_value=250 * 5_000, half_life_h=48.0).value_at(20_000)
    flat = _fit(ivs, prior_value=250 * 5_000).value_at(20_000)
    assert recent < 0.85 * flat
    assert abs(recent / (200 * 5_000) - 1) < 0.25


def test_maturity_is_learned_from_restatements() -> None:
    """Intervals seen twice, 4 h apart, under F(a) = 1 - 0.5 exp(-a / 24): the fit finds f0 and tau."""
    table: dict[str, tuple[float, float, float, float]] = {}

    def share(a: float) -> float:
        return 1 - 0.5 * math.exp(-a / 24)

    for plan in range(60):
        now_ts = plan * 4 * 3600.0
        seen = {repr(now_ts - 3600.0 * a): (a - 4.0, 1000.0 * share(a - 4.0)) for a in range(8, 170, 4)}
        values = {now_ts - 3600.0 * a: 1000.0 * share(a) for a in range(8, 170, 4)}
        table = add_pairs(table, maturity_pairs(seen, now_ts, values))
    model = fit_maturity(table, ((0.0, 0.9), (24.0, 1.0)))
    assert model.weight > 0.99
    assert abs(model.f0 - 0.5) < 0.1 and 12 <= model.tau_h <= 36
    assert abs(model.at(6.0) - share(6.0)) < 0.05


def test_without_restatements_the_configured_curve_is_used() -> None:
    model = fit_maturity({}, ((0.0, 0.6), (24.0, 0.85), (72.0, 1.0)))
    assert model.weight == 0 and model.at(12.0) == pytest.approx(0.725)
    assert age_bucket(0.5) == 0 and age_bucket(1000.0) == len(AGE_BUCKETS_H)


def test_delivery_cap_is_measured_since_the_budget_took_effect() -> None:
    ivs = [
        MetricInterval(NOW - timedelta(hours=4 * (k + 1)), NOW - timedelta(hours=4 * k), 2_000, 0, 0.0)
        for k in range(12)
    ]
    rate, hours = delivery_cap(ivs, 20_000, None, NOW.timestamp())
    assert rate == pytest.approx(12_000) and hours == 48
    # Spending its whole budget: not capped.
    assert delivery_cap(ivs, 12_500, None, NOW.timestamp())[0] is None
    # The budget took effect 8 h ago: too little evidence yet.
    since = (NOW - timedelta(hours=8)).timestamp()
    assert delivery_cap(ivs, 20_000, since, NOW.timestamp()) == (None, 8.0)


def test_engine_learns_maturity_across_plans_and_stores_it() -> None:
    """Restated intervals between two plans end up in the state's restatement table."""
    pool = PoolSettings(pool_id="p", daily_budget_cents=40_000)
    members = [MemberState("a", 20_000), MemberState("b", 20_000)]

    def hist(now: datetime) -> dict[str, list[MetricInterval]]:
        out = {}
        for mid in ("a", "b"):
            ivs = []
            for k in range(30):
                end = now - timedelta(hours=4 * k)
                age = 4.0 * k
                reported = 1 - 0.5 * math.exp(-age / 24)  # share of the interval reported at that age
                ivs.append(MetricInterval(end - timedelta(hours=4), end, 3_333, int(20_000 * reported), 4.0 * reported))
            out[mid] = ivs
        return out

    first = plan_allocation(pool, members, hist(NOW), now=NOW)
    later = NOW + timedelta(hours=4)
    second = plan_allocation(pool, members, hist(later), now=later, state=first.state)
    assert first.state.seen and not first.state.restatements
    assert second.state.restatements
    again = EngineState.from_dict(second.state.to_dict())
    assert again == second.state


def test_risk_signals_compare_the_last_three_days_with_the_members_own_past() -> None:
    from allot.pools.domain.learn import risk_signals

    def iv(k: int, freq: float, clicks: int) -> MetricInterval:
        end = NOW - timedelta(hours=8 * k)
        return MetricInterval(end - timedelta(hours=8), end, 1_000, 0, 0.0, 10_000, clicks, freq)

    steady = [iv(k, 1.5, 100) for k in range(30)]
    assert risk_signals(steady, NOW.timestamp()) == (0.0, 0.0)
    # Last 3 days: frequency +25 % (half way to the +50 % that is full risk), CTR -50 % (full decay).
    tired = [iv(k, 1.875 if k < 9 else 1.5, 50 if k < 9 else 100) for k in range(30)]
    freq_risk, decay = risk_signals(tired, NOW.timestamp())
    assert freq_risk == pytest.approx(0.5) and decay == pytest.approx(1.0)


def test_engine_shaves_a_fatiguing_members_value() -> None:
    def hist(freq_recent: float) -> list[MetricInterval]:
        out = []
        for k in range(42):
            end = NOW - timedelta(hours=8 * k)
            freq = freq_recent if k < 9 else 1.5
            out.append(MetricInterval(end - timedelta(hours=8), end, 6_667, 20_000, 4.0, 10_000, 100, freq))
        return out

    pool = PoolSettings(pool_id="p", daily_budget_cents=40_000, exploration_share=0.0)
    members = [MemberState("a", 20_000), MemberState("b", 20_000)]
    plan = plan_allocation(pool, members, {"a": hist(2.5), "b": hist(1.5)}, now=NOW)
    a, b = plan.allocations
    assert "risk" in a.reasons and "risk" not in b.reasons
    assert a.marginal_return is not None and b.marginal_return is not None and a.marginal_return < b.marginal_return
