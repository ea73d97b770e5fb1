"""Pools count budget changes per member per day on the pool's ad account's local days."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from allot.contracts.localday import day_bounds_utc, zone_named
from allot.pools.domain import MemberState, MetricInterval, PoolSettings
from allot.pools.domain.backtest import backtest
from allot.pools.domain.stored import StoredMember
from allot.pools.workflow import day_start, pool_zone

NY = zone_named("America/New_York")


def daily(spend: int, roas: float, first: datetime, last: datetime) -> list[MetricInterval]:
    out, t = [], first
    while t < last:
        out.append(MetricInterval(t, t + timedelta(days=1), spend, int(spend * roas), spend * roas / 5_000))
        t += timedelta(days=1)
    return out


def test_changes_per_member_per_day_divide_by_the_local_days_of_a_dst_fortnight() -> None:
    # 3 .. 16 March 2024 in New York: 14 local days (clocks spring forward on 10 March), 13 d 23 h long
    start, end = day_bounds_utc(date(2024, 3, 3), NY)[0], day_bounds_utc(date(2024, 3, 17), NY)[0]
    assert end - start == timedelta(days=14, hours=-1)
    first, last = datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 18, tzinfo=UTC)
    hist = {"win": daily(20_000, 6.0, first, last), "a": daily(20_000, 2.0, first, last),
            "b": daily(20_000, 2.0, first, last)}
    members = [MemberState(k, 20_000) for k in hist]
    pool = PoolSettings(pool_id="p", daily_budget_cents=60_000, allocation_frequency_hours=24,
                        min_budget_change_cents=100)
    local = backtest(pool, members, hist, start=start, end=end, zone=NY)
    assert local.moves
    assert local.changes_per_member_per_day == pytest.approx(len(local.moves) / (3 * 14))
    utc = backtest(pool, members, hist, start=start, end=end)
    assert utc.moves == local.moves  # the zone changes the count's days, not the replay
    assert utc.changes_per_member_per_day == pytest.approx(len(utc.moves) / (3 * (14 - 1 / 24)))


def test_a_pools_days_are_its_first_members_accounts() -> None:
    zones = {("ws", "meta", "act-ny"): NY}

    def lookup(ws: str, platform: str, account: str) -> object:
        return zones.get((ws, platform, account), UTC)

    at = datetime(2024, 3, 1, tzinfo=UTC)
    members = [StoredMember(member_id=uuid.uuid4(), pool_id=uuid.uuid4(), workspace_id="ws", entity_type="campaign",
                            entity_id=f"c{i}", ad_account_id=account, entity_name=None, platform="meta",
                            currency="USD", min_budget_cents=None, max_budget_cents=None, weight=1.0, is_active=True,
                            created_at=at, updated_at=at)
               for i, account in enumerate([None, "act-ny"])]
    assert pool_zone("ws", members, lookup) is NY  # type: ignore[arg-type]
    assert pool_zone("ws", [], lookup) is UTC  # type: ignore[arg-type]
    assert pool_zone("ws", members, None) is UTC
    assert day_start(date(2024, 3, 10), NY) == datetime(2024, 3, 10, 5, tzinfo=UTC)
    assert day_start(date(2024, 3, 10)) == datetime(2024, 3, 10, tzinfo=UTC)
