"""Diminishing-returns report: active members that grew spend recently without improving ROAS, and each planned
member's response curve as the engine fits it (:func:`response_curves`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from allot.pools.domain.engine import fit_responses
from allot.pools.domain.learn import maturation_at
from allot.pools.domain.models import EngineState, MemberState, MetricInterval, PoolSettings

__all__ = [
    "CURVE_POINTS",
    "CurvePoint",
    "DiminishingReturnsFinding",
    "ResponseCurve",
    "find_diminishing_returns",
    "response_curves",
]

#: Points of a published response curve (evenly spaced from no spend to twice the larger of budget and equal share).
CURVE_POINTS = 24


@dataclass(frozen=True, slots=True)
class DiminishingReturnsFinding:
    """One flagged member with the numbers behind the flag (spend per day in cents, ROAS maturity-corrected)."""

    member_id: str
    spend_before_cents_per_day: int
    spend_after_cents_per_day: int
    roas_before: float
    roas_after: float
    spend_growth_pct: float
    explanation: str


def _window(
    ivs: Sequence[MetricInterval], start: datetime, end: datetime, now: datetime, pool: PoolSettings
) -> tuple[float, float, float]:
    spend = value = hours = 0.0
    for iv in ivs:
        if iv.end_at <= start or iv.end_at > end:
            continue
        f = maturation_at((now - iv.end_at).total_seconds() / 3600.0, pool.maturation_curve)
        if f < pool.min_maturity:
            continue
        spend += iv.spend_cents
        value += iv.revenue_cents / f
        hours += iv.hours
    return spend, value, hours


def find_diminishing_returns(
    pool: PoolSettings,
    members: Sequence[MemberState],
    history: Mapping[str, Sequence[MetricInterval]],
    *,
    now: datetime,
    window_days: float = 7.0,
    min_spend_growth_pct: float = 10.0,
) -> list[DiminishingReturnsFinding]:
    """Active, unpaused members whose daily spend in the last ``window_days`` grew by at least
    ``min_spend_growth_pct`` over the window before it while their (maturity-corrected) ROAS did not improve; sorted
    by spend growth."""
    out: list[DiminishingReturnsFinding] = []
    mid = now - timedelta(days=window_days)
    begin = mid - timedelta(days=window_days)
    for mb in members:
        if not mb.is_active or mb.paused:
            continue
        ivs = history.get(mb.member_id, ())
        s0, v0, h0 = _window(ivs, begin, mid, now, pool)
        s1, v1, h1 = _window(ivs, mid, now, now, pool)
        if s0 <= 0 or s1 <= 0 or h0 <= 0 or h1 <= 0:
            continue
        d0 = s0 * 24.0 / h0
        d1 = s1 * 24.0 / h1
        growth = 100.0 * (d1 / d0 - 1.0)
        r0, r1 = v0 / s0, v1 / s1
        if growth >= min_spend_growth_pct and r1 <= r0:
            out.append(
                DiminishingReturnsFinding(
                    member_id=mb.member_id,
                    spend_before_cents_per_day=round(d0),
                    spend_after_cents_per_day=round(d1),
                    roas_before=r0,
                    roas_after=r1,
                    spend_growth_pct=growth,
                    explanation=(
                        f"spend/day {d0 / 100:,.2f} -> {d1 / 100:,.2f} {pool.currency} (+{growth:.0f}%) while ROAS "
                        f"{r0:.2f} -> {r1:.2f}: candidate to cap or trim"
                    ),
                )
            )
    out.sort(key=lambda f: (-f.spend_growth_pct, f.member_id))
    return out


@dataclass(frozen=True, slots=True)
class CurvePoint:
    spend_cents_per_day: int
    value_per_day: float
    """Posterior-mean daily value at that daily spend (in the curve's ``value_unit``)."""


@dataclass(frozen=True, slots=True)
class ResponseCurve:
    """One member's response curve as the engine plans on it: the posterior-mean Hill curve on a spend grid."""

    member_id: str
    budget_cents: int
    equal_share_cents: int
    """The pool's equal share (the curves' reference spend)."""
    kind: str
    """``concave`` (posterior-mean Hill exponent at most 1) or ``s_shaped`` (above 1: little return below its bend)."""
    hill_exponent: float
    """Posterior-mean Hill exponent."""
    evidence_days: float
    """Days of delivery in the look-back the fit rests on (0: none)."""
    prior_only: bool
    """No evidence: the curve is the prior (the pool's value per spend at the equal share)."""
    value_unit: str
    """``revenue_cents`` or ``conversions`` (what the pool's metric counts as value)."""
    points: tuple[CurvePoint, ...]


def response_curves(
    pool: PoolSettings,
    members: Sequence[MemberState],
    history: Mapping[str, Sequence[MetricInterval]],
    *,
    now: datetime,
    state: EngineState | None = None,
    points: int = CURVE_POINTS,
) -> list[ResponseCurve]:
    """Each member a plan would share the budget among (active, unpaused: the same rule as ``plan_allocation``),
    with its posterior-mean response curve (the engine's ``fit_responses``, from the same inputs and stored state a
    plan gets) at ``points`` daily spends from 0 to twice the larger of its budget and the pool's equal share."""
    planned = [mb for mb in members if mb.is_active and not mb.paused]
    fits = fit_responses(pool, planned, history, now=now, state=state)
    out: list[ResponseCurve] = []
    n = max(points, 2)
    for mb, curve, obs in zip(planned, fits.curves, fits.obs, strict=True):
        top = 2.0 * max(float(mb.current_budget_cents), fits.x_ref)
        grid = [round(top * i / (n - 1)) for i in range(n)]
        h = sum(w * hh for w, hh in zip(curve.weights, curve.hs, strict=True))
        out.append(
            ResponseCurve(
                member_id=mb.member_id,
                budget_cents=mb.current_budget_cents,
                equal_share_cents=round(fits.x_ref),
                kind="s_shaped" if h > 1.0 else "concave",
                hill_exponent=h,
                evidence_days=obs.days if obs is not None else 0.0,
                prior_only=obs is None,
                value_unit=fits.value_unit,
                points=tuple(CurvePoint(x, curve.value_at(x)) for x in grid),
            )
        )
    return out
