"""Per-member evidence from metric history: maturity correction, own baseline, concave response fit, pool shrinkage.

How immature data is handled: conversions and revenue of an interval whose end
is ``age`` hours before ``now`` are divided by the pool's known maturation
fraction f(age) (so a fresh interval reporting 60% is scaled back to 100%), and
the interval's weight in every estimate is multiplied by f(age), because a
scaled-up partial count is noisier. Intervals with f(age) below
``PoolSettings.min_maturity`` (by default: the first ~8 hours after they end)
are excluded altogether. Intervals not yet ended are ignored.

Response model: per member, daily value R(x) = A (1 - exp(-x / s)), a
saturating curve calibrated so that at the spend the member actually ran at
(x_ref, recency-weighted) it has the member's observed level R(x_ref) and
local elasticity b = d log R / d log x. The level comes from the member's own
recency-weighted history; b is a weighted regression of value rate on spend
rate, shrunk toward the pool prior (with little spend variation it stays at
the prior). Unlike a power law, the calibrated curve's returns keep falling as
spend grows, so the engine does not over-concentrate on a member that looks
good only at its current, smaller spend. The level is then shrunk toward
the pool (empirical Bayes on log ROAS projected to a common spend), so members
with little data borrow strength from the pool.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from allot.pools.domain.models import CompositeWeights, MetricInterval, PoolSettings

__all__ = ["Evidence", "MemberEstimate", "gather_evidence", "maturation_at", "saturation_ratio", "shrink_to_pool"]

_LN2 = math.log(2.0)
_RECENT_H = 72.0
_PRIOR_ELASTICITY_SD = 0.15
_TAU2_MIN = 0.0004
_TAU2_SINGLE = 0.09
_NO_DATA_VAR = 1e6
_MAX_PULL_SD = 1.0


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


@dataclass(slots=True)
class Evidence:
    """Sufficient statistics of one member's usable history (value in cents-equivalent, rates per day)."""

    n_used: int = 0
    n_fresh_excluded: int = 0
    n_corrected: int = 0
    spend_cents: float = 0.0
    value: float = 0.0
    conversions: float = 0.0
    recent_spend_cents: float = 0.0
    recent_value: float = 0.0
    w: float = 0.0
    ww: float = 0.0
    wx: float = 0.0
    wxx: float = 0.0
    wy: float = 0.0
    wxy: float = 0.0
    wyy: float = 0.0
    reported_conversions_w: float = 0.0
    impressions: float = 0.0
    clicks: float = 0.0
    freq_imp: float = 0.0
    recent_impressions: float = 0.0
    recent_clicks: float = 0.0
    recent_freq_imp: float = 0.0


def gather_evidence(
    history: Sequence[MetricInterval], pool: PoolSettings, now: datetime, conv_value: float
) -> Evidence:
    """Maturity-corrected sufficient statistics of ``history`` over the pool's look-back window ending at ``now``.

    ``conv_value`` prices one conversion in the composite value (revenue weight
    ``roas`` times revenue plus ``cpa`` weight times conversions priced at
    ``conv_value``).
    """
    return Evidence(*evidence_rows((history,), pool, now, conv_value)[0])


# Positions in an evidence row (the field order of :class:`Evidence`).
_W, _WW, _WX, _WXX, _WY, _WXY, _WYY, _RCONV = 8, 9, 10, 11, 12, 13, 14, 15


def evidence_rows(
    histories: Sequence[Sequence[MetricInterval]], pool: PoolSettings, now: datetime, conv_value: float, cw: CompositeWeights | None = None
) -> list[tuple]:
    """:func:`gather_evidence` for many members at once, as plain tuples in :class:`Evidence` field order (the engine's hot path).

    Everything that depends only on an interval's end (age, maturation fraction, recency weight) is
    computed once per distinct end time in this call: members of a pool report on the same grain.
    The arithmetic per interval is the same, in the same order, as the one-member definition.
    """
    cw = cw or pool.composite
    w_rev = cw.roas
    w_conv = cw.cpa * conv_value
    track_risk = (cw.frequency_risk + cw.engagement_decay) > 0
    now_ts = now.timestamp()
    horizon_h = pool.lookback_days * 24.0
    decay = _LN2 / (pool.recency_half_life_days * 24.0)
    curve = pool.maturation_curve
    first_h, first_f = curve[0]
    last_h = curve[-1][0]
    min_f = pool.min_maturity
    exp = math.exp
    recent_h = _RECENT_H
    # end_ts -> (status, f, recency weight, recent?); status 0 outside the window, 1 too fresh, 2 corrected, 3 matured.
    ages: dict[float, tuple[int, float, float, bool]] = {}
    aget = ages.get
    out: list[tuple] = []
    append = out.append
    for history in histories:
        n_used = n_fresh = n_corr = 0
        spend_t = value_t = conv_t = rspend = rvalue = 0.0
        w = ww = wx = wxx = wy = wxy = wyy = rconv_w = 0.0
        imp_t = clk_t = fq_t = rimp = rclk = rfq = 0.0
        for iv in history:
            end_ts = iv.end_ts
            ent = aget(end_ts)
            if ent is None:
                age_h = (now_ts - end_ts) / 3600.0
                if age_h < 0 or age_h > horizon_h:
                    ent = (0, 0.0, 0.0, False)
                elif age_h >= last_h:
                    ent = (3, 1.0, exp(-age_h * decay), age_h <= recent_h)
                else:
                    f = first_f if age_h <= first_h else maturation_at(age_h, curve)
                    ent = (1, f, 0.0, False) if f < min_f else (2, f, exp(-age_h * decay), age_h <= recent_h)
                ages[end_ts] = ent
            st, f, rec, recent = ent
            if st == 3:
                hours = iv.hours
                if hours <= 0:
                    continue
                spend = iv.spend_cents
                conv = iv.conversions
                value = w_rev * iv.revenue_cents + w_conv * conv  # / f with f == 1.0
                rate = 24.0 / hours
                om = rec / rate  # rec * f / rate with f == 1.0
                conv_t += conv
            elif st == 2:
                n_corr += 1
                hours = iv.hours
                if hours <= 0:
                    continue
                spend = iv.spend_cents
                conv = iv.conversions
                value = (w_rev * iv.revenue_cents + w_conv * conv) / f
                rate = 24.0 / hours
                om = rec * f / rate
                conv_t += conv / f
            else:
                if st:
                    n_fresh += 1
                continue
            x = spend * rate
            y = value * rate
            n_used += 1
            spend_t += spend
            value_t += value
            rconv_w += rec * conv
            w += om
            ww += om * om
            omx = om * x
            wx += omx
            wxx += omx * x
            omy = om * y
            wy += omy
            wxy += omx * y
            wyy += omy * y
            if recent:
                rspend += spend
                rvalue += value
            if track_risk:
                imp = iv.impressions
                if imp > 0:
                    clk = iv.clicks
                    fq = iv.frequency
                    imp_t += imp
                    clk_t += clk
                    if fq is not None:
                        fq_t += fq * imp
                    if recent:
                        rimp += imp
                        rclk += clk
                        if fq is not None:
                            rfq += fq * imp
        append((
            n_used, n_fresh, n_corr, spend_t, value_t, conv_t, rspend, rvalue,
            w, ww, wx, wxx, wy, wxy, wyy, rconv_w, imp_t, clk_t, fq_t, rimp, rclk, rfq,
        ))
    return out


@dataclass(slots=True)
class MemberEstimate:
    """One member's fitted response around its current spend, after shrinkage and risk penalty."""

    has_data: bool
    ref_spend: float
    """Daily spend (cents) the member's level is anchored at (recency-weighted)."""
    roas_at_ref: float
    """Shrunk, penalised value per spend cent at ``ref_spend``."""
    raw_roas_at_ref: float
    elasticity: float
    log_var: float
    """Sampling variance of the member's own log level (before shrinkage)."""
    post_var: float
    """Posterior variance of the shrunk log level."""
    shrinkage: float
    baseline_roas: float | None
    recent_roas: float | None
    risk_penalty: float
    frequency_risk: float
    engagement_decay: float

    def saturation(self) -> tuple[float, float]:
        """(A, s) of the calibrated curve R(x) = A * (1 - exp(-x / s)): same level and same elasticity as estimated at ``ref_spend``."""
        u = saturation_ratio(self.elasticity)
        s = self.ref_spend / u
        a = self.roas_at_ref * self.ref_spend / (1.0 - math.exp(-u))
        return a, s

    def marginal(self, spend_cents: float, weight: float = 1.0) -> float:
        """Value per extra spend cent at ``spend_cents`` on the calibrated saturating curve (weight stretches the spend axis)."""
        a, s = self.saturation()
        return a / s * math.exp(-max(0.0, spend_cents) / (weight * s))


_U_CACHE: dict[int, float] = {}


def saturation_ratio(elasticity: float) -> float:
    """u = x/s at which the saturating curve 1 - exp(-u) has the given local elasticity u e^-u / (1 - e^-u)."""
    key = int(round(elasticity * 1000))
    u = _U_CACHE.get(key)
    if u is not None:
        return u
    b = min(0.995, max(0.005, key / 1000.0))
    lo, hi = 1e-6, 50.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        e = mid * math.exp(-mid) / (1.0 - math.exp(-mid))
        if e > b:
            lo = mid
        else:
            hi = mid
    u = 0.5 * (lo + hi)
    _U_CACHE[key] = u
    return u


def _risk(imp: float, rimp: float, fq: float, rfq: float, clk: float, rclk: float) -> tuple[float, float]:
    """(frequency risk, engagement decay) from total and recent impressions, frequency*impressions and clicks."""
    freq_risk = 0.0
    decay = 0.0
    if rimp > 0 and imp > rimp:
        old_imp = imp - rimp
        if rfq > 0 and fq > rfq:
            f_old = (fq - rfq) / old_imp
            f_new = rfq / rimp
            if f_old > 0:
                freq_risk = min(1.0, max(0.0, (f_new / f_old - 1.0) / 0.5))
        ctr_old = (clk - rclk) / old_imp
        ctr_new = rclk / rimp
        if ctr_old > 0 and (clk - rclk) >= 30:
            decay = min(1.0, max(0.0, (1.0 - ctr_new / ctr_old) / 0.5))
    return freq_risk, decay


def _row(ev: Evidence) -> tuple:
    return (
        ev.n_used, ev.n_fresh_excluded, ev.n_corrected, ev.spend_cents, ev.value, ev.conversions, ev.recent_spend_cents, ev.recent_value,
        ev.w, ev.ww, ev.wx, ev.wxx, ev.wy, ev.wxy, ev.wyy, ev.reported_conversions_w,
        ev.impressions, ev.clicks, ev.freq_imp, ev.recent_impressions, ev.recent_clicks, ev.recent_freq_imp,
    )


def shrink_to_pool(
    evidence: Sequence[Evidence], current_cents: Sequence[int], pool: PoolSettings, ref_spend: float
) -> list[MemberEstimate]:
    """Fit each member's concave response and shrink its level toward the pool (empirical Bayes); members without data get the pool's level."""
    return shrink_rows([_row(ev) for ev in evidence], current_cents, pool, ref_spend)


def shrink_rows(
    evidence: Sequence[tuple], current_cents: Sequence[int], pool: PoolSettings, ref_spend: float, cw: CompositeWeights | None = None
) -> list[MemberEstimate]:
    """:func:`shrink_to_pool` on evidence rows as returned by :func:`evidence_rows` (same arithmetic)."""
    b0 = pool.prior_elasticity
    prior_prec_b = 1.0 / (_PRIOR_ELASTICITY_SD**2)
    cw = cw or pool.composite
    log = math.log
    log_ref = log(max(ref_spend, 1.0))
    # has_data, x_ref, raw level, b, var, (b - 1) * (log_ref - log x_ref)
    rows: list[tuple[bool, float, float, float, float, float]] = []
    dispersions: list[float] = []
    for ev, cur in zip(evidence, current_cents):
        ew = ev[_W]
        ewx = ev[_WX]
        if ew <= 0 or ewx <= 0:
            x0 = float(max(cur, 1))
            rows.append((False, x0, 0.0, b0, _NO_DATA_VAR, (b0 - 1.0) * (log_ref - log(x0))))
            continue
        xbar = ewx / ew
        ybar = ev[_WY] / ew
        eww = ev[_WW]
        n_eff = ew * ew / eww if eww > 0 else 1.0
        var_x = ev[_WXX] / ew - xbar * xbar
        var_x = var_x if var_x > 0.0 else 0.0  # max(0.0, ...)
        var_y = ev[_WYY] / ew - ybar * ybar
        var_y = var_y if var_y > 0.0 else 0.0
        b = b0
        if ybar > 0:
            rc = ev[_RCONV]
            var_pois = 1.0 / (rc if rc > 0.5 else 0.5)
            var_emp = var_y / (ybar * ybar * n_eff)
            # Overdispersion is calibrated across the pool below (a member's own spread also holds its trend).
            var = var_pois
            dispersions.append(var_emp / var_pois)
            rel_var_x = var_x / (xbar * xbar)
            # Platform pacing jitter (a few %) is not a spend experiment: fit only on real budget variation.
            if rel_var_x > 0.01 and n_eff > 3:
                cov = ev[_WXY] / ew - xbar * ybar
                b_hat = cov / var_x * xbar / ybar
                var_b = var_y / (var_x * n_eff) * (xbar / ybar) ** 2
                prec = 1.0 / var_b if var_b > 0 else 0.0
                b = (b0 * prior_prec_b + b_hat * prec) / (prior_prec_b + prec)
                b = min(0.9, max(0.15, b))
            level = ybar / xbar
        else:
            # Spent without any value yet: a weak, uncertain estimate near zero.
            var = 1.0 / max(ev[_RCONV] + 0.5, 0.5) + 1.0
            level = 0.0
        rows.append((True, xbar, level, b, var, (b - 1.0) * (log_ref - log(xbar))))
    # Pool-wide overdispersion (median ratio of observed to count-based variance, at least 1): robust to
    # one member whose spread is a real trend (a fader) rather than noise.
    if dispersions:
        phi = max(1.0, sorted(dispersions)[len(dispersions) // 2])
        rows = [(h, x, lv, b, v * phi if h and lv > 0 else v, pj) for h, x, lv, b, v, pj in rows]
    # Project every level to the common reference spend so concavity does not masquerade as quality.
    floor_level = 0.0
    positive = [r[2] for r in rows if r[0] and r[2] > 0]
    if positive:
        floor_level = 0.1 * sorted(positive)[len(positive) // 2]
    thetas: list[tuple[float, float]] = []
    own: list[float] = []
    for has, xbar, level, b, var, proj in rows:
        if has:
            lv = max(level, floor_level, 1e-9)
            t = log(lv) + proj
            thetas.append((t, var))
            own.append(t)
        else:
            own.append(0.0)
    if thetas:
        precs = [1.0 / v for _, v in thetas]
        mean = sum(t * p for (t, _), p in zip(thetas, precs)) / sum(precs)
        if len(thetas) >= 2:
            between = sum((t - mean) ** 2 for t, _ in thetas) / (len(thetas) - 1)
            within = sum(v for _, v in thetas) / len(thetas)
            tau2 = max(_TAU2_MIN, between - within)
        else:
            tau2 = _TAU2_SINGLE
    else:
        mean, tau2 = math.log(2.0), _TAU2_SINGLE
    out: list[MemberEstimate] = []
    append = out.append
    sqrt = math.sqrt
    exp = math.exp
    copysign = math.copysign
    cw_freq = cw.frequency_risk
    cw_decay = cw.engagement_decay
    inv_tau2 = 1.0 / tau2
    for ev, (has, xbar, level, b, var, proj), theta in zip(evidence, rows, own):
        if not has:
            theta = mean
        shrink = var / (var + tau2)
        post = mean + (1.0 - shrink) * (theta - mean)
        # Limited translation (Efron-Morris): never pull a member more than _MAX_PULL_SD of its own
        # standard errors, so one genuinely different member among few is not averaged away.
        pull_cap = _MAX_PULL_SD * sqrt(var)
        if abs(post - theta) > pull_cap:
            post = theta + copysign(pull_cap, post - theta)
        shrink = abs(post - theta) / abs(theta - mean) if abs(theta - mean) > 1e-12 else shrink
        post_var = 1.0 / (1.0 / var + inv_tau2)
        if has and ev[19] > 0:
            freq_risk, decay = _risk(ev[16], ev[19], ev[18], ev[21], ev[17], ev[20])
        else:
            freq_risk = decay = 0.0
        penalty = 1.0 - cw_freq * freq_risk - cw_decay * decay
        penalty = penalty if penalty > 0.5 else 0.5  # max(0.5, ...)
        roas_ref = exp(post - proj) * penalty
        spend = ev[3]
        rspend = ev[6]
        append(
            MemberEstimate(
                has, xbar, roas_ref, level, b, var, post_var, shrink,
                (ev[4] / spend) if spend > 0 else None,
                (ev[7] / rspend) if rspend > 0 else None,
                penalty, freq_risk, decay,
            )
        )
    return out
