"""Cross-field validation of a pool's configuration (pure): bounds, floors against the budget, member count."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "COMPOSITE_WEIGHT_RANGE",
    "KNOB_RANGES",
    "MAX_ACTIVE_MEMBERS",
    "MAX_RISK_PENALTY",
    "MemberBounds",
    "Problem",
    "config_problems",
    "knob_problems",
]

MAX_ACTIVE_MEMBERS = 20


@dataclass(frozen=True, slots=True)
class MemberBounds:
    """What validation needs of one member; ``field`` is how the API names it (e.g. ``members.3``)."""

    field: str
    entity_id: str
    min_budget_cents: int | None
    max_budget_cents: int | None
    is_active: bool = True


@dataclass(frozen=True, slots=True)
class Problem:
    """One refusal: the offending field (API name) and a message with the numbers."""

    field: str
    message: str


def config_problems(
    *,
    daily_budget_cents: int,
    default_min_budget_cents: int,
    default_max_budget_cents: int | None,
    members: Sequence[MemberBounds],
    budget_field: str = "dailyBudgetCents",
    members_field: str = "members",
    max_active_members: int = MAX_ACTIVE_MEMBERS,
) -> list[Problem]:
    """Every problem of a (whole) pool configuration; empty when it is valid.

    Checks: pool default floor <= default ceiling; each member's effective floor (its own or the pool
    default) <= its effective ceiling; at most ``max_active_members`` active members; no entity twice;
    active members' floors sum to at most the daily budget.
    """
    out: list[Problem] = []
    if default_max_budget_cents is not None and default_max_budget_cents < default_min_budget_cents:
        out.append(
            Problem(
                "defaultMaxBudgetCents",
                (
                    f"default ceiling {default_max_budget_cents} cents is below the default floor "
                    f"{default_min_budget_cents} cents"
                ),
            )
        )
    seen: dict[str, str] = {}
    floors = 0
    active = 0
    for mb in members:
        if mb.entity_id in seen:
            out.append(
                Problem(f"{mb.field}.entityId", f"entity {mb.entity_id} is already a member ({seen[mb.entity_id]})")
            )
            continue
        seen[mb.entity_id] = mb.field
        lo = mb.min_budget_cents if mb.min_budget_cents is not None else default_min_budget_cents
        hi = mb.max_budget_cents if mb.max_budget_cents is not None else default_max_budget_cents
        if hi is not None and lo > hi:
            which = "minBudgetCents" if mb.min_budget_cents is not None else "maxBudgetCents"
            out.append(
                Problem(
                    f"{mb.field}.{which}", (f"member {mb.entity_id}: floor {lo} cents is above its ceiling {hi} cents")
                )
            )
        if mb.is_active:
            active += 1
            floors += lo
            if active == max_active_members + 1:
                out.append(
                    Problem(
                        members_field,
                        (
                            f"a pool has at most {max_active_members} active members; {mb.entity_id} would be number "
                            f"{active}"
                        ),
                    )
                )
    if floors > daily_budget_cents:
        out.append(
            Problem(
                budget_field,
                (
                    f"active members' floors (minBudgetCents) sum to {floors} cents, above the pool's daily budget of "
                    f"{daily_budget_cents} cents"
                ),
            )
        )
    return out


#: Allowed ranges of the per-pool engine knobs: snake_case name → (API name, low, high), both ends included.
#: Inside what PoolSettings accepts, and narrower where the engine has no upper bound (a cooldown beyond a week
#: or a persistence of more than 24 plans would leave a pool unmanaged; a dead band of half the budget would too).
KNOB_RANGES: dict[str, tuple[str, float, float]] = {
    "persistence_intervals": ("persistenceIntervals", 1, 24),
    "cooldown_hours": ("cooldownHours", 0.0, 168.0),
    "deadband_pct": ("deadbandPct", 0.0, 50.0),
    "exploration_share": ("explorationShare", 0.0, 0.10),
}
#: Each composite weight (API name → range); CompositeWeights' own rules come on top: roas + cpa > 0 and the
#: two risk penalties together at most MAX_RISK_PENALTY.
COMPOSITE_WEIGHT_RANGE: dict[str, tuple[str, float, float]] = {
    "roas": ("roas", 0.0, 100.0),
    "cpa": ("cpa", 0.0, 100.0),
    "frequency_risk": ("frequencyRisk", 0.0, 0.5),
    "engagement_decay": ("engagementDecay", 0.0, 0.5),
}
MAX_RISK_PENALTY = 0.5


def _range_text(low: float, high: float) -> str:
    return f"[{low:g}, {high:.2f}]" if high < 1 else f"[{low:g}, {high:g}]"


def knob_problems(knobs: Mapping[str, object], *, prefix: str = "") -> list[Problem]:
    """Problems of the engine knobs given (snake_case keys; absent or None = the engine default).

    ``composite_weights`` is a mapping with all four weights (snake_case keys). Fields are named as the API
    names them (``prefix`` + camelCase), each message with the allowed range."""
    out: list[Problem] = []
    for name, (api, low, high) in KNOB_RANGES.items():
        value = knobs.get(name)
        if value is None:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
            kind = "an integer" if name == "persistence_intervals" else "a number"
            out.append(Problem(f"{prefix}{api}", f"must be {kind} within {_range_text(low, high)}, got {value}"))
    cw = knobs.get("composite_weights")
    if isinstance(cw, Mapping):
        base = f"{prefix}compositeWeights"
        ok = True
        for name, (api, low, high) in COMPOSITE_WEIGHT_RANGE.items():
            value = cw.get(name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
                ok = False
                out.append(Problem(f"{base}.{api}", f"must be a number within {_range_text(low, high)}, got {value}"))
        if ok:
            if cw["roas"] + cw["cpa"] <= 0:
                out.append(Problem(f"{base}.roas", "roas + cpa must be above 0 (something must count as value)"))
            risk = cw["frequency_risk"] + cw["engagement_decay"]
            if risk > MAX_RISK_PENALTY:
                out.append(
                    Problem(
                        f"{base}.frequencyRisk",
                        f"frequencyRisk + engagementDecay must be within [0, {MAX_RISK_PENALTY:g}] (the risk "
                        f"penalties may remove at most half of a member's return), got {risk:g}",
                    )
                )
    return out
