"""What the engine learns from metric history (pure): data maturity, delivery caps and each member's response.

Data maturity
    Platforms report an interval's conversions over days (late attribution) and restate it each time
    (every ``metrics.ingested`` carries ``reported_at``). The engine remembers, per pool, the value it
    saw for every recent interval end; at the next plan the same intervals, now older, show how much
    arrived in between. Those (age then, age now, value then, value now) pairs, pooled by age bucket,
    fit the share reported by age, ``F(age) = 1 - (1 - f0) exp(-age / tau)``, by least squares on a
    grid. Until enough restatements have been seen, the configured curve
    (``PoolSettings.maturation_curve``) is the prior it is blended with.

Delivery caps
    A member that spends clearly less than its budget is capped (audience, bid or the platform's
    pacing): money above what it can spend is wasted. :func:`delivery_cap` measures the spend rate
    since the budget took effect.

Response
    Per member, the daily value (revenue, or conversions priced by the composite) at daily spend ``x``
    is a Hill curve ``V(x) = A x^h / (x^h + K^h)``: concave everywhere for ``h <= 1``, S-shaped above
    (worth little until the spend passes its bend). The shape (``h``, ``K``) is not known, so
    :func:`fit_curve` keeps a posterior over a grid of shapes (``HILL_GRID`` x ``HALF_SAT_GRID``, the
    half-saturation spend relative to the pool's equal share); for each shape the scale ``A`` has a
    conjugate Gamma prior (the member's value at the equal share is near the pool's value per spend:
    members with little data borrow from the pool) and a Poisson likelihood of the member's
    maturity-corrected, recency-weighted value counts per day of delivery (a budget is a daily budget: hourly
    rows are summed into 24-hour blocks before their spend is read, so the intraday pattern of delivery is not
    taken for a response; counted in conversions, so zeros and low volume are weighed as counts), which
    integrates out in closed form. A shape's posterior weight is its
    prior (elasticity at the equal share near ``PoolSettings.prior_elasticity``) times that marginal
    likelihood. Evidence at several spends (the member's own budget changes and the engine's
    experiments) is what separates the shapes. The engine plans on the posterior-mean curve and
    samples one shape and scale per member for Thompson sampling (:class:`Curve`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from allot.pools.domain.models import MetricInterval

__all__ = [
    "AGE_BUCKETS_H",
    "Curve",
    "MaturityModel",
    "Obs",
    "add_pairs",
    "delivery_cap",
    "delivery_ratio",
    "fit_curve",
    "fit_maturity",
    "hill",
    "hill_values",
    "maturation_at",
    "maturity_pairs",
    "observations",
    "risk_signals",
]

#: Upper edges (hours) of the age buckets restatement pairs are pooled in; older than the last = matured.
AGE_BUCKETS_H: tuple[float, ...] = (3.0, 6.0, 12.0, 24.0, 36.0, 48.0, 72.0, 120.0, 168.0)
_F0_GRID = tuple(x / 100.0 for x in range(20, 101, 4))
_TAU_GRID_H = (1.0, 2.0, 4.0, 6.0, 9.0, 12.0, 18.0, 24.0, 36.0, 48.0, 72.0)
#: Pool-aggregate value (in the pool's value unit) of restatement evidence at which the learned curve
#: gets half the weight against the configured prior.
MATURITY_PRIOR_WEIGHT = 200.0


def maturation_at(age_hours: float, curve: Sequence[tuple[float, float]]) -> float:
    """Share of an interval's conversions/revenue reported ``age_hours`` after its end (piecewise linear, 1.0 after
    the last point)."""
    if age_hours <= curve[0][0]:
        return curve[0][1]
    prev_h, prev_f = curve[0]
    for h, f in curve[1:]:
        if age_hours <= h:
            return prev_f + (f - prev_f) * (age_hours - prev_h) / (h - prev_h)
        prev_h, prev_f = h, f
    return 1.0


def age_bucket(age_h: float) -> int:
    """Index of the age bucket of ``age_h`` (``len(AGE_BUCKETS_H)`` once matured)."""
    for k, edge in enumerate(AGE_BUCKETS_H):
        if age_h < edge:
            return k
    return len(AGE_BUCKETS_H)


@dataclass(frozen=True, slots=True)
class MaturityModel:
    """Share reported by age: the learned exponential blended with the configured prior curve."""

    f0: float
    tau_h: float
    weight: float
    """Weight of the learned curve (0: prior only, toward 1 with more restatement evidence)."""
    prior: tuple[tuple[float, float], ...]

    def at(self, age_h: float) -> float:
        """Share of the final value reported ``age_h`` hours after the interval ended (in (0, 1])."""
        prior = maturation_at(age_h, self.prior)
        if self.weight <= 0.0:
            return prior
        learned = 1.0 - (1.0 - self.f0) * math.exp(-max(age_h, 0.0) / self.tau_h)
        return self.weight * learned + (1.0 - self.weight) * prior


def maturity_pairs(
    seen: Mapping[str, tuple[float, float]], now_ts: float, values: Mapping[float, float]
) -> list[tuple[int, int, float, float, float, float]]:
    """Restatement pairs between the last plan's view and this one: (bucket then, bucket now, age then, age now,
    value then, value now).

    ``seen`` maps an interval end (POSIX seconds, as a string key) to (age then in hours, value then);
    ``values`` maps an interval end to its pool-aggregate value as reported now.
    """
    out = []
    for key, (age_then, v_then) in sorted(seen.items()):
        end_ts = float(key)
        v_now = values.get(end_ts)
        if v_now is None:
            continue
        age_now = (now_ts - end_ts) / 3600.0
        if age_now <= age_then:
            continue
        out.append((age_bucket(age_then), age_bucket(age_now), age_then, age_now, v_then, v_now))
    return out


def add_pairs(
    table: Mapping[str, tuple[float, float, float, float]], pairs: Sequence[tuple[int, int, float, float, float, float]]
) -> dict[str, tuple[float, float, float, float]]:
    """``table`` with ``pairs`` pooled in: per ``"bucket then,bucket now"``, the sums of value then, value now,
    value then x age then and value then x age now (so each cell knows its value-weighted mean ages)."""
    out = dict(table)
    for k_then, k_now, a_then, a_now, v_then, v_now in pairs:
        key = f"{k_then},{k_now}"
        o = out.get(key, (0.0, 0.0, 0.0, 0.0))
        out[key] = (o[0] + v_then, o[1] + v_now, o[2] + v_then * a_then, o[3] + v_then * a_now)
    return out


def fit_maturity(table: Mapping[str, tuple[float, ...]], prior: tuple[tuple[float, float], ...]) -> MaturityModel:
    """Fit ``F(age) = 1 - (1 - f0) exp(-age / tau)`` to pooled restatements.

    ``table`` is what :func:`add_pairs` builds: per cell the ratio of the sums estimates
    ``F(age now) / F(age then)`` at the cell's mean ages. Least squares on log ratios, weighted by the
    value seen, over a grid of f0 and tau.
    """
    cells = []
    total = 0.0
    for _, (v_then, v_now, va_then, va_now) in sorted(table.items()):  # sorted: the same sums after a round trip
        if v_then <= 0 or v_now <= 0:
            continue
        cells.append((va_then / v_then, va_now / v_then, math.log(v_now / v_then), v_then))
        total += v_then
    if not cells:
        return MaturityModel(1.0, 24.0, 0.0, prior)
    best = (math.inf, 1.0, 24.0)
    for f0 in _F0_GRID:
        for tau in _TAU_GRID_H:
            err = 0.0
            for a_then, a_now, lr, w in cells:
                f_then = 1.0 - (1.0 - f0) * math.exp(-a_then / tau)
                f_now = 1.0 - (1.0 - f0) * math.exp(-a_now / tau)
                d = lr - math.log(f_now / f_then)
                err += w * d * d
            if err < best[0]:
                best = (err, f0, tau)
    return MaturityModel(best[1], best[2], total / (total + MATURITY_PRIOR_WEIGHT), prior)


def delivery_cap(
    history: Sequence[MetricInterval], budget_cents: int, since_ts: float | None, now_ts: float, *,
    window_h: float = 72.0,
) -> tuple[float | None, float]:
    """(spend rate per day if the member is capped else None, hours of evidence) since its budget took effect.

    Uses intervals that started after ``since_ts`` (when the current budget took effect; ``None``:
    unknown, assumed long ago) and ended within ``window_h`` of ``now_ts``. Capped means it spent under
    85 % of its budget over at least 12 hours of such intervals.
    """
    if budget_cents <= 0:
        return None, 0.0
    start = now_ts - window_h * 3600.0
    if since_ts is not None and since_ts > start:
        start = since_ts
    spend = 0.0
    hours = 0.0
    for iv in history:
        if iv.end_ts > now_ts or iv.start_at.timestamp() < start - 1.0:
            continue
        spend += iv.spend_cents
        hours += iv.hours
    if hours < 12.0:
        return None, hours
    rate = spend * 24.0 / hours
    return (rate if rate < 0.85 * budget_cents else None), hours


def delivery_ratio(
    history: Sequence[MetricInterval], budget_cents: int, now_ts: float, *, window_h: float = 72.0
) -> float:
    """Recent daily spend per unit of the current budget (platforms over- and under-deliver), within [0.5, 2]; 1
    without evidence."""
    if budget_cents <= 0:
        return 1.0
    start = now_ts - window_h * 3600.0
    spend = hours = 0.0
    for iv in history:
        if start < iv.end_ts <= now_ts:
            spend += iv.spend_cents
            hours += iv.hours
    if hours < 12.0 or spend <= 0:
        return 1.0
    return min(2.0, max(0.5, spend * 24.0 / hours / budget_cents))


def risk_signals(history: Sequence[MetricInterval], now_ts: float, *, recent_h: float = 72.0) -> tuple[float, float]:
    """(frequency risk, engagement decay) in [0, 1]: the member's last ``recent_h`` hours against its OWN earlier
    history.

    Frequency risk rises from 0 to 1 as frequency climbs from its earlier level to +50 % (audience fatigue);
    engagement decay rises from 0 to 1 as CTR falls from its earlier level to -50 % (creative fatigue; only
    with at least 30 earlier clicks).
    """
    imp = rimp = fq = rfq = clk = rclk = 0.0
    start = now_ts - recent_h * 3600.0
    for iv in history:
        if iv.end_ts > now_ts:
            continue
        f = (iv.frequency or 0.0) * iv.impressions
        imp += iv.impressions
        fq += f
        clk += iv.clicks
        if iv.end_ts > start:
            rimp += iv.impressions
            rfq += f
            rclk += iv.clicks
    freq_risk = decay = 0.0
    old_imp = imp - rimp
    if rimp > 0 and old_imp > 0:
        if rfq > 0 and fq > rfq:
            f_old = (fq - rfq) / old_imp
            if f_old > 0:
                freq_risk = min(1.0, max(0.0, (rfq / rimp / f_old - 1.0) / 0.5))
        ctr_old = (clk - rclk) / old_imp
        if ctr_old > 0 and clk - rclk >= 30:
            decay = min(1.0, max(0.0, (1.0 - rclk / rimp / ctr_old) / 0.5))
    return freq_risk, decay


#: Intervals are read as days of delivery: summed into blocks of this many hours (back from the plan's time).
DAY_BLOCK_H = 24.0


@dataclass(frozen=True, slots=True)
class Obs:
    """Maturity-corrected, recency-weighted evidence of one member, binned by spend level (the curve fit's data)."""

    u: tuple[float, ...]
    """log(spend rate / x0) per bin."""
    exposure: tuple[float, ...]
    """Weighted days of delivery per bin (recency x maturity weight)."""
    value: tuple[float, ...]
    """Weighted, maturity-corrected value per bin."""
    x0: float
    """Reference daily spend (recency-weighted geometric mean)."""
    spend: float
    """Recency-weighted spend (cents) over the bins."""
    total_value: float
    """Recency-weighted corrected value (the same weights)."""
    conversions: float
    """Maturity-corrected conversions over the look-back (unweighted): the count behind the value."""
    n: int
    """Intervals used."""
    days: float = 0.0
    """Days of delivery behind the bins (unweighted: the intervals' hours over 24)."""


def observations(
    history: Sequence[MetricInterval], now_ts: float, *, lookback_h: float, half_life_h: float, maturity: MaturityModel,
    revenue_w: float, conv_w: float, min_maturity: float, maturity_cache: dict[float, float],
) -> Obs | None:
    """A member's ended intervals as days of delivery, binned by daily spend level (4 % wide), with recency and
    maturity weights; ``None`` without spend.

    A budget is a DAILY budget: only a day's spend says what a budget bought. Intervals are therefore summed into
    24-hour blocks counted back from ``now`` before their spend rate is read (``DAY_BLOCK_H``): hourly rows, as
    Meta's hourly insights report them, spend and convert more in the evening than at night, and read one by one
    those hours would look like a response of value to spend (elasticity near 1) that no budget change caused.
    """
    decay = math.log(2.0) / half_life_h
    blocks: dict[int, list[float]] = {}
    spend_w = value_w = conv = 0.0
    n = 0
    total_days = 0.0
    for iv in history:
        age_h = (now_ts - iv.end_ts) / 3600.0
        if age_h < 0.0 or age_h > lookback_h or iv.hours <= 0.0:
            continue
        f = maturity_cache.get(iv.end_ts)
        if f is None:
            f = maturity.at(age_h)
            maturity_cache[iv.end_ts] = f
        if f < min_maturity:
            continue
        r = math.exp(-age_h * decay) * f
        days = iv.hours / 24.0
        v = (revenue_w * iv.revenue_cents + conv_w * iv.conversions) / f
        start_ts = iv.end_ts - iv.hours * 3600.0
        day = int(age_h // DAY_BLOCK_H)
        blk = blocks.get(day)
        if blk is None:  # spend, days, weighted days, weighted value, first start, last end
            blocks[day] = [iv.spend_cents, days, r * days, r * v, start_ts, iv.end_ts]
        else:
            blk[0] += iv.spend_cents
            blk[1] += days
            blk[2] += r * days
            blk[3] += r * v
            blk[4] = min(blk[4], start_ts)
            blk[5] = max(blk[5], iv.end_ts)
        spend_w += r * iv.spend_cents
        value_w += r * v
        conv += iv.conversions / f
        n += 1
        total_days += days
    bins: dict[int, list[float]] = {}
    sw = swlx = 0.0
    for spend, days, r_days, r_value, first, last in blocks.values():
        if spend <= 0:
            continue
        span = max(days, (last - first) / 86400.0)  # hours without a row (no delivery) still belong to the day
        x = spend / span
        exposure = r_days / days * span
        lx = math.log(x)
        key = round(lx / 0.04)
        b = bins.get(key)
        if b is None:
            bins[key] = [exposure * lx, exposure, r_value]
        else:
            b[0] += exposure * lx
            b[1] += exposure
            b[2] += r_value
        sw += exposure
        swlx += exposure * lx
    if sw <= 0.0:
        return None
    lx0 = swlx / sw
    us = tuple(lxe / e - lx0 for lxe, e, _ in bins.values())
    es = tuple(e for _, e, _ in bins.values())
    vs = tuple(v for _, _, v in bins.values())
    return Obs(us, es, vs, math.exp(lx0), spend_w, value_w, conv, n, total_days)


#: Hill exponents of the response grid (below 1: concave everywhere; above 1: S-shaped).
HILL_GRID: tuple[float, ...] = (0.6, 0.9, 1.2, 1.6, 2.1, 2.8)
#: Half-saturation spends of the response grid, as multiples of the pool's reference spend (equal share).
HALF_SAT_GRID: tuple[float, ...] = tuple(10.0 ** (-1.0 + 2.0 * i / 12.0) for i in range(13))
#: Shape of the Gamma prior of a member's scale (2: the value at the reference spend is known within ~x3).
SCALE_PRIOR_SHAPE = 2.0
#: Prior standard deviation of log10(K / reference spend): members are expected to saturate around the pool's
#: equal share (a half-saturation 10x above or below it is ~2 standard deviations out).
HALF_SAT_PRIOR_SD = 0.5
#: Grid points whose posterior weight is below this are dropped.
MIN_WEIGHT = 1e-3
# The grid as arrays, Hill exponent outer: (h, K / reference spend) per point, and each point's half-saturation prior
# term ((log10 K/x_ref) / HALF_SAT_PRIOR_SD) squared.
_GRID_H = np.repeat(np.asarray(HILL_GRID), len(HALF_SAT_GRID))
_GRID_KM = np.tile(np.asarray(HALF_SAT_GRID), len(HILL_GRID))
_GRID_ZK2 = (np.log10(_GRID_KM) / HALF_SAT_PRIOR_SD) ** 2


def hill(x: float, h: float, k: float) -> float:
    """Saturation share x^h / (x^h + k^h) of a Hill curve at spend ``x`` (0 at 0, 1/2 at k, toward 1)."""
    if x <= 0.0:
        return 0.0
    r = k / x
    return 1.0 / (1.0 + r**h) if r < 1e6 else 0.0


def hill_values(xs: np.ndarray, h: float | np.ndarray, k: float | np.ndarray) -> np.ndarray:
    """:func:`hill` at each spend of ``xs`` (``h`` and ``k`` broadcast against ``xs``)."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        r = k / xs
        return np.where((xs > 0.0) & (r < 1e6), 1.0 / (1.0 + np.abs(r) ** h), 0.0)


@dataclass(frozen=True, slots=True)
class Curve:
    """Posterior of one member's daily value curve ``V(x) = A x^h / (x^h + K^h)`` at daily spend ``x``.

    A weighted grid of (h, K) points; per point the scale ``A`` has a Gamma posterior (``shape``,
    ``rate`` in value counts: multiply by ``unit`` for value). The posterior mean curve is the weighted
    mixture (its terms precomputed in ``amps``); a Thompson sample picks one point and one scale.
    """

    weights: tuple[float, ...]
    hs: tuple[float, ...]
    ks: tuple[float, ...]
    shape: tuple[float, ...]
    rate: tuple[float, ...]
    unit: float
    """Value of one count (risk penalties scale it)."""
    counts: float
    """Weighted value counts behind the fit (0: prior only)."""
    amps: tuple[float, ...]
    """Per grid point, weight x posterior-mean scale x unit (the mean curve's terms)."""

    @property
    def has_data(self) -> bool:
        return self.counts > 0.0

    def scaled(self, factor: float) -> Curve:
        """The same posterior with every value multiplied by ``factor``."""
        return Curve(self.weights, self.hs, self.ks, self.shape, self.rate, self.unit * factor, self.counts,
                     tuple(a * factor for a in self.amps))

    def value_at(self, x: float) -> float:
        """Posterior-mean daily value at daily spend ``x``."""
        return float(self.values_at(np.array([x]))[0])

    def values_at(self, xs: np.ndarray) -> np.ndarray:
        """Posterior-mean daily value at each daily spend of the array ``xs``."""
        shares = hill_values(xs[None, :], np.asarray(self.hs)[:, None], np.asarray(self.ks)[:, None])
        return np.asarray(self.amps) @ shares

    def marginal_at(self, x: float) -> float:
        """Posterior-mean value per extra cent at daily spend ``x``."""
        return self._around(x)[1]

    def elasticity_at(self, x: float) -> float:
        """Posterior-mean local elasticity d log V / d log x at ``x``."""
        v, marginal = self._around(x)
        return marginal * x / v if v > 0 else 0.0

    def _around(self, x: float) -> tuple[float, float]:
        """(value at ``x``, value per extra cent there: the slope over 1 % either side, at least a cent)."""
        dx = max(x * 0.01, 1.0)
        lo = max(x - dx, 0.0)
        v, v_hi, v_lo = self.values_at(np.array([x, x + dx, lo])).tolist()
        return v, (v_hi - v_lo) / (x + dx - lo)

    def sample(self, rng: random.Random) -> tuple[float, float, float]:
        """One Thompson draw: (scale in value per day, h, K)."""
        i = rng.choices(range(len(self.weights)), weights=self.weights)[0]
        a = rng.gammavariate(self.shape[i], 1.0 / self.rate[i])
        return a * self.unit, self.hs[i], self.ks[i]


def fit_curve(
    obs: Obs | None, *, x_ref: float, prior_value: float, unit: float, prior_elasticity: float,
    prior_elasticity_sd: float,
) -> Curve:
    """Grid posterior of a member's Hill response from its binned evidence.

    ``prior_value`` is the prior mean daily value at the reference spend ``x_ref`` (the pool's value per
    spend there), ``unit`` the value of one count (revenue per conversion times the overdispersion), so
    evidence is weighed in conversions, not cents. The grid's prior favours curves whose elasticity at
    ``x_ref`` is near ``prior_elasticity``. Per grid point the scale has a conjugate Gamma prior centred
    so that V(x_ref) = prior_value; the Poisson likelihood integrates it out in closed form, which gives
    each point's posterior weight.
    """
    unit = unit if unit > 0 else 1.0
    if obs is not None and obs.u:
        xs = obs.x0 * np.exp(np.asarray(obs.u))
        es = np.asarray(obs.exposure)
        ys = np.maximum(np.asarray(obs.value), 0.0) / unit
    else:
        xs = es = ys = np.zeros(0)
    Y = float(ys.sum())
    prior_counts = max(prior_value, 1e-9) / unit
    # Every grid point (rows) against every spend level (columns) at once.
    f_ref = 1.0 / (1.0 + _GRID_KM**_GRID_H)  # hill(x_ref, h, km x_ref)
    # Grid prior: the curve's elasticity at the reference spend, h (1 - f), near the pool's prior elasticity.
    z = (_GRID_H * (1.0 - f_ref) - prior_elasticity) / prior_elasticity_sd
    beta0 = SCALE_PRIOR_SHAPE * f_ref / prior_counts
    with np.errstate(over="ignore", divide="ignore"):
        f = 1.0 / (1.0 + ((_GRID_KM * x_ref)[:, None] / xs[None, :]) ** _GRID_H[:, None])
        log_f = np.where(f > 1e-300, np.log(f), -690.0)
    S = f @ es
    ll = log_f @ ys
    shape = SCALE_PRIOR_SHAPE + Y
    rate = beta0 + S
    logs = -0.5 * (z * z + _GRID_ZK2) + SCALE_PRIOR_SHAPE * np.log(beta0) - shape * np.log(rate) + ll
    raw = np.exp(logs - logs.max())
    raw /= raw.sum()
    keep = raw >= MIN_WEIGHT
    weights = raw[keep] / raw[keep].sum()
    rates = rate[keep]
    shapes = np.full(len(rates), shape)
    return Curve(
        tuple(weights.tolist()), tuple(_GRID_H[keep].tolist()), tuple((_GRID_KM[keep] * x_ref).tolist()),
        tuple(shapes.tolist()), tuple(rates.tolist()), unit, Y, tuple((weights * shapes / rates * unit).tolist()),
    )
