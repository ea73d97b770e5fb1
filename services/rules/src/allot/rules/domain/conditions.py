"""Condition semantics: operators, AND/OR groups and the compiled evaluator used for every entity.

Comparisons. Equality is tolerant: ``a eq b`` ⇔ ``math.isclose(a, b,
rel_tol=1e-9, abs_tol=1e-9)``, so values computed from sums (0.1 + 0.2) equal
the threshold a user typed (0.3). The other operators are defined from it so
they never contradict each other: ``gt`` = greater and not eq, ``gte`` =
greater or eq, ``lt``/``lte`` likewise, ``neq`` = not eq, ``between [low,
high]`` = gte low and lte high (inclusive at both ends).

Three outcomes. A condition is MATCH, NO_MATCH or UNAVAILABLE (its metric
is None: division by zero, or no daily budget). UNAVAILABLE never matches.
AND yields MATCH when every child matches, otherwise the outcome of the first
child that did not match (children are evaluated in order and short-circuit).
OR yields MATCH when any child matches; otherwise UNAVAILABLE if any child was
unavailable, else NO_MATCH. The evaluator reports an entity whose rule did not
match because of an UNAVAILABLE outcome as skipped with ``metric_unavailable``;
its detail lists the ``metric@range`` that were None, each followed by the reason
in plain words when there is one beyond a zero denominator (reach not reported
by the platform for the range: ``frequency@last_7d (reach for last_7d not
reported by the platform yet)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from allot.rules.domain.metrics import METRICS, DailyCounters, MetricDef, unavailable_because
from allot.rules.domain.models import Condition, ConditionGroup, Operator, resolve_threshold
from allot.rules.domain.timeranges import RANGE_DAYS

EQ_REL_TOL: Final[float] = 1e-9
EQ_ABS_TOL: Final[float] = 1e-9


class Truth(IntEnum):
    """Outcome of a condition or group."""

    UNAVAILABLE = -1
    NO_MATCH = 0
    MATCH = 1


_MATCH, _NO_MATCH, _UNAVAILABLE = Truth.MATCH, Truth.NO_MATCH, Truth.UNAVAILABLE


def values_equal(a: float, b: float) -> bool:
    """Tolerant equality used by every operator (rel and abs tolerance 1e-9)."""
    return math.isclose(a, b, rel_tol=EQ_REL_TOL, abs_tol=EQ_ABS_TOL)


def compare(operator: Operator, value: float, low: float, high: float | None = None) -> bool:
    """Whether ``value operator low`` holds (``between`` uses ``[low, high]``, inclusive)."""
    return _predicate(operator, low, high)(value)


def _predicate(operator: Operator, low: float, high: float | None) -> Callable[[float], bool]:
    isclose, rel, abs_ = math.isclose, EQ_REL_TOL, EQ_ABS_TOL
    if operator == "gt":
        return lambda v: v > low and not isclose(v, low, rel_tol=rel, abs_tol=abs_)
    if operator == "gte":
        return lambda v: v >= low or isclose(v, low, rel_tol=rel, abs_tol=abs_)
    if operator == "lt":
        return lambda v: v < low and not isclose(v, low, rel_tol=rel, abs_tol=abs_)
    if operator == "lte":
        return lambda v: v <= low or isclose(v, low, rel_tol=rel, abs_tol=abs_)
    if operator == "eq":
        return lambda v: isclose(v, low, rel_tol=rel, abs_tol=abs_)
    if operator == "neq":
        return lambda v: not isclose(v, low, rel_tol=rel, abs_tol=abs_)
    if operator == "between":
        if high is None:
            raise ValueError("between needs a high bound")
        hi = high
        return lambda v: (v >= low or isclose(v, low, rel_tol=rel, abs_tol=abs_)) and (
            v <= hi or isclose(v, hi, rel_tol=rel, abs_tol=abs_)
        )
    raise ValueError(f"unknown operator {operator!r}")


#: Per-entity input of a compiled evaluator: range name → summed counters, and the daily budget in cents.
Ranges = Mapping[str, DailyCounters]
NodeFn = Callable[[Ranges, "int | None"], Truth]


@dataclass(frozen=True, slots=True)
class MetricRef:
    """One (metric, time range) a rule reads; ``key`` is ``metric@range`` as stored in snapshots."""

    key: str
    metric: MetricDef
    time_range: str
    days: int

    def value(self, ranges: Ranges, daily_budget_cents: int | None) -> float | None:
        return self.metric.compute(ranges[self.time_range], self.days, daily_budget_cents)


_SYMBOLS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "=", "neq": "!=", "between": "between"}


@dataclass(frozen=True, slots=True)
class Leaf:
    """One compiled condition, kept to say which conditions an entity did not meet and with which numbers."""

    ref: MetricRef
    operator: str
    bounds: tuple[float, ...]
    test: Callable[[float], bool]

    def failed(self, ranges: Ranges, daily_budget_cents: int | None) -> str | None:
        """``metric@range = value, needs OP bound`` when the entity's value is known and fails the condition."""
        value = self.ref.value(ranges, daily_budget_cents)
        if value is None or self.test(value):
            return None
        need = " and ".join(f"{b:.6g}" for b in self.bounds)
        return f"{self.ref.key} = {value:.6g}, needs {_SYMBOLS.get(self.operator, self.operator)} {need}"


@dataclass(frozen=True, slots=True)
class CompiledConditions:
    """A condition tree with targets resolved into closures; evaluate it once per entity."""

    root: NodeFn
    refs: tuple[MetricRef, ...]
    leaves: tuple[Leaf, ...] = ()

    def evaluate(self, ranges: Ranges, daily_budget_cents: int | None) -> Truth:
        """MATCH / NO_MATCH / UNAVAILABLE for one entity (see module doc for group semantics)."""
        return self.root(ranges, daily_budget_cents)

    def snapshot(self, ranges: Ranges, daily_budget_cents: int | None) -> dict[str, float | None]:
        """``{metric@range: value}`` for every metric the conditions reference (None = not computable)."""
        return {ref.key: ref.value(ranges, daily_budget_cents) for ref in self.refs}

    def unavailable(self, ranges: Ranges, daily_budget_cents: int | None) -> list[str]:
        """The ``metric@range`` keys whose value is None for this entity, each with its reason when one is known."""
        out = []
        for ref in self.refs:
            if ref.value(ranges, daily_budget_cents) is None:
                why = unavailable_because(ref.metric.name, ranges[ref.time_range], ref.time_range)
                out.append(f"{ref.key} ({why})" if why else ref.key)
        return out

    def not_met(self, ranges: Ranges, daily_budget_cents: int | None) -> list[str]:
        """Each condition the entity's known values fail, with the value and the bound (a skip's detail)."""
        return [text for leaf in self.leaves if (text := leaf.failed(ranges, daily_budget_cents)) is not None]


def _compile_leaf(cond: Condition, targets: Mapping[str, float]) -> tuple[NodeFn, MetricRef, Leaf]:
    bounds = [resolve_threshold(t, targets) for t in cond.thresholds()]
    test = _predicate(cond.operator, bounds[0], bounds[1] if len(bounds) > 1 else None)
    metric = METRICS[cond.metric]
    ref = MetricRef(cond.key, metric, cond.time_range, RANGE_DAYS[cond.time_range])
    compute, time_range, days = metric.compute, cond.time_range, ref.days

    def leaf(ranges: Ranges, budget: int | None) -> Truth:
        value = compute(ranges[time_range], days, budget)
        if value is None:
            return _UNAVAILABLE
        return _MATCH if test(value) else _NO_MATCH

    return leaf, ref, Leaf(ref, cond.operator, tuple(bounds), test)


def _compile_group(group: ConditionGroup, targets: Mapping[str, float], refs: dict[str, MetricRef],
                   leaves: list[Leaf]) -> NodeFn:
    children: list[NodeFn] = []
    for node in group.conditions:
        if isinstance(node, ConditionGroup):
            children.append(_compile_group(node, targets, refs, leaves))
        else:
            fn, ref, leaf = _compile_leaf(node, targets)
            refs.setdefault(ref.key, ref)
            leaves.append(leaf)
            children.append(fn)
    kids = tuple(children)

    if group.logic == "and":

        def all_of(ranges: Ranges, budget: int | None) -> Truth:
            for child in kids:
                outcome = child(ranges, budget)
                if outcome is not _MATCH:
                    return outcome
            return _MATCH

        return all_of

    def any_of(ranges: Ranges, budget: int | None) -> Truth:
        result = _NO_MATCH
        for child in kids:
            outcome = child(ranges, budget)
            if outcome is _MATCH:
                return _MATCH
            if outcome is _UNAVAILABLE:
                result = _UNAVAILABLE
        return result

    return any_of


def compile_conditions(group: ConditionGroup, targets: Mapping[str, float]) -> CompiledConditions:
    """Compile a validated condition tree; ``KeyError`` only if a target is missing (validation prevents it)."""
    refs: dict[str, MetricRef] = {}
    leaves: list[Leaf] = []
    root = _compile_group(group, targets, refs, leaves)
    return CompiledConditions(root=root, refs=tuple(refs.values()), leaves=tuple(leaves))


def evaluate_conditions(
    group: ConditionGroup,
    targets: Mapping[str, float],
    ranges: Ranges,
    daily_budget_cents: int | None,
) -> Truth:
    """One-off evaluation of a condition tree for one entity (compiles every call; the evaluator compiles once)."""
    return compile_conditions(group, targets).evaluate(ranges, daily_budget_cents)
