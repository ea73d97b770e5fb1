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
    is modelled around a reference spend ``x0`` as ``V(x, t) = exp(a + b log(x / x0) + g t)``: ``b`` is
    the local elasticity (below 1: diminishing returns; above 1: the rising part of an S-shaped
    curve) and ``g`` a trend per day (a fading winner, a growing newcomer). It is fitted by a
    recency-weighted quasi-Poisson regression (counts are what the platform reports, so zeros and
    low volume are handled as counts, not logs), maturity-corrected, with Gaussian priors: the level
    around the pool's value per spend (members with little data borrow from the pool), the elasticity
    around ``PoolSettings.prior_elasticity`` and the trend around zero. The result is a posterior
    mean and covariance of (a, b, g); the engine samples from it (Thompson sampling) to decide.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from allot.pools.domain.models import MetricInterval

__all__ = [
    "AGE_BUCKETS_H",
    "Fit",
    "MaturityModel",
    "Obs",
    "add_pairs",
    "delivery_cap",
    "delivery_ratio",
    "fit_member",
    "fit_maturity",
    "maturation_at",
    "maturity_pairs",
    "observations",
    "risk_signals",
    "saturation_ratio",
]

DAY_S = 86400.0
#: Upper edges (hours) of the age buckets restatement pairs are pooled in; older than the last = matured.
AGE_BUCKETS_H: tuple[float, ...] = (3.0, 6.0, 12.0, 24.0, 36.0, 48.0, 72.0, 120.0, 168.0)
_F0_GRID = tuple(x / 100.0 for x in range(20, 101, 4))
_TAU_GRID_H = (1.0, 2.0, 4.0, 6.0, 9.0, 12.0, 18.0, 24.0, 36.0, 48.0, 72.0)
#: Pool-aggregate value (in the pool's value unit) of restatement evidence at which the learned curve
#: gets half the weight against the configured prior.
MATURITY_PRIOR_WEIGHT = 200.0


def maturation_at(age_hours: float, curve: Sequence[tuple[float, float]]) -> float:
    """Share of an interval's conversions/revenue reported ``age_hours`` after its end (piecewise linear, 1.0 after the last point)."""
    if age_hours <= curve[0][0]:
        return curve[0][1]
    prev_h, prev_f = curve[0]
    for h, f in curve[1:]:
        if age_hours <= h:
            return prev_f + (f - prev_f) * (age_hours - prev_h) / (h - prev_h)
        prev_h, prev_f = h, f
    return 1.0


_U_CACHE: dict[int, float] = {}


def saturation_ratio(elasticity: float) -> float:
    """u = x / s at which the saturating curve 1 - exp(-u) has the given local elasticity u e^-u / (1 - e^-u) (cached per 0.001)."""
    key = int(round(min(0.995, max(0.005, elasticity)) * 1000))
    u = _U_CACHE.get(key)
    if u is None:
        b = key / 1000.0
        lo, hi = 1e-6, 50.0
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            if mid * math.exp(-mid) / (1.0 - math.exp(-mid)) > b:
                lo = mid
            else:
                hi = mid
        u = _U_CACHE[key] = 0.5 * (lo + hi)
    return u


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
    history: Sequence[MetricInterval], budget_cents: int, since_ts: float | None, now_ts: float, *, window_h: float = 72.0
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


def delivery_ratio(history: Sequence[MetricInterval], budget_cents: int, now_ts: float, *, window_h: float = 72.0) -> float:
    """Recent daily spend per unit of the current budget (platforms over- and under-deliver), within [0.5, 2]; 1 without evidence."""
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
    """(frequency risk, engagement decay) in [0, 1]: the member's last ``recent_h`` hours against its OWN earlier history.

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


@dataclass(frozen=True, slots=True)
class Obs:
    """Maturity-corrected, recency-weighted evidence of one member in a few bins (the regression's data)."""

    u: tuple[float, ...]
    """log(spend rate / x0) per bin."""
    t: tuple[float, ...]
    """Days before now (negative) per bin."""
    exposure: tuple[float, ...]
    """Weighted days of delivery per bin (recency x maturity weight)."""
    value: tuple[float, ...]
    """Weighted, maturity-corrected value per bin."""
    day: tuple[int, ...]
    """Calendar day (UTC, days since the epoch) of each bin: the pool's common day effects are keyed by it."""
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


def observations(
    history: Sequence[MetricInterval], now_ts: float, *, lookback_h: float, half_life_h: float, maturity: MaturityModel,
    revenue_w: float, conv_w: float, min_maturity: float, maturity_cache: dict[float, float],
) -> Obs | None:
    """Bin a member's ended intervals by (spend level, day) with recency and maturity weights; ``None`` without spend."""
    decay = math.log(2.0) / half_life_h
    bins: dict[tuple[int, int], list[float]] = {}
    sw = swlx = 0.0
    spend_w = value_w = conv = 0.0
    n = 0
    for iv in history:
        age_h = (now_ts - iv.end_ts) / 3600.0
        if age_h < 0.0 or age_h > lookback_h or iv.hours <= 0.0 or iv.spend_cents <= 0:
            continue
        f = maturity_cache.get(iv.end_ts)
        if f is None:
            f = maturity.at(age_h)
            maturity_cache[iv.end_ts] = f
        if f < min_maturity:
            continue
        r = math.exp(-age_h * decay) * f
        days = iv.hours / 24.0
        x = iv.spend_cents / days
        lx = math.log(x)
        v = (revenue_w * iv.revenue_cents + conv_w * iv.conversions) / f
        key = (round(lx / 0.04), int((iv.end_ts - iv.hours * 1800.0) // DAY_S))
        b = bins.get(key)
        if b is None:
            bins[key] = [r * days * lx, r * days, r * v, r * days * age_h]
        else:
            b[0] += r * days * lx
            b[1] += r * days
            b[2] += r * v
            b[3] += r * days * age_h
        sw += r * days
        swlx += r * days * lx
        spend_w += r * iv.spend_cents
        value_w += r * v
        conv += iv.conversions / f
        n += 1
    if sw <= 0.0:
        return None
    lx0 = swlx / sw
    us = []
    ts = []
    es = []
    vs = []
    ds = []
    for (_, day), (lxe, e, v, ae) in bins.items():
        us.append(lxe / e - lx0)
        ts.append(-(ae / e) / 24.0)
        es.append(e)
        vs.append(v)
        ds.append(day)
    return Obs(tuple(us), tuple(ts), tuple(es), tuple(vs), tuple(ds), math.exp(lx0), spend_w, value_w, conv, n)


@dataclass(frozen=True, slots=True)
class Fit:
    """Posterior of one member's response: mean and covariance of (a, b, g) around reference spend ``x0``."""

    x0: float
    mean: tuple[float, float, float]
    cov: tuple[tuple[float, float, float], ...]
    has_data: bool

    def value_at(self, x: float) -> float:
        """Posterior-mean daily value at daily spend ``x`` now."""
        a, b, _ = self.mean
        return math.exp(a + b * math.log(max(x, 1.0) / self.x0))

    def marginal_at(self, x: float) -> float:
        """Posterior-mean value per extra cent at daily spend ``x`` (b * V(x) / x)."""
        return self.mean[1] * self.value_at(x) / max(x, 1.0)

    @property
    def sd_level(self) -> float:
        return math.sqrt(max(self.cov[0][0], 0.0))

    @property
    def sd_elasticity(self) -> float:
        return math.sqrt(max(self.cov[1][1], 0.0))


def fit_member(
    obs: Obs | None, *, x_ref: float, prior_level: float, prior_level_sd: float, prior_b: float, prior_b_sd: float,
    prior_g_sd: float, dispersion: float,
) -> Fit:
    """Posterior mode and covariance of (a, b, g) by Newton's method on the penalised quasi-Poisson likelihood.

    ``prior_level`` is the prior mean of ``a`` expressed as log daily value at ``x_ref``; ``dispersion``
    is the value of one count (revenue per conversion, times the overdispersion), so information is
    counted in conversions, not cents.
    """
    if obs is None:
        mean_a = prior_level
        cov = ((prior_level_sd**2, 0.0, 0.0), (0.0, prior_b_sd**2, 0.0), (0.0, 0.0, prior_g_sd**2))
        return Fit(x_ref, (mean_a, prior_b, 0.0), cov, False)
    return _newton(obs, x_ref, prior_level, prior_level_sd, prior_b, prior_b_sd, prior_g_sd, dispersion)


def _newton(
    obs: Obs, x_ref: float, prior_level: float, prior_level_sd: float, prior_b: float, prior_b_sd: float,
    prior_g_sd: float, dispersion: float,
) -> Fit:
    x0 = obs.x0
    # Prior of a at x0 (the level is projected along the prior elasticity from x_ref).
    pa = prior_level + prior_b * math.log(x0 / x_ref)
    pa_prec = 1.0 / prior_level_sd**2
    pb_prec = 1.0 / prior_b_sd**2
    pg_prec = 1.0 / prior_g_sd**2
    phi = dispersion if dispersion > 0 else 1.0
    expo = sum(obs.exposure)
    a = math.log(obs.total_value / expo) if obs.total_value > 0 else pa
    a = a if a > pa - 10.0 else pa - 10.0
    b = prior_b
    g = 0.0
    us, ts, vs = obs.u, obs.t, obs.value
    es = obs.exposure
    h: tuple[tuple[float, float, float], ...] = ((0.0,) * 3,) * 3
    for _ in range(25):
        # Gradient and Hessian of the negative log posterior.
        g0 = pa_prec * (a - pa)
        g1 = pb_prec * (b - prior_b)
        g2 = pg_prec * g
        h00 = pa_prec
        h11 = pb_prec
        h22 = pg_prec
        h01 = h02 = h12 = 0.0
        for u, t, e, v in zip(us, ts, es, vs):
            eta = a + b * u + g * t
            mu = e * math.exp(eta if eta < 50.0 else 50.0)
            r = (mu - v) / phi
            w = mu / phi
            g0 += r
            g1 += r * u
            g2 += r * t
            h00 += w
            h01 += w * u
            h02 += w * t
            h11 += w * u * u
            h12 += w * u * t
            h22 += w * t * t
        h = ((h00, h01, h02), (h01, h11, h12), (h02, h12, h22))
        step = _solve3(h, (g0, g1, g2))
        # Damped: a step never moves the log level by more than 1 (Newton from far away on exp()).
        scale = 1.0
        big = max(abs(step[0]), abs(step[1]) * 2.0, abs(step[2]) * 10.0)
        if big > 1.0:
            scale = 1.0 / big
        a -= scale * step[0]
        b -= scale * step[1]
        g -= scale * step[2]
        if big * scale < 1e-7:
            break
    cov = _inv3(h)
    return Fit(x0, (a, b, g), cov, True)


def _det3(m: Sequence[Sequence[float]]) -> float:
    return (
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    )


def _inv3(m: Sequence[Sequence[float]]) -> tuple[tuple[float, float, float], ...]:
    d = _det3(m)
    c = (
        (m[1][1] * m[2][2] - m[1][2] * m[2][1], m[0][2] * m[2][1] - m[0][1] * m[2][2], m[0][1] * m[1][2] - m[0][2] * m[1][1]),
        (m[1][2] * m[2][0] - m[1][0] * m[2][2], m[0][0] * m[2][2] - m[0][2] * m[2][0], m[0][2] * m[1][0] - m[0][0] * m[1][2]),
        (m[1][0] * m[2][1] - m[1][1] * m[2][0], m[0][1] * m[2][0] - m[0][0] * m[2][1], m[0][0] * m[1][1] - m[0][1] * m[1][0]),
    )
    return tuple(tuple(x / d for x in row) for row in c)  # type: ignore[return-value]


def _solve3(m: Sequence[Sequence[float]], v: Sequence[float]) -> tuple[float, float, float]:
    inv = _inv3(m)
    return (
        inv[0][0] * v[0] + inv[0][1] * v[1] + inv[0][2] * v[2],
        inv[1][0] * v[0] + inv[1][1] * v[1] + inv[1][2] * v[2],
        inv[2][0] * v[0] + inv[2][1] * v[1] + inv[2][2] * v[2],
    )


def cholesky3(c: Sequence[Sequence[float]]) -> tuple[tuple[float, float, float], ...]:
    """Lower-triangular L with L L^T = c (a tiny jitter keeps it real on near-singular input)."""
    l00 = math.sqrt(max(c[0][0], 1e-12))
    l10 = c[1][0] / l00
    l20 = c[2][0] / l00
    l11 = math.sqrt(max(c[1][1] - l10 * l10, 1e-12))
    l21 = (c[2][1] - l20 * l10) / l11
    l22 = math.sqrt(max(c[2][2] - l20 * l20 - l21 * l21, 1e-12))
    return ((l00, 0.0, 0.0), (l10, l11, 0.0), (l20, l21, l22))
