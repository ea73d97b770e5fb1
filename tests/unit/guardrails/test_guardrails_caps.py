"""Spend caps on worst-case exposure: overdelivery factors, FX to EUR cents, pool allocations, boundaries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from allot.contracts.payloads import AllocationRequested, BudgetAction
from allot.guardrails.domain import Decision, LedgerFacts, WorkspaceLimits, decide

NOW = datetime(2026, 5, 18, 12, 0, tzinfo=UTC)


def act(
    entity: str = "as-1",
    frm: int | None = 10_000,
    to: int | None = 11_000,
    *,
    kind: str = "set_budget",
    platform: str = "meta",
    currency: str = "EUR",
) -> BudgetAction:
    return BudgetAction.model_validate({
        "action_id": uuid.uuid5(uuid.NAMESPACE_URL, f"{entity}/{kind}/{frm}/{to}"),
        "platform": platform, "ad_account_id": "act-1", "entity_type": "adset", "entity_id": entity,
        "action_type": kind, "currency": currency, "from_cents": frm, "to_cents": to,
    })


def req(*actions: BudgetAction, **overrides: Any) -> AllocationRequested:
    fields: dict[str, Any] = {
        "request_id": uuid.uuid5(uuid.NAMESPACE_URL, "req"), "source": "rule", "source_id": "r-1",
        "idempotency_key": "k-1", "actions": list(actions) or [act()],
    }
    return AllocationRequested.model_validate({**fields, **overrides})


def pool_req(*actions: BudgetAction, budget: int = 50_000, currency: str | None = "EUR") -> AllocationRequested:
    return req(
        *(actions or (act("as-1", 10_000, 9_000), act("as-2", 10_000, 11_000))),
        source="pool", source_id="p-1", pool_daily_budget_cents=budget, currency=currency,
    )


def run(request: AllocationRequested, limits: WorkspaceLimits | None = None, **facts: Any) -> Decision:
    return decide(request, limits or WorkspaceLimits(), LedgerFacts(**facts), now=NOW)


# ------------------------------------------------------------------ boundaries


@pytest.mark.parametrize(("cap", "ok"), [(11_750, True), (11_751, True), (11_749, False)])
def test_daily_cap_exactly_at_the_cap_passes_one_cent_over_blocks(cap: int, ok: bool) -> None:
    decision = run(req(act(frm=10_000, to=11_000)), WorkspaceLimits(daily_cap_eur_cents=cap),
                   today_exposure_eur_cents=10_000, month_exposure_eur_cents=10_000)
    assert decision.approved is ok
    if ok:
        assert decision.ledger.eur_cents == 1_750
        assert decision.details["today_after_eur_cents"] == 11_750
    else:
        assert decision.check == "daily_cap"
        assert decision.details == {"counted_eur_cents": 10_000, "new_exposure_eur_cents": 1_750,
                                    "after_eur_cents": 11_750, "cap_eur_cents": 11_749, "over_by_eur_cents": 1}
        assert "11750" in decision.reason and "11749" in decision.reason
        assert decision.ledger.eur_cents == 0


@pytest.mark.parametrize(("cap", "ok"), [(501_750, True), (501_749, False)])
def test_monthly_cap_exactly_at_the_cap_passes_one_cent_over_blocks(cap: int, ok: bool) -> None:
    decision = run(req(), WorkspaceLimits(daily_cap_eur_cents=100_000, monthly_cap_eur_cents=cap),
                   today_exposure_eur_cents=10_000, month_exposure_eur_cents=500_000)
    assert decision.approved is ok
    if not ok:
        assert decision.check == "monthly_cap" and decision.details["over_by_eur_cents"] == 1


def test_daily_cap_is_checked_before_monthly() -> None:
    decision = run(req(), WorkspaceLimits(daily_cap_eur_cents=0, monthly_cap_eur_cents=0))
    assert decision.check == "daily_cap"


def test_without_caps_exposure_is_still_counted() -> None:
    decision = run(req(), today_exposure_eur_cents=10**9)
    assert decision.approved and decision.ledger.eur_cents == 1_750


# ------------------------------------------------------------------ overdelivery factors


@pytest.mark.parametrize(
    ("platform", "factors", "exposure"),
    [
        ("meta", None, 1_750),               # Meta: up to 75 % over the daily budget on a day
        ("google", None, 2_000),
        ("tiktok", None, 1_250),
        ("sandbox", None, 1_250),
        ("meta", {"meta": "1.25"}, 1_250),
        ("tiktok", {"tiktok": "1"}, 1_000),
        ("google", {"meta": "1.75"}, 2_000),
    ],
)
def test_exposure_is_the_increase_times_the_platform_overdelivery_factor(
    platform: str, factors: dict[str, str] | None, exposure: int
) -> None:
    limits = WorkspaceLimits(overdelivery_factors=factors) if factors else WorkspaceLimits()
    decision = run(req(act(frm=10_000, to=11_000, platform=platform)), limits)
    assert decision.exposure_eur_cents == exposure and decision.ledger.eur_cents == exposure


def test_google_factor_decides_the_cap_boundary() -> None:
    limits = WorkspaceLimits(daily_cap_eur_cents=2_000)
    assert run(req(act(platform="google")), limits).approved
    assert run(req(act(frm=10_000, to=11_001, platform="google")), limits).check == "daily_cap"   # 2002


def test_exposure_sums_rounded_per_action() -> None:
    sandbox = run(req(act("as-1", 10_000, 10_001, platform="sandbox"), act("as-2", 10_000, 10_002, platform="sandbox")))
    assert sandbox.exposure_eur_cents == 1 + 3       # 1.25 → 1, 2.5 → 3
    meta = run(req(act("as-1", 10_000, 10_001), act("as-2", 10_000, 10_003)))
    assert meta.exposure_eur_cents == 2 + 5          # 1.75 → 2, 5.25 → 5


# ------------------------------------------------------------------ FX


@pytest.mark.parametrize(
    ("currency", "rate", "platform", "frm", "to", "exposure"),
    [
        ("USD", "0.9234", "sandbox", 10_000, 11_000, 1_154),   # 1154.25 → 1154
        ("USD", "0.9236", "sandbox", 10_000, 11_000, 1_155),   # 1154.5 → 1155 (half up)
        ("USD", 923_600, "sandbox", 10_000, 11_000, 1_155),    # the same rate as a micro-rate
        ("USD", "0.9234", "meta", 10_000, 11_000, 1_616),      # 1000 × 1.75 × 0.9234 = 1615.95 → 1616
        ("GBP", "1.17", "google", 10_000, 10_500, 1_170),
        ("JPY", "0.0061", "google", 100_000, 110_000, 12_200),  # 10 000 yen × 2 × 0.0061 € = 122.00 €
    ],
)
def test_exposure_is_converted_to_eur_cents_half_up(
    currency: str, rate: object, platform: str, frm: int, to: int, exposure: int
) -> None:
    limits = WorkspaceLimits(fx_rates_to_eur={currency: rate})
    decision = run(req(act(frm=frm, to=to, platform=platform, currency=currency)), limits)
    assert decision.exposure_eur_cents == exposure


@pytest.mark.parametrize(("cap", "ok"), [(1_155, True), (1_154, False)])
def test_cap_boundary_after_fx_rounding(cap: int, ok: bool) -> None:
    limits = WorkspaceLimits(fx_rates_to_eur={"USD": "0.9236"}, daily_cap_eur_cents=cap)
    assert run(req(act(currency="USD", platform="sandbox")), limits).approved is ok


def test_missing_fx_rate_blocks_when_a_cap_is_set() -> None:
    decision = run(req(act(currency="USD")), WorkspaceLimits(monthly_cap_eur_cents=10**9))
    assert decision.check == "fx_rate_missing" and decision.details["currency"] == "USD"


def test_missing_fx_rate_without_caps_approves_and_says_it_was_not_counted() -> None:
    decision = run(req(act(currency="USD")))
    assert decision.approved and decision.ledger.eur_cents == 0
    assert any("no FX rate for USD" in n for n in decision.notes)


# ------------------------------------------------------------------ pool allocations


def test_pool_allocation_counts_the_pools_daily_budget_not_the_moves() -> None:
    decision = run(pool_req(budget=50_000))
    assert decision.approved
    assert decision.exposure_eur_cents == 87_500                     # 50 000 × 1.75, though the moves net to 0
    assert decision.ledger.eur_cents == 87_500 and decision.ledger.pool_id == "p-1"
    assert decision.details["exposure_basis"] == "pool_daily_budget"


@pytest.mark.parametrize(("cap", "ok"), [(87_500, True), (87_499, False)])
def test_pool_allocation_cap_boundary(cap: int, ok: bool) -> None:
    decision = run(pool_req(budget=50_000), WorkspaceLimits(daily_cap_eur_cents=cap))
    assert decision.approved is ok
    if not ok:
        assert decision.check == "daily_cap" and decision.details["new_exposure_eur_cents"] == 87_500


@pytest.mark.parametrize(("counted", "exposure"), [(0, 87_500), (85_000, 2_500), (87_500, 0), (95_000, 0)])
def test_pool_daily_budget_is_counted_once_per_day(counted: int, exposure: int) -> None:
    limits = WorkspaceLimits(daily_cap_eur_cents=100_000)
    decision = run(pool_req(budget=50_000), limits, today_exposure_eur_cents=100_000 - exposure,
                   pool_counted_today_eur_cents=counted)
    assert decision.approved and decision.ledger.eur_cents == exposure


def test_pool_spanning_platforms_uses_the_highest_factor() -> None:
    decision = run(pool_req(act("as-1", 10_000, 9_000), act("as-2", 10_000, 11_000, platform="google"), budget=50_000))
    assert decision.exposure_eur_cents == 100_000


def test_pool_budget_in_another_currency_is_converted() -> None:
    actions = (act("as-1", 10_000, 9_000, currency="USD"), act("as-2", 10_000, 11_000, currency="USD"))
    limits = WorkspaceLimits(fx_rates_to_eur={"USD": "0.9"})
    assert run(pool_req(*actions, budget=50_000, currency="USD"), limits).exposure_eur_cents == 78_750
    assert run(pool_req(*actions, budget=50_000, currency=None), limits).exposure_eur_cents == 78_750


def test_pool_budget_without_currency_and_mixed_actions_is_invalid() -> None:
    actions = (act("as-1", currency="USD"), act("as-2", currency="EUR"))
    decision = run(pool_req(*actions, currency=None), WorkspaceLimits(fx_rates_to_eur={"USD": "0.9"}))
    assert decision.check == "invalid_request"


def test_pool_budget_in_huf_on_meta_uses_metas_offset() -> None:
    actions = (act("as-1", 10_000, 9_000, currency="HUF"), act("as-2", 10_000, 11_000, currency="HUF"))
    limits = WorkspaceLimits(fx_rates_to_eur={"HUF": "0.0025"})
    # 50 000 on Meta is 50 000 HUF (offset 1) = 125 EUR, × 1.75 = 218.75 EUR; ISO would have said 2.19 EUR
    assert run(pool_req(*actions, budget=50_000, currency="HUF"), limits).exposure_eur_cents == 21_875


def test_pool_budget_whose_members_count_the_currency_differently_is_refused() -> None:
    actions = (act("as-1", 10_000, 9_000, currency="HUF"),
               act("as-2", 80_000, 88_000, currency="HUF", platform="sandbox"))
    limits = WorkspaceLimits(fx_rates_to_eur={"HUF": "0.0025"})
    decision = run(pool_req(*actions, budget=50_000, currency="HUF"), limits)
    assert decision.check == "currency_unknown" and decision.details["currency"] == "HUF"


def test_pool_without_a_daily_budget_counts_its_increases() -> None:
    request = req(act("as-1", 10_000, 9_000), act("as-2", 10_000, 11_000), source="pool", source_id="p-1")
    decision = run(request)
    assert decision.exposure_eur_cents == 1_750 and decision.ledger.pool_id is None


# ------------------------------------------------------------------ reductions and activations


@pytest.mark.parametrize(
    "action",
    [act(frm=10_000, to=9_000), act(frm=None, to=None, kind="pause"), act(frm=10_000, to=10_000)],
)
def test_reductions_and_pauses_are_never_blocked_by_caps(action: BudgetAction) -> None:
    limits = WorkspaceLimits(daily_cap_eur_cents=100_000, monthly_cap_eur_cents=100_000)
    decision = run(req(action), limits, today_exposure_eur_cents=200_000, month_exposure_eur_cents=200_000)
    assert decision.approved and decision.ledger.eur_cents == 0
    increase = run(req(act()), limits, today_exposure_eur_cents=200_000, month_exposure_eur_cents=200_000)
    assert increase.check == "daily_cap"


def test_activation_counts_its_whole_budget() -> None:
    decision = run(req(act(frm=None, to=5_000, kind="activate")), WorkspaceLimits(daily_cap_eur_cents=8_750))
    assert decision.approved and decision.exposure_eur_cents == 8_750
    over = run(req(act(frm=None, to=5_000, kind="activate")), WorkspaceLimits(daily_cap_eur_cents=8_749))
    assert over.check == "daily_cap"


def test_activation_without_a_budget_blocks_only_when_capped() -> None:
    capped = run(req(act(frm=None, to=None, kind="activate")), WorkspaceLimits(daily_cap_eur_cents=10**9))
    assert capped.check == "exposure_unknown"
    uncapped = run(req(act(frm=None, to=None, kind="activate")))
    assert uncapped.approved and uncapped.ledger.eur_cents == 0 and uncapped.notes


def test_relaunch_without_a_budget_adds_no_exposure() -> None:
    decision = run(req(act(frm=None, to=None, kind="relaunch")), WorkspaceLimits(daily_cap_eur_cents=0))
    assert decision.approved and decision.exposure_eur_cents == 0


def test_blocked_decisions_record_nothing() -> None:
    decision = run(req(act()), WorkspaceLimits(daily_cap_eur_cents=0))
    assert decision.ledger.eur_cents == 0 and decision.change_records == () and not decision.counts_toward_rate_limit
