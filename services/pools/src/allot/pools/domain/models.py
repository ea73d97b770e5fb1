"""Immutable inputs and outputs of the budget-pool engine (standard library only)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Any

ALLOWED_FREQUENCIES_H: frozenset[int] = frozenset({4, 8, 12, 24})
MAX_EXPLORATION_SHARE = 0.10


class OptimizationMetric(StrEnum):
    """What the pool maximises: revenue per cent (roas, revenue) or conversions per cent (cpa, conversions)."""

    ROAS = "roas"
    CPA = "cpa"
    CONVERSIONS = "conversions"
    REVENUE = "revenue"


@dataclass(frozen=True, slots=True)
class CompositeWeights:
    """Weights of the composite score (seed 001): value signals plus risk penalties.

    ``roas`` and ``cpa`` weigh the value a member produces (revenue, and
    conversions priced at the pool's average revenue per conversion);
    ``frequency_risk`` and ``engagement_decay`` are penalties in [0, 1] that
    shave the member's estimated return when its frequency rises or its CTR
    falls against its OWN baseline.
    """

    roas: float = 1.0
    cpa: float = 0.0
    frequency_risk: float = 0.10
    engagement_decay: float = 0.10

    def __post_init__(self) -> None:
        for name in ("roas", "cpa", "frequency_risk", "engagement_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"composite weight {name} must be >= 0")
        if self.roas + self.cpa <= 0:
            raise ValueError("composite weights need roas + cpa > 0")
        if self.frequency_risk + self.engagement_decay > 0.5:
            raise ValueError("risk penalties may remove at most half of a member's return")


def default_composite(metric: OptimizationMetric) -> CompositeWeights:
    """Composite weights implied by the optimisation metric when the pool sets none (shared frozen instances)."""
    if metric in (OptimizationMetric.CPA, OptimizationMetric.CONVERSIONS):
        return _CONVERSION_COMPOSITE
    return _REVENUE_COMPOSITE


_CONVERSION_COMPOSITE = CompositeWeights(roas=0.0, cpa=1.0)
_REVENUE_COMPOSITE = CompositeWeights(roas=1.0, cpa=0.0)


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """A pool's rules. Money in integer cents; validated on construction."""

    pool_id: str
    daily_budget_cents: int
    currency: str = "EUR"
    optimization_metric: OptimizationMetric = OptimizationMetric.ROAS
    allocation_frequency_hours: int = 8
    default_min_budget_cents: int = 0
    default_max_budget_cents: int | None = None
    min_budget_change_cents: int = 100
    max_change_pct: float = 20.0
    composite_weights: CompositeWeights | None = None
    exploration_share: float = 0.02
    """Share of the daily budget the engine may place on purpose to learn (Thompson-sampled experiments); at most
    0.10."""
    persistence_intervals: int = 2
    """Consecutive plans a move's direction must hold before it is made (a ramp in the same direction continues)."""
    cooldown_hours: float = 24.0
    """Minimum hours before the engine reverses the direction of its last change of a member."""
    continuation_cooldown_hours: float = 8.0
    """Minimum hours between two engine changes of a member in the same direction while its target is still more
    than two step limits away (a newcomer's or a fading winner's ramp); 0: every plan. Never longer than
    ``cooldown_hours`` (the shorter of the two applies); closer to its target a member waits ``cooldown_hours``."""
    lookback_days: float = 21.0
    recency_half_life_days: float = 8.0
    """Half-life (days) of the weight of old evidence in the response fit (drift, fatigue against noise)."""
    maturation_curve: tuple[tuple[float, float], ...] = ((0.0, 0.60), (24.0, 0.85), (72.0, 1.00))
    """Prior of the platform's attribution maturation: (hours after interval end, share reported). The engine
    learns the pool's own curve from restatements and blends it with this as evidence accumulates."""
    min_maturity: float = 0.30
    """Intervals reported below this share (after learning) are left out (too immature to correct reliably)."""
    prior_elasticity: float = 0.60
    """Prior centre of a member's elasticity d log(value) / d log(spend) at the pool's equal share (the Hill-curve grid
    is weighted by it); 1.0 would mean no diminishing returns there."""
    deadband_pct: float = 20.0
    """A target must differ from the current budget by more than this % (and the minimum change) to count as a
    signal."""
    oscillation_window: int = 6
    oscillation_reversals: int = 3
    freeze_hours: float = 72.0
    """How long a member whose changes keep reversing is held (the rest of the pool keeps working)."""

    def __post_init__(self) -> None:
        if self.daily_budget_cents < 0:
            raise ValueError("daily_budget_cents must be >= 0")
        if self.allocation_frequency_hours not in ALLOWED_FREQUENCIES_H:
            raise ValueError("allocation_frequency_hours must be one of 4, 8, 12, 24")
        if self.default_min_budget_cents < 0:
            raise ValueError("default_min_budget_cents must be >= 0")
        if self.default_max_budget_cents is not None and self.default_max_budget_cents < self.default_min_budget_cents:
            raise ValueError("default_max_budget_cents must be >= default_min_budget_cents")
        if self.min_budget_change_cents < 1:
            raise ValueError("min_budget_change_cents must be >= 1")
        if not 0 < self.max_change_pct <= 100:
            raise ValueError("max_change_pct must be in (0, 100]")
        if not 0 <= self.exploration_share <= MAX_EXPLORATION_SHARE:
            raise ValueError("exploration_share must be within [0, 0.10]")
        if self.persistence_intervals < 1:
            raise ValueError("persistence_intervals must be >= 1")
        if not self.continuation_cooldown_hours >= 0:
            raise ValueError("continuation_cooldown_hours must be >= 0")
        if self.cooldown_hours < 0 or self.lookback_days <= 0:
            raise ValueError("cooldown_hours must be >= 0 and lookback_days > 0")
        if not 0 < self.prior_elasticity < 1:
            raise ValueError("prior_elasticity must be in (0, 1)")
        if not 0 < self.min_maturity <= 1:
            raise ValueError("min_maturity must be in (0, 1]")
        if not 0 <= self.deadband_pct < 100:
            raise ValueError("deadband_pct must be within [0, 100)")
        if self.recency_half_life_days <= 0 or self.freeze_hours < 0:
            raise ValueError("recency_half_life_days must be > 0 and freeze_hours >= 0")
        if self.oscillation_reversals < 1 or self.oscillation_window < self.oscillation_reversals + 1:
            raise ValueError("oscillation_window must exceed oscillation_reversals")
        mc = self.maturation_curve
        if not mc or any(b[0] <= a[0] or b[1] < a[1] for a, b in pairwise(mc)) or mc[0][1] <= 0 or mc[-1][1] != 1.0:
            raise ValueError("maturation_curve must be increasing in hours, non-decreasing, > 0 and end at 1.0")

    @property
    def composite(self) -> CompositeWeights:
        """The composite weights in force (explicit, or derived from the metric)."""
        return self.composite_weights or default_composite(self.optimization_metric)


@dataclass(frozen=True, slots=True)
class MemberState:
    """A pool member as the caller knows it now. ``None`` bounds fall back to the pool defaults."""

    member_id: str
    current_budget_cents: int
    min_budget_cents: int | None = None
    max_budget_cents: int | None = None
    weight: float = 1.0
    is_active: bool = True
    paused: bool = False
    window_min_cents: int | None = None
    """Lowest budget this plan may move the member to under the guardrails' rolling net-change limit (``None``: no
    such limit). Unlike the floor it bounds only this plan's move, not where the member should end up: the targets
    stay planned on the floor and ceiling, so money that must wait for the window is not parked on others."""
    window_max_cents: int | None = None
    """Highest budget this plan may move the member to under the net-change limit (see ``window_min_cents``)."""

    def __post_init__(self) -> None:
        if self.current_budget_cents < 0:
            raise ValueError("current_budget_cents must be >= 0")
        if self.weight <= 0:
            raise ValueError("weight must be > 0")
        for lo, hi in ((self.min_budget_cents, self.max_budget_cents), (self.window_min_cents, self.window_max_cents)):
            if lo is not None and hi is not None and hi < lo:
                raise ValueError("max_budget_cents must be >= min_budget_cents")


@dataclass(frozen=True, slots=True)
class MetricInterval:
    """Metrics of one member over [start_at, end_at) as reported by the platform when loaded (may be immature)."""

    start_at: datetime
    end_at: datetime
    spend_cents: int
    revenue_cents: int
    conversions: float
    impressions: int = 0
    clicks: int = 0
    frequency: float | None = None
    reported_at: datetime | None = None
    """When the platform reported these numbers (each ``metrics.ingested`` carries it); ``None`` when unknown.
    Restatements of the same interval at later ``reported_at`` show how much arrives late."""
    end_ts: float = field(init=False, repr=False, compare=False)
    """POSIX seconds of ``end_at`` (derived once at construction; the engine's hot loop reads it)."""
    hours: float = field(init=False, repr=False, compare=False)
    """Length of the interval in hours (derived)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "end_ts", self.end_at.timestamp())
        object.__setattr__(self, "hours", (self.end_at - self.start_at).total_seconds() / 3600.0)


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _dt(v: Any) -> datetime | None:
    return datetime.fromisoformat(v) if v else None


@dataclass(frozen=True, slots=True)
class MemberMemory:
    """What the engine remembers about one member between plans."""

    pending_direction: int = 0
    """Direction (+1/-1/0) of the last signal that has not been acted on yet."""
    pending_count: int = 0
    """Consecutive plans that signal held in the same direction."""
    last_change_at: datetime | None = None
    recent_directions: tuple[int, ...] = ()
    """Directions of the engine's last changes of this member, oldest first (bounded by the oscillation window)."""
    budget_cents: int | None = None
    """The budget the engine last saw or set (a different current budget means someone else changed it)."""
    budget_since: datetime | None = None
    """When ``budget_cents`` took effect, as far as the engine knows (``None``: before anything it has seen)."""
    cap_cents: int | None = None
    """Measured delivery cap: the daily spend the member reached while its budget was clearly higher."""
    cap_at: datetime | None = None
    """When the cap was last measured (it is re-tested after ``CAP_RETEST_HOURS``)."""
    held_until: datetime | None = None
    """Oscillation hold: the engine leaves this member alone (but for repairing the pool total) until then."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "pending_direction": self.pending_direction,
            "pending_count": self.pending_count,
            "last_change_at": _iso(self.last_change_at),
            "recent_directions": list(self.recent_directions),
            "budget_cents": self.budget_cents,
            "budget_since": _iso(self.budget_since),
            "cap_cents": self.cap_cents,
            "cap_at": _iso(self.cap_at),
            "held_until": _iso(self.held_until),
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> MemberMemory:
        """Inverse of :meth:`to_dict` (fields a stored state lacks take their defaults)."""
        budget = data.get("budget_cents")
        cap = data.get("cap_cents")
        return MemberMemory(
            pending_direction=int(data.get("pending_direction", 0)),
            pending_count=int(data.get("pending_count", 0)),
            last_change_at=_dt(data.get("last_change_at")),
            recent_directions=tuple(int(d) for d in data.get("recent_directions", ())),
            budget_cents=int(budget) if budget is not None else None,
            budget_since=_dt(data.get("budget_since")),
            cap_cents=int(cap) if cap is not None else None,
            cap_at=_dt(data.get("cap_at")),
            held_until=_dt(data.get("held_until")),
        )


@dataclass(frozen=True, slots=True)
class EngineState:
    """Everything the engine carries from one plan to the next; the caller stores it and passes it back."""

    members: Mapping[str, MemberMemory] = field(default_factory=dict)
    frozen_until: datetime | None = None
    """A pool-wide freeze (set by an operator or an older engine): no engine-initiated moves until then."""
    frozen_reason: str | None = None
    last_plan_at: datetime | None = None
    seen: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """Per recent interval end (POSIX seconds as text): (age in hours, pool value reported) at the last plan."""
    restatements: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    """Pooled restatements, ``"age bucket then,age bucket now"`` -> sums of (value then, value now, value then x
    age then, value then x age now), decayed (``learn.add_pairs``)."""

    def memory(self, member_id: str) -> MemberMemory:
        """The member's memory (empty for a member never seen)."""
        return self.members.get(member_id) or _EMPTY_MEMORY

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "members": {k: v.to_dict() for k, v in sorted(self.members.items())},
            "frozen_until": _iso(self.frozen_until),
            "frozen_reason": self.frozen_reason,
            "last_plan_at": _iso(self.last_plan_at),
            "seen": {k: list(v) for k, v in sorted(self.seen.items())},
            "restatements": {k: list(v) for k, v in sorted(self.restatements.items())},
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> EngineState:
        """Inverse of :meth:`to_dict`."""
        return EngineState(
            members={k: MemberMemory.from_dict(v) for k, v in data.get("members", {}).items()},
            frozen_until=_dt(data.get("frozen_until")),
            frozen_reason=data.get("frozen_reason"),
            last_plan_at=_dt(data.get("last_plan_at")),
            seen={k: (float(v[0]), float(v[1])) for k, v in data.get("seen", {}).items()},
            restatements={
                k: tuple(float(x) for x in v) for k, v in data.get("restatements", {}).items() if len(v) == 4
            },
        )


_EMPTY_MEMORY = MemberMemory()


@dataclass(frozen=True, slots=True)
class MemberAllocation:
    """One member's line of a plan: the new budget, a reason code and the numbers behind it.

    The engine returns numbers and codes only; :attr:`explanation` (``allot.pools.domain.explain``)
    turns them into a sentence when somebody reads the line.
    """

    member_id: str
    previous_budget_cents: int
    new_budget_cents: int
    action: str
    """``increase``, ``decrease``, ``hold`` or ``excluded`` (paused/inactive)."""
    reason: str
    """Why, as a code (``explain.REASONS`` lists them); any other text is shown as it is."""
    baseline_roas: float | None = None
    """Member's own look-back value per spend (maturity-corrected)."""
    recent_roas: float | None = None
    marginal_return: float | None = None
    """Estimated value per extra cent at the current budget (posterior mean)."""
    elasticity: float | None = None
    shrinkage: float | None = None
    """Share of the member's level estimate that comes from the pool prior (0 = own data only, 1 = pool only)."""
    target_cents: int | None = None
    evidence_count: int = 0
    """Intervals of the member's own history the estimate used."""
    reasons: tuple[str, ...] = ()
    """Further codes (e.g. ``capped``, ``explore``) beside the main one."""
    cap_cents: int | None = None
    """Measured delivery cap (daily spend), when the member is capped."""
    pool_marginal_return: float | None = None
    """The pool's marginal return the targets equalise to (the same on every line of a plan)."""
    currency: str = "EUR"

    @property
    def change_cents(self) -> int:
        """New minus previous budget."""
        return self.new_budget_cents - self.previous_budget_cents

    @property
    def explanation(self) -> str:
        """The line in plain language (built when read)."""
        from allot.pools.domain.explain import describe  # the text is not part of the engine's hot path

        return describe(self)


@dataclass(frozen=True, slots=True)
class AllocationPlan:
    """The engine's output: budgets for every member, explanations, flags and the state to store."""

    pool_id: str
    planned_at: datetime
    currency: str
    daily_budget_cents: int
    allocations: tuple[MemberAllocation, ...]
    feasible: bool
    infeasible_reason: str | None
    frozen: bool
    frozen_reason: str | None
    state: EngineState
    pool_marginal_return: float | None = None

    @property
    def budgets(self) -> dict[str, int]:
        """New daily budget per member id (every member, excluded ones unchanged)."""
        return {a.member_id: a.new_budget_cents for a in self.allocations}

    @property
    def pool_total_cents(self) -> int:
        """Sum of the budgets of the members that take part in the pool (active, not paused)."""
        return sum(a.new_budget_cents for a in self.allocations if a.action != "excluded")

    @property
    def changes(self) -> tuple[MemberAllocation, ...]:
        """Lines whose budget changed."""
        return tuple(a for a in self.allocations if a.new_budget_cents != a.previous_budget_cents)


def hours_between(a: datetime, b: datetime) -> float:
    """``b - a`` in hours."""
    return (b - a).total_seconds() / 3600.0


def add_hours(a: datetime, hours: float) -> datetime:
    """``a`` plus ``hours``."""
    return a + timedelta(hours=hours)
