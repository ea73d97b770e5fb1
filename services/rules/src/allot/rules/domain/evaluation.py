"""``evaluate_rule``: the single pure decision used by both preview and the scheduled run.

Per in-scope entity, in this order (the first failing step decides the skip reason):

1. a Meta-only metric referenced by the rule on a non-Meta entity → ``metric_not_supported_on_platform``;
2. conditions (see ``conditions``): NO_MATCH → ``conditions_not_met``,
   UNAVAILABLE → ``metric_unavailable`` (detail lists the ``metric@range`` that were None, with the
   reason when it is not a zero denominator, e.g. reach for the range not reported by the platform yet);
3. protections, for entities that matched: pending action → failure backoff →
   cooldown → max executions per day;
4. action planning (see ``actions``): an action that cannot apply is listed in
   ``skipped_actions``; if no action remains the entity is skipped with the
   first action's reason.

Before any entity, the circuit breaker is checked: when it trips the result
carries ``auto_pause`` (status back to ``paused`` with ``last_error`` and
``auto_pause_reason``) and no entity is evaluated. Out-of-scope entities are
ignored and not counted. The result depends only on the arguments.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from allot.rules.domain.actions import ActionSkip, PlannedAction, plan_action
from allot.rules.domain.conditions import Truth, compile_conditions
from allot.rules.domain.entities import AggregateCache, Entity
from allot.rules.domain.models import RuleDefinition, Scope
from allot.rules.domain.protections import (
    ProtectionCheck,
    RuleHistory,
    check_cooldown,
    check_failure_backoff,
    check_max_executions,
    check_pending_action,
    circuit_state,
)
from allot.rules.domain.reasons import SkipReason
from allot.rules.domain.timeranges import ensure_utc, slot_start

Snapshot = Mapping[str, "float | None"]


@dataclass(frozen=True, slots=True)
class MatchedEntity:
    """An entity whose conditions matched and that passed every protection, with its planned actions."""

    entity_id: str
    ad_account_id: str
    platform: str
    entity_level: str
    snapshot: Snapshot
    actions: tuple[PlannedAction, ...]
    skipped_actions: tuple[ActionSkip, ...] = ()


@dataclass(frozen=True, slots=True)
class SkippedEntity:
    """An in-scope entity that will not be acted on, with a stable reason code."""

    entity_id: str
    reason: SkipReason
    detail: str = ""
    snapshot: Snapshot | None = None


@dataclass(frozen=True, slots=True)
class AutoPause:
    """The circuit breaker tripped: set the rule's status back to paused with these fields."""

    auto_pause_reason: str
    last_error: str | None
    status: Literal["paused"] = "paused"


@dataclass(frozen=True, slots=True)
class RuleEvaluation:
    """Everything one evaluation decided; nothing has been acted on."""

    evaluated_at: datetime
    slot_start: datetime
    entities_evaluated: int
    matched: tuple[MatchedEntity, ...]
    skipped: tuple[SkippedEntity, ...]
    auto_pause: AutoPause | None = None

    def skip_counts(self) -> dict[str, int]:
        """Number of skipped entities per reason code."""
        return dict(Counter(s.reason.value for s in self.skipped))


class ScopeMatcher:
    """Fast membership test for a :class:`Scope` (account set, level, case-insensitive name, status set)."""

    __slots__ = ("_accounts", "_level", "_needle", "_statuses")

    def __init__(self, scope: Scope) -> None:
        self._accounts = frozenset(scope.ad_account_ids)
        self._level = scope.entity_level
        name = scope.entity_filter.name_contains
        self._needle = name.casefold() if name else None
        statuses = scope.entity_filter.status_in
        self._statuses = frozenset(statuses) if statuses else None

    def __call__(self, entity: Entity) -> bool:
        if entity.entity_level != self._level or entity.ad_account_id not in self._accounts:
            return False
        if self._statuses is not None and entity.status not in self._statuses:
            return False
        return self._needle is None or self._needle in entity.name.casefold()


def _entity_protections(
    history: RuleHistory, entity_id: str, now: datetime, cooldown_minutes: int, max_exec: ProtectionCheck
) -> ProtectionCheck:
    """Pending action → failure backoff → cooldown → max executions; the first that skips wins."""
    pending = history.pending_actions_since.get(entity_id)
    if pending:
        check = check_pending_action(pending, now)
        if not check.allowed:
            return check
    outcomes = history.entity_outcomes.get(entity_id)
    if outcomes:
        check = check_failure_backoff(outcomes, now)
        if not check.allowed:
            return check
    last_acted_at = history.last_acted_at.get(entity_id)
    if last_acted_at is not None:
        check = check_cooldown(last_acted_at, now, cooldown_minutes)
        if not check.allowed:
            return check
    return max_exec


def in_scope(scope: Scope, entity: Entity) -> bool:
    """Whether ``entity`` is in ``scope`` (name match is a case-insensitive substring)."""
    return ScopeMatcher(scope)(entity)


def evaluate_rule(
    rule: RuleDefinition,
    entities: Iterable[Entity],
    history: RuleHistory | None,
    now: datetime,
    *,
    cache: AggregateCache | None = None,
    snapshot_unmatched: bool = False,
    schedule_at: datetime | None = None,
) -> RuleEvaluation:
    """Decide, without acting, which in-scope entities the rule acts on at ``now`` and why the others are skipped.

    ``cache`` may be shared by every rule evaluated at the same ``now`` so each
    entity's range aggregates are computed once; ``snapshot_unmatched`` adds the
    metric snapshot to entities skipped for their conditions (preview);
    ``schedule_at`` is the moment the dayparts are read at (a cron rule's fire
    time, which the evaluation may follow by a few seconds; default ``now``).
    """
    now = ensure_utc(now)
    schedule_at = now if schedule_at is None else ensure_utc(schedule_at)
    if cache is None:
        cache = AggregateCache(now)
    elif cache.now != now:
        raise ValueError(f"cache was built for {cache.now.isoformat()}, not {now.isoformat()}")
    history = history or RuleHistory()
    slot = slot_start(now, rule.schedule.interval_minutes)

    circuit = circuit_state(history.rule_outcomes, now)
    if circuit.tripped:
        reason = (
            f"circuit breaker: error rate {circuit.error_rate:.1%} with {circuit.errors} errors "
            f"in {circuit.total} actions in the last 24 h"
        )
        return RuleEvaluation(now, slot, 0, (), (), AutoPause(auto_pause_reason=reason, last_error=circuit.last_error))

    matches_scope = ScopeMatcher(rule.scope)
    compiled = compile_conditions(rule.conditions, rule.targets)
    meta_metrics = sorted(rule.meta_only_metrics())
    meta_detail = f"Meta-only metric(s) {', '.join(meta_metrics)}"
    protections = rule.protections
    max_exec = check_max_executions(history.execution_started_at, now, protections.max_executions_per_day)
    ranges_for = cache.ranges_for
    evaluate = compiled.evaluate
    match, unavailable = Truth.MATCH, Truth.UNAVAILABLE

    evaluated = 0
    matched: list[MatchedEntity] = []
    skipped: list[SkippedEntity] = []
    for entity in entities:
        if not matches_scope(entity):
            continue
        evaluated += 1
        entity_id = entity.entity_id
        if not rule.schedule.open_at(schedule_at.astimezone(entity.zone)):
            local = schedule_at.astimezone(entity.zone)
            skipped.append(SkippedEntity(entity_id, SkipReason.OUTSIDE_SCHEDULE,
                                         f"{local:%a %H:%M} in {local.tzname() or entity.zone} is outside the rule's "
                                         "dayparts"))
            continue
        if meta_metrics and entity.platform != "meta":
            skipped.append(
                SkippedEntity(
                    entity_id, SkipReason.METRIC_NOT_SUPPORTED_ON_PLATFORM, f"{meta_detail} on {entity.platform}"
                )
            )
            continue
        ranges = ranges_for(entity)
        budget = entity.daily_budget_cents
        outcome = evaluate(ranges, budget)
        if outcome is not match:
            snap = compiled.snapshot(ranges, budget) if snapshot_unmatched else None
            if outcome is unavailable:
                detail = ", ".join(compiled.unavailable(ranges, budget))
                skipped.append(SkippedEntity(entity_id, SkipReason.METRIC_UNAVAILABLE, detail, snap))
            else:
                detail = "; ".join(compiled.not_met(ranges, budget))
                skipped.append(SkippedEntity(entity_id, SkipReason.CONDITIONS_NOT_MET, detail, snap))
            continue

        snapshot = compiled.snapshot(ranges, budget)
        check = _entity_protections(history, entity_id, now, protections.cooldown_minutes, max_exec)
        if not check.allowed:
            assert check.reason is not None
            skipped.append(SkippedEntity(entity_id, check.reason, check.detail, snapshot))
            continue

        planned: list[PlannedAction] = []
        action_skips: list[ActionSkip] = []
        for action in rule.actions:
            result = plan_action(action, entity, protections)
            if isinstance(result, PlannedAction):
                planned.append(result)
            else:
                action_skips.append(result)
        if not planned:
            first = action_skips[0]
            skipped.append(SkippedEntity(entity_id, first.reason, first.detail, snapshot))
            continue
        matched.append(
            MatchedEntity(
                entity_id=entity_id,
                ad_account_id=entity.ad_account_id,
                platform=entity.platform,
                entity_level=entity.entity_level,
                snapshot=snapshot,
                actions=tuple(planned),
                skipped_actions=tuple(action_skips),
            )
        )
    return RuleEvaluation(now, slot, evaluated, tuple(matched), tuple(skipped))
