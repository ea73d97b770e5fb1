"""The delivery simulator: determinism, paused entities, maturation re-reports, diminishing returns, scale."""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from allot.contracts.payloads import MetricsIngested
from allot.sandbox.delivery import EntityCurve, maturation_fraction
from allot.sandbox.simulator import DeliverySimulator, run_delivery
from allot.sandbox.state import SandboxState

T0 = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday
HOUR = timedelta(hours=1)
CURVE = {"saturation_conversions_per_day": 40.0, "scale_cents": 10_000.0, "aov_cents": 5_000}


def portfolio(n: int = 6, seed: int = 7, budget: int = 20_000) -> SandboxState:
    state = SandboxState(clock=lambda: T0 - timedelta(days=14), seed=seed)
    camp = state.create_entity(entity_id="c", ad_account_id="acc", entity_type="campaign")
    for i in range(n):
        state.create_entity(
            entity_id=f"as{i}",
            ad_account_id="acc",
            entity_type="adset",
            parent_id=camp.id,
            daily_budget_cents=budget,
            profile=("strong", "weak", "regular")[i % 3],
        )
    return state


def run_hours(sim: DeliverySimulator, hours: int, start: datetime = T0) -> list[MetricsIngested]:
    out: list[MetricsIngested] = []
    for h in range(1, hours + 1):
        out.extend(sim.advance_to(start + h * HOUR))
    return out


def key(m: MetricsIngested) -> tuple[object, ...]:
    return (
        m.entity_id,
        m.interval_start,
        m.reported_at,
        m.spend_cents,
        m.impressions,
        m.clicks,
        m.conversions,
        m.revenue_cents,
    )


def test_same_seed_same_reports_and_different_seed_differs() -> None:
    first = run_hours(DeliverySimulator(portfolio().delivery_entities, seed=1, start_at=T0), 30)
    second = run_hours(DeliverySimulator(portfolio().delivery_entities, seed=1, start_at=T0), 30)
    other = run_hours(DeliverySimulator(portfolio().delivery_entities, seed=2, start_at=T0), 30)
    assert [key(m) for m in first] == [key(m) for m in second]
    assert [key(m) for m in first] != [key(m) for m in other]


def test_delivery_does_not_depend_on_batching_or_on_other_entities() -> None:
    hourly = run_hours(DeliverySimulator(portfolio().delivery_entities, seed=3, start_at=T0), 5)
    jumped = DeliverySimulator(portfolio(n=9).delivery_entities, seed=3, start_at=T0).advance_to(T0 + 5 * HOUR)

    def counters(ms: list[MetricsIngested]) -> dict[tuple[str, datetime], tuple[int, int, int]]:
        return {(m.entity_id, m.interval_start): (m.spend_cents, m.impressions, m.clicks) for m in ms}

    smaller = counters(hourly)
    assert smaller and all(counters(jumped)[k] == v for k, v in smaller.items())


def test_paused_entities_and_children_of_paused_parents_spend_nothing() -> None:
    state = portfolio(n=4)
    state.write("as1", status="paused")
    sim = DeliverySimulator(state.delivery_entities, seed=1, start_at=T0)
    reports = run_hours(sim, 3)
    assert {m.entity_id for m in reports} == {"as0", "as2", "as3"}
    assert all(m.spend_cents > 0 for m in reports if m.interval_start == m.reported_at - HOUR)

    state.write("c", status="paused", source="human")
    assert [m for m in sim.advance_to(T0 + 4 * HOUR) if m.interval_start == T0 + 3 * HOUR] == []


def test_entities_without_budget_are_not_reported() -> None:
    state = portfolio(n=4)
    state.create_entity(entity_id="ad", ad_account_id="acc", entity_type="ad", parent_id="as0")
    reports = DeliverySimulator(state.delivery_entities, start_at=T0).advance_to(T0 + HOUR)
    assert {m.entity_id for m in reports} == {"as0", "as1", "as2", "as3"}  # not "c" (no budget), not "ad"


def test_budget_changes_take_effect_from_the_next_interval() -> None:
    state = portfolio(n=4, budget=24_000)
    sim = DeliverySimulator(state.delivery_entities, seed=1, start_at=T0)
    before = [m for m in sim.advance_to(T0 + HOUR) if m.entity_id == "as0"]
    state.write("as0", daily_budget_cents=2_400)
    after = [m for m in sim.advance_to(T0 + 2 * HOUR) if m.entity_id == "as0" and m.interval_start == T0 + HOUR]
    assert before[0].spend_cents > 500 and after[0].spend_cents <= 2_400 * 1.25 / 24
    assert after[0].daily_budget_cents == 2_400


def test_maturation_rereports_the_same_interval_with_growing_conversions() -> None:
    state = portfolio(n=6, budget=60_000)
    sim = DeliverySimulator(state.delivery_entities, seed=5, start_at=T0)
    reports = run_hours(sim, 100)
    by_interval: dict[tuple[str, datetime], list[MetricsIngested]] = defaultdict(list)
    for m in reports:
        by_interval[(m.entity_id, m.interval_start)].append(m)

    first_hour = [ms for (e, start), ms in by_interval.items() if start == T0]
    assert any(len(ms) > 1 for ms in first_hour)
    for ms in by_interval.values():
        # Re-reports keep the interval's delivery counters and never lower conversions or revenue.
        assert len({(m.spend_cents, m.impressions, m.clicks, m.interval_end) for m in ms}) == 1
        assert [m.conversions for m in ms] == sorted(m.conversions for m in ms)
        assert [m.revenue_cents for m in ms] == sorted(m.revenue_cents for m in ms)
        assert [m.reported_at for m in ms] == sorted({m.reported_at for m in ms})
    grown = [ms for ms in first_hour if ms[-1].conversions > ms[0].conversions]
    assert grown, "some first-hour interval must gain conversions as it matures"
    for ms in first_hour:
        final, initial = ms[-1], ms[0]
        if len(ms) > 1:
            assert (final.reported_at - final.interval_end) >= timedelta(hours=6)
        # The first report shows the maturation fraction at age 0 of the final (matured) numbers.
        if final.reported_at - final.interval_end >= timedelta(hours=72):
            assert initial.conversions == math.floor(final.conversions * maturation_fraction(0.0) + 1e-9)


def test_no_rereports_after_the_window_and_memory_stays_bounded() -> None:
    state = portfolio(n=6, budget=60_000)
    sim = DeliverySimulator(state.delivery_entities, seed=5, start_at=T0)
    run_hours(sim, 72)
    retained_at_72 = sim.retained_rows
    assert 0 < retained_at_72 <= 72 * 6
    late = run_hours(sim, 100, start=T0 + 72 * HOUR)
    assert all(m.reported_at - m.interval_end <= timedelta(hours=73) for m in late)
    assert sim.retained_rows <= 72 * 6
    for state_entity in ("as0", "as1", "as2", "as3", "as4", "as5"):
        state.write(state_entity, status="paused")
    run_hours(sim, 80, start=T0 + 172 * HOUR)
    assert sim.retained_rows == 0


def test_doubling_budget_less_than_doubles_revenue() -> None:
    state = SandboxState(clock=lambda: T0, seed=11)
    for i in range(12):
        for budget in (10_000, 20_000):
            state.create_entity(
                entity_id=f"b{budget}-{i}",
                ad_account_id="acc",
                entity_type="adset",
                daily_budget_cents=budget,
                curve_overrides=CURVE,
            )
    sim = DeliverySimulator(state.delivery_entities, seed=11, start_at=T0)
    reports = run_hours(sim, 7 * 24 + 73)
    latest: dict[tuple[str, datetime], MetricsIngested] = {}
    for m in reports:
        latest[(m.entity_id, m.interval_start)] = m
    totals: dict[int, list[int]] = {10_000: [0, 0], 20_000: [0, 0]}
    for (entity_id, start), m in latest.items():
        if start < T0 + timedelta(days=7):
            bucket = totals[int(entity_id[1:].split("-")[0])]
            bucket[0] += m.spend_cents
            bucket[1] += m.revenue_cents
    spend_ratio = totals[20_000][0] / totals[10_000][0]
    revenue_ratio = totals[20_000][1] / totals[10_000][1]
    assert 1.9 < spend_ratio < 2.1
    assert 1.1 < revenue_ratio < 1.7  # noise-free: (1 - e^-2) / (1 - e^-1) ≈ 1.37


def test_weekly_seasonality_shows_in_conversions() -> None:
    curve = EntityCurve("x", 400.0, 10_000.0, 5_000, seasonality=(1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0), noise_sigma=0.05)

    @dataclass
    class Fixed:
        id: str = "x"
        platform: str = "sandbox"
        ad_account_id: str = "acc"
        entity_type: str = "adset"
        name: str = "x"
        currency: str = "USD"
        daily_budget_cents: int | None = 20_000
        status: str = "active"
        parent_id: str | None = None
        curve: EntityCurve | None = None

    sim = DeliverySimulator(lambda: [Fixed(curve=curve)], seed=1, start_at=T0, rereport_ages_h=(0.0,))
    reports = run_hours(sim, 7 * 24)
    weekday = sum(m.conversions for m in reports if m.interval_start.weekday() < 5) / 5
    weekend = sum(m.conversions for m in reports if m.interval_start.weekday() >= 5) / 2
    assert weekend > 1.6 * weekday


def test_entities_without_a_curve_get_a_reproducible_fallback() -> None:
    @dataclass
    class Bare:
        id: str
        platform: str = "sandbox"
        ad_account_id: str = "acc"
        entity_type: str = "campaign"
        name: str = ""
        currency: str = "USD"
        daily_budget_cents: int | None = 30_000
        status: str = "active"
        parent_id: str | None = None
        curve: EntityCurve | None = None

    def sim() -> DeliverySimulator:
        return DeliverySimulator(lambda: [Bare("k1"), Bare("k2")], seed=9, start_at=T0)

    assert [key(m) for m in run_hours(sim(), 4)] == [key(m) for m in run_hours(sim(), 4)]


def test_clock_is_injected_and_must_be_aware() -> None:
    sim = DeliverySimulator(portfolio().delivery_entities)
    with pytest.raises(ValueError):
        sim.advance_to(datetime(2024, 3, 4, 12))
    assert sim.advance_to(T0 + timedelta(minutes=30)) == []  # first call only aligns the cursor
    assert sim.cursor == T0
    assert sim.advance_to(T0 + timedelta(minutes=59)) == []
    assert len(sim.advance_to(T0 + HOUR)) == 6
    assert sim.advance_to(T0) == []  # time going backwards produces nothing


def test_advance_handles_5000_entities_well_under_a_second() -> None:
    state = SandboxState(clock=lambda: T0, seed=1)
    for i in range(5_000):
        state.create_entity(
            ad_account_id="acc",
            entity_type="adset",
            daily_budget_cents=20_000 + i,
            profile=("strong", "weak", "regular")[i % 3],
        )
    sim = DeliverySimulator(state.delivery_entities, seed=1, start_at=T0)
    run_hours(sim, 6)  # so the timed step also re-reports interval 0 at its 6 h checkpoint
    started = time.perf_counter()
    reports = sim.advance_to(T0 + 7 * HOUR)
    elapsed = time.perf_counter() - started
    assert len([m for m in reports if m.interval_start == T0 + 6 * HOUR]) == 5_000
    assert any(m.interval_start == T0 for m in reports)
    assert elapsed < 1.0, f"advance_to took {elapsed:.2f}s"


async def test_run_delivery_feeds_the_sink_and_retries_a_failed_batch() -> None:
    state = portfolio(n=4)
    sim = DeliverySimulator(state.delivery_entities, seed=1, start_at=T0)
    now = [T0]
    batches: list[list[MetricsIngested]] = []
    failures = [1]

    async def sink(batch: list[MetricsIngested]) -> None:
        if failures[0]:
            failures[0] -= 1
            raise ConnectionError("broker down")
        batches.append(batch)
        now[0] += HOUR

    now[0] = T0 + HOUR
    task = asyncio.create_task(run_delivery(sim, lambda: now[0], sink, interval_s=0.001))
    deadline = time.monotonic() + 5
    while len(batches) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(batches) >= 3
    # The batch that failed was delivered unchanged first: intervals arrive in order, none lost or duplicated.
    first_reports = [m.interval_start for b in batches for m in b if m.reported_at == m.interval_end]
    assert first_reports[:12] == [T0 + h * HOUR for h in range(3) for _ in range(4)]
