"""Pool ownership told before it bites: which of a rule's in-scope entities a budget pool owns, in plain words.

The guardrails enforce one ownership rule: a pool member's budget belongs to its pool, so a rule's budget
change on it is dropped unless the rule opted in (``protections.change_pool_member_budgets``); pause and
activate still apply. An opted-in rule still yields to the pool (higher priority) within the guardrails'
net-change window after the pool changed that budget. These functions turn the guardrails' answer into the
warnings a preview and an activation show, one per pool, for every in-scope entity (not only matched ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from allot.rules.domain.models import RuleDefinition

BUDGET_ACTIONS: Final[frozenset[str]] = frozenset({"increase_budget_pct", "decrease_budget_pct"})
OPT_IN: Final = "protections.change_pool_member_budgets"
#: Entity names a warning lists before "and N more".
NAMES_SHOWN: Final = 3

_LEVEL_NAMES: Final[dict[str, tuple[str, str]]] = {
    "campaign": ("campaign", "campaigns"), "adset": ("ad set", "ad sets"), "ad": ("ad", "ads"),
}


@dataclass(frozen=True, slots=True)
class PoolMember:
    """An in-scope entity the guardrails say belongs to ``pool_id``."""

    entity_id: str
    pool_id: str
    name: str | None = None


def changes_budgets(rule: RuleDefinition) -> bool:
    """True when the rule has an action that changes a budget (the actions the guardrails drop on pool members)."""
    return any(a.type in BUDGET_ACTIONS for a in rule.actions)


def _count(n: int, level: str) -> str:
    one, many = _LEVEL_NAMES.get(level, (level, f"{level}s"))
    return f"{n} {one if n == 1 else many}"


def _names(members: Sequence[PoolMember]) -> str:
    names = [m.name or m.entity_id for m in members]
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown if len(names) <= NAMES_SHOWN else f"{shown} and {len(names) - NAMES_SHOWN} more"


def ownership_warnings(rule: RuleDefinition, members: Sequence[PoolMember]) -> list[str]:
    """One plain-language warning per pool owning in-scope entities of a rule that changes budgets (none for a rule
    that only pauses, activates, relaunches or notifies: the pool does not own those), in pool-id order."""
    if not members or not changes_budgets(rule):
        return []
    by_pool: dict[str, list[PoolMember]] = {}
    for m in sorted(members, key=lambda m: (m.pool_id, m.entity_id)):
        by_pool.setdefault(m.pool_id, []).append(m)
    level = rule.scope.entity_level
    out = []
    for pool_id, owned in by_pool.items():
        n = len(owned)
        verb = "belongs" if n == 1 else "belong"
        who = f"{_count(n, level)} in scope ({_names(owned)}) {verb} to budget pool {pool_id}"
        them = "it" if n == 1 else "them"
        if rule.protections.change_pool_member_budgets:
            out.append(f"{who}; this rule opted in with {OPT_IN}, so its budget changes on {them} apply, except "
                       "while the pool has priority (within the guardrails' net-change window after the pool "
                       f"changed {'that budget' if n == 1 else 'those budgets'})")
        else:
            out.append(f"{who}: this rule's budget changes on {them} will be skipped; pause/activate still apply; "
                       f"opt in with {OPT_IN}")
    return out


def membership_unknown_warnings(rule: RuleDefinition, error: str) -> list[str]:
    """The warning when the guardrails cannot say which in-scope entities a pool owns (only for a rule whose budget
    changes would be skipped on them)."""
    if not changes_budgets(rule) or rule.protections.change_pool_member_budgets:
        return []
    level = rule.scope.entity_level
    plural = _LEVEL_NAMES.get(level, (level, f"{level}s"))[1]
    return [f"could not check whether {plural} in scope belong to a budget pool ({error}): this rule's budget "
            f"changes on pool members will be skipped; pause/activate still apply; opt in with {OPT_IN}"]
