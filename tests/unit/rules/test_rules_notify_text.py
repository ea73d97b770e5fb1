"""The condition text a notify_only notification carries: operators as symbols, targets resolved, groups kept."""

from __future__ import annotations

from allot.rules.domain import ConditionGroup
from allot.rules.workflow import condition_text


def test_condition_text_resolves_targets_and_keeps_grouping() -> None:
    group = ConditionGroup.model_validate({"logic": "and", "conditions": [
        {"metric": "budget_spent_pct", "operator": "gt", "value": 80, "time_range": "today"},
        {"logic": "or", "conditions": [
            {"metric": "cpa", "operator": "gte", "value": {"target": "target_cpa", "multiplier": 1.5},
             "time_range": "last_7d"},
            {"metric": "roas", "operator": "between", "value": [0.5, 1.2], "time_range": "yesterday"}]}]})
    assert condition_text(group, {"target_cpa": 2000}) == (
        "budget_spent_pct@today > 80 AND (cpa@last_7d >= 3000 (target_cpa x 1.5) OR "
        "roas@yesterday between 0.5 and 1.2)")
