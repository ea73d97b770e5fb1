"""What the engine learns (pure): maturity from restatements, delivery caps, the response fit."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from allot.pools.domain import EngineState, MemberState, MetricInterval, PoolSettings, plan_allocation
from allot.pools.domain.learn import (
    MaturityModel,
    add_pairs,
    age_bucket,
    delivery_cap,
    fit_maturity,
    fit_member,
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


def _history(beta: float, *, conv_per_day: float, days: int = 14, swing: float = 1.2, seed: int = 3) -> list[MetricInterval]:
    """4-hour intervals; the budget alternates between 20,000/swing and 20,000*swing every day."""
    rng = random.Random(seed)
    out = []
    for k in range(days * 6):
        end = NOW - timedelta(hours=4 * k)
        x = 20_000 * (swing if (k // 6) % 2 else 1 / swing)
        conv = _poisson(rng, conv_per_day * (x / 20_000) ** beta / 6)
        out.append(MetricInterval(end - timedelta(hours=4), end, int(x / 6), conv * 5_000, float(conv)))
    return out


def _fit(ivs: list[MetricInterval]):
    obs = observations(
        ivs, NOW.timestamp(), lookback_h=21 * 24, half_life_h=1e6, maturity=NO_LAG, revenue_w=1.0, conv_w=0.0,
        min_maturity=0.3, maturity_cache={},
    )
    return fit_member(
        obs, x_ref=20_000, prior_level=math.log(100_000), prior_level_sd=0.6, prior_b=0.6, prior_b_sd=0.35,
        prior_g_sd=0.04, dispersion=5_000,
    )


@pytest.mark.parametrize("beta", [0.2, 1.0, 1.8])
def test_elasticity_is_learned_from_budget_variation_when_volume_allows(beta: float) -> None:
    fit = _fit(_history(beta, conv_per_day=400, swing=1.4))
    assert abs(fit.mean[1] - beta) < 3 * fit.sd_elasticity + 0.05, (fit.mean, fit.sd_elasticity)
    assert fit.sd_elasticity < 0.15
    # The level at the reference spend is the observed one (400 conversions/day x 5,000 at 20,000/day).
    assert abs(fit.value_at(20_000) / (400 * 5_000) - 1) < 0.1


def test_without_spend_variation_the_elasticity_stays_at_the_prior() -> None:
    fit = _fit(_history(1.8, conv_per_day=400, swing=1.0))
    assert abs(fit.mean[1] - 0.6) < 0.05 and fit.sd_elasticity > 0.3


def test_a_member_without_history_gets_the_prior() -> None:
    fit = fit_member(None, x_ref=20_000, prior_level=math.log(40_000), prior_level_sd=0.6, prior_b=0.6, prior_b_sd=0.35, prior_g_sd=0.04, dispersion=1.0)
    assert not fit.has_data and fit.mean == (math.log(40_000), 0.6, 0.0) and fit.sd_level == pytest.approx(0.6)


def test_a_fading_member_shows_a_negative_trend() -> None:
    rng = random.Random(5)
    ivs = []
    for k in range(14 * 6):
        end = NOW - timedelta(hours=4 * k)
        age_days = (k * 4) / 24
        conv = _poisson(rng, 200 * math.exp(0.08 * age_days) / 6)  # 8 % a day lower toward now
        ivs.append(MetricInterval(end - timedelta(hours=4), end, 3_333, conv * 5_000, float(conv)))
    fit = _fit(ivs)
    assert fit.mean[2] < -0.03


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
    assert age_bucket(0.5) == 0 and age_bucket(1000.0) == len(__import__("allot.pools.domain.learn", fromlist=["x"]).AGE_BUCKETS_H)


def test_delivery_cap_is_measured_since_the_budget_took_effect() -> None:
    ivs = [MetricInterval(NOW - timedelta(hours=4 * (k + 1)), NOW - timedelta(hours=4 * k), 2_000, 0, 0.0) for k in range(12)]
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
                ivs.append(MetricInterval(end - timedelta(hours=4), end, 3_333, int(20_000 * (1 - 0.5 * math.exp(-age / 24))), 4.0 * (1 - 0.5 * math.exp(-age / 24))))
            out[mid] = ivs
        return out

    first = plan_allocation(pool, members, hist(NOW), now=NOW)
    second = plan_allocation(pool, members, hist(NOW + timedelta(hours=4)), now=NOW + timedelta(hours=4), state=first.state)
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
            out.append(MetricInterval(end - timedelta(hours=8), end, 6_667, 20_000, 4.0, 10_000, 100, freq_recent if k < 9 else 1.5))
        return out

    pool = PoolSettings(pool_id="p", daily_budget_cents=40_000, exploration_share=0.0)
    members = [MemberState("a", 20_000), MemberState("b", 20_000)]
    plan = plan_allocation(pool, members, {"a": hist(2.5), "b": hist(1.5)}, now=NOW)
    a, b = plan.allocations
    assert "risk" in a.reasons and "risk" not in b.reasons
    assert a.marginal_return is not None and b.marginal_return is not None and a.marginal_return < b.marginal_return
