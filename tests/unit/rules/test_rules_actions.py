"""Budget planning: absolute cents, change limit, daily cap, platform minimums, status actions."""

from __future__ import annotations

from typing import Any

import pytest

from allot.rules.domain import (
    ActionSkip,
    BudgetPlan,
    Clamp,
    Entity,
    PlannedAction,
    Protections,
    SkipReason,
    plan_action,
    plan_budget_change,
    platform_min_daily_budget_cents,
)
from allot.rules.domain.models import (
    ActivateAction,
    DecreaseBudgetAction,
    IncreaseBudgetAction,
    NotifyOnlyAction,
    PauseAction,
    RelaunchAction,
)


def change(direction: Any = "increase", from_cents: int = 10_000, pct: float = 20, limit: float = 100,
           cap: int | None = None, minimum: int = 200) -> BudgetPlan | tuple[SkipReason, str]:
    return plan_budget_change(direction=direction, from_cents=from_cents, pct=pct, change_limit_pct=limit,
                              daily_cap_cents=cap, minimum_cents=minimum)


def plan(**kw: Any) -> BudgetPlan:
    result = change(**kw)
    assert isinstance(result, BudgetPlan), result
    return result


def skip(**kw: Any) -> SkipReason:
    result = change(**kw)
    assert isinstance(result, tuple), result
    return result[0]


@pytest.mark.parametrize(
    ("direction", "from_cents", "pct", "to_cents"),
    [
        ("increase", 10_000, 20, 12_000),
        ("decrease", 10_000, 20, 8_000),
        ("increase", 1_005, 10, 1_106),  # 1105.5 → 1106 (even)
        ("increase", 1_015, 10, 1_116),  # 1116.5 → 1116 (even)
        ("increase", 1_025, 2, 1_046),  # 1045.5 → 1046 (even)
        ("increase", 1_075, 2, 1_096),  # 1096.5 → 1096 (even)
        ("decrease", 1_025, 2, 1_004),  # 1004.5 → 1004 (even)
        ("increase", 333, 33.3, 444),  # 443.889 → 444
    ],
)
def test_budget_changes_are_absolute_cents_rounded_half_even(
    direction: Any, from_cents: int, pct: float, to_cents: int
) -> None:
    result = plan(direction=direction, from_cents=from_cents, pct=pct)
    assert (result.from_cents, result.to_cents, result.clamps) == (from_cents, to_cents, ())
    assert isinstance(result.to_cents, int)


def test_change_is_clamped_to_the_limit_and_recorded() -> None:
    result = plan(pct=50, limit=20)
    assert result.to_cents == 12_000
    assert result.applied_pct == 20.0
    assert result.clamps == (Clamp.BUDGET_CHANGE_LIMIT,)
    down = plan(direction="decrease", pct=50, limit=20)
    assert (down.to_cents, down.clamps) == (8_000, (Clamp.BUDGET_CHANGE_LIMIT,))


def test_change_at_exactly_the_limit_is_not_clamped() -> None:
    assert plan(pct=20, limit=20).clamps == ()


def test_rounding_never_pushes_a_change_past_the_limit() -> None:
    # 1 003 × 1.2 = 1 203.6 → half-even 1 204 would be +20.04 %; the limit keeps it at 1 203.
    result = plan(from_cents=1_003, pct=20, limit=20)
    assert result.to_cents == 1_203
    assert (result.to_cents - 1_003) * 100 <= 20 * 1_003
    down = plan(direction="decrease", from_cents=1_003, pct=20, limit=20)
    assert down.to_cents == 803  # 802.4 → 802 would be −20.04 %


def test_increase_is_clamped_to_the_daily_cap() -> None:
    result = plan(pct=20, cap=11_000)
    assert (result.to_cents, result.clamps) == (11_000, (Clamp.BUDGET_DAILY_CAP,))


def test_limit_and_cap_clamps_are_both_recorded() -> None:
    result = plan(pct=80, limit=30, cap=12_000)
    assert (result.to_cents, result.clamps) == (12_000, (Clamp.BUDGET_CHANGE_LIMIT, Clamp.BUDGET_DAILY_CAP))


@pytest.mark.parametrize("from_cents", [11_000, 11_001])
def test_increase_at_or_above_the_cap_is_skipped(from_cents: int) -> None:
    assert skip(from_cents=from_cents, cap=11_000) is SkipReason.AT_DAILY_CAP


def test_increase_just_below_the_cap_reaches_it() -> None:
    assert plan(from_cents=10_999, cap=11_000).to_cents == 11_000


def test_decrease_ignores_the_cap() -> None:
    assert plan(direction="decrease", from_cents=50_000, cap=11_000).to_cents == 40_000


def test_decrease_is_clamped_to_the_platform_minimum() -> None:
    result = plan(direction="decrease", from_cents=220, pct=20, minimum=200)
    assert (result.to_cents, result.clamps) == (200, (Clamp.PLATFORM_MINIMUM,))


@pytest.mark.parametrize("from_cents", [200, 150])
def test_decrease_at_or_below_the_minimum_is_skipped(from_cents: int) -> None:
    assert skip(direction="decrease", from_cents=from_cents, minimum=200) is SkipReason.AT_PLATFORM_MINIMUM


def test_decrease_of_100_pct_stops_at_the_minimum() -> None:
    assert plan(direction="decrease", pct=100, minimum=200).to_cents == 200


def test_change_that_rounds_to_nothing_is_skipped() -> None:
    assert skip(from_cents=3, pct=10) is SkipReason.NO_BUDGET_CHANGE


@pytest.mark.parametrize(
    ("platform", "level", "minimum"),
    [
        ("google", "campaign", 100), ("google", "adset", 100),
        ("tiktok", "campaign", 5000), ("tiktok", "adset", 2000), ("tiktok", "ad", 2000),
        ("meta", "adset", 200), ("meta", "campaign", 200), ("sandbox", "adset", 200), ("snapchat", "campaign", 200),
    ],
)
def test_platform_minimums(platform: str, level: str, minimum: int) -> None:
    assert platform_min_daily_budget_cents(platform, level, "USD") == minimum


@pytest.mark.parametrize(("currency", "minimum"), [("EUR", 200), ("USD", 200), ("JPY", 300), ("HUF", 700)])
def test_meta_minimum_is_in_the_account_currency(currency: str, minimum: int) -> None:
    assert platform_min_daily_budget_cents("meta", "adset", currency) == minimum


def test_decrease_stops_at_the_minimum_of_the_entity_currency() -> None:
    jpy = Entity("e1", "adset", "meta", "act", "name", "active", "JPY", 320)  # type: ignore[arg-type]
    planned = plan_action(DecreaseBudgetAction(type="decrease_budget_pct", pct=20), jpy, LIMITS)
    assert isinstance(planned, PlannedAction)
    assert (planned.to_cents, planned.clamps) == (300, (Clamp.PLATFORM_MINIMUM,))


def test_unknown_currency_is_skipped_with_a_reason() -> None:
    # Kuwaiti dinar: a real ISO currency that Meta's currency table does not list
    odd = Entity("e1", "adset", "meta", "act", "name", "active", "KWD", 10_000)  # type: ignore[arg-type]
    skipped = plan_action(DecreaseBudgetAction(type="decrease_budget_pct", pct=10), odd, LIMITS)
    assert isinstance(skipped, ActionSkip)
    assert skipped.reason is SkipReason.UNKNOWN_CURRENCY


def entity(platform: str = "meta", level: str = "adset", budget: int | None = 10_000, status: str = "active") -> Entity:
    return Entity("e1", level, platform, "act", "name", status, "EUR", budget)  # type: ignore[arg-type]


LIMITS = Protections(budget_change_limit_pct=20, budget_daily_cap_cents=11_000)


def test_plan_action_increase_is_absolute_and_clamped() -> None:
    result = plan_action(IncreaseBudgetAction(type="increase_budget_pct", pct=50), entity(), LIMITS)
    assert isinstance(result, PlannedAction)
    assert (result.from_cents, result.to_cents, result.currency) == (10_000, 11_000, "EUR")
    assert result.requested_pct == 50
    assert result.clamps == (Clamp.BUDGET_CHANGE_LIMIT, Clamp.BUDGET_DAILY_CAP)


@pytest.mark.parametrize(("platform", "level", "from_cents", "to_cents"),
                         [("tiktok", "campaign", 5_500, 5_000), ("tiktok", "adset", 2_400, 2_000),
                          ("google", "campaign", 110, 100), ("meta", "adset", 240, 200)])
def test_plan_action_decrease_respects_platform_minimum(
    platform: str, level: str, from_cents: int, to_cents: int
) -> None:
    result = plan_action(DecreaseBudgetAction(type="decrease_budget_pct", pct=20), entity(platform, level, from_cents),
                         Protections())
    assert isinstance(result, PlannedAction)
    assert (result.from_cents, result.to_cents) == (from_cents, to_cents)
    assert Clamp.PLATFORM_MINIMUM in result.clamps


def test_plan_action_decrease_at_tiktok_campaign_minimum_is_skipped() -> None:
    result = plan_action(DecreaseBudgetAction(type="decrease_budget_pct", pct=20), entity("tiktok", "campaign", 5_000),
                         Protections())
    assert isinstance(result, ActionSkip) and result.reason is SkipReason.AT_PLATFORM_MINIMUM


def test_budget_action_without_a_budget_is_skipped() -> None:
    result = plan_action(IncreaseBudgetAction(type="increase_budget_pct", pct=10), entity(budget=None), Protections())
    assert isinstance(result, ActionSkip) and result.reason is SkipReason.NO_DAILY_BUDGET


@pytest.mark.parametrize("platform", ["google", "tiktok", "sandbox"])
def test_relaunch_on_non_meta_entity_is_skipped(platform: str) -> None:
    result = plan_action(RelaunchAction(type="relaunch"), entity(platform, "ad"), Protections())
    assert isinstance(result, ActionSkip)
    assert result.reason is SkipReason.ACTION_NOT_SUPPORTED_ON_PLATFORM
    assert "Meta-only" in result.detail


def test_relaunch_on_meta_entity_is_planned() -> None:
    result = plan_action(RelaunchAction(type="relaunch", creative_id="cr"), entity("meta", "ad"), Protections())
    assert isinstance(result, PlannedAction) and result.creative_id == "cr"


@pytest.mark.parametrize(
    ("action", "status", "planned"),
    [
        (PauseAction(type="pause"), "active", True),
        (PauseAction(type="pause"), "paused", False),
        (ActivateAction(type="activate"), "paused", True),
        (ActivateAction(type="activate"), "active", False),
    ],
)
def test_status_actions_carry_from_and_to_and_skip_no_ops(action: Any, status: str, planned: bool) -> None:
    result = plan_action(action, entity(status=status), Protections())
    if planned:
        assert isinstance(result, PlannedAction)
        assert result.from_status == status and result.to_status in ("paused", "active")
        assert result.to_status != status
    else:
        assert isinstance(result, ActionSkip) and result.reason is SkipReason.ALREADY_IN_STATUS


def test_notify_only_plans_no_change() -> None:
    result = plan_action(NotifyOnlyAction(type="notify_only"), entity(), Protections())
    assert isinstance(result, PlannedAction)
    assert (result.type, result.from_cents, result.to_cents, result.to_status) == ("notify_only", None, None, None)
