"""Built-in rule templates (the seed's recipes) and their instantiation into a validated rule.

=======================  ==========================================================  =====================
template                 conditions                                                  action / protections
=======================  ==========================================================  =====================
scale_winners            roas > target_roas × 1.2 AND spend > 5000 (50.00) @last_3d   increase_budget_pct 20;
                                                                                     cooldown 720, max 3/day
kill_losers              cpa > target_cpa × 1.5 AND spend > 5000 (50.00) @last_7d     pause
frequency_cap            frequency > 5 @last_7d                                      pause
daily_spend_protection   budget_spent_pct > 80 @today                                notify_only
=======================  ==========================================================  =====================

Money thresholds are cents of the entity's account currency ("spend gt 50" = 5000).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

from allot.rules.domain.models import RuleDefinition, Scope, validate_rule

TemplateName = Literal["kill_losers", "scale_winners", "frequency_cap", "daily_spend_protection"]
TEMPLATE_NAMES: Final[tuple[TemplateName, ...]] = get_args(TemplateName)


@dataclass(frozen=True, slots=True)
class RuleTemplate:
    """A recipe: conditions, actions and protections as raw rule data, plus the targets it needs."""

    name: TemplateName
    description: str
    conditions: tuple[Mapping[str, Any], ...]
    actions: tuple[Mapping[str, Any], ...]
    required_targets: tuple[str, ...] = ()
    protections: Mapping[str, Any] = field(default_factory=dict)


def _cond(metric: str, operator: str, value: Any, time_range: str) -> dict[str, Any]:
    return {"metric": metric, "operator": operator, "value": value, "time_range": time_range}


TEMPLATES: Final[Mapping[TemplateName, RuleTemplate]] = {
    "scale_winners": RuleTemplate(
        name="scale_winners",
        description="Raise the budget of entities beating the ROAS target by 20 % on meaningful spend",
        conditions=(
            _cond("roas", "gt", {"target": "target_roas", "multiplier": 1.2}, "last_3d"),
            _cond("spend", "gt", 5000, "last_3d"),
        ),
        actions=({"type": "increase_budget_pct", "pct": 20},),
        required_targets=("target_roas",),
        protections={"cooldown_minutes": 720, "max_executions_per_day": 3},
    ),
    "kill_losers": RuleTemplate(
        name="kill_losers",
        description="Pause entities whose CPA is 50 % above target on meaningful spend",
        conditions=(
            _cond("cpa", "gt", {"target": "target_cpa", "multiplier": 1.5}, "last_7d"),
            _cond("spend", "gt", 5000, "last_7d"),
        ),
        actions=({"type": "pause"},),
        required_targets=("target_cpa",),
    ),
    "frequency_cap": RuleTemplate(
        name="frequency_cap",
        description="Pause entities whose audience has seen the ads more than 5 times in a week",
        conditions=(_cond("frequency", "gt", 5, "last_7d"),),
        actions=({"type": "pause"},),
    ),
    "daily_spend_protection": RuleTemplate(
        name="daily_spend_protection",
        description="Notify when an entity has spent more than 80 % of its daily budget today",
        conditions=(_cond("budget_spent_pct", "gt", 80, "today"),),
        actions=({"type": "notify_only"},),
    ),
}


def template_rule_data(
    template: TemplateName | str,
    *,
    name: str,
    scope: Scope | Mapping[str, Any],
    targets: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Raw (unvalidated) rule data for ``template``; ``ValueError`` for an unknown template."""
    try:
        recipe = TEMPLATES[template]  # type: ignore[index]
    except KeyError:
        raise ValueError(f"unknown template {template!r}; available: {', '.join(TEMPLATE_NAMES)}") from None
    return {
        "name": name,
        "scope": scope.model_dump() if isinstance(scope, Scope) else dict(scope),
        "targets": dict(targets or {}),
        "conditions": {"logic": "and", "conditions": [dict(c) for c in recipe.conditions]},
        "actions": [dict(a) for a in recipe.actions],
        "protections": dict(recipe.protections),
    }


def instantiate_template(
    template: TemplateName | str,
    *,
    name: str,
    scope: Scope | Mapping[str, Any],
    targets: Mapping[str, float] | None = None,
    account_platforms: Mapping[str, str] | None = None,
) -> RuleDefinition:
    """A validated rule from ``template``; a missing required target is a validation error naming it."""
    return validate_rule(
        template_rule_data(template, name=name, scope=scope, targets=targets), account_platforms=account_platforms
    )
