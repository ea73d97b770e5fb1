"""Diminishing-returns report, backtest and the comparison policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from allot.pools.domain import EngineState, MemberMemory, MemberState, MetricInterval, PoolSettings
from allot.pools.domain.backtest import backtest
from allot.pools.domain.reports import find_diminishing_returns
from bench.baselines import plan_equal_split, plan_roas_chaser, plan_threshold_heuristic

NOW = datetime(2024, 3, 1, tzinfo=UTC)
POOL = PoolSettings(pool_id="p", daily_budget_cents=60_000, min_budget_change_cents=100)


def days(spend_per_day: int, roas: float, first_day: int, last_day: int) -> list[MetricInterval]:
    """Daily intervals ending ``first_day``..``last_day`` days before NOW (older than 3 days: matured)."""
    out = []
    for d in range(first_day, last_day - 1, -1):
        end = NOW - timedelta(days=d)
        value = spend_per_day * roas
        out.append(MetricInterval(end - timedelta(days=1), end, spend_per_day, int(value), value / 5_000))
    return out


def test_diminishing_returns_flags_spend_growth_without_roas_gain_with_numbers() -> None:
    hist = {
        "grew_flat": days(10_000, 3.0, 13, 7) + days(15_000, 2.7, 6, 3),
        "grew_better": days(10_000, 3.0, 13, 7) + days(15_000, 3.3, 6, 3),
        "steady": days(10_000, 3.0, 13, 3),
        "paused": days(10_000, 3.0, 13, 7) + days(15_000, 2.0, 6, 3),
    }
    members = [
        MemberState("grew_flat", 15_000), MemberState("grew_better", 15_000), MemberState("steady", 10_000),
        MemberState("paused", 15_000, paused=True),
    ]
    found = find_diminishing_returns(POOL, members, hist, now=NOW)
    assert [f.member_id for f in found] == ["grew_flat"]
    f = found[0]
    assert f.spend_before_cents_per_day == 10_000 and f.spend_after_cents_per_day == 15_000
    assert abs(f.roas_before - 3.0) < 1e-6 and abs(f.roas_after - 2.7) < 1e-3
    assert "100.00 -> 150.00" in f.explanation


def test_diminishing_returns_threshold_boundary() -> None:
    hist = {"m": days(10_000, 3.0, 13, 7) + days(11_000, 3.0, 6, 3)}
    members = [MemberState("m", 11_000)]
    found = find_diminishing_returns(POOL, members, hist, now=NOW, min_spend_growth_pct=10.0)
    assert [f.member_id for f in found] == ["m"]
    assert find_diminishing_returns(POOL, members, hist, now=NOW, min_spend_growth_pct=10.01) == []


def test_backtest_replays_through_the_engine_and_reports_moves_and_outcome() -> None:
    hist = {"win": days(20_000, 6.0, 30, 1), "a": days(20_000, 2.0, 30, 1), "b": days(20_000, 2.0, 30, 1)}
    members = [MemberState(k, 20_000) for k in hist]
    pool = PoolSettings(
        pool_id="p", daily_budget_cents=60_000, allocation_frequency_hours=24, min_budget_change_cents=100
    )
    report = backtest(pool, members, hist, start=NOW - timedelta(days=10), end=NOW - timedelta(days=1))
    assert report.plans == 9
    assert report.moves and all(m.explanation for m in report.moves)
    assert report.final_budgets["win"] > 20_000
    assert sum(report.final_budgets.values()) == 60_000
    assert report.estimated_value_cents > report.actual_value_cents
    assert report.changes_per_member_per_day < 1.0
    again = backtest(pool, members, hist, start=NOW - timedelta(days=10), end=NOW - timedelta(days=1))
    assert again == report


def test_equal_split_respects_step_limits_and_sum() -> None:
    members = [MemberState("a", 40_000), MemberState("b", 10_000), MemberState("c", 10_000)]
    plan = plan_equal_split(POOL, members, {}, now=NOW)
    assert plan.pool_total_cents == 60_000
    # b and c may only rise 20% (+2,000 each), so a can only give 4,000 this plan.
    assert plan.budgets == {"a": 36_000, "b": 12_000, "c": 12_000}
    assert all(abs(a.change_cents) <= 0.2 * a.previous_budget_cents for a in plan.allocations)


def test_threshold_heuristic_needs_three_consecutive_high_scores() -> None:
    hist = {
        "hot": days(20_000, 2.0, 30, 4) + days(20_000, 6.0, 3, 1),
        "a": days(20_000, 2.0, 30, 1),
        "b": days(20_000, 2.0, 30, 1),
    }
    members = [MemberState(k, 20_000) for k in hist]
    state = EngineState(members={"hot": MemberMemory(1, 1, None, ())})
    p1 = plan_threshold_heuristic(POOL, members, hist, now=NOW, state=state)
    assert p1.budgets["hot"] == 20_000
    p2 = plan_threshold_heuristic(POOL, members, hist, now=NOW + timedelta(minutes=1), state=p1.state)
    assert p2.budgets["hot"] == 23_000 and p2.pool_total_cents == 60_000


def test_roas_chaser_moves_toward_trailing_roas_every_plan() -> None:
    hist = {"hi": days(20_000, 4.0, 5, 1), "lo": days(20_000, 2.0, 5, 1), "mid": days(20_000, 3.0, 5, 1)}
    members = [MemberState(k, 20_000) for k in hist]
    plan = plan_roas_chaser(POOL, members, hist, now=NOW)
    assert plan.budgets["hi"] > 20_000 > plan.budgets["lo"]
    assert plan.pool_total_cents == 60_000
