"""Pool ownership told in a rule's preview and activation: one plain warning per pool, only when budgets would move."""

from __future__ import annotations

from typing import Any

import pytest

from allot.rules.domain import RuleDefinition
from allot.rules.domain.ownership import PoolMember, changes_budgets, membership_unknown_warnings, ownership_warnings


def rule(*actions: dict[str, Any], opt_in: bool = False, level: str = "adset") -> RuleDefinition:
    return RuleDefinition.model_validate({
        "name": "r", "scope": {"ad_account_ids": ["act_1"], "entity_level": level},
        "conditions": [{"metric": "spend", "operator": "gte", "value": 0, "time_range": "last_3d"}],
        "actions": list(actions), "protections": {"change_pool_member_budgets": opt_in}})


RAISE = {"type": "increase_budget_pct", "pct": 10}
CUT = {"type": "decrease_budget_pct", "pct": 10}
PAUSE = {"type": "pause"}
MEMBERS = [PoolMember("as-3", "pool-b", "Cold video"), PoolMember("as-1", "pool-a", "Broad US"),
           PoolMember("as-2", "pool-a", None)]


@pytest.mark.parametrize(("actions", "budgets"), [
    ((RAISE,), True), ((CUT, PAUSE), True), ((PAUSE,), False), (({"type": "activate"},), False),
    (({"type": "notify_only"},), False),
])
def test_only_budget_actions_are_the_pools_business(actions: tuple[dict[str, Any], ...], budgets: bool) -> None:
    assert changes_budgets(rule(*actions)) is budgets
    assert bool(ownership_warnings(rule(*actions), MEMBERS)) is budgets


def test_one_warning_per_pool_says_what_is_skipped_what_still_applies_and_how_to_opt_in() -> None:
    first, second = ownership_warnings(rule(RAISE, PAUSE), MEMBERS)
    assert first == ("2 ad sets in scope (Broad US, as-2) belong to budget pool pool-a: this rule's budget changes on "
                     "them will be skipped; pause/activate still apply; opt in with "
                     "protections.change_pool_member_budgets")
    assert second.startswith("1 ad set in scope (Cold video) belongs to budget pool pool-b: this rule's budget "
                             "changes on it will be skipped")
    assert all(w.count("pool-a") + w.count("pool-b") == 1 for w in (first, second)), "each pool named once"


def test_many_members_are_counted_and_a_few_named() -> None:
    many = [PoolMember(f"c-{i}", "p", f"Campaign {i}") for i in range(5)]
    (warning,) = ownership_warnings(rule(CUT, level="campaign"), many)
    assert warning.startswith("5 campaigns in scope (Campaign 0, Campaign 1, Campaign 2 and 2 more) belong to")


def test_an_opted_in_rule_is_told_the_pool_keeps_priority_after_its_own_changes() -> None:
    (first, _) = ownership_warnings(rule(RAISE, opt_in=True), MEMBERS)
    assert "opted in with protections.change_pool_member_budgets" in first and "skipped" not in first
    assert "priority" in first and "net-change window" in first


def test_no_members_no_warning() -> None:
    assert ownership_warnings(rule(RAISE), []) == []


def test_unknown_membership_is_a_warning_not_a_failure() -> None:
    (warning,) = membership_unknown_warnings(rule(RAISE), "guardrails unreachable: ConnectError")
    assert warning.startswith("could not check whether ad sets in scope belong to a budget pool "
                              "(guardrails unreachable: ConnectError)")
    assert "opt in with protections.change_pool_member_budgets" in warning
    assert membership_unknown_warnings(rule(PAUSE), "down") == []
    assert membership_unknown_warnings(rule(RAISE, opt_in=True), "down") == []
