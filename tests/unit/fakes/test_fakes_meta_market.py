"""The demo market behind the Graph fake: hourly delivery from each ad set's current budget, in the account's
local hours, deterministic for a seed, honouring delivery caps and paused ad sets."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from allot.fakes.meta import MetaFakeState
from allot.fakes.meta.market import AdSetProfile, MetaMarket
from allot.fakes.meta.world import DEMO_ACCOUNT, DEMO_ADSETS, demo_world
from allot.runtime.stack import start_stack

START = datetime(2026, 3, 10, 0, 0, tzinfo=UTC)


def market(budget: int = 4_800, cap: int | None = None, seed: int = 3) -> tuple[MetaFakeState, MetaMarket]:
    state = MetaFakeState()
    state.add_account("1", "EUR")
    state.reads.set_account("1", timezone_name="Europe/Berlin")
    state.add_object("a", "adset", "1", daily_budget=budget)
    return state, MetaMarket(state, {"a": AdSetProfile(roas=3.0, half_saturation=10_000, cap=cap)}, seed=seed)


def test_each_whole_hour_is_delivered_once_in_the_accounts_local_hour() -> None:
    state, m = market()
    assert m.advance(START + timedelta(hours=2, minutes=59), start=START) == 2
    assert m.advance(START + timedelta(hours=2, minutes=59)) == 0  # nothing new: the third hour has not ended
    assert m.advance(START + timedelta(hours=3)) == 1
    rows = state.reads.delivery
    assert [(r.day, r.hour) for r in rows] == [(date(2026, 3, 10), 1), (date(2026, 3, 10), 2),
                                               (date(2026, 3, 10), 3)]  # 00:00 UTC = 01:00 in Berlin (CET)
    assert all(r.spend == 200 for r in rows)  # 4 800 a day over 24 hours


def test_spend_follows_the_current_budget_up_to_the_delivery_cap() -> None:
    state, m = market(budget=4_800, cap=2_400)
    m.advance(START + timedelta(hours=1), start=START)
    state.objects["a"].daily_budget = 1_200
    m.advance(START + timedelta(hours=2))
    state.objects["a"].status = "PAUSED"
    m.advance(START + timedelta(hours=3))
    assert [r.spend for r in state.reads.delivery] == [100, 50]  # capped at 2 400/day, then the new budget, then none


def test_value_is_concave_in_spend_and_draws_are_deterministic_per_seed() -> None:
    _, m = market()
    assert m.expected_daily_value("a", 10_000) / 10_000 < m.expected_daily_value("a", 1_000) / 1_000
    runs = []
    for _ in range(2):
        state, m = market(seed=11)
        m.advance(START + timedelta(days=3), start=START)
        runs.append([r.actions["purchase"] for r in state.reads.delivery])
    assert runs[0] == runs[1] and sum(runs[0]) > 0


def test_the_demo_world_has_a_read_only_and_a_write_token() -> None:
    state, m = demo_world("read-token-for-the-demo", "write-token-for-the-demo", "s3cret")
    assert state.reads.token_scopes["read-token-for-the-demo"] == ["ads_read", "read_insights"]
    assert "ads_management" in state.reads.token_scopes["write-token-for-the-demo"]
    assert state.accounts[DEMO_ACCOUNT].currency == "EUR" and state.app_secret == "s3cret"
    assert set(m.profiles) == set(DEMO_ADSETS) <= set(state.objects)


def test_an_unknown_demo_platform_is_refused_before_anything_starts(tmp_path: object) -> None:
    with pytest.raises(SystemExit, match="ALLOT_DEMO_PLATFORM"):
        start_stack(tmp_path, platform="tiktok")  # type: ignore[arg-type]
