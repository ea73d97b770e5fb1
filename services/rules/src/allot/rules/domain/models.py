"""Rule definition models (pydantic v2): the validated shape shared by the HTTP API, storage and the evaluator.

Validation guarantees, each failure naming the field:

- metrics are in the catalogue (the error lists the allowed names);
- ``between`` has exactly two values with low <= high (after resolving targets);
  every other operator has exactly one value;
- a value is a number, ``{"target": "target_roas", "multiplier": 1.2}``, or the
  string forms ``"target * 1.2"`` / ``"target_roas * 1.2"`` / ``"1.2 * target"``;
  the bare word ``target`` means ``target_<metric>`` (``cpa`` → ``target_cpa``);
  every referenced target must be defined in the rule's ``targets``;
- condition groups nest at most 5 levels (the root group is level 1) and hold
  at most 50 conditions in total; a plain list of conditions means AND;
- budget percentages: increase 0 < pct <= 1000, decrease 0 < pct <= 100;
- action combinations make sense: no duplicate types, not both pause and
  activate, not both increase and decrease, ``notify_only`` stands alone;
- when the caller passes ``context={"account_platforms": {account_id: platform}}``
  (see :func:`validate_rule`): every scoped account is known, and a scope with a
  non-Meta account may neither reference a Meta-only metric nor use ``relaunch``;
- no scoped account is in ``context["account_refusals"]`` (account id → why the
  workspace may not reference it: tenancy, decided by the caller).

Money values (thresholds on money metrics, targets such as ``target_cpa``,
``budget_daily_cap_cents``) are integer-valued cents of the entity's account
currency; ratios (``target_roas``) are plain numbers.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from allot.rules.domain.cron import MAX_CRON_LENGTH, CronError, parse_cron
from allot.rules.domain.entities import EntityLevel, EntityStatus, Platform
from allot.rules.domain.metrics import META_ONLY_METRICS, METRICS
from allot.rules.domain.timeranges import TimeRange

Operator = Literal["gt", "gte", "lt", "lte", "eq", "neq", "between"]
Logic = Literal["and", "or"]

MAX_CONDITION_DEPTH: Final[int] = 5
MAX_CONDITIONS: Final[int] = 50
MAX_INCREASE_PCT: Final[float] = 1000.0
MAX_DECREASE_PCT: Final[float] = 100.0
MIN_INTERVAL_MINUTES: Final[int] = 5
DEFAULT_INTERVAL_MINUTES: Final[int] = 15
DEFAULT_COOLDOWN_MINUTES: Final[int] = 360
DEFAULT_MAX_EXECUTIONS_PER_DAY: Final[int] = 3
MAX_EXECUTIONS_PER_DAY_LIMIT: Final[int] = 50
DEFAULT_BUDGET_CHANGE_LIMIT_PCT: Final[float] = 20.0

_MODEL_CONFIG: Final = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, str_strip_whitespace=True)
_NUMBER = r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+"
_TARGET_EXPR: Final = re.compile(
    rf"^(?:(?P<pre>{_NUMBER})\s*\*\s*)?(?P<target>target(?:_[a-z0-9_]+)?)(?:\s*\*\s*(?P<post>{_NUMBER}))?$"
)


class TargetRef(BaseModel):
    """A threshold relative to a rule target: ``targets[target] × multiplier``."""

    model_config = _MODEL_CONFIG

    target: str = Field(pattern=r"^target_[a-z0-9_]+$")
    multiplier: float = Field(default=1.0, gt=0)

    def resolve(self, targets: Mapping[str, float]) -> float:
        """The numeric threshold; ``KeyError`` if the target is not defined."""
        return targets[self.target] * self.multiplier


Threshold = float | TargetRef


def _normalise_threshold(raw: object, metric: object) -> object:
    """Turn the string/`target` shorthands into a number or a TargetRef-shaped dict."""
    if isinstance(raw, bool):
        raise ValueError("value: expected a number or a target expression, got a boolean")
    if isinstance(raw, str):
        text = raw.strip()
        with contextlib.suppress(ValueError):  # not a number: parse it as a target expression
            return float(text)
        match = _TARGET_EXPR.match(text)
        if match is None or (match["pre"] and match["post"]):
            raise ValueError(
                f"value: cannot parse {raw!r}; expected a number, 'target * 1.2', "
                "'target_roas * 1.2' or {'target': 'target_roas', 'multiplier': 1.2}"
            )
        raw = {"target": match["target"], "multiplier": float(match["pre"] or match["post"] or 1.0)}
    if isinstance(raw, dict) and raw.get("target") == "target":
        raw = {**raw, "target": f"target_{metric}"}
    return raw


class Condition(BaseModel):
    """``metric@time_range operator value``; matched only when the metric is computable and the comparison holds."""

    model_config = _MODEL_CONFIG

    metric: str
    operator: Operator
    value: Threshold | tuple[Threshold, Threshold]
    time_range: TimeRange

    @model_validator(mode="before")
    @classmethod
    def _normalise_value(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "value" not in data:
            return data
        raw, metric, operator = data["value"], data.get("metric"), data.get("operator")
        if isinstance(raw, (list, tuple)):
            if operator != "between":
                raise ValueError(f"value: operator {operator!r} takes a single value, got a list")
            if len(raw) != 2:
                raise ValueError(f"value: operator 'between' needs exactly two values [low, high], got {len(raw)}")
            value: object = tuple(_normalise_threshold(item, metric) for item in raw)
        else:
            value = _normalise_threshold(raw, metric)
        return {**data, "value": value}

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; allowed: {', '.join(METRICS)}")
        return metric

    @model_validator(mode="after")
    def _value_matches_operator(self) -> Condition:
        if self.operator == "between":
            if not isinstance(self.value, tuple):
                raise ValueError("value: operator 'between' needs two values [low, high]")
            low, high = self.value
            if isinstance(low, float) and isinstance(high, float) and low > high:
                raise ValueError(f"value: 'between' needs low <= high, got [{low:g}, {high:g}]")
        return self

    @property
    def key(self) -> str:
        """``metric@time_range``, the key of this condition's value in a metric snapshot."""
        return f"{self.metric}@{self.time_range}"

    def thresholds(self) -> tuple[Threshold, ...]:
        """The value(s) as a tuple: one for comparisons, two for ``between``."""
        return self.value if isinstance(self.value, tuple) else (self.value,)


def _require_items(value: Any, message: str) -> Any:
    # Checked before item validation so a bad item is not also reported as "too short".
    if isinstance(value, (list, tuple)) and not value:
        raise ValueError(message)
    return value


def _node_kind(node: Any) -> str:
    if isinstance(node, ConditionGroup) or (isinstance(node, dict) and "conditions" in node):
        return "group"
    return "condition"


ConditionNode = Annotated[
    Annotated[Condition, Tag("condition")] | Annotated["ConditionGroup", Tag("group")],
    Discriminator(_node_kind),
]


class ConditionGroup(BaseModel):
    """Conditions and nested groups combined with AND (all) or OR (any)."""

    model_config = _MODEL_CONFIG

    logic: Logic = "and"
    conditions: tuple[ConditionNode, ...]

    @field_validator("conditions", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        return _require_items(value, "a condition group needs at least one condition")

    def depth(self) -> int:
        """Nesting depth; a group of plain conditions has depth 1."""
        return 1 + max((c.depth() for c in self.conditions if isinstance(c, ConditionGroup)), default=0)

    def iter_conditions(self, path: str = "conditions") -> Iterator[tuple[str, Condition]]:
        """Every leaf condition with its JSON path, depth-first in document order."""
        for i, node in enumerate(self.conditions):
            child = f"{path}.conditions[{i}]"
            if isinstance(node, ConditionGroup):
                yield from node.iter_conditions(child)
            else:
                yield child, node


ConditionGroup.model_rebuild()


class EntityFilter(BaseModel):
    """Optional narrowing of a scope: case-insensitive name substring and allowed statuses."""

    model_config = _MODEL_CONFIG

    name_contains: str | None = Field(default=None, max_length=200)
    status_in: tuple[EntityStatus, ...] | None = Field(default=None, min_length=1)

    @field_validator("name_contains")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


class Scope(BaseModel):
    """Which entities a rule looks at: accounts (any platforms) × one entity level × an optional filter."""

    model_config = _MODEL_CONFIG

    ad_account_ids: tuple[str, ...] = Field(min_length=1, max_length=500)
    entity_level: EntityLevel
    entity_filter: EntityFilter = EntityFilter()

    @field_validator("ad_account_ids")
    @classmethod
    def _clean_ids(cls, ids: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        cleaned = tuple(dict.fromkeys(i.strip() for i in ids))
        if any(not i for i in cleaned):
            raise ValueError("ad account ids must be non-empty strings")
        platforms = _account_platforms(info)
        if platforms is not None:
            unknown = [i for i in cleaned if i not in platforms]
            if unknown:
                raise ValueError(f"unknown ad account(s): {', '.join(unknown)}")
        refusals = _account_refusals(info)
        refused = [refusals[i] for i in cleaned if i in refusals]
        if refused:
            raise ValueError("; ".join(refused))
        return cleaned


class PauseAction(BaseModel):
    """Set the entity's status to paused."""

    model_config = _MODEL_CONFIG
    type: Literal["pause"]


class ActivateAction(BaseModel):
    """Set the entity's status to active."""

    model_config = _MODEL_CONFIG
    type: Literal["activate"]


class IncreaseBudgetAction(BaseModel):
    """Raise the daily budget by ``pct`` percent (0 < pct <= 1000), subject to limit and cap."""

    model_config = _MODEL_CONFIG
    type: Literal["increase_budget_pct"]
    pct: float

    @field_validator("pct")
    @classmethod
    def _pct_range(cls, pct: float) -> float:
        if not 0 < pct <= MAX_INCREASE_PCT:
            raise ValueError(f"increase_budget_pct needs 0 < pct <= {MAX_INCREASE_PCT:g}, got {pct:g}")
        return pct


class DecreaseBudgetAction(BaseModel):
    """Lower the daily budget by ``pct`` percent (0 < pct <= 100), never below the platform minimum."""

    model_config = _MODEL_CONFIG
    type: Literal["decrease_budget_pct"]
    pct: float

    @field_validator("pct")
    @classmethod
    def _pct_range(cls, pct: float) -> float:
        if not 0 < pct <= MAX_DECREASE_PCT:
            raise ValueError(f"decrease_budget_pct needs 0 < pct <= {MAX_DECREASE_PCT:g}, got {pct:g}")
        return pct


class RelaunchAction(BaseModel):
    """Meta only: copy the ad with a new creative (``creative_id`` chosen by the executor when omitted)."""

    model_config = _MODEL_CONFIG
    type: Literal["relaunch"]
    creative_id: str | None = None


class NotifyOnlyAction(BaseModel):
    """No change on the platform; the match is recorded and notified."""

    model_config = _MODEL_CONFIG
    type: Literal["notify_only"]


Action = Annotated[
    PauseAction | ActivateAction | IncreaseBudgetAction | DecreaseBudgetAction | RelaunchAction | NotifyOnlyAction,
    Field(discriminator="type"),
]
ActionType = Literal["pause", "activate", "increase_budget_pct", "decrease_budget_pct", "relaunch", "notify_only"]
META_ONLY_ACTIONS: Final[frozenset[str]] = frozenset({"relaunch"})


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: Final[tuple[str, ...]] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Daypart(BaseModel):
    """A weekly window in the ad account's own time zone: on ``days``, from ``start`` (inclusive) to ``end``
    (exclusive; ``end`` before ``start`` runs past midnight into the next day)."""

    model_config = _MODEL_CONFIG
    days: list[Weekday] = Field(min_length=1, max_length=7, description="Local weekdays the window opens on.")
    start: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="Local opening time, HH:MM.")
    end: str = Field(pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$", description="Local closing time, HH:MM.")

    @model_validator(mode="after")
    def _not_empty(self) -> Daypart:
        if self.start == self.end:
            raise ValueError("start and end are equal: the window would be empty")
        return self

    def contains(self, local: datetime) -> bool:
        """Whether the local (account time zone) moment is inside the window."""
        minute = local.hour * 60 + local.minute
        start, end = _minutes(self.start), _minutes(self.end)
        today = WEEKDAYS[local.weekday()]
        yesterday = WEEKDAYS[(local.weekday() - 1) % 7]
        if start < end:
            return today in self.days and start <= minute < end
        return (today in self.days and minute >= start) or (yesterday in self.days and minute < end)


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


class Schedule(BaseModel):
    """When the rule is evaluated: every ``interval_minutes`` (mode ``schedule``); for an entity as soon as a
    metrics report for it arrives (mode ``trigger``, like Meta's trigger-based rules; every protection applies);
    or at the fire times of a 5-field ``cron`` expression read in each ad account's own time zone (mode
    ``cron``, see ``domain.cron``; ``interval_minutes`` is ignored). ``dayparts`` (optional) limit any mode to
    weekly windows in each ad account's own time zone (for cron: the window must be open at the fire time)."""

    model_config = _MODEL_CONFIG
    interval_minutes: int = Field(default=DEFAULT_INTERVAL_MINUTES, ge=MIN_INTERVAL_MINUTES, le=1440,
                                  description="Mode schedule: minutes between evaluations. Ignored by the other "
                                              "modes.")
    mode: Literal["schedule", "trigger", "cron"] = Field(
        default="schedule", description="schedule: every interval_minutes; trigger: when the entity's metrics "
                                        "arrive; cron: at the fire times of cron, in each ad account's time zone.")
    cron: str | None = Field(
        default=None, validate_default=True, max_length=MAX_CRON_LENGTH,
        description="Mode cron (required there, refused elsewhere): 'minute hour day-of-month month day-of-week', "
                    "e.g. '0 9 * * 1-5' = 09:00 local on weekdays in every scoped ad account's own time zone; "
                    "lists, ranges, steps and names (MON, JAN); fires at most every 5 minutes. A given cron "
                    "without a mode means mode cron.")
    dayparts: list[Daypart] = Field(
        default_factory=list, max_length=28,
        description="Windows (account time zone) the rule acts in; empty: always. Outside them entities are "
                    "skipped with reason outside_schedule.")

    @model_validator(mode="before")
    @classmethod
    def _cron_means_cron_mode(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("cron") is not None and "mode" not in data:
            return {**data, "mode": "cron"}
        return data

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str | None, info: ValidationInfo) -> str | None:
        mode = info.data.get("mode")
        if cron is None:
            if mode == "cron":
                raise ValueError("required when mode is 'cron', e.g. '0 9 * * 1-5' (09:00 on weekdays in each ad "
                                 "account's time zone)")
            return None
        if mode is not None and mode != "cron":
            raise ValueError(f"only used with mode 'cron' (mode is {mode!r}); set mode to 'cron' or cron to null")
        try:
            return parse_cron(cron)
        except CronError as exc:
            raise ValueError(f"{cron!r}: {exc}") from None

    def open_at(self, local: datetime) -> bool:
        """Whether the rule may act at this local moment of an account."""
        return not self.dayparts or any(d.contains(local) for d in self.dayparts)


class Protections(BaseModel):
    """Per-rule safety limits (see ``protections`` and ``actions`` for how each is enforced)."""

    model_config = _MODEL_CONFIG
    cooldown_minutes: int = Field(default=DEFAULT_COOLDOWN_MINUTES, ge=0, le=10080)
    max_executions_per_day: int = Field(default=DEFAULT_MAX_EXECUTIONS_PER_DAY, ge=1, le=MAX_EXECUTIONS_PER_DAY_LIMIT)
    budget_change_limit_pct: float = Field(default=DEFAULT_BUDGET_CHANGE_LIMIT_PCT, gt=0, le=100)
    budget_daily_cap_cents: int | None = Field(default=None, gt=0)
    change_pool_member_budgets: bool = Field(
        default=False, description="Opt in to changing budgets of entities that belong to a budget pool (the "
                                   "guardrails drop such changes otherwise; pause/activate are always allowed).")


def _account_platforms(info: ValidationInfo) -> Mapping[str, str] | None:
    context = info.context
    if isinstance(context, Mapping):
        platforms = context.get("account_platforms")
        if isinstance(platforms, Mapping):
            return platforms
    return None


def _account_refusals(info: ValidationInfo) -> Mapping[str, str]:
    context = info.context
    if isinstance(context, Mapping):
        refusals = context.get("account_refusals")
        if isinstance(refusals, Mapping):
            return refusals
    return {}


def _non_meta_accounts(scope: Scope | None, info: ValidationInfo) -> list[str]:
    platforms = _account_platforms(info)
    if scope is None or platforms is None:
        return []
    return [f"{a} ({platforms[a]})" for a in scope.ad_account_ids if platforms.get(a, "meta") != "meta"]


class RuleDefinition(BaseModel):
    """A complete, validated rule: scope + conditions + actions + schedule + protections + targets."""

    model_config = _MODEL_CONFIG

    name: str = Field(min_length=1, max_length=200)
    scope: Scope
    targets: dict[str, float] = Field(default_factory=dict)
    conditions: ConditionGroup
    actions: tuple[Action, ...] = Field(max_length=3)
    schedule: Schedule = Schedule()
    protections: Protections = Protections()

    @field_validator("targets")
    @classmethod
    def _target_names(cls, targets: dict[str, float]) -> dict[str, float]:
        bad = [k for k in targets if not re.fullmatch(r"target_[a-z0-9_]+", k)]
        if bad:
            raise ValueError(f"target names must look like 'target_<name>' (e.g. target_cpa), got: {', '.join(bad)}")
        return targets

    @field_validator("conditions", mode="before")
    @classmethod
    def _list_means_and(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return {"logic": "and", "conditions": list(value)}
        return value

    @field_validator("conditions")
    @classmethod
    def _check_conditions(cls, group: ConditionGroup, info: ValidationInfo) -> ConditionGroup:
        depth = group.depth()
        if depth > MAX_CONDITION_DEPTH:
            raise ValueError(f"nesting depth {depth} exceeds the maximum of {MAX_CONDITION_DEPTH}")
        leaves = list(group.iter_conditions())
        if len(leaves) > MAX_CONDITIONS:
            raise ValueError(f"{len(leaves)} conditions exceed the maximum of {MAX_CONDITIONS}")
        problems: list[str] = []
        targets: dict[str, float] | None = info.data.get("targets")
        if targets is not None:
            for path, cond in leaves:
                refs = [t.target for t in cond.thresholds() if isinstance(t, TargetRef)]
                missing = [r for r in refs if r not in targets]
                if missing:
                    defined = ", ".join(targets) or "none"
                    problems.append(
                        f"{path}.value: target {missing[0]!r} is not defined in targets (defined: {defined})"
                    )
                elif cond.operator == "between":
                    low, high = (resolve_threshold(t, targets) for t in cond.thresholds())
                    if low > high:
                        problems.append(f"{path}.value: 'between' needs low <= high, got [{low:g}, {high:g}]")
        non_meta = _non_meta_accounts(info.data.get("scope"), info)
        if non_meta:
            for path, cond in leaves:
                if cond.metric in META_ONLY_METRICS:
                    problems.append(
                        f"{path}.metric: {cond.metric!r} is Meta-only but the scope includes "
                        f"non-Meta ad accounts: {', '.join(non_meta)}"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return group

    @field_validator("actions", mode="before")
    @classmethod
    def _some_action(cls, value: Any) -> Any:
        return _require_items(value, "a rule needs at least one action")

    @field_validator("actions")
    @classmethod
    def _check_actions(cls, actions: tuple[Action, ...], info: ValidationInfo) -> tuple[Action, ...]:
        types = [a.type for a in actions]
        if len(set(types)) != len(types):
            raise ValueError(f"duplicate action types: {', '.join(types)}")
        if "notify_only" in types and len(types) > 1:
            raise ValueError("notify_only cannot be combined with other actions")
        if {"pause", "activate"} <= set(types):
            raise ValueError("pause and activate cannot be combined")
        if {"increase_budget_pct", "decrease_budget_pct"} <= set(types):
            raise ValueError("increase_budget_pct and decrease_budget_pct cannot be combined")
        non_meta = _non_meta_accounts(info.data.get("scope"), info)
        for i, action in enumerate(actions):
            if action.type in META_ONLY_ACTIONS and non_meta:
                raise ValueError(
                    f"actions[{i}].type: {action.type!r} is Meta-only but the scope includes "
                    f"non-Meta ad accounts: {', '.join(non_meta)}"
                )
        return actions

    def referenced_metrics(self) -> tuple[tuple[str, TimeRange], ...]:
        """Distinct (metric, time_range) pairs used by the conditions, in document order."""
        pairs = ((c.metric, c.time_range) for _, c in self.conditions.iter_conditions())
        return tuple(dict.fromkeys(pairs))

    def meta_only_metrics(self) -> frozenset[str]:
        """The Meta-only metrics the conditions reference."""
        return frozenset(m for m, _ in self.referenced_metrics() if m in META_ONLY_METRICS)


def resolve_threshold(threshold: Threshold, targets: Mapping[str, float]) -> float:
    """A threshold as a number; ``KeyError`` for an undefined target (validated rules never raise)."""
    if isinstance(threshold, TargetRef):
        return threshold.resolve(targets)
    return float(threshold)


def validate_rule(data: Any, *, account_platforms: Mapping[str, Platform | str] | None = None,
                  account_refusals: Mapping[str, str] | None = None) -> RuleDefinition:
    """Validate raw rule data; with ``account_platforms`` also enforce the Meta-only metric/action rules; a scoped
    account in ``account_refusals`` (ad account id → why this workspace may not reference it) is refused."""
    context: dict[str, Any] = {}
    if account_platforms is not None:
        context["account_platforms"] = dict(account_platforms)
    if account_refusals:
        context["account_refusals"] = dict(account_refusals)
    return RuleDefinition.model_validate(data, context=context or None)

