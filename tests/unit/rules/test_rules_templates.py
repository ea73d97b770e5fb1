"""Built-in templates: the seed's recipes as defaults, instantiation with name, scope and targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from allot.rules.domain import (
    TEMPLATE_NAMES,
    TEMPLATES,
    DailyCounters,
    Entity,
    PlatformReach,
    Scope,
    TargetRef,
    evaluate_rule,
    instantiate_template,
)

SCOPE = {"ad_account_ids": ["act_1"], "entity_level": "adset"}
NOW = datetime(2026, 5, 17, 9, 0, tzinfo=UTC)


def leaves(rule: Any) -> list[tuple[str, str, Any, str]]:
    return [(c.metric, c.operator, c.value, c.time_range) for _, c in rule.conditions.iter_conditions()]


def test_the_four_seed_templates_exist() -> None:
    assert set(TEMPLATE_NAMES) == {"kill_losers", "scale_winners", "frequency_cap", "daily_spend_protection"}
    assert set(TEMPLATES) == set(TEMPLATE_NAMES)


def test_scale_winners_recipe() -> None:
    rule = instantiate_template("scale_winners", name="Scale", scope=SCOPE, targets={"target_roas": 2.5})
    assert rule.conditions.logic == "and"
    assert leaves(rule) == [
        ("roas", "gt", TargetRef(target="target_roas", multiplier=1.2), "last_3d"),
        ("spend", "gt", 5000.0, "last_3d"),
    ]
    assert [(a.type, a.pct) for a in rule.actions] == [("increase_budget_pct", 20)]  # type: ignore[union-attr]
    assert (rule.protections.cooldown_minutes, rule.protections.max_executions_per_day) == (720, 3)


def test_kill_losers_recipe() -> None:
    rule = instantiate_template("kill_losers", name="Kill", scope=SCOPE, targets={"target_cpa": 2_000})
    assert leaves(rule) == [
        ("cpa", "gt", TargetRef(target="target_cpa", multiplier=1.5), "last_7d"),
        ("spend", "gt", 5000.0, "last_7d"),
    ]
    assert [a.type for a in rule.actions] == ["pause"]
    assert rule.protections.cooldown_minutes == 360


def test_frequency_cap_recipe() -> None:
    rule = instantiate_template("frequency_cap", name="Freq", scope=SCOPE)
    assert leaves(rule) == [("frequency", "gt", 5.0, "last_7d")]
    assert [a.type for a in rule.actions] == ["pause"]


def test_daily_spend_protection_recipe() -> None:
    rule = instantiate_template("daily_spend_protection", name="Spend", scope=Scope.model_validate(SCOPE))
    assert leaves(rule) == [("budget_spent_pct", "gt", 80.0, "today")]
    assert [a.type for a in rule.actions] == ["notify_only"]


@pytest.mark.parametrize(("template", "target"), [("scale_winners", "target_roas"), ("kill_losers", "target_cpa")])
def test_missing_target_is_a_validation_error_naming_it(template: str, target: str) -> None:
    with pytest.raises(ValidationError, match=f"target '{target}' is not defined"):
        instantiate_template(template, name="x", scope=SCOPE)


def test_unknown_template_lists_available_ones() -> None:
    with pytest.raises(ValueError, match="available: kill_losers, scale_winners"):
        instantiate_template("make_money", name="x", scope=SCOPE)


def test_template_scope_and_name_are_applied() -> None:
    rule = instantiate_template("frequency_cap", name="  Freq cap  ", scope={**SCOPE, "entity_level": "ad"})
    assert rule.name == "Freq cap"
    assert rule.scope.entity_level == "ad"


def test_template_rules_validate_meta_relaunch_free_for_any_platform() -> None:
    platforms = {"act_1": "meta", "g_1": "google"}
    scope = {"ad_account_ids": ["act_1", "g_1"], "entity_level": "campaign"}
    for name in TEMPLATE_NAMES:
        instantiate_template(name, name=name, scope=scope, targets={"target_roas": 2, "target_cpa": 1_000},
                             account_platforms=platforms)


ZERO = DailyCounters()


def _entity(entity_id: str, per_day: DailyCounters, today: DailyCounters = ZERO) -> Entity:
    buckets = {NOW.date() - timedelta(days=d): per_day for d in range(1, 8)}
    buckets[NOW.date()] = today
    # The platform's deduplicated 7-day reach (700 people) is used, never Σ daily reach (7 × 40 = 280).
    reach = PlatformReach(NOW.date() - timedelta(days=1), {"last_7d": 700})
    return Entity(entity_id, "adset", "meta", "act_1", entity_id, "active", "USD", 10_000, buckets, reach)


@pytest.mark.parametrize(
    ("template", "targets", "winner", "other"),
    [
        # last_3d: spend 3 × 2 000 = 6 000 > 5 000; roas 3.01 > 2.5 × 1.2 = 3.0 vs exactly 3.0
        ("scale_winners", {"target_roas": 2.5},
         DailyCounters(spend_cents=2_000, revenue_cents=6_020), DailyCounters(spend_cents=2_000, revenue_cents=6_000)),
        # last_7d frequency over the platform's reach: 4 200 / 700 = 6 > 5 vs 3 500 / 700 = 5 (summed: 15 and 12.5)
        ("frequency_cap", {}, DailyCounters(impressions=600, reach=40), DailyCounters(impressions=500, reach=40)),
    ],
)
def test_templates_fire_on_the_seed_thresholds(
    template: str, targets: dict[str, float], winner: DailyCounters, other: DailyCounters
) -> None:
    rule = instantiate_template(template, name=template, scope=SCOPE, targets=targets)
    result = evaluate_rule(rule, [_entity("hit", winner), _entity("miss", other)], None, NOW)
    assert [m.entity_id for m in result.matched] == ["hit"]
    assert [s.entity_id for s in result.skipped] == ["miss"]


def test_kill_losers_pauses_expensive_converters() -> None:
    rule = instantiate_template("kill_losers", name="k", scope=SCOPE, targets={"target_cpa": 2_000})
    # last_7d: spend 7 000 > 5 000 and cpa 3 500 > 2 000 × 1.5; "ok" has cpa 3 000 = the threshold.
    loser = Entity("loser", "adset", "meta", "act_1", "l", "active", "USD", 10_000,
                   {NOW.date() - timedelta(days=1): DailyCounters(spend_cents=7_000, conversions=2)})
    ok = Entity("ok", "adset", "meta", "act_1", "o", "active", "USD", 10_000,
                {NOW.date() - timedelta(days=1): DailyCounters(spend_cents=6_000, conversions=2)})
    result = evaluate_rule(rule, [loser, ok], None, NOW)
    assert [(m.entity_id, m.actions[0].to_status) for m in result.matched] == [("loser", "paused")]
    assert result.matched[0].snapshot == {"cpa@last_7d": 3_500.0, "spend@last_7d": 7_000}


def test_daily_spend_protection_notifies_above_80_pct() -> None:
    rule = instantiate_template("daily_spend_protection", name="d", scope=SCOPE)
    hot = _entity("hot", DailyCounters(), today=DailyCounters(spend_cents=8_001))
    cool = _entity("cool", DailyCounters(), today=DailyCounters(spend_cents=8_000))
    result = evaluate_rule(rule, [hot, cool], None, NOW)
    assert [(m.entity_id, m.actions[0].type) for m in result.matched] == [("hot", "notify_only")]


def test_kill_losers_without_conversions_is_metric_unavailable_not_a_kill() -> None:
    rule = instantiate_template("kill_losers", name="k", scope=SCOPE, targets={"target_cpa": 2_000})
    result = evaluate_rule(rule, [_entity("zero", DailyCounters(spend_cents=1_000))], None, NOW)
    assert result.matched == ()
    assert [(s.reason.value, s.detail) for s in result.skipped] == [("metric_unavailable", "cpa@last_7d")]
