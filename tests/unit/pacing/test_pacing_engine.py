"""Seed formulas, worked example, clamping, thresholds, deal pacing and snapshots."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from allot.pacing.domain import (
    SNAPSHOT_NAMESPACE,
    AlertLevel,
    BudgetPacingEngine,
    DealSnapshot,
    PacingConfig,
    PacingDirection,
    PacingInputError,
    ReallocationProposal,
    round2,
    snapshot_id_for,
)

START = datetime(2026, 7, 1, tzinfo=UTC)
END = datetime(2026, 9, 30, tzinfo=UTC)  # 31 (Jul) + 31 (Aug) + 29 (Sep) = 91 days
NOW = datetime(2026, 8, 15, tzinfo=UTC)  # 31 (Jul) + 14 (Aug) = 45 days elapsed

SEED_CHANNELS = {
    "CTV": {"allocated_budget": 75_000, "spend": 30_000, "impressions": 1_200_000},
    "DISPLAY": {"allocated_budget": 45_000, "spend": 28_000, "impressions": 2_800_000},
    "AUDIO": {"allocated_budget": 30_000, "spend": 10_000, "impressions": 600_000},
}
SEED_DEALS = [
    {"deal_id": "deal-001", "allocated_budget": 40_000, "spend": 16_000},
    {"deal_id": "deal-002", "allocated_budget": 35_000, "spend": 14_000},
]


@pytest.fixture
def engine() -> BudgetPacingEngine:
    return BudgetPacingEngine(config=PacingConfig())


# -- config --------------------------------------------------------------------------


def test_config_defaults_are_the_seeds() -> None:
    cfg = PacingConfig()
    assert (
        cfg.underpacing_warning_pct,
        cfg.underpacing_critical_pct,
        cfg.overpacing_warning_pct,
        cfg.overpacing_critical_pct,
        cfg.min_reallocation_amount,
        cfg.max_reallocation_pct,
    ) == (10.0, 25.0, 10.0, 25.0, 100.0, 30.0)
    assert BudgetPacingEngine().config == cfg


@pytest.mark.parametrize(
    "kwargs",
    [
        {"underpacing_warning_pct": -1.0},
        {"min_reallocation_amount": -0.01},
        {"max_reallocation_pct": 100.01},
        {"underpacing_warning_pct": 30.0, "underpacing_critical_pct": 20.0},
        {"overpacing_warning_pct": 30.0, "overpacing_critical_pct": 20.0},
        {"overpacing_critical_pct": math.nan},
    ],
)
def test_invalid_config_is_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PacingConfig(**kwargs)


@pytest.mark.parametrize(
    ("value", "rounded"),
    [(15.625, 15.63), (2.675, 2.68), (-2.675, -2.68), (578.125, 578.13), (10.004, 10.0), (-0.001, 0.0), (0.005, 0.01)],
)
def test_rounding_is_to_cents_with_halves_away_from_zero(value: float, rounded: float) -> None:
    result = round2(value)
    assert result == rounded
    assert str(result) != "-0.0"


# -- expected spend --------------------------------------------------------------------


def test_seed_expected_spend_follows_the_formula_not_the_prose(engine: BudgetPacingEngine) -> None:
    # 150,000 * 45 / 91 = 74,175.824... -> 74,175.82 (the seed's prose says ~73,770).
    assert engine.calculate_expected_spend(150_000.0, START, END, NOW) == 74_175.82


def test_expected_spend_counts_seconds_not_whole_days(engine: BudgetPacingEngine) -> None:
    # 45.5 of 91 days elapsed -> exactly half of 150,000; whole days would give 74,175.82.
    assert engine.calculate_expected_spend(150_000.0, START, END, NOW + timedelta(hours=12)) == 75_000.00
    # One second after start: 150,000 / (91 * 86,400) = 0.019... -> 0.02.
    assert engine.calculate_expected_spend(150_000.0, START, END, START + timedelta(seconds=1)) == 0.02


@pytest.mark.parametrize(
    ("current_time", "expected"),
    [
        (START - timedelta(days=30), 0.0),
        (START - timedelta(microseconds=1), 0.0),
        (START, 0.0),
        (END, 150_000.0),
        (END + timedelta(microseconds=1), 150_000.0),
        (END + timedelta(days=365), 150_000.0),
    ],
    ids=["month-before", "just-before", "at-start", "at-end", "just-after", "year-after"],
)
def test_expected_spend_is_clamped_to_the_flight(
    engine: BudgetPacingEngine, current_time: datetime, expected: float
) -> None:
    assert engine.calculate_expected_spend(150_000.0, START, END, current_time) == expected


@pytest.mark.parametrize(
    ("flight_end", "current_time", "expected"),
    [
        (START, START - timedelta(seconds=1), 0.0),
        (START, START, 1_000.0),
        (START, START + timedelta(seconds=1), 1_000.0),
        (START - timedelta(days=1), START - timedelta(seconds=1), 0.0),
        (START - timedelta(days=1), START, 1_000.0),
    ],
    ids=["zero-length-before", "zero-length-at", "zero-length-after", "inverted-before", "inverted-at"],
)
def test_degenerate_flight_is_fully_elapsed_from_its_start(
    engine: BudgetPacingEngine, flight_end: datetime, current_time: datetime, expected: float
) -> None:
    assert engine.calculate_expected_spend(1_000.0, START, flight_end, current_time) == expected


def test_zero_budget_expects_nothing(engine: BudgetPacingEngine) -> None:
    assert engine.calculate_expected_spend(0.0, START, END, NOW) == 0.0
    assert engine.calculate_expected_spend(0, START, END, END) == 0.0


@pytest.mark.parametrize("bad", [-0.01, -150_000.0, math.nan, math.inf])
def test_negative_or_non_finite_budget_is_rejected(engine: BudgetPacingEngine, bad: float) -> None:
    with pytest.raises(ValueError, match="total_budget"):
        engine.calculate_expected_spend(bad, START, END, NOW)


def test_naive_datetimes_are_rejected(engine: BudgetPacingEngine) -> None:
    with pytest.raises(PacingInputError, match="timezone-aware"):
        engine.calculate_expected_spend(1_000.0, START, END, datetime(2026, 8, 15))


def test_offsets_are_respected(engine: BudgetPacingEngine) -> None:
    # 2026-08-15T02:00+02:00 is the same instant as NOW.
    same_instant = datetime(2026, 8, 15, 2, tzinfo=timezone(timedelta(hours=2)))
    assert engine.calculate_expected_spend(150_000.0, START, END, same_instant) == 74_175.82


# -- pacing and deviation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actual", "expected", "pacing", "deviation"),
    [
        (68_000, 73_770, 92.18, -7.82),  # seed: 68,000 / 73,770 = 0.921784...
        (73_770, 73_770, 100.0, 0.0),
        (50_000, 73_770, 67.78, -32.22),  # 0.677782...
        (55_000, 50_000, 110.0, 10.0),  # float 110.00000000000001 rounds to exactly 10.00
        (1, 3, 33.33, -66.67),
        (0, 1_000, 0.0, -100.0),
    ],
)
def test_pacing_and_deviation_follow_the_seed_formulas(
    engine: BudgetPacingEngine, actual: float, expected: float, pacing: float, deviation: float
) -> None:
    assert engine.calculate_pacing_pct(actual, expected) == pacing
    assert engine.calculate_deviation_pct(actual, expected) == deviation


def test_nothing_spent_against_nothing_expected_is_on_pace(engine: BudgetPacingEngine) -> None:
    assert engine.calculate_pacing_pct(0, 0) == 100.0
    assert engine.calculate_deviation_pct(0, 0) == 0.0
    assert engine.detect_deviation(0, 0) is None


def test_spend_against_nothing_expected_is_critical_overpacing(engine: BudgetPacingEngine) -> None:
    # Measured against one cent: 5 / 0.01 * 100 = 50,000 %.
    assert engine.calculate_pacing_pct(5, 0) == 50_000.0
    assert engine.calculate_deviation_pct(5, 0) == 49_900.0
    alert = engine.detect_deviation(5, 0)
    assert alert is not None
    assert (alert.level, alert.direction) == (AlertLevel.CRITICAL, PacingDirection.OVERPACING)


@pytest.mark.parametrize(("actual", "expected"), [(-1, 100), (100, -1), (math.nan, 100), (100, math.inf)])
def test_negative_or_non_finite_spend_is_rejected(engine: BudgetPacingEngine, actual: float, expected: float) -> None:
    with pytest.raises(ValueError, match="spend"):
        engine.calculate_pacing_pct(actual, expected)
    with pytest.raises(ValueError, match="spend"):
        engine.detect_deviation(actual, expected)


# -- deviation detection ------------------------------------------------------------------


def test_seed_alert_example_is_critical_not_warning(engine: BudgetPacingEngine) -> None:
    # 50,000 / 73,770 - 1 = -32.22 % < -25 % -> critical (the seed's prose says "warning").
    alert = engine.detect_deviation(actual_spend=50_000, expected_spend=73_770)
    assert alert is not None
    assert alert.level == "critical"
    assert alert.direction == "underpacing"
    assert alert.deviation_pct == -32.22
    assert alert.message == "Critical underpacing: -32.2% deviation (threshold: -25.0%)"


def test_seed_small_deviation_raises_nothing(engine: BudgetPacingEngine) -> None:
    assert engine.detect_deviation(68_000, 73_770) is None


@pytest.mark.parametrize(
    ("actual", "level", "direction", "deviation"),
    [
        # expected is 50,000 throughout: 1 % = 500, 0.01 % = 5.
        (50_000, None, None, 0.0),
        (55_000, None, None, 10.0),  # exactly +10.00: thresholds are exclusive
        (55_002, None, None, 10.0),  # raw +10.004 rounds to +10.00: compared after rounding
        (55_003, "warning", "overpacing", 10.01),  # raw +10.006 rounds to +10.01
        (55_005, "warning", "overpacing", 10.01),
        (62_500, "warning", "overpacing", 25.0),  # exactly +25.00 is still a warning
        (62_505, "critical", "overpacing", 25.01),
        (45_000, None, None, -10.0),
        (44_998, None, None, -10.0),  # raw -10.004
        (44_995, "warning", "underpacing", -10.01),
        (37_500, "warning", "underpacing", -25.0),
        (37_495, "critical", "underpacing", -25.01),
        (0, "critical", "underpacing", -100.0),
    ],
)
def test_thresholds_are_exclusive_on_the_rounded_deviation(
    engine: BudgetPacingEngine, actual: float, level: str | None, direction: str | None, deviation: float
) -> None:
    alert = engine.detect_deviation(actual, 50_000)
    if level is None:
        assert alert is None
        assert engine.calculate_deviation_pct(actual, 50_000) == deviation
    else:
        assert alert is not None
        assert (alert.level, alert.direction, alert.deviation_pct) == (level, direction, deviation)


@pytest.mark.parametrize(
    ("actual", "message"),
    [
        (62_505, "Critical overpacing: +25.01% deviation (threshold: +25.0%)"),
        (60_000, "Warning overpacing: +20.0% deviation (threshold: +10.0%)"),
        (40_000, "Warning underpacing: -20.0% deviation (threshold: -10.0%)"),
        (37_495, "Critical underpacing: -25.01% deviation (threshold: -25.0%)"),
    ],
)
def test_alert_messages_show_why_the_threshold_was_crossed(
    engine: BudgetPacingEngine, actual: float, message: str
) -> None:
    alert = engine.detect_deviation(actual, 50_000)
    assert alert is not None
    assert alert.message == message


@pytest.mark.parametrize(
    ("actual", "level", "direction"),
    [
        (47_500, None, None),  # -5.00: not below -5 (exclusive)
        (47_495, "warning", "underpacing"),  # -5.01
        (42_500, "warning", "underpacing"),  # -15.00
        (42_495, "critical", "underpacing"),  # -15.01
        (60_000, None, None),  # +20.00
        (60_005, "warning", "overpacing"),  # +20.01
        (70_000, "warning", "overpacing"),  # +40.00
        (70_005, "critical", "overpacing"),  # +40.01
    ],
)
def test_thresholds_come_from_the_config(actual: float, level: str | None, direction: str | None) -> None:
    engine = BudgetPacingEngine(
        PacingConfig(
            underpacing_warning_pct=5.0,
            underpacing_critical_pct=15.0,
            overpacing_warning_pct=20.0,
            overpacing_critical_pct=40.0,
        )
    )
    alert = engine.detect_deviation(actual, 50_000)
    assert (alert.level if alert else None, alert.direction if alert else None) == (level, direction)


# -- deals ---------------------------------------------------------------------------------


def test_seed_deal_pacing(engine: BudgetPacingEngine) -> None:
    deal = DealSnapshot(
        deal_id="deal-001", allocated_budget=40_000, spend=16_000, impressions=640_000, effective_cpm=25.0
    )
    result = engine.calculate_deal_pacing(deal_snapshot=deal, flight_start=START, flight_end=END, current_time=NOW)
    # expected = 40,000 * 45 / 91 = 19,780.2198 -> 19,780.22; 16,000 / 19,780.22 = 0.808889 -> 80.89 %.
    assert {k: v for k, v in result.items() if k != "alert"} == {
        "deal_id": "deal-001",
        "pacing_pct": 80.89,
        "expected_spend": 19_780.22,
        "actual_spend": 16_000.0,
        "deviation_pct": -19.11,
    }
    alert = result["alert"]
    assert alert is not None
    assert alert.message == "Warning underpacing: -19.1% deviation (threshold: -10.0%)"


@pytest.mark.parametrize(
    ("budget", "spend", "current_time", "pacing", "alert_level"),
    [
        (40_000, 16_000, START - timedelta(days=1), 160_000_000.0, "critical"),  # 16,000 / 0.01 * 100
        (40_000, 0, START - timedelta(days=1), 100.0, None),
        (40_000, 40_000, END, 100.0, None),
        (0, 0, NOW, 100.0, None),
    ],
    ids=["spend-before-start", "idle-before-start", "fully-spent-at-end", "zero-budget"],
)
def test_deal_pacing_edges(
    engine: BudgetPacingEngine,
    budget: float,
    spend: float,
    current_time: datetime,
    pacing: float,
    alert_level: str | None,
) -> None:
    result = engine.calculate_deal_pacing(DealSnapshot("d", budget, spend), START, END, current_time)
    assert result["pacing_pct"] == pacing
    alert = result["alert"]
    assert (alert.level if alert else None) == alert_level


def test_deal_snapshot_rejects_negative_money() -> None:
    with pytest.raises(ValueError, match="allocated_budget"):
        DealSnapshot(deal_id="d", allocated_budget=-1, spend=0)
    with pytest.raises(ValueError, match="spend"):
        DealSnapshot(deal_id="d", allocated_budget=1, spend=-1)
    with pytest.raises(ValueError, match="win_rate"):
        DealSnapshot(deal_id="d", allocated_budget=1, spend=1, win_rate=1.5)


# -- snapshot: the seed's whole worked example ------------------------------------------------


def test_seed_worked_example_snapshot(engine: BudgetPacingEngine) -> None:
    snapshot = engine.generate_snapshot(
        campaign_id="campaign-abc",
        total_budget=150_000.0,
        flight_start=START,
        flight_end=END,
        current_time=NOW,
        channel_data=SEED_CHANNELS,
        deal_data=SEED_DEALS,
    )
    # Campaign: expected 150,000 * 45/91 = 74,175.82; spend 30,000 + 28,000 + 10,000 = 68,000;
    # 68,000 / 74,175.82 = 0.916741 -> 91.67 %, deviation -8.33 %: inside the +/-10 % band.
    assert snapshot.campaign_id == "campaign-abc"
    assert snapshot.timestamp == NOW
    assert snapshot.total_budget == 150_000.0
    assert snapshot.total_spend == 68_000.0
    assert snapshot.expected_spend == 74_175.82
    assert snapshot.pacing_pct == 91.67
    assert snapshot.deviation_pct == -8.33
    assert snapshot.alert is None

    # Channels, expected = 74,175.82 * budget / 150,000; CPM = spend / impressions * 1,000:
    #   CTV     75,000 -> 37,087.91; 30,000 / 37,087.91 = 0.808889 -> 80.89 %, -19.11 (warning);  CPM 25.00
    #   DISPLAY 45,000 -> 22,252.75; 28,000 / 22,252.75 = 1.258271 -> 125.83 %, +25.83 (critical); CPM 10.00
    #   AUDIO   30,000 -> 14,835.16; 10,000 / 14,835.16 = 0.674074 -> 67.41 %, -32.59 (critical); CPM 16.67
    rows = [
        (
            c.channel,
            c.expected_spend,
            c.pacing_pct,
            c.deviation_pct,
            c.effective_cpm,
            c.impressions,
            c.alert.level if c.alert else None,
        )
        for c in snapshot.channel_snapshots
    ]
    assert rows == [
        ("CTV", 37_087.91, 80.89, -19.11, 25.0, 1_200_000, "warning"),
        ("DISPLAY", 22_252.75, 125.83, 25.83, 10.0, 2_800_000, "critical"),
        ("AUDIO", 14_835.16, 67.41, -32.59, 16.67, 600_000, "critical"),
    ]

    # Sources: CTV underspends 37,087.91 - 30,000 = 7,087.91, AUDIO 14,835.16 - 10,000 = 4,835.16.
    # Target: DISPLAY overspends 28,000 - 22,252.75 = 5,747.25.  Cap: 30 % of 150,000 = 45,000.
    # CTV -> DISPLAY = min(7,087.91, 5,747.25, 45,000) = 5,747.25, which uses up DISPLAY's overspend,
    # so AUDIO -> DISPLAY would be 0 and is not proposed.
    assert [(r.source_channel, r.target_channel, r.amount) for r in snapshot.recommendations] == [
        ("CTV", "DISPLAY", 5_747.25)
    ]
    assert snapshot.recommendations[0].reason == (
        "Move $5,747.25 from CTV to DISPLAY: CTV is underpacing at -19.11% ($7,087.91 behind plan), "
        "DISPLAY is overpacing at +25.83% ($5,747.25 ahead of plan)"
    )

    # Deals over the same flight: 40,000 * 45/91 = 19,780.22 and 35,000 * 45/91 = 17,307.69;
    # both spent 40 % of budget against 49.45 % expected -> 80.89 %, -19.11 % (warning).
    deals = [
        (d.deal_id, d.expected_spend, d.pacing_pct, d.deviation_pct, d.alert.level if d.alert else None)
        for d in snapshot.deal_snapshots
    ]
    assert deals == [
        ("deal-001", 19_780.22, 80.89, -19.11, "warning"),
        ("deal-002", 17_307.69, 80.89, -19.11, "warning"),
    ]


def test_snapshot_id_is_deterministic_uuid5_of_campaign_and_timestamp(engine: BudgetPacingEngine) -> None:
    def snap(campaign_id: str, current_time: datetime, snapshot_id: str | None = None) -> str:
        return engine.generate_snapshot(
            campaign_id, 150_000.0, START, END, current_time, SEED_CHANNELS, SEED_DEALS, snapshot_id=snapshot_id
        ).snapshot_id

    expected = str(uuid.uuid5(SNAPSHOT_NAMESPACE, "campaign-abc@2026-08-15T00:00:00+00:00"))
    assert snap("campaign-abc", NOW) == expected == snapshot_id_for("campaign-abc", NOW)
    assert snap("campaign-abc", NOW) == snap("campaign-abc", NOW)
    assert snap("campaign-abc", NOW.astimezone(timezone(timedelta(hours=-5)))) == expected
    assert snap("campaign-xyz", NOW) != expected
    assert snap("campaign-abc", NOW + timedelta(seconds=1)) != expected
    assert snap("campaign-abc", NOW, snapshot_id="given") == "given"


def test_snapshot_alert_reflects_the_campaign_deviation(engine: BudgetPacingEngine) -> None:
    snapshot = engine.generate_snapshot(
        "c",
        100_000.0,
        START,
        END,
        NOW,
        {"CTV": {"allocated_budget": 100_000, "spend": 20_000}},
        [],
    )
    # 100,000 * 45/91 = 49,450.55; 20,000 / 49,450.55 = 0.404444 -> -59.56 %.
    assert snapshot.deviation_pct == -59.56
    assert snapshot.alert is not None
    assert snapshot.alert.level == AlertLevel.CRITICAL


def test_snapshot_accepts_deal_snapshots_and_derives_cpm(engine: BudgetPacingEngine) -> None:
    snapshot = engine.generate_snapshot(
        "c",
        100_000.0,
        START,
        END,
        NOW,
        {},
        [
            DealSnapshot(
                deal_id="a", allocated_budget=1_000, spend=500, impressions=10, effective_cpm=99.0, win_rate=0.4
            ),
            {"deal_id": "b", "allocated_budget": 1_000, "spend": 300, "impressions": 20_000, "win_rate": 0.25},
        ],
    )
    a, b = snapshot.deal_snapshots
    assert (a.effective_cpm, a.win_rate) == (99.0, 0.4)  # given values are kept
    assert (b.effective_cpm, b.win_rate) == (15.0, 0.25)  # 300 / 20,000 * 1,000
    assert snapshot.total_spend == 0.0  # no channels: campaign spend is channel spend
    assert snapshot.recommendations == ()


@pytest.mark.parametrize(
    ("channels", "deals", "match"),
    [
        ({"CTV": {"spend": 1}}, [], "allocated_budget"),
        ({"CTV": {"allocated_budget": 1, "spend": -1}}, [], "spend"),
        ({"CTV": {"allocated_budget": 1, "spend": "1"}}, [], "number"),
        ({"CTV": {"allocated_budget": 1, "spend": 1, "impressions": -3}}, [], "impressions"),
        ({"CTV": {"allocated_budget": 1, "spend": 1, "fill_rate": 2.0}}, [], "fill_rate"),
        ({}, [{"allocated_budget": 1, "spend": 1}], "deal_id"),
        ({}, [{"deal_id": "a", "allocated_budget": 1, "spend": 1}] * 2, "duplicate"),
    ],
)
def test_snapshot_rejects_bad_input(
    engine: BudgetPacingEngine, channels: dict[str, dict[str, object]], deals: list[dict[str, object]], match: str
) -> None:
    with pytest.raises(PacingInputError, match=match):
        engine.generate_snapshot("c", 100.0, START, END, NOW, channels, deals)


def test_snapshot_rejects_negative_total_budget(engine: BudgetPacingEngine) -> None:
    with pytest.raises(ValueError, match="total_budget must not be negative"):
        engine.generate_snapshot("c", -1.0, START, END, NOW, {}, [])


def test_recommendations_are_reallocation_proposals(engine: BudgetPacingEngine) -> None:
    snapshot = engine.generate_snapshot("campaign-abc", 150_000.0, START, END, NOW, SEED_CHANNELS, SEED_DEALS)
    assert all(isinstance(r, ReallocationProposal) for r in snapshot.recommendations)
    # propose_reallocations over the snapshot's own channels gives the same answer.
    assert list(snapshot.recommendations) == engine.propose_reallocations(
        snapshot.channel_snapshots, 150_000.0, snapshot.expected_spend
    )
