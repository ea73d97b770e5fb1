"""Operators, tolerance, AND/OR nesting and the three-valued outcome."""

from __future__ import annotations

from typing import Any

import pytest

from allot.rules.domain import (
    ConditionGroup,
    DailyCounters,
    Truth,
    compare,
    compile_conditions,
    evaluate_conditions,
    values_equal,
)

# last_7d: spend 10 000 cents, roas 3.0, cpa 1 250; today: spend 0, no conversions (cpa None).
RANGES = {
    "today": DailyCounters(),
    "yesterday": DailyCounters(spend_cents=1_000, conversions=1, revenue_cents=2_000),
    "last_3d": DailyCounters(spend_cents=4_000, conversions=2, revenue_cents=10_000),
    "last_7d": DailyCounters(spend_cents=10_000, conversions=8, revenue_cents=30_000, impressions=1, reach=1),
    "last_14d": DailyCounters(spend_cents=20_000, conversions=10, revenue_cents=40_000),
    "last_30d": DailyCounters(spend_cents=40_000, conversions=20, revenue_cents=90_000),
}


@pytest.mark.parametrize(
    ("operator", "value", "threshold", "expected"),
    [
        ("gt", 5.0, 4.0, True), ("gt", 5.0, 5.0, False), ("gt", 4.0, 5.0, False),
        ("gte", 5.0, 4.0, True), ("gte", 5.0, 5.0, True), ("gte", 4.0, 5.0, False),
        ("lt", 4.0, 5.0, True), ("lt", 5.0, 5.0, False), ("lt", 6.0, 5.0, False),
        ("lte", 4.0, 5.0, True), ("lte", 5.0, 5.0, True), ("lte", 6.0, 5.0, False),
        ("eq", 5.0, 5.0, True), ("eq", 5.0, 5.1, False),
        ("neq", 5.0, 5.1, True), ("neq", 5.0, 5.0, False),
    ],
)
def test_comparison_operators(operator: Any, value: float, threshold: float, expected: bool) -> None:
    assert compare(operator, value, threshold) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.99, False), (1.0, True), (1.5, True), (2.0, True), (2.01, False)],
)
def test_between_is_inclusive_at_both_ends(value: float, expected: bool) -> None:
    assert compare("between", value, 1.0, 2.0) is expected


@pytest.mark.parametrize(
    ("operator", "expected"),
    [("eq", True), ("neq", False), ("gte", True), ("lte", True), ("gt", False), ("lt", False)],
)
def test_float_noise_is_equal_within_tolerance(operator: Any, expected: bool) -> None:
    value = 0.1 + 0.2  # 0.30000000000000004
    assert compare(operator, value, 0.3) is expected


def test_equality_tolerance_is_relative_and_absolute() -> None:
    assert values_equal(1_000_000.0, 1_000_000.0005)  # rel 5e-10
    assert not values_equal(1_000_000.0, 1_000_000.01)
    assert values_equal(0.0, 1e-10)  # abs 1e-9
    assert not values_equal(0.0, 1e-8)


def test_between_requires_a_high_bound() -> None:
    with pytest.raises(ValueError):
        compare("between", 1.0, 0.0)


def leaf(metric: str, operator: str, value: Any, time_range: str = "last_7d") -> dict[str, Any]:
    return {"metric": metric, "operator": operator, "value": value, "time_range": time_range}


def group(logic: str, *children: dict[str, Any]) -> ConditionGroup:
    return ConditionGroup.model_validate({"logic": logic, "conditions": list(children)})


def run(g: ConditionGroup, targets: dict[str, float] | None = None, budget: int | None = None) -> Truth:
    return evaluate_conditions(g, targets or {}, RANGES, budget)


TRUE = leaf("roas", "gt", 2)  # 3.0 > 2
FALSE = leaf("roas", "lt", 2)
NONE = leaf("cpa", "gt", 1, "today")  # no conversions today → None


@pytest.mark.parametrize(
    ("logic", "children", "expected"),
    [
        ("and", [TRUE, TRUE], Truth.MATCH),
        ("and", [TRUE, FALSE], Truth.NO_MATCH),
        ("and", [FALSE, NONE], Truth.NO_MATCH),  # short-circuits on the first non-match
        ("and", [NONE, FALSE], Truth.UNAVAILABLE),
        ("and", [TRUE, NONE], Truth.UNAVAILABLE),
        ("or", [FALSE, TRUE], Truth.MATCH),
        ("or", [NONE, TRUE], Truth.MATCH),
        ("or", [FALSE, FALSE], Truth.NO_MATCH),
        ("or", [FALSE, NONE], Truth.UNAVAILABLE),
    ],
)
def test_group_logic_with_unavailable_metrics(logic: str, children: list[dict[str, Any]], expected: Truth) -> None:
    assert run(group(logic, *children)) is expected


def test_unavailable_alone_never_matches_even_with_neq() -> None:
    assert run(group("and", leaf("cpa", "neq", 5, "today"))) is Truth.UNAVAILABLE


def test_nested_groups_across_time_ranges() -> None:
    # (roas@last_3d > 2 AND spend@last_7d > 5 000) OR (cpa@today > 1 ... unavailable) → MATCH
    tree = ConditionGroup.model_validate({
        "logic": "or",
        "conditions": [
            {"logic": "and", "conditions": [leaf("roas", "gt", 2, "last_3d"), leaf("spend", "gt", 5_000)]},
            NONE,
        ],
    })
    assert run(tree) is Truth.MATCH
    tree_false = ConditionGroup.model_validate({
        "logic": "or",
        "conditions": [
            {"logic": "and", "conditions": [leaf("roas", "gt", 2, "last_3d"), leaf("spend", "gt", 50_000)]},
            FALSE,
        ],
    })
    assert run(tree_false) is Truth.NO_MATCH


def test_depth_five_nesting_evaluates() -> None:
    node: dict[str, Any] = leaf("roas", "gte", 3)
    for logic in ("and", "or", "and", "or"):
        node = {"logic": logic, "conditions": [node]}
    tree = ConditionGroup.model_validate({"logic": "and", "conditions": [node]})
    assert tree.depth() == 5
    assert run(tree) is Truth.MATCH


@pytest.mark.parametrize(
    ("value", "targets", "expected"),
    [
        ({"target": "target_roas", "multiplier": 1.2}, {"target_roas": 2.5}, Truth.NO_MATCH),  # 3.0 > 3.0 ? no
        ({"target": "target_roas", "multiplier": 1.2}, {"target_roas": 2.4}, Truth.MATCH),  # 3.0 > 2.88
        ("target * 1.2", {"target_roas": 2.4}, Truth.MATCH),
        ("target_roas*1.5", {"target_roas": 2.0}, Truth.NO_MATCH),  # 3.0 > 3.0 ? no
        ("1.4 * target", {"target_roas": 2.0}, Truth.MATCH),
        ("target", {"target_roas": 2.99}, Truth.MATCH),
    ],
)
def test_target_relative_thresholds(value: Any, targets: dict[str, float], expected: Truth) -> None:
    assert run(group("and", leaf("roas", "gt", value)), targets) is expected


def test_compiled_snapshot_lists_every_referenced_metric_once() -> None:
    tree = group("or", leaf("roas", "gt", 9), leaf("roas", "lt", 0), leaf("cpa", "gt", 1, "today"),
                 leaf("spend", "gt", 0, "last_3d"))
    compiled = compile_conditions(tree, {})
    snapshot = compiled.snapshot(RANGES, None)
    assert snapshot == {"roas@last_7d": 3.0, "cpa@today": None, "spend@last_3d": 4_000}
    assert compiled.unavailable(RANGES, None) == ["cpa@today"]
