"""RuleDefinition validation: every failure names its field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from allot.rules.domain import ConditionGroup, RuleDefinition, TargetRef, validate_rule

PLATFORMS = {"act_meta": "meta", "act_meta2": "meta", "g_1": "google", "tt_1": "tiktok"}


def rule_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Scale winners",
        "scope": {"ad_account_ids": ["act_meta"], "entity_level": "adset"},
        "targets": {"target_roas": 2.0, "target_cpa": 1500},
        "conditions": [{"metric": "roas", "operator": "gt", "value": 3, "time_range": "last_3d"}],
        "actions": [{"type": "increase_budget_pct", "pct": 20}],
    }
    data.update(overrides)
    return data


def cond(metric: str = "roas", operator: str = "gt", value: Any = 1, time_range: str = "last_7d") -> dict[str, Any]:
    return {"metric": metric, "operator": operator, "value": value, "time_range": time_range}


def errors(data: dict[str, Any], platforms: dict[str, str] | None = None) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        validate_rule(data, account_platforms=platforms)
    return [(e["loc"], e["msg"]) for e in info.value.errors()]


def test_defaults() -> None:
    rule = validate_rule(rule_data())
    assert rule.schedule.interval_minutes == 15
    assert rule.protections.cooldown_minutes == 360
    assert rule.protections.max_executions_per_day == 3
    assert rule.protections.budget_change_limit_pct == 20
    assert rule.protections.budget_daily_cap_cents is None
    assert rule.scope.entity_filter.name_contains is None


def test_plain_list_of_conditions_means_and() -> None:
    rule = validate_rule(rule_data(conditions=[cond(), cond("spend", "gt", 5000)]))
    assert rule.conditions.logic == "and"
    assert len(rule.conditions.conditions) == 2


def test_round_trips_through_json() -> None:
    rule = validate_rule(rule_data(conditions={"logic": "or", "conditions": [cond(value="target * 1.2"),
                                                                              cond("cpa", "between", [100, 200])]}))
    again = RuleDefinition.model_validate_json(rule.model_dump_json())
    assert again == rule


def test_unknown_metric_lists_allowed_names() -> None:
    [(loc, msg)] = errors(rule_data(conditions=[cond("roass")]))
    assert loc[-1] == "metric"
    assert "unknown metric 'roass'" in msg and "allowed: spend, impressions" in msg and "hold_rate" in msg


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ([5, 1], "low <= high"),
        ([1], "exactly two values"),
        ([1, 2, 3], "exactly two values"),
        (5, "needs two values"),
        (["target_roas * 2", "target_roas"], "low <= high"),  # 4.0 > 2.0 once targets are resolved
    ],
)
def test_between_needs_two_ordered_values(value: Any, fragment: str) -> None:
    [(loc, msg)] = errors(rule_data(conditions=[cond(operator="between", value=value)]))
    assert loc[0] == "conditions"
    assert fragment in msg


def test_between_accepts_equal_bounds() -> None:
    rule = validate_rule(rule_data(conditions=[cond(operator="between", value=[2, 2])]))
    assert rule.conditions.conditions[0].value == (2.0, 2.0)  # type: ignore[union-attr]


@pytest.mark.parametrize("operator", ["gt", "gte", "lt", "lte", "eq", "neq"])
def test_scalar_operators_reject_a_list(operator: str) -> None:
    [(_, msg)] = errors(rule_data(conditions=[cond(operator=operator, value=[1, 2])]))
    assert f"operator '{operator}' takes a single value" in msg


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("target * 1.2", TargetRef(target="target_roas", multiplier=1.2)),
        ("target_cpa*1.5", TargetRef(target="target_cpa", multiplier=1.5)),
        ("2 * target_roas", TargetRef(target="target_roas", multiplier=2.0)),
        ("target", TargetRef(target="target_roas", multiplier=1.0)),
        ({"target": "target", "multiplier": 1.2}, TargetRef(target="target_roas", multiplier=1.2)),
        ({"target": "target_roas", "multiplier": 1.2}, TargetRef(target="target_roas", multiplier=1.2)),
        ("2.5", 2.5),
        (7, 7.0),
    ],
)
def test_value_forms_are_normalised(raw: Any, expected: Any) -> None:
    rule = validate_rule(rule_data(conditions=[cond(value=raw)]))
    assert rule.conditions.conditions[0].value == expected  # type: ignore[union-attr]


@pytest.mark.parametrize("raw", ["target +1", "roas * 2", "1.2 * target * 2", "", True, {"target": "roas"}])
def test_bad_values_are_rejected(raw: Any) -> None:
    assert errors(rule_data(conditions=[cond(value=raw)]))


def test_undefined_target_names_the_path_and_defined_targets() -> None:
    data = rule_data(targets={"target_roas": 2}, conditions=[cond("spend"), cond("cpa", value="target * 1.5")])
    [(loc, msg)] = errors(data)
    assert loc == ("conditions",)
    assert "conditions.conditions[1].value: target 'target_cpa' is not defined" in msg
    assert "defined: target_roas" in msg


def test_target_names_must_be_prefixed() -> None:
    [(loc, msg)] = errors(rule_data(targets={"roas": 2}))
    assert loc == ("targets",)
    assert "target_<name>" in msg


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = cond()
    for _ in range(depth):
        node = {"logic": "and", "conditions": [node]}
    return node


def test_depth_five_is_allowed_and_six_is_rejected() -> None:
    assert validate_rule(rule_data(conditions=_nested(5))).conditions.depth() == 5
    [(loc, msg)] = errors(rule_data(conditions=_nested(6)))
    assert loc == ("conditions",)
    assert "nesting depth 6 exceeds the maximum of 5" in msg


def test_too_many_conditions_are_rejected() -> None:
    [(_, msg)] = errors(rule_data(conditions=[cond()] * 51))
    assert "51 conditions exceed the maximum of 50" in msg


def test_empty_groups_are_rejected_without_noise() -> None:
    [(_, msg)] = errors(rule_data(conditions={"logic": "or", "conditions": []}))
    assert "at least one condition" in msg


def test_invalid_leaf_reports_one_error_at_its_path() -> None:
    [(loc, _)] = errors(rule_data(conditions={"logic": "or", "conditions": [cond(time_range="last_90d")]}))
    assert loc[:3] == ("conditions", "conditions", 0) and loc[-1] == "time_range"


@pytest.mark.parametrize(
    ("action", "ok"),
    [
        ({"type": "increase_budget_pct", "pct": 0}, False),
        ({"type": "increase_budget_pct", "pct": 0.01}, True),
        ({"type": "increase_budget_pct", "pct": 1000}, True),
        ({"type": "increase_budget_pct", "pct": 1000.01}, False),
        ({"type": "decrease_budget_pct", "pct": 0}, False),
        ({"type": "decrease_budget_pct", "pct": 100}, True),
        ({"type": "decrease_budget_pct", "pct": 100.5}, False),
    ],
)
def test_budget_percentages(action: dict[str, Any], ok: bool) -> None:
    if ok:
        validate_rule(rule_data(actions=[action]))
    else:
        [(loc, msg)] = errors(rule_data(actions=[action]))
        assert loc[-1] == "pct"
        assert f"{action['type']} needs 0 < pct <=" in msg


@pytest.mark.parametrize(
    ("actions", "fragment"),
    [
        ([], "at least one action"),
        ([{"type": "pause"}, {"type": "pause"}], "duplicate action types"),
        ([{"type": "pause"}, {"type": "activate"}], "pause and activate"),
        ([{"type": "increase_budget_pct", "pct": 5}, {"type": "decrease_budget_pct", "pct": 5}], "cannot be combined"),
        ([{"type": "notify_only"}, {"type": "pause"}], "notify_only cannot be combined"),
        ([{"type": "explode"}], "does not match any of the expected tags"),
    ],
)
def test_action_combinations(actions: list[dict[str, Any]], fragment: str) -> None:
    [(loc, msg)] = errors(rule_data(actions=actions))
    assert loc[0] == "actions"
    assert fragment in msg


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("max_executions_per_day", 0, False), ("max_executions_per_day", 1, True),
        ("max_executions_per_day", 50, True), ("max_executions_per_day", 51, False),
        ("budget_change_limit_pct", 0, False), ("budget_change_limit_pct", 100, True),
        ("budget_change_limit_pct", 100.1, False), ("cooldown_minutes", -1, False),
        ("budget_daily_cap_cents", 0, False), ("budget_daily_cap_cents", 1, True),
    ],
)
def test_protection_bounds(field: str, value: float, ok: bool) -> None:
    data = rule_data(protections={field: value})
    if ok:
        assert getattr(validate_rule(data).protections, field) == value
    else:
        [(loc, _)] = errors(data)
        assert loc == ("protections", field)


@pytest.mark.parametrize(("minutes", "ok"), [(4, False), (5, True), (15, True)])
def test_schedule_interval_minimum_is_five(minutes: int, ok: bool) -> None:
    data = rule_data(schedule={"interval_minutes": minutes})
    if ok:
        assert validate_rule(data).schedule.interval_minutes == minutes
    else:
        [(loc, _)] = errors(data)
        assert loc == ("schedule", "interval_minutes")


def test_unknown_fields_are_rejected() -> None:
    [(loc, _)] = errors(rule_data(colour="red"))
    assert loc == ("colour",)


def test_scope_dedupes_accounts_and_requires_one() -> None:
    rule = validate_rule(rule_data(scope={"ad_account_ids": ["a", " a", "b"], "entity_level": "ad"}))
    assert rule.scope.ad_account_ids == ("a", "b")
    [(loc, _)] = errors(rule_data(scope={"ad_account_ids": [], "entity_level": "ad"}))
    assert loc == ("scope", "ad_account_ids")


def test_unknown_account_is_rejected_when_platforms_are_known() -> None:
    [(loc, msg)] = errors(rule_data(scope={"ad_account_ids": ["act_meta", "nope"], "entity_level": "adset"}), PLATFORMS)
    assert loc == ("scope", "ad_account_ids")
    assert "unknown ad account(s): nope" in msg


def test_meta_only_metric_with_non_meta_scope_names_field_and_metric() -> None:
    data = rule_data(
        scope={"ad_account_ids": ["act_meta", "g_1"], "entity_level": "adset"},
        conditions={"logic": "or", "conditions": [cond(), {"logic": "and", "conditions": [cond("link_ctr")]}]},
    )
    [(loc, msg)] = errors(data, PLATFORMS)
    assert loc == ("conditions",)
    assert "conditions.conditions[1].conditions[0].metric: 'link_ctr' is Meta-only" in msg
    assert "g_1 (google)" in msg


def test_meta_only_metric_with_meta_scope_is_fine() -> None:
    data = rule_data(scope={"ad_account_ids": ["act_meta", "act_meta2"], "entity_level": "adset"},
                     conditions=[cond("hook_rate", "lt", 20)])
    assert validate_rule(data, account_platforms=PLATFORMS).meta_only_metrics() == {"hook_rate"}


def test_relaunch_with_non_meta_scope_is_rejected() -> None:
    data = rule_data(scope={"ad_account_ids": ["tt_1"], "entity_level": "ad"}, actions=[{"type": "relaunch"}])
    [(loc, msg)] = errors(data, PLATFORMS)
    assert loc == ("actions",)
    assert "actions[0].type: 'relaunch' is Meta-only" in msg and "tt_1 (tiktok)" in msg


def test_relaunch_with_meta_scope_is_fine() -> None:
    data = rule_data(actions=[{"type": "relaunch", "creative_id": "cr_1"}])
    assert validate_rule(data, account_platforms=PLATFORMS).actions[0].type == "relaunch"


def test_without_platform_context_meta_checks_are_deferred_to_evaluation() -> None:
    data = rule_data(scope={"ad_account_ids": ["g_1"], "entity_level": "adset"}, conditions=[cond("leads")])
    assert validate_rule(data).meta_only_metrics() == {"leads"}


def test_models_are_immutable() -> None:
    rule = validate_rule(rule_data())
    with pytest.raises(ValidationError):
        rule.name = "other"  # type: ignore[misc]


def test_referenced_metrics_are_distinct_pairs_in_order() -> None:
    rule = validate_rule(rule_data(conditions=[cond("roas", time_range="last_3d"), cond("spend"),
                                               cond("roas", "lt", 9, "last_3d")]))
    assert rule.referenced_metrics() == (("roas", "last_3d"), ("spend", "last_7d"))


def test_condition_group_rejects_nan() -> None:
    with pytest.raises(ValidationError):
        ConditionGroup.model_validate({"conditions": [cond(value=float("nan"))]})
