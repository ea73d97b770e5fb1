"""Cross-channel reallocation proposals: bounds, caps, minimums, ordering and totals."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allot.pacing.domain import BudgetPacingEngine, ChannelSnapshot, PacingConfig, round2


def channel(name: str, allocated_budget: float, spend: float) -> ChannelSnapshot:
    """Builder: the pacing fields are deliberately bogus, proposals must recompute them."""
    return ChannelSnapshot(channel=name, allocated_budget=allocated_budget, spend=spend, pacing_pct=-1.0)


def moves(
    engine: BudgetPacingEngine, channels: list[ChannelSnapshot], total: float, expected: float
) -> list[tuple[str, str, float]]:
    return [
        (p.source_channel, p.target_channel, p.amount) for p in engine.propose_reallocations(channels, total, expected)
    ]


# Total 100,000 half spent-to-plan (expected 50,000), so each channel expects half its budget.
TOTAL = 100_000.0
EXPECTED = 50_000.0


@pytest.mark.parametrize(
    ("source_spend", "target_spend", "max_pct", "amount", "bound"),
    [
        # S expects 25,000; T expects 25,000.
        (22_000, 35_000, 30.0, 3_000.0, "underspend"),  # S -12 % (3,000 under), T +40 % (10,000 over)
        (15_000, 28_500, 30.0, 3_500.0, "overspend"),  # S -40 % (10,000 under), T +14 % (3,500 over)
        (15_000, 40_000, 5.0, 5_000.0, "cap"),  # 10,000 under, 15,000 over, cap 5 % of 100,000
    ],
)
def test_pair_amount_is_the_smallest_of_underspend_overspend_and_cap(
    source_spend: float, target_spend: float, max_pct: float, amount: float, bound: str
) -> None:
    engine = BudgetPacingEngine(PacingConfig(max_reallocation_pct=max_pct))
    proposals = engine.propose_reallocations(
        [channel("S", 50_000, source_spend), channel("T", 50_000, target_spend)], TOTAL, EXPECTED
    )
    assert [(p.source_channel, p.target_channel, p.amount) for p in proposals] == [("S", "T", amount)]
    assert ("capped at 5% of total budget" in proposals[0].reason) == (bound == "cap")


def test_cap_is_rounded_down_to_the_cent() -> None:
    # 10 % of 10,000.05 is 1,000.005: the cap is 1,000.00, never 1,000.01.
    # Flight over (expected = total): S expects 5,000.00 and spent 0; T expects 5,000.05 and spent 8,000.
    engine = BudgetPacingEngine(PacingConfig(max_reallocation_pct=10, min_reallocation_amount=0))
    channels = [channel("S", 5_000, 0), channel("T", 5_000.05, 8_000)]
    assert moves(engine, channels, 10_000.05, 10_000.05) == [("S", "T", 1_000.0)]


@pytest.mark.parametrize(
    ("source_spend", "expected_moves"),
    [
        # Total 2,000, expected 1,000 -> each channel expects 500; T (spend 700) is 200 over.
        (400.01, []),  # 99.99 under (-20.00 %): below the 100 minimum, dropped
        (400.00, [("S", "T", 100.0)]),  # exactly the minimum is kept
    ],
)
def test_amounts_below_the_minimum_are_dropped(
    source_spend: float, expected_moves: list[tuple[str, str, float]]
) -> None:
    engine = BudgetPacingEngine()
    assert moves(engine, [channel("S", 1_000, source_spend), channel("T", 1_000, 700)], 2_000, 1_000) == expected_moves


MULTI = [
    channel("A", 20_000, 6_000),  # expects 10,000: -40 %, 4,000 under
    channel("B", 20_000, 7_000),  # expects 10,000: -30 %, 3,000 under
    channel("X", 30_000, 19_500),  # expects 15,000: +30 %, 4,500 over
    channel("Y", 30_000, 17_000),  # expects 15,000: +13.33 %, 2,000 over
]


@pytest.mark.parametrize(
    ("config", "expected_moves"),
    [
        # A->X min(4,000, 4,500)=4,000 (A done, X 500 left); B->X min(3,000, 500)=500;
        # B->Y min(2,500, 2,000)=2,000 (B keeps 500 that nobody can take).
        (PacingConfig(), [("A", "X", 4_000.0), ("B", "X", 500.0), ("B", "Y", 2_000.0)]),
        # Min 600 drops B->X (500) without consuming anything, so B->Y is min(3,000, 2,000).
        (PacingConfig(min_reallocation_amount=600), [("A", "X", 4_000.0), ("B", "Y", 2_000.0)]),
        # Cap 3 % = 3,000: A->X 3,000 (A 1,000, X 1,500 left); A->Y 1,000 (Y 1,000 left);
        # B->X 1,500; B->Y 1,000.
        (
            PacingConfig(max_reallocation_pct=3),
            [("A", "X", 3_000.0), ("A", "Y", 1_000.0), ("B", "X", 1_500.0), ("B", "Y", 1_000.0)],
        ),
        # Warning bands of 35 % leave only A (-40 %) as a source and no target (X is +30 %).
        (
            PacingConfig(
                underpacing_warning_pct=35,
                overpacing_warning_pct=35,
                underpacing_critical_pct=50,
                overpacing_critical_pct=50,
            ),
            [],
        ),
    ],
    ids=["defaults", "minimum", "cap", "wide-bands"],
)
def test_multi_source_multi_target_hand_computed(
    config: PacingConfig, expected_moves: list[tuple[str, str, float]]
) -> None:
    engine = BudgetPacingEngine(config)
    assert moves(engine, MULTI, TOTAL, EXPECTED) == expected_moves
    # Input order never matters.
    assert moves(engine, list(reversed(MULTI)), TOTAL, EXPECTED) == expected_moves


def test_reason_is_human_readable_with_the_numbers() -> None:
    (first, *_) = BudgetPacingEngine().propose_reallocations(MULTI, TOTAL, EXPECTED)
    assert first.reason == (
        "Move $4,000.00 from A to X: A is underpacing at -40.00% ($4,000.00 behind plan), "
        "X is overpacing at +30.00% ($4,500.00 ahead of plan)"
    )


@pytest.mark.parametrize(
    ("a_spend", "b_spend", "t_spend", "expected_moves"),
    [
        # Both 20 % under (2,000 each) against 5,000 over: same underspend, name order A then B.
        (8_000, 8_000, 15_000, [("A", "T", 2_000.0), ("B", "T", 2_000.0)]),
        # B further behind goes first and takes the target's whole 3,000 overspend.
        (8_000, 6_000, 13_000, [("B", "T", 3_000.0)]),
    ],
)
def test_sources_go_largest_underspend_first_then_by_name(
    a_spend: float, b_spend: float, t_spend: float, expected_moves: list[tuple[str, str, float]]
) -> None:
    channels = [channel("B", 20_000, b_spend), channel("A", 20_000, a_spend), channel("T", 20_000, t_spend)]
    # Total 60,000, expected 30,000 -> each expects 10,000.
    assert moves(BudgetPacingEngine(), channels, 60_000, 30_000) == expected_moves


def test_targets_go_largest_overspend_first() -> None:
    channels = [channel("S", 20_000, 5_000), channel("P", 20_000, 12_000), channel("Q", 20_000, 13_000)]
    # Each expects 10,000: S 5,000 under; Q 3,000 over first, then P 2,000 over.
    assert moves(BudgetPacingEngine(), channels, 60_000, 30_000) == [("S", "Q", 3_000.0), ("S", "P", 2_000.0)]


@pytest.mark.parametrize(
    ("channels", "total", "expected"),
    [
        ([channel("S", 50_000, 22_500), channel("T", 50_000, 27_500)], TOTAL, EXPECTED),  # exactly -10 % / +10 %
        ([channel("S", 50_000, 10_000)], TOTAL, EXPECTED),  # a source but no target
        ([channel("T", 50_000, 40_000)], TOTAL, EXPECTED),  # a target but no source
        ([channel("S", 0, 0), channel("T", 0, 0)], 0.0, 0.0),  # zero total budget
        ([], TOTAL, EXPECTED),
    ],
    ids=["exact-warning-bands", "no-target", "no-source", "zero-budget", "no-channels"],
)
def test_no_proposals(channels: list[ChannelSnapshot], total: float, expected: float) -> None:
    assert BudgetPacingEngine().propose_reallocations(channels, total, expected) == []


def test_unbudgeted_channel_that_spends_is_not_a_target() -> None:
    # S expects 50,000 * 50,000 / 100,000 = 25,000 and spent 10,000 (15,000 under);
    # T has no budget (expects 0) and spent 2,000: unplanned spend, not a target for more budget (#16).
    # U is a real target beside it.
    channels = [channel("S", 50_000, 10_000), channel("T", 0, 2_000), channel("U", 50_000, 30_000)]
    assert moves(BudgetPacingEngine(), channels, TOTAL, EXPECTED) == [("S", "U", 5_000.0)]
    assert moves(BudgetPacingEngine(), channels[:2], TOTAL, EXPECTED) == []


def test_duplicate_channels_and_negative_inputs_are_rejected() -> None:
    engine = BudgetPacingEngine()
    with pytest.raises(ValueError, match="duplicate"):
        engine.propose_reallocations([channel("S", 1, 1), channel("S", 1, 1)], 2, 1)
    with pytest.raises(ValueError, match="total_budget"):
        engine.propose_reallocations([], -1, 1)
    with pytest.raises(ValueError, match="expected_spend"):
        engine.propose_reallocations([], 1, -1)
    with pytest.raises(ValueError, match="spend"):
        channel("S", 1, -1)


# -- property: totals are never exceeded --------------------------------------------------------

cents = st.integers(min_value=0, max_value=5_000_000).map(lambda c: c / 100)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[PacingConfig, list[ChannelSnapshot], float, float]:
    names = draw(st.lists(st.sampled_from("ABCDEFGH"), min_size=0, max_size=8, unique=True))
    channels = [channel(n, draw(cents), draw(cents)) for n in names]
    total = sum(c.allocated_budget for c in channels) + draw(cents)
    expected = round(total * draw(st.floats(min_value=0.0, max_value=1.0)), 2)
    config = PacingConfig(
        min_reallocation_amount=draw(st.sampled_from([0.0, 0.01, 100.0, 2_500.0])),
        max_reallocation_pct=draw(st.sampled_from([0.0, 1.0, 10.0, 30.0, 100.0])),
    )
    return config, channels, total, expected


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_proposals_never_exceed_underspend_overspend_or_cap(
    scenario: tuple[PacingConfig, list[ChannelSnapshot], float, float], rnd: random.Random
) -> None:
    config, channels, total, expected = scenario
    engine = BudgetPacingEngine(config)
    proposals = engine.propose_reallocations(channels, total, expected)

    def cents_of(x: float) -> int:
        return round(x * 100)

    under: dict[str, int] = {}
    over: dict[str, int] = {}
    for c in channels:
        ch_expected = round2(expected * (c.allocated_budget / total)) if total else 0.0
        deviation = engine.calculate_deviation_pct(c.spend, ch_expected)
        if deviation < -config.underpacing_warning_pct:
            under[c.channel] = cents_of(ch_expected) - cents_of(c.spend)
        elif deviation > config.overpacing_warning_pct:
            over[c.channel] = cents_of(c.spend) - cents_of(ch_expected)

    given_out: dict[str, int] = defaultdict(int)
    taken_in: dict[str, int] = defaultdict(int)
    cap = total * config.max_reallocation_pct / 100
    for p in proposals:
        assert p.source_channel in under and p.target_channel in over
        assert p.amount == round(p.amount, 2)
        assert config.min_reallocation_amount <= p.amount
        assert 0 < p.amount <= cap + 1e-9
        given_out[p.source_channel] += cents_of(p.amount)
        taken_in[p.target_channel] += cents_of(p.amount)
    for name, total_out in given_out.items():
        assert total_out <= under[name]
    for name, total_in in taken_in.items():
        assert total_in <= over[name]
    # Each pair appears at most once, and the result does not depend on input order.
    assert len({(p.source_channel, p.target_channel) for p in proposals}) == len(proposals)
    shuffled = list(channels)
    rnd.shuffle(shuffled)
    assert engine.propose_reallocations(shuffled, total, expected) == proposals


def test_greedy_moves_as_much_as_possible_when_uncapped() -> None:
    # With no cap and no minimum the greedy pass moves min(total underspend, total overspend).
    engine = BudgetPacingEngine(PacingConfig(min_reallocation_amount=0, max_reallocation_pct=100))
    proposals = engine.propose_reallocations(MULTI, TOTAL, EXPECTED)
    assert round(sum(p.amount for p in proposals), 2) == min(4_000 + 3_000, 4_500 + 2_000)
    assert len(list(itertools.groupby(p.source_channel for p in proposals))) == 2
