"""The simulator's range reach: on each entity's report of the latest interval of a call, over the complete local
days ending with its account's yesterday, deduplicated by the fixed overlap model (less than the sum of the hours'
or days' reach, at least the largest), never summed; the rules engine can then evaluate the frequency cap."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from allot.contracts.payloads import MetricsIngested
from allot.rules.domain import (
    DailyCounters,
    Entity,
    PlatformReach,
    SkipReason,
    evaluate_rule,
    instantiate_template,
)
from allot.sandbox.delivery import deduplicated_reach
from allot.sandbox.simulator import DeliverySimulator
from allot.sandbox.state import SandboxState

T0 = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday
HOUR = timedelta(hours=1)
NEW_YORK = ZoneInfo("America/New_York")


def portfolio(n: int = 4) -> SandboxState:
    state = SandboxState(clock=lambda: T0 - timedelta(days=14), seed=7)
    camp = state.create_entity(entity_id="c", ad_account_id="acc", entity_type="campaign")
    for i in range(n):
        state.create_entity(entity_id=f"as{i}", ad_account_id="acc", entity_type="adset", parent_id=camp.id,
                            daily_budget_cents=20_000, profile=("strong", "weak", "regular")[i % 3])
    return state


def run(sim: DeliverySimulator, hours: int, step: int = 1) -> list[MetricsIngested]:
    out: list[MetricsIngested] = []
    for h in range(step, hours + 1, step):
        out.extend(sim.advance_to(T0 + h * HOUR))
    return out


def hourly_reach(reports: list[MetricsIngested], zone: ZoneInfo = ZoneInfo("UTC")) -> dict[str, dict[date, list[int]]]:
    """entity → local day → the first report's reach of each interval (re-reports repeat it)."""
    seen: set[tuple[str, datetime]] = set()
    out: dict[str, dict[date, list[int]]] = defaultdict(lambda: defaultdict(list))
    for m in reports:
        if (m.entity_id, m.interval_start) not in seen:
            seen.add((m.entity_id, m.interval_start))
            out[m.entity_id][m.interval_start.astimezone(zone).date()].append(m.reach)
    return out


def test_only_the_latest_interval_of_a_call_carries_the_range_reach() -> None:
    sim = DeliverySimulator(portfolio().delivery_entities, seed=1, start_at=T0)
    run(sim, 24)
    batch = sim.advance_to(T0 + 29 * HOUR)  # five new hours and a re-report of older ones
    carrying = [m for m in batch if m.range_reach is not None]
    assert {m.entity_id for m in carrying} == {"as0", "as1", "as2", "as3"}
    assert {m.interval_start for m in carrying} == {T0 + 28 * HOUR}
    assert any(m.interval_start < T0 + 24 * HOUR for m in batch)  # re-reports: without it
    assert {m.range_reach.through for m in carrying if m.range_reach} == {date(2024, 3, 4)}


def test_range_reach_is_deduplicated_never_the_sum_of_hours_or_days() -> None:
    sim = DeliverySimulator(portfolio().delivery_entities, seed=1, start_at=T0)
    reports = run(sim, 9 * 24 + 3)
    last = {m.entity_id: m.range_reach for m in reports if m.range_reach is not None}  # the final call's
    hours = hourly_reach(reports)
    for entity_id, rr in last.items():
        assert rr is not None and rr.through == date(2024, 3, 12)
        days = [hours[entity_id][rr.through - timedelta(days=k)] for k in range(9)]
        day_reach = [deduplicated_reach(max(h), sum(h)) for h in days]
        assert rr.yesterday == day_reach[0] < sum(days[0])  # 24 hours' reach deduplicated
        assert max(day_reach[:3]) <= rr.last_3d == deduplicated_reach(max(day_reach[:3]), sum(day_reach[:3]))
        assert rr.last_3d < sum(day_reach[:3])
        assert rr.last_3d <= rr.last_7d <= rr.last_14d == rr.last_30d  # 9 days delivered: 14 d and 30 d agree


def test_days_are_the_accounts_local_days() -> None:
    # Delivery starts at 19:00 on 3 March in New York; 02:00 UTC on 5 March is 21:00 on 4 March there.
    sim = DeliverySimulator(portfolio().delivery_entities, seed=1, start_at=T0, zone_of=lambda _: NEW_YORK)
    reports = run(sim, 26)
    carrying = [m for m in reports if m.range_reach is not None and m.interval_start == T0 + 25 * HOUR]
    hours = hourly_reach(reports, NEW_YORK)
    for m in carrying:
        rr = m.range_reach
        assert rr is not None and rr.through == date(2024, 3, 3)
        march_3 = hours[m.entity_id][date(2024, 3, 3)]
        assert len(march_3) == 5 and rr.yesterday == deduplicated_reach(max(march_3), sum(march_3))


def test_the_frequency_cap_is_computable_on_sandbox_reports() -> None:
    sim = DeliverySimulator(portfolio().delivery_entities, seed=1, start_at=T0)
    reports = run(sim, 8 * 24 + 6, step=6)
    now = T0 + (8 * 24 + 6) * HOUR
    buckets: dict[str, dict[date, DailyCounters]] = defaultdict(dict)
    count: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    latest: dict[str, tuple[datetime, MetricsIngested]] = {}
    kept: dict[tuple[str, datetime], MetricsIngested] = {}
    for m in reports:  # the rules' projection: latest report per interval, summed per day, latest range reach
        kept[(m.entity_id, m.interval_start)] = m
        if m.range_reach is not None and (m.entity_id not in latest or m.reported_at >= latest[m.entity_id][0]):
            latest[m.entity_id] = (m.reported_at, m)
    for (entity_id, start), m in kept.items():
        day = start.date()
        held = buckets[entity_id].get(day, DailyCounters())
        buckets[entity_id][day] = held._replace(impressions=held.impressions + m.impressions,
                                                reach=held.reach + m.reach)
        count[entity_id][day] += 1
    entities = []
    for entity_id, days in buckets.items():
        rr = latest[entity_id][1].range_reach
        assert rr is not None
        reach = PlatformReach(rr.through, {k: v for k, v in rr.model_dump().items() if k != "through"})
        entities.append(Entity(entity_id, "adset", "sandbox", "acc", entity_id, "active", "EUR", 20_000, days,
                               reach, reports=count[entity_id]))
    rule = instantiate_template("frequency_cap", name="f", scope={"ad_account_ids": ["acc"], "entity_level": "adset"})
    result = evaluate_rule(rule, entities, None, now)
    assert result.entities_evaluated == 4
    assert all(s.reason is SkipReason.CONDITIONS_NOT_MET for s in result.skipped)  # computable: never unavailable
    for e in entities:
        seven = sum(e.buckets[now.date() - timedelta(days=k)].impressions for k in range(1, 8))
        assert e.range_reach is not None and seven / e.range_reach.by_range["last_7d"] > seven / sum(
            e.buckets[now.date() - timedelta(days=k)].reach for k in range(1, 8))  # fewer people than Σ hourly
