"""The response curves the diminishing-returns report publishes: the engine's own posterior-mean curves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from allot.pools.domain import MemberState, MetricInterval, PoolSettings
from allot.pools.domain.engine import fit_responses, plan_allocation
from allot.pools.domain.models import OptimizationMetric
from allot.pools.domain.reports import CURVE_POINTS, response_curves

NOW = datetime(2024, 3, 1, tzinfo=UTC)
POOL = PoolSettings(pool_id="p", daily_budget_cents=60_000, min_budget_change_cents=100)


def days(spend_per_day: int, roas: float, first_day: int, last_day: int) -> list[MetricInterval]:
    """Daily intervals ending ``first_day``..``last_day`` days before NOW."""
    out = []
    for d in range(first_day, last_day - 1, -1):
        end = NOW - timedelta(days=d)
        value = spend_per_day * roas
        out.append(MetricInterval(end - timedelta(days=1), end, spend_per_day, int(value), value / 5_000))
    return out


MEMBERS = [
    MemberState("a", 20_000, None, None),
    MemberState("b", 30_000, None, None),
    MemberState("new", 10_000, None, None),
    MemberState("paused", 10_000, None, None, paused=True),
    MemberState("gone", 0, None, None, is_active=False),
]
HISTORY = {
    "a": days(15_000, 3.0, 12, 7) + days(25_000, 2.6, 6, 1),
    "b": days(30_000, 2.0, 12, 1),
    "paused": days(10_000, 4.0, 12, 1),
}


def test_curves_are_the_engines_posterior_means_on_a_grid_to_twice_budget_or_equal_share() -> None:
    curves = response_curves(POOL, MEMBERS, HISTORY, now=NOW)
    # the members a plan shares the budget among, in order: paused and inactive ones have no curve
    assert [c.member_id for c in curves] == ["a", "b", "new"]
    planned = [m for m in MEMBERS if m.is_active and not m.paused]
    fits = fit_responses(POOL, planned, HISTORY, now=NOW)
    equal_share = 60_000 / 3
    for c, curve, mb in zip(curves, fits.curves, planned, strict=True):
        assert len(c.points) == CURVE_POINTS
        assert c.equal_share_cents == round(equal_share)
        assert c.budget_cents == mb.current_budget_cents
        top = 2 * max(mb.current_budget_cents, equal_share)
        assert c.points[0].spend_cents_per_day == 0 and c.points[0].value_per_day == 0.0
        assert c.points[-1].spend_cents_per_day == round(top)
        for p in c.points:
            assert p.value_per_day == pytest.approx(curve.value_at(p.spend_cents_per_day), rel=1e-12)
        values = [p.value_per_day for p in c.points]
        assert values == sorted(values)  # more spend never returns less on a Hill curve
        h = sum(w * hh for w, hh in zip(curve.weights, curve.hs, strict=True))
        assert c.hill_exponent == pytest.approx(h)
        assert c.kind == ("s_shaped" if h > 1.0 else "concave")
        assert c.value_unit == "revenue_cents"
    # "a" earns about 2.6-3 per unit spent around its spend: its curve says so (revenue cents per day)
    a = curves[0]
    near = min(a.points, key=lambda p: abs(p.spend_cents_per_day - 25_000))
    assert 1.5 < near.value_per_day / near.spend_cents_per_day < 4.0


def test_a_member_without_history_is_the_prior_only() -> None:
    a, b, new = response_curves(POOL, MEMBERS, HISTORY, now=NOW)
    assert new.prior_only and new.evidence_days == 0.0
    assert not a.prior_only and a.evidence_days == pytest.approx(12.0)
    assert not b.prior_only and b.evidence_days == pytest.approx(12.0)
    # the prior borrows the pool's value per spend: a positive curve even without data
    assert new.points[-1].value_per_day > 0
    # no history at all: every curve is the prior
    assert all(c.prior_only for c in response_curves(POOL, MEMBERS, {}, now=NOW))


def test_the_curves_are_the_ones_the_plan_plans_on() -> None:
    """A plan's elasticity of a member is its curve's at the member's spend (budget x delivery ratio: 1 for a member
    without recent delivery)."""
    plan = plan_allocation(POOL, MEMBERS, HISTORY, now=NOW)
    planned = [m for m in MEMBERS if m.is_active and not m.paused]
    fits = fit_responses(POOL, planned, HISTORY, now=NOW)
    line = next(ln for ln in plan.allocations if ln.member_id == "new")
    assert line.elasticity is not None
    assert line.elasticity == pytest.approx(fits.curves[2].elasticity_at(10_000), rel=1e-9)
    assert fits.x_ref == 20_000


def test_cpa_pools_value_conversions() -> None:
    pool = PoolSettings(pool_id="p", daily_budget_cents=60_000, min_budget_change_cents=100,
                        optimization_metric=OptimizationMetric.CPA)
    curves = response_curves(pool, MEMBERS, HISTORY, now=NOW)
    assert {c.value_unit for c in curves} == {"conversions"}
    a = curves[0]
    near = min(a.points, key=lambda p: abs(p.spend_cents_per_day - 25_000))
    # about 25_000 x 2.6 / 5_000 = 13 conversions a day at that spend
    assert 5 < near.value_per_day < 30
