"""The sandbox delivery model: determinism, bounds, diminishing returns, maturation, portfolio."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from allot.sandbox.delivery import (
    EntityCurve,
    expected_revenue_cents,
    make_portfolio,
    marginal_revenue_per_cent,
    maturation_fraction,
    reported_after,
    simulate_interval,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday
CURVE = EntityCurve("e", saturation_conversions_per_day=20.0, scale_cents=20_000.0, aov_cents=5_000, origin_at=T0)


def test_same_seed_same_delivery() -> None:
    a = simulate_interval(CURVE, 30_000, T0, 8, random.Random(5))
    b = simulate_interval(CURVE, 30_000, T0, 8, random.Random(5))
    assert a == b


def test_spend_never_exceeds_125_percent_of_interval_share_and_counts_are_ints() -> None:
    rng = random.Random(1)
    for _ in range(2_000):
        d = simulate_interval(CURVE, 24_000, T0, 8, rng)
        assert 0 <= d.spend_cents <= 8_000 * 1.25
        assert all(isinstance(v, int) for v in (d.spend_cents, d.impressions, d.clicks, d.conversions, d.revenue_cents))
    assert simulate_interval(CURVE, 0, T0, 8, rng).spend_cents == 0


def test_average_spend_is_close_to_the_budget_share() -> None:
    rng = random.Random(2)
    spends = [simulate_interval(CURVE, 24_000, T0, 8, rng).spend_cents for _ in range(2_000)]
    assert abs(sum(spends) / len(spends) - 8_000) < 80


def test_diminishing_returns_in_expected_revenue() -> None:
    r1 = expected_revenue_cents(CURVE, 10_000, T0)
    r2 = expected_revenue_cents(CURVE, 20_000, T0)
    r4 = expected_revenue_cents(CURVE, 40_000, T0)
    assert r1 < r2 < r4
    assert r2 - r1 > r4 - r2 * 1.0 - (r2 - r1) * 0  # increments shrink
    assert r4 / 40_000 < r2 / 20_000 < r1 / 10_000
    eps = 1.0
    above, below = expected_revenue_cents(CURVE, 20_000 + eps, T0), expected_revenue_cents(CURVE, 20_000 - eps, T0)
    num = (above - below) / (2 * eps)
    assert math.isclose(num, marginal_revenue_per_cent(CURVE, 20_000, T0), rel_tol=1e-4)


def test_noisy_conversions_average_to_the_expectation() -> None:
    rng = random.Random(3)
    ds = [simulate_interval(CURVE, 24_000, T0, 24, rng) for _ in range(3_000)]
    mean_conv = sum(d.conversions for d in ds) / len(ds)
    mean_exp = sum(d.expected_conversions for d in ds) / len(ds)
    assert abs(mean_conv / mean_exp - 1.0) < 0.03


def test_weekly_seasonality_and_fading() -> None:
    seasonal = EntityCurve("s", 20.0, 20_000.0, 5_000, seasonality=(1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 1.0))
    saturday = expected_revenue_cents(seasonal, 20_000, T0 + timedelta(days=5))
    assert math.isclose(saturday / expected_revenue_cents(seasonal, 20_000, T0), 1.2)
    fader = EntityCurve("f", 20.0, 20_000.0, 5_000, origin_at=T0, fade_start_day=2.0, fade_per_day=0.1)
    assert fader.level_multiplier(T0 + timedelta(days=2)) == 1.0
    assert math.isclose(fader.level_multiplier(T0 + timedelta(days=4)), 0.81)


@pytest.mark.parametrize(("age", "fraction"), [(0, 0.60), (12, 0.725), (24, 0.85), (48, 0.925), (72, 1.0), (500, 1.0)])
def test_maturation_curve(age: float, fraction: float) -> None:
    assert math.isclose(maturation_fraction(age), fraction)


def test_reported_after_under_reports_fresh_data_and_matures() -> None:
    d = simulate_interval(CURVE, 60_000, T0, 24, random.Random(4))
    fresh = reported_after(d, 0)
    assert fresh.conversions == math.floor(d.conversions * 0.6 + 1e-9)
    assert fresh.revenue_cents <= d.revenue_cents * 0.6 + 1
    assert fresh.spend_cents == d.spend_cents and fresh.reported_fraction == 0.6
    assert reported_after(d, 72) == reported_after(d, 100)
    assert reported_after(d, 72).revenue_cents == d.revenue_cents


def test_make_portfolio_is_reproducible_and_varied() -> None:
    a = make_portfolio(7, 10, origin_at=T0)
    assert a == make_portfolio(7, 10, origin_at=T0)
    roles = [c.role for c in a]
    assert roles.count("newcomer") == 1 and roles.count("fading") == 1 and "strong" in roles and "weak" in roles
    newcomer = next(c for c in a if c.role == "newcomer")
    assert newcomer.origin_at == T0 + timedelta(days=13)
    roas = {c.role: expected_revenue_cents(c, 15_000, T0 + timedelta(days=14)) / 15_000 for c in a}
    assert roas["newcomer"] > roas["weak"] and roas["strong"] > roas["weak"]
    with pytest.raises(ValueError):
        make_portfolio(1, 3)
