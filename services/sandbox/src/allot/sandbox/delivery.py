"""Pure delivery model of the sandbox ad platform.

Every entity (campaign or ad set) has hidden true response parameters
(:class:`EntityCurve`). Conversions per day follow a saturating curve with
diminishing returns::

    conversions/day = a(day) * season(weekday) * (1 - exp(-daily_spend / s))

where ``a(day)`` is the saturation level (it decays after ``fade_start_day`` for
fading entities). Revenue is conversions times the average order value.
Impressions follow CPM, clicks follow CTR (which decays as frequency grows).
An interval reaches ``impressions / frequency`` people.

Reach is not additive: people reached in two intervals are partly the same people. The sandbox's model of
that overlap is fixed (:func:`deduplicated_reach`): over several periods (the hours of a day, the days of a
range) the period that reached the most people counts in full and every other adds ``1 - overlap`` of its
people as new ones, so a day's reach is less than the sum of its hours' and a range's less than the sum of its
days' (whenever two periods reached anyone), and at least the largest period's.

Nothing here reads a clock or does I/O; randomness only comes from the
``random.Random`` passed in. Money is integer cents everywhere.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import pairwise

__all__ = [
    "DEFAULT_SEASONALITY",
    "MATURATION_CURVE",
    "REACH_OVERLAP",
    "EntityCurve",
    "IntervalDelivery",
    "expected_conversions_per_day",
    "expected_revenue_cents",
    "make_portfolio",
    "deduplicated_reach",
    "marginal_revenue_per_cent",
    "maturation_fraction",
    "reported_after",
    "simulate_interval",
]

#: Weekly multipliers, Monday..Sunday (shared pattern; entities add a small jitter).
DEFAULT_SEASONALITY: tuple[float, ...] = (1.00, 0.96, 0.95, 0.99, 1.04, 1.10, 1.06)

#: Attribution maturation: (age of the interval end in hours, fraction reported).
#: 60% of conversions/revenue are visible right after the interval, 85% a day
#: later and everything after three days; linear in between.
MATURATION_CURVE: tuple[tuple[float, float], ...] = ((0.0, 0.60), (24.0, 0.85), (72.0, 1.00))

_MAX_OVERDELIVERY = 1.25

#: Share of another period's people already reached in the period that reached the most (see the module doc).
REACH_OVERLAP = 0.5


def deduplicated_reach(largest: int, total: int, overlap: float = REACH_OVERLAP) -> int:
    """People reached over periods whose largest reach is ``largest`` and whose reaches sum to ``total``."""
    return largest + round((1.0 - overlap) * (total - largest))


@dataclass(frozen=True, slots=True)
class EntityCurve:
    """Hidden true response parameters of one entity (never shown to the engine)."""

    entity_id: str
    saturation_conversions_per_day: float
    """``a``: conversions/day the entity would reach at unlimited spend."""
    scale_cents: float
    """``s``: daily spend at which 63% of the saturation level is reached."""
    aov_cents: int
    """Average order value: revenue per conversion."""
    cpm_cents: int = 800
    ctr: float = 0.012
    base_frequency: float = 1.3
    frequency_growth_per_day: float = 0.02
    seasonality: tuple[float, ...] = DEFAULT_SEASONALITY
    noise_sigma: float = 0.30
    """Log-normal sigma of the per-interval conversion-rate noise."""
    aov_sigma: float = 0.10
    """Log-normal sigma of the per-interval basket-size noise."""
    spend_sigma: float = 0.06
    """Log-normal sigma of the platform's pacing around the budget share."""
    origin_at: datetime | None = None
    """Day 0 of the entity's life (fade and frequency growth count from it)."""
    fade_start_day: float | None = None
    fade_per_day: float = 0.0
    """Fractional loss of ``a`` per day after ``fade_start_day`` (creative fatigue)."""
    role: str = "regular"

    def level_multiplier(self, at: datetime) -> float:
        """Fade multiplier of the saturation level at ``at`` (1.0 when not fading)."""
        if self.fade_start_day is None or self.origin_at is None or self.fade_per_day <= 0:
            return 1.0
        days = (at - self.origin_at).total_seconds() / 86400.0 - self.fade_start_day
        if days <= 0:
            return 1.0
        return float((1.0 - self.fade_per_day) ** days)

    def frequency_at(self, at: datetime) -> float:
        """Average frequency (impressions per reached person) at ``at``."""
        if self.origin_at is None:
            return self.base_frequency
        days = max(0.0, (at - self.origin_at).total_seconds() / 86400.0)
        return self.base_frequency + self.frequency_growth_per_day * days


@dataclass(frozen=True, slots=True)
class IntervalDelivery:
    """What the platform delivered for one entity over one interval (fully matured)."""

    entity_id: str
    start_at: datetime
    hours: float
    budget_cents: int
    """Daily budget in force during the interval."""
    spend_cents: int
    impressions: int
    clicks: int
    conversions: int
    revenue_cents: int
    frequency: float
    expected_conversions: float
    expected_revenue_cents: float
    reported_fraction: float = 1.0
    """Share of conversions/revenue visible so far (1.0 = matured)."""

    @property
    def end_at(self) -> datetime:
        """End of the interval."""
        return self.start_at + timedelta(hours=self.hours)


def maturation_fraction(age_hours: float, curve: tuple[tuple[float, float], ...] = MATURATION_CURVE) -> float:
    """Share of an interval's conversions/revenue reported ``age_hours`` after it ended (piecewise linear, 1.0 after
    the last point)."""
    if age_hours <= curve[0][0]:
        return curve[0][1]
    for (h0, f0), (h1, f1) in pairwise(curve):
        if age_hours <= h1:
            return f0 + (f1 - f0) * (age_hours - h0) / (h1 - h0)
    return curve[-1][1]


def expected_conversions_per_day(curve: EntityCurve, daily_spend_cents: float, day: datetime) -> float:
    """Noise-free conversions/day at a daily spend on the calendar day of ``day``."""
    if daily_spend_cents <= 0:
        return 0.0
    season = curve.seasonality[day.weekday()]
    level = curve.saturation_conversions_per_day * curve.level_multiplier(day) * season
    return level * (1.0 - math.exp(-daily_spend_cents / curve.scale_cents))


def expected_revenue_cents(curve: EntityCurve, daily_budget_cents: float, day: datetime) -> float:
    """Noise-free revenue (cents) of one day at ``daily_budget_cents``, assuming the budget is spent exactly; the
    truth used for the oracle."""
    return expected_conversions_per_day(curve, daily_budget_cents, day) * curve.aov_cents


def marginal_revenue_per_cent(curve: EntityCurve, daily_budget_cents: float, day: datetime) -> float:
    """Noise-free derivative of daily revenue with respect to daily spend (revenue cents per spend cent)."""
    season = curve.seasonality[day.weekday()]
    level = curve.saturation_conversions_per_day * curve.level_multiplier(day) * season
    return level * curve.aov_cents / curve.scale_cents * math.exp(-max(0.0, daily_budget_cents) / curve.scale_cents)


def _stochastic_round(value: float, rng: random.Random) -> int:
    base = math.floor(value)
    return int(base + (1 if rng.random() < value - base else 0))


def simulate_interval(
    curve: EntityCurve, budget_cents: int, start: datetime, hours: float, rng: random.Random
) -> IntervalDelivery:
    """Deliver one interval: spend stays within 125% of the interval's budget share; counts are ints drawn with
    ``rng`` only.

    The platform paces spend around ``budget_cents * hours / 24`` with log-normal
    noise and never overdelivers more than 25% of that share. Conversions are the
    saturating curve evaluated at the realised daily spend rate, times
    multiplicative noise, stochastically rounded; revenue adds basket-size noise.
    """
    if hours <= 0:
        raise ValueError("hours must be positive")
    share = max(0, budget_cents) * hours / 24.0
    pace = min(_MAX_OVERDELIVERY, math.exp(rng.gauss(-0.5 * curve.spend_sigma**2, curve.spend_sigma)))
    spend = min(int(share * _MAX_OVERDELIVERY), _stochastic_round(share * pace, rng))
    mid = start + timedelta(hours=hours / 2.0)
    daily_rate = spend * 24.0 / hours
    expected_conv = expected_conversions_per_day(curve, daily_rate, mid) * hours / 24.0
    noisy = expected_conv * math.exp(rng.gauss(-0.5 * curve.noise_sigma**2, curve.noise_sigma))
    conversions = _stochastic_round(noisy, rng)
    basket = math.exp(rng.gauss(-0.5 * curve.aov_sigma**2, curve.aov_sigma))
    revenue = int(round(conversions * curve.aov_cents * basket))
    frequency = curve.frequency_at(mid)
    impressions = _stochastic_round(spend / curve.cpm_cents * 1000.0 if curve.cpm_cents > 0 else 0.0, rng)
    # Engagement decays as the same people see the ad more often.
    ctr = curve.ctr / (1.0 + 0.35 * max(0.0, frequency - curve.base_frequency))
    clicks = _stochastic_round(impressions * ctr, rng)
    return IntervalDelivery(
        entity_id=curve.entity_id,
        start_at=start,
        hours=hours,
        budget_cents=budget_cents,
        spend_cents=spend,
        impressions=impressions,
        clicks=clicks,
        conversions=conversions,
        revenue_cents=revenue,
        frequency=frequency,
        expected_conversions=expected_conv,
        expected_revenue_cents=expected_conv * curve.aov_cents,
    )


def reported_after(
    delivery: IntervalDelivery, age_hours: float, curve: tuple[tuple[float, float], ...] = MATURATION_CURVE
) -> IntervalDelivery:
    """The interval as the platform reports it ``age_hours`` after its end: conversions and revenue scaled down by the
    maturation fraction (floored), everything else unchanged."""
    fraction = maturation_fraction(age_hours, curve)
    if fraction >= 1.0:
        return replace(delivery, reported_fraction=1.0)
    return replace(
        delivery,
        conversions=int(math.floor(delivery.conversions * fraction + 1e-9)),
        revenue_cents=int(math.floor(delivery.revenue_cents * fraction + 1e-9)),
        reported_fraction=fraction,
    )


def make_portfolio(seed: int, n: int, *, origin_at: datetime | None = None) -> list[EntityCurve]:
    """A varied, reproducible set of ``n`` (≥4) curves: strong, weak and middling entities, plus one strong newcomer
    and one fader.

    Roles (``EntityCurve.role``): index 0 is ``"fading"`` (loses ~4%/day of its
    level from day 3 of the run), index 1 is a ``"newcomer"`` (strong, its
    ``origin_at`` is ``origin_at`` + 13 days so it has about one day of history
    at the start of a run that begins 14 days after ``origin_at``), the rest
    are ``"strong"``, ``"weak"`` or ``"regular"`` with a spread of scale
    (saturation) and efficiency. Same seed, same portfolio.
    """
    if n < 4:
        raise ValueError("a portfolio needs at least 4 entities")
    rng = random.Random(seed)
    origin = origin_at or datetime(2024, 1, 1)
    curves: list[EntityCurve] = []
    for i in range(n):
        role = "regular"
        if i == 0:
            role = "fading"
        elif i == 1:
            role = "newcomer"
        elif i % 4 == 2:
            role = "strong"
        elif i % 4 == 3:
            role = "weak"
        aov = int(rng.uniform(3000, 9000))
        scale = rng.uniform(6000.0, 30000.0)
        # Target ROAS at a reference spend of 15,000 cents/day.
        roas_ref = {
            "strong": rng.uniform(3.5, 5.0),
            "weak": rng.uniform(1.0, 1.8),
            "regular": rng.uniform(1.8, 3.2),
            "fading": rng.uniform(3.2, 4.2),
            "newcomer": rng.uniform(4.0, 5.5),
        }[role]
        ref = 15000.0
        conv_at_ref = roas_ref * ref / aov
        a = conv_at_ref / (1.0 - math.exp(-ref / scale))
        jitter = tuple(m * rng.uniform(0.97, 1.03) for m in DEFAULT_SEASONALITY)
        curves.append(
            EntityCurve(
                entity_id=f"e{i:02d}",
                saturation_conversions_per_day=a,
                scale_cents=scale,
                aov_cents=aov,
                cpm_cents=int(rng.uniform(500, 1400)),
                ctr=rng.uniform(0.008, 0.02),
                base_frequency=rng.uniform(1.1, 1.6),
                frequency_growth_per_day=0.08 if role == "fading" else rng.uniform(0.0, 0.02),
                seasonality=jitter,
                origin_at=origin + timedelta(days=13) if role == "newcomer" else origin,
                fade_start_day=17.0 if role == "fading" else None,
                fade_per_day=0.04 if role == "fading" else 0.0,
                role=role,
            )
        )
    return curves
