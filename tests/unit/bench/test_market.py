"""The benchmark market (bench/market.py): oracle optimality, caps, newcomers, low volume, determinism."""

from __future__ import annotations

import random
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(ROOT))

from bench.market import (  # noqa: E402
    DAY0,
    DAYS,
    MAX_DELAY_H,
    PACING_NOISE,
    Market,
    Scenario,
    equal_split,
    make_scenario,
    oracle_day,
)


def _value(scn: Scenario, budgets: dict[str, float], day: int) -> float:
    index = {m.member_id: i for i, m in enumerate(scn.members)}
    return sum(scn.value_per_day(index[mid], b, day) for mid, b in budgets.items())


def _random_allocation(scn: Scenario, ids: list[str], rng: random.Random) -> dict[str, float]:
    """Floors plus a random split of the rest; every third one puts all of the rest on a single member."""
    free = scn.budget_cents - scn.floor_cents * len(ids)
    if rng.random() < 0.33:
        weights = [0.0] * len(ids)
        weights[rng.randrange(len(ids))] = 1.0
    else:
        weights = [rng.expovariate(1.0) ** rng.choice((1, 3)) for _ in ids]
    total = sum(weights)
    return {mid: scn.floor_cents + free * w / total for mid, w in zip(ids, weights, strict=True)}


def test_oracle_beats_equal_split_and_random_feasible_allocations() -> None:
    rng = random.Random(5)
    for seed, family in ((11, "stable"), (12, "fatigue"), (13, "newcomer"), (14, "low_volume")):
        scn = make_scenario(seed, family, 8)
        for day in (0, 20):
            best = oracle_day(scn, day)
            ids = [scn.members[i].member_id for i in scn.active(day)]
            assert sorted(best.budgets) == ids
            assert abs(sum(best.budgets.values()) - scn.budget_cents) < 1e-6 * scn.budget_cents
            assert min(best.budgets.values()) >= scn.floor_cents - 1e-6
            assert abs(_value(scn, dict(best.budgets), day) - best.value) < 1e-9 * best.value
            equal = dict(zip(ids, equal_split(scn.budget_cents, len(ids)), strict=True))
            assert best.value >= _value(scn, equal, day) * (1 - 1e-9)
            for _ in range(300):
                assert best.value >= _value(scn, _random_allocation(scn, ids, rng), day) * (1 - 1e-9)


def test_oracle_matches_a_much_finer_grid() -> None:
    for seed in (3, 8):
        scn = make_scenario(seed, "stable", 24)
        assert oracle_day(scn, 4).value >= oracle_day(scn, 4, grid=400).value * (1 - 5e-4)


def test_caps_bound_spend() -> None:
    scn = next(s for s in (make_scenario(seed, "stable", 8) for seed in range(40)) if any(m.caps for m in s.members))
    capped = [i for i, m in enumerate(scn.members) if m.caps is not None]
    market = Market(scn)
    huge = {m.member_id: scn.budget_cents for m in scn.members}
    for step in range(6):
        start = DAY0 + timedelta(hours=8 * step)
        spent = market.deliver(start, huge)
        day = scn.day_of(start)
        for i in capped:
            cap_share = scn.cap(i, day) * 8 / 24
            assert spent[scn.members[i].member_id] <= cap_share * (1 + PACING_NOISE) + 1
            assert spent[scn.members[i].member_id] < scn.budget_cents * 8 / 24  # spend < budget
    at_cap = scn.value_per_day(capped[0], scn.cap(capped[0], 0), 0)
    assert scn.value_per_day(capped[0], 10 * scn.budget_cents, 0) == at_cap


def test_newcomer_is_absent_before_its_join_day() -> None:
    scn = make_scenario(21, "newcomer", 12)
    (idx,) = [i for i, m in enumerate(scn.members) if m.role == "newcomer"]
    new = scn.members[idx]
    assert new.join_day is not None and 8 <= new.join_day <= 16
    assert new.member_id not in scn.initial_budgets()
    assert idx not in scn.active(new.join_day - 1) and idx in scn.active(new.join_day)
    market = Market(scn)
    budgets = dict(scn.initial_budgets())
    for step in range(scn.steps):
        now = DAY0 + timedelta(hours=12 * step)
        hist = market.history(now)
        if scn.day_of(now) < new.join_day:
            assert new.member_id not in hist
        else:
            budgets.setdefault(new.member_id, scn.floor_cents)
            assert new.member_id in hist
            if scn.day_of(now) == new.join_day and now.hour == 0:
                assert hist[new.member_id] == []  # joins with no history
        spent = market.deliver(now, budgets)
        assert (new.member_id in spent) == (scn.day_of(now) >= new.join_day)
        if scn.day_of(now) == new.join_day + 2:
            break
    # Strong: the oracle gives it several times the floor when it joins.
    assert oracle_day(scn, new.join_day).budgets[new.member_id] >= 4 * scn.floor_cents


def test_low_volume_has_under_one_conversion_per_member_per_day() -> None:
    for seed in (31, 32, 33):
        scn = make_scenario(seed, "low_volume", 4)
        n = len(scn.members)
        shares = equal_split(scn.budget_cents, n)
        expected = sum(
            scn.conversions_per_day(i, min(b, scn.cap(i, d)), d) for d in range(DAYS) for i, b in enumerate(shares)
        )
        assert expected / (n * DAYS) < 1.0
        market = Market(scn)
        budgets = dict(zip((m.member_id for m in scn.members), shares, strict=True))
        for step in range(7 * 6):
            market.deliver(DAY0 + timedelta(hours=4 * step), budgets)
        final = market.history(DAY0 + timedelta(days=7 + MAX_DELAY_H / 24))
        counts = [iv.conversions for ivs in final.values() for iv in ivs]
        per_member_day = sum(counts) / (n * (7 + scn.warmup_days))
        assert per_member_day < 1.0
        assert sum(c <= 1 for c in counts) / len(counts) > 0.9  # mostly 0/1 per interval


def test_same_seed_same_scenario_and_data() -> None:
    a, b = make_scenario(77), make_scenario(77)
    assert a == b
    assert make_scenario(78) != a
    ma, mb = Market(a), Market(b)
    now = DAY0 + timedelta(days=1)
    budgets = a.initial_budgets()
    for m in (ma, mb):
        for step in range(24 // a.cadence_h):
            m.deliver(DAY0 + timedelta(hours=a.cadence_h * step), budgets)
    ha, hb = ma.history(now), mb.history(now)
    assert [(iv.spend_cents, iv.conversions, iv.revenue_cents) for v in ha.values() for iv in v] == \
           [(iv.spend_cents, iv.conversions, iv.revenue_cents) for v in hb.values() for iv in v]


def test_late_conversions_arrive_over_time_and_never_shrink() -> None:
    scn = make_scenario(41, "stable", 8)
    market = Market(scn)
    budgets = scn.initial_budgets()
    market.deliver(DAY0, budgets)
    end = DAY0 + timedelta(hours=8)
    seen = []
    for hours in (0, 12, 48, MAX_DELAY_H):
        hist = market.history(end + timedelta(hours=hours))
        seen.append(sum(ivs[-1].conversions for ivs in hist.values()))
        if hasattr(next(iter(hist.values()))[-1], "reported_at") and hours < MAX_DELAY_H:
            assert all(ivs[-1].reported_at == end + timedelta(hours=hours) for ivs in hist.values())
    assert seen == sorted(seen) and seen[-1] > seen[0]
