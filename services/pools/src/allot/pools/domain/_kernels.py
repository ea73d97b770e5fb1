"""Numeric kernels of the allocation engine (pure, standard library only): evidence from metric history,
the pool shrinkage, the marginal-return solver, the per-plan steps of ``engine.plan_allocation``
(signals, moves, move orders, ``realize_moves``) and the explanation text.

``allot.pools.domain.estimate`` and ``engine`` define what they compute and are the modules to call; this
one holds only the arithmetic, on plain numbers, lists and tuples, so that it can also be compiled with mypyc
(``services/pools/build_native.py``). The compiled copy is used only when it was built from exactly
this source (its hash is checked at import), otherwise this pure-Python module runs: both give the
same results (the golden test runs the engine on both).
"""

from __future__ import annotations

import math
import types
from collections.abc import Sequence
from typing import Final

from allot.pools.domain.models import MetricInterval

LN2: Final = math.log(2.0)
RECENT_H: Final = 72.0
#: Prior standard deviation of a member's elasticity around ``PoolSettings.prior_elasticity``. Wide enough
#: that real budget variation (e.g. a newcomer ramped up, a strong member that stops paying off at a
#: larger budget) moves the curve's shape within days; 0.15 held it at the prior for weeks.
PRIOR_ELASTICITY_SD: Final = 0.25
TAU2_MIN: Final = 0.0004
TAU2_SINGLE: Final = 0.09
NO_DATA_VAR: Final = 1e6
MAX_PULL_SD: Final = 1.0

#: An evidence row: the fields of ``estimate.Evidence`` in order (3 counts, then 19 sums).
EvidenceRow = tuple[
    int, int, int, float, float, float, float, float, float, float, float,
    float, float, float, float, float, float, float, float, float, float, float,
]
#: A member's estimate (``shrink_kernel``), one fitted response around its current spend after shrinkage and risk
#: penalty: has data; ref spend (daily cents the level is anchored at, recency-weighted); shrunk, penalised value
#: per spend cent at the ref spend; the raw one; elasticity; sampling variance of the own log level; posterior
#: variance of the shrunk log level; shrinkage (0 own data only .. 1 pool only); baseline ROAS; recent (3 d)
#: ROAS; risk penalty factor; frequency risk; engagement decay; then A and s of the calibrated curve
#: R(x) = A (1 - exp(-x / s)), whose marginal return at spend x and weight w is A / s * exp(-x / (w s)).
EstimateRow = tuple[
    bool, float, float, float, float, float, float, float, float | None, float | None, float, float, float, float, float,
]
# Positions in an estimate row.
E_HAS_DATA: Final = 0
E_ELAST: Final = 4
E_LOGVAR: Final = 5
E_POSTVAR: Final = 6
E_SHRINK: Final = 7
E_BASE: Final = 8
E_RECENT: Final = 9
E_PENALTY: Final = 10
E_FREQ: Final = 11
E_DECAY: Final = 12
E_SAT_A: Final = 13
E_SAT_S: Final = 14
# Positions in an evidence row.
W: Final = 8
WW: Final = 9
WX: Final = 10
WXX: Final = 11
WY: Final = 12
WXY: Final = 13
WYY: Final = 14
RCONV: Final = 15


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
    """u = x/s at which the saturating curve 1 - math.exp(-u) has the given local elasticity u e^-u / (1 - e^-u)."""
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


def _age_entry(
    now_ts: float, end_ts: float, horizon_h: float, last_h: float, first_h: float, first_f: float, min_f: float, decay: float,
    curve: Sequence[tuple[float, float]],
) -> tuple[int, float, float, bool]:
    """What depends only on an interval's end: (status, maturation fraction f, recency weight, recent?); status 0
    outside the window, 1 too fresh, 2 corrected, 3 matured."""
    age_h = (now_ts - end_ts) / 3600.0
    if age_h < 0 or age_h > horizon_h:
        return (0, 0.0, 0.0, False)
    if age_h >= last_h:
        return (3, 1.0, math.exp(-age_h * decay), age_h <= RECENT_H)
    f = first_f if age_h <= first_h else maturation_at(age_h, curve)
    return (1, f, 0.0, False) if f < min_f else (2, f, math.exp(-age_h * decay), age_h <= RECENT_H)


def evidence_kernel(
    histories: Sequence[Sequence[MetricInterval]], now_ts: float, horizon_h: float, decay: float,
    curve: Sequence[tuple[float, float]], min_f: float, w_rev: float, w_conv: float, track_risk: bool,
) -> list[EvidenceRow]:
    """Evidence rows (see ``estimate.evidence_rows``) from the pool's parameters as plain numbers.

    Everything that depends only on an interval's end (age, maturation fraction, recency weight) is
    computed once per distinct end time in this call: members of a pool report on the same grain, so
    the j-th interval of one history usually ends when the j-th of the previous one did; that case is
    recognised by one comparison (the ``pos_*`` lists), any other goes through the ``ages`` dict.
    """
    first_h, first_f = curve[0]
    last_h = curve[-1][0]
    # end_ts -> _age_entry(...)
    ages: dict[float, tuple[int, float, float, bool]] = {}
    pos_ts: list[float] = []
    pos_st: list[int] = []
    pos_f: list[float] = []
    pos_rec: list[float] = []
    pos_recent: list[bool] = []
    out: list[EvidenceRow] = []
    for history in histories:
        n_used = n_fresh = n_corr = 0
        spend_t = value_t = conv_t = rspend = rvalue = 0.0
        w = ww = wx = wxx = wy = wxy = wyy = rconv_w = 0.0
        imp_t = clk_t = fq_t = rimp = rclk = rfq = 0.0
        j = -1
        for iv in history:
            end_ts, rate, spend, revenue, conv, imp, clk, fqi = iv.row
            j += 1
            if j < len(pos_ts) and pos_ts[j] == end_ts:
                st = pos_st[j]
                f = pos_f[j]
                rec = pos_rec[j]
                recent = pos_recent[j]
            else:
                ent = ages.get(end_ts)
                if ent is None:
                    ent = _age_entry(now_ts, end_ts, horizon_h, last_h, first_h, first_f, min_f, decay, curve)
                    ages[end_ts] = ent
                st, f, rec, recent = ent
                if j == len(pos_ts):
                    pos_ts.append(end_ts)
                    pos_st.append(st)
                    pos_f.append(f)
                    pos_rec.append(rec)
                    pos_recent.append(recent)
                else:
                    pos_ts[j] = end_ts
                    pos_st[j] = st
                    pos_f[j] = f
                    pos_rec[j] = rec
                    pos_recent[j] = recent
            if st == 3:
                if not rate:  # hours <= 0
                    continue
                value = w_rev * revenue + w_conv * conv  # / f with f == 1.0
                om = rec / rate  # rec * f / rate with f == 1.0
                conv_t += conv
            elif st == 2:
                n_corr += 1
                if not rate:
                    continue
                value = (w_rev * revenue + w_conv * conv) / f
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
            if track_risk and imp > 0:
                imp_t += imp
                clk_t += clk
                fq_t += fqi
                if recent:
                    rimp += imp
                    rclk += clk
                    rfq += fqi
        out.append((
            n_used, n_fresh, n_corr, spend_t, value_t, conv_t, rspend, rvalue,
            w, ww, wx, wxx, wy, wxy, wyy, rconv_w, imp_t, clk_t, fq_t, rimp, rclk, rfq,
        ))
    return out


def risk(imp: float, rimp: float, fq: float, rfq: float, clk: float, rclk: float) -> tuple[float, float]:
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


def shrink_kernel(
    evidence: Sequence[EvidenceRow], current_cents: Sequence[int], b0: float, log_ref: float, cw_freq: float, cw_decay: float
) -> list[EstimateRow]:
    """``estimate.shrink_tuples`` on plain numbers: an :data:`EstimateRow` per evidence row."""
    prior_prec_b = 1.0 / (PRIOR_ELASTICITY_SD**2)
    # Per member: has data, x_ref, raw level, b, var, (b - 1) * (log_ref - log x_ref).
    n = len(evidence)
    has_l = [False] * n
    xbar_l = [0.0] * n
    level_l = [0.0] * n
    b_l = [0.0] * n
    var_l = [0.0] * n
    proj_l = [0.0] * n
    dispersions: list[float] = []
    for i in range(n):
        ev = evidence[i]
        ew = ev[W]
        ewx = ev[WX]
        if ew <= 0 or ewx <= 0:
            cur = current_cents[i]
            x0 = float(cur if cur > 1 else 1)
            xbar_l[i] = x0
            b_l[i] = b0
            var_l[i] = NO_DATA_VAR
            proj_l[i] = (b0 - 1.0) * (log_ref - math.log(x0))
            continue
        xbar = ewx / ew
        ybar = ev[WY] / ew
        eww = ev[WW]
        n_eff = ew * ew / eww if eww > 0 else 1.0
        var_x = ev[WXX] / ew - xbar * xbar
        var_x = var_x if var_x > 0.0 else 0.0  # max(0.0, ...)
        var_y = ev[WYY] / ew - ybar * ybar
        var_y = var_y if var_y > 0.0 else 0.0
        b = b0
        if ybar > 0:
            rc = ev[RCONV]
            var_pois = 1.0 / (rc if rc > 0.5 else 0.5)
            var_emp = var_y / (ybar * ybar * n_eff)
            # Overdispersion is calibrated across the pool below (a member's own spread also holds its trend).
            var = var_pois
            dispersions.append(var_emp / var_pois)
            rel_var_x = var_x / (xbar * xbar)
            # Platform pacing jitter (a few %) is not a spend experiment: fit only on real budget variation.
            if rel_var_x > 0.01 and n_eff > 3:
                cov = ev[WXY] / ew - xbar * ybar
                b_hat = cov / var_x * xbar / ybar
                var_b = var_y / (var_x * n_eff) * (xbar / ybar) ** 2
                prec = 1.0 / var_b if var_b > 0 else 0.0
                b = (b0 * prior_prec_b + b_hat * prec) / (prior_prec_b + prec)
                b = min(0.9, max(0.15, b))
            level = ybar / xbar
        else:
            # Spent without any value yet: a weak, uncertain estimate near zero.
            var = 1.0 / max(ev[RCONV] + 0.5, 0.5) + 1.0
            level = 0.0
        has_l[i] = True
        xbar_l[i] = xbar
        level_l[i] = level
        b_l[i] = b
        var_l[i] = var
        proj_l[i] = (b - 1.0) * (log_ref - math.log(xbar))
    # Pool-wide overdispersion (median ratio of observed to count-based variance, at least 1): robust to
    # one member whose spread is a real trend (a fader) rather than noise.
    if dispersions:
        phi = max(1.0, sorted(dispersions)[len(dispersions) // 2])
        for i in range(n):
            if has_l[i] and level_l[i] > 0:
                var_l[i] = var_l[i] * phi
    # Project every level to the common reference spend so concavity does not masquerade as quality.
    floor_level = 0.0
    positive = [level_l[i] for i in range(n) if has_l[i] and level_l[i] > 0]
    if positive:
        floor_level = 0.1 * sorted(positive)[len(positive) // 2]
    own = [0.0] * n
    t_sum = p_sum = 0.0  # sums of precision * theta and of precisions, in member order
    v_sum = 0.0
    thetas: list[float] = []
    for i in range(n):
        if has_l[i]:
            level = level_l[i]
            lv = max(level, floor_level, 1e-9)
            t = math.log(lv) + proj_l[i]
            own[i] = t
            thetas.append(t)
            p = 1.0 / var_l[i]
            t_sum += t * p
            p_sum += p
            v_sum += var_l[i]
    m_ = len(thetas)
    if m_:
        mean = t_sum / p_sum
        if m_ >= 2:
            between = 0.0
            for t in thetas:
                between += (t - mean) ** 2
            between = between / (m_ - 1)
            within = v_sum / m_
            tau2 = max(TAU2_MIN, between - within)
        else:
            tau2 = TAU2_SINGLE
    else:
        mean, tau2 = math.log(2.0), TAU2_SINGLE
    out: list[EstimateRow] = []
    inv_tau2 = 1.0 / tau2
    for i in range(n):
        ev = evidence[i]
        has = has_l[i]
        xbar = xbar_l[i]
        b = b_l[i]
        var = var_l[i]
        proj = proj_l[i]
        theta = own[i] if has else mean
        shrink = var / (var + tau2)
        post = mean + (1.0 - shrink) * (theta - mean)
        # Limited translation (Efron-Morris): never pull a member more than MAX_PULL_SD of its own
        # standard errors, so one genuinely different member among few is not averaged away.
        pull_cap = MAX_PULL_SD * math.sqrt(var)
        if abs(post - theta) > pull_cap:
            post = theta + math.copysign(pull_cap, post - theta)
        shrink = abs(post - theta) / abs(theta - mean) if abs(theta - mean) > 1e-12 else shrink
        post_var = 1.0 / (1.0 / var + inv_tau2)
        if has and ev[19] > 0:
            freq_risk, decay = risk(ev[16], ev[19], ev[18], ev[21], ev[17], ev[20])
        else:
            freq_risk = decay = 0.0
        penalty = 1.0 - cw_freq * freq_risk - cw_decay * decay
        penalty = penalty if penalty > 0.5 else 0.5  # max(0.5, ...)
        roas_ref = math.exp(post - proj) * penalty
        u = saturation_ratio(b)
        spend = ev[3]
        rspend = ev[6]
        out.append(
            (
                has, xbar, roas_ref, level_l[i], b, var, post_var, shrink,
                (ev[4] / spend) if spend > 0 else None,
                (ev[7] / rspend) if rspend > 0 else None,
                penalty, freq_risk, decay,
                # (A, s) of the calibrated curve: same level and elasticity as estimated at the ref spend
                roas_ref * xbar / (1.0 - math.exp(-u)), xbar / u,
            )
        )
    return out


def solve(
    c0: list[float], k: list[float], lo: list[float], hi: list[float], total: int, optimism: Sequence[float] | None
) -> tuple[list[float], float]:
    """Budgets (floats) that equalise estimated marginal returns under floors/ceilings and sum to ``total``, plus
    the common marginal; from log(A / s) (``c0``, see ``curve_inputs``), slopes w * s (``k``) and float bounds.

    On each member's calibrated curve A (1 - exp(-x / s)) the budget at marginal ``lam`` is
    ``w * s * (log(A / s) - log(lam))`` clipped to its bounds: linear in log(lam), so Newton steps on
    log(lam) land exactly after a few clip-set changes. ``optimism`` adds to log(A / s) (exploration).
    When the bounds cannot meet ``total`` all members sit at their floors (or ceilings).
    """
    if sum(lo, 0.0) >= total:
        return lo, math.inf
    if sum(hi, 0.0) <= total:
        return hi, 0.0
    if optimism is not None:
        c = [ci + oi for ci, oi in zip(c0, optimism)]
    else:
        c = [ci + 0.0 for ci in c0]
    # Start from the unclipped solution, then Newton on the piecewise-linear sum.
    ks = sum(k, 0.0)
    lg = (sum((ki * ci for ki, ci in zip(k, c)), 0.0) - total) / ks
    xs: list[float] = lo
    a_, b_ = math.inf, -math.inf
    rows = list(zip(k, c, lo, hi))
    for _ in range(60):
        s_ = 0.0
        d = 0.0
        xs = []
        for ki, ci, li, hi_ in rows:
            x = ki * (ci - lg)
            if x <= li:
                x = li
            elif x >= hi_:
                x = hi_
            else:
                d += ki
            s_ += x
            xs.append(x)
        err = s_ - total
        if abs(err) <= 0.01:
            break
        if err > 0:
            b_ = lg
        else:
            a_ = lg
        nxt = lg + err / d if d > 0 else lg + (1.0 if err > 0 else -1.0)
        if not (b_ < nxt < a_):
            nxt = 0.5 * (a_ + b_) if math.isfinite(a_) and math.isfinite(b_) else lg + (1.0 if err > 0 else -1.0)
        lg = nxt
    return xs, math.exp(lg) if lg < 700 else math.inf


def curve_inputs(estimates: list[EstimateRow], weights: list[float], current: list[int]) -> tuple[list[float], list[float], list[float]]:
    """Per member: log(A / s) and the slope w * s of its calibrated curve (``solve``'s inputs), and its marginal
    return at the current budget."""
    c0: list[float] = []
    k: list[float] = []
    mu_now: list[float] = []
    for i in range(len(estimates)):
        e = estimates[i]
        wt = weights[i]
        c = current[i]
        a = e[E_SAT_A]
        s_ = e[E_SAT_S]
        r = a / s_
        c0.append(math.log(1e-300 if 1e-300 > r else r))
        k.append(wt * s_)
        mu_now.append(r * math.exp(-(c if c > 0.0 else 0.0) / (wt * s_)))
    return c0, k, mu_now


def explore_targets(greedy: list[float], optimistic: list[float], budget: float) -> list[float]:
    """Greedy targets moved toward the optimistic ones, the increases scaled to at most ``budget`` cents in all."""
    delta = [o - g for o, g in zip(optimistic, greedy)]
    pos = 0.0
    for d in delta:
        if d > 0:
            pos += d
    alpha = min(1.0, budget / pos) if pos > 0 else 0.0
    return [g + alpha * d for g, d in zip(greedy, delta)]


def moves(
    current: list[int], targets: list[float], los: list[int], his: list[int], cooling: list[bool], ready: list[bool],
    reason: list[str], need: int, m: int, pct: float,
) -> tuple[list[int], list[int], list[int], list[int], list[int]]:
    """Step limits, wanted moves of ready members and everybody's room (see ``engine.plan_allocation``).

    Returns (steps, up_wanted, down_wanted, up_room, down_room); a ready member whose possible move is
    below the minimum change is marked not ready, with the reason.
    """
    n = len(current)
    steps = [0] * n
    up_w = [0] * n
    down_w = [0] * n
    up_room = [0] * n
    down_room = [0] * n
    for i in range(n):
        c = current[i]
        step = m if c <= 0 else int(math.floor(c * pct / 100.0 + 1e-9))
        steps[i] = step
        ur = his[i] - c
        ur = ur if ur < step else step
        ur = ur if ur > 0 else 0  # max(0, min(step, hi - c))
        dr = c - los[i]
        dr = dr if dr < step else step
        dr = dr if dr > 0 else 0
        movable = not cooling[i] or need != 0
        t = targets[i]
        # Balancing never pushes a member away from its own target (unless the pool sum itself must be repaired).
        up_room[i] = ur if movable and (need != 0 or t > c) else 0
        down_room[i] = dr if movable and (need != 0 or t < c) else 0
        if ready[i]:
            gap = t - c
            amt = int(min(abs(gap), ur if gap > 0 else dr))
            if amt >= m:
                if gap > 0:
                    up_w[i] = amt
                else:
                    down_w[i] = amt
            else:
                ready[i] = False
                reason[i] = "signal held but the possible move is below the minimum change or blocked by a bound"
    return steps, up_w, down_w, up_room, down_room


def move_orders(targets: list[float], current: list[int], ids: list[str]) -> tuple[list[int], list[int]]:
    """Member positions by relative pull (target - current) / current: strongest up-pull first, strongest down-pull
    first; ties by id, then by position (as a stable sort on those keys)."""
    prio = [(t - c) / (c if c > 1 else 1) for t, c in zip(targets, current)]
    n = len(prio)
    up = sorted(zip([-p for p in prio], ids, range(n)))
    down = sorted(zip(prio, ids, range(n)))
    return [r[2] for r in up], [r[2] for r in down]


def fill(entries: list[tuple[int, int]], amount: int, min_change: int) -> tuple[dict[int, int], int]:
    """Greedily place ``amount`` over (index, capacity) entries in order, never giving anyone less than ``min_change``; returns takes and the unplaced rest.

    An index may appear twice (its wanted move first, its extra room later);
    the second entry only tops up what it already took.
    """
    takes: dict[int, int] = {}
    rem = amount
    for idx, cap in entries:
        if rem <= 0:
            break
        if cap <= 0:
            continue
        t = cap if cap < rem else rem
        if idx in takes:
            takes[idx] += t
            rem -= t
        elif t >= min_change:
            takes[idx] = t
            rem -= t
        elif t == rem:
            # A tail smaller than the minimum change can only join a member already moving.
            break
    if 0 < rem < min_change and takes:
        used = {i: 0 for i in takes}
        for idx, cap in entries:
            if idx in used:
                used[idx] += cap if cap > 0 else 0
        for j in takes:
            add = used[j] - takes[j]
            add = add if add < rem else rem
            if add > 0:
                takes[j] += add
                rem -= add
            if rem == 0:
                break
    return takes, rem


def realize_moves(
    current: list[int], total: int, up_wanted: list[int], down_wanted: list[int], up_room: list[int], down_room: list[int],
    up_order: list[int], down_order: list[int], min_change: int,
) -> tuple[list[int], int]:
    """``realize.realize_moves`` (which documents it) with positional arguments."""
    n = len(current)
    need = total - sum(current)
    want_up = sum(up_wanted)
    want_down = sum(down_wanted)
    # Both sides get what they asked for; the side that asked less is topped up by balancing members.
    inc = max(want_up, want_down + need, need, 0)
    dec = inc - need

    up_entries = [(i, up_wanted[i]) for i in up_order if up_wanted[i] > 0]
    up_entries += [(i, up_room[i]) for i in up_order if up_wanted[i] == 0 and down_wanted[i] == 0]
    up_entries += [(i, up_room[i] - up_wanted[i]) for i in up_order if up_wanted[i] > 0]
    down_entries = [(i, down_wanted[i]) for i in down_order if down_wanted[i] > 0]
    down_entries += [(i, down_room[i]) for i in down_order if down_wanted[i] == 0 and up_wanted[i] == 0]
    down_entries += [(i, down_room[i] - down_wanted[i]) for i in down_order if down_wanted[i] > 0]

    ups: dict[int, int] = {}
    downs: dict[int, int] = {}
    for _ in range(8):
        ups, rem_up = fill(up_entries, inc, min_change)
        downs, rem_down = fill([e for e in down_entries if e[0] not in ups], dec, min_change)
        got_up, got_down = inc - rem_up, dec - rem_down
        if got_up - got_down == need:
            break
        if got_up - got_down > need:
            inc = got_down + need
            if inc < 0:
                inc, dec = 0, -need
        else:
            dec = got_up - need
            if dec < 0:
                inc, dec = need, 0
    if sum(ups.values()) - sum(downs.values()) != need:
        if need == 0:
            ups, downs = {}, {}
        elif any(up_wanted) or any(down_wanted):
            # The pool sum comes first: drop the optional moves and repair the sum alone.
            zeros = [0] * n
            return realize_moves(current, total, zeros, zeros, up_room, down_room, up_order, down_order, min_change)
    out = list(current)
    for i, v in ups.items():
        out[i] += v
    for i, v in downs.items():
        out[i] -= v
    return out, total - sum(out)


#: "00" .. "99": the cents part of an amount.
_CENTS_TEXT: Final = ["0" + str(i) if i < 10 else str(i) for i in range(100)]


def money(cents: int) -> str:
    """Integer minor units as text with thousands separators and 2 decimals ("-1,234.05"): integer
    arithmetic only, the same text as formatting ``cents / 100`` with ``:,.2f``.

    Plain string operations rather than format specs: the engine writes two or three amounts per member
    per plan, and a formatted ``{units:,}`` costs about ten times this (compiled or not)."""
    a = -cents if cents < 0 else cents
    units = a // 100
    text = str(units)
    if units >= 1000:
        n = len(text)
        head = n % 3 or 3
        groups = [text[:head]]
        for j in range(head, n, 3):
            groups.append(text[j:j + 3])
        text = ",".join(groups)
    text = text + "." + _CENTS_TEXT[a - units * 100]
    return "-" + text if cents < 0 else text


def fixed(x: float, decimals: int) -> str:
    """Exactly ``"%.{decimals}f" % x`` for ``decimals`` 0, 1 or 2 (the explanation text formats nine numbers per member).

    Compiled, :func:`fixed_arith` does it in about half the time of the %-format; interpreted, the
    %-format (one C call) is the faster of the two.
    """
    if COMPILED:
        return fixed_arith(x, decimals)
    return "%.*f" % (decimals, x)


def fixed_arith(x: float, decimals: int) -> str:
    """``"%.{decimals}f" % x`` for ``decimals`` 0, 1 or 2, mostly without a float-to-decimal conversion.

    For |x| < 1e9 the scaled value ``y = |x| * 10**decimals`` is within 1e-5 of the exact product, so
    unless its fraction lies within 1e-4 of a half, rounding ``y`` to the nearest integer is the
    correctly rounded result the %-format gives; those near-halves, nan, inf and large values take the
    %-format itself. The sign follows the %-format too ("-0.00" for a negative x that rounds to zero).
    """
    a = -x if x < 0.0 else x
    if a < 1e9:  # False for nan and inf
        y = a * (100.0 if decimals == 2 else 10.0 if decimals == 1 else 1.0)
        n = int(y)
        frac = y - n
        if frac > 0.5001:
            n += 1
        elif frac >= 0.4999:
            return "%.*f" % (decimals, x)
        if decimals == 2:
            q = n // 100
            text = str(q) + "." + _CENTS_TEXT[n - q * 100]
        elif decimals == 1:
            q = n // 10
            text = str(q) + "." + str(n - q * 10)
        else:
            text = str(n)
        return "-" + text if x < 0.0 or (x == 0.0 and math.copysign(1.0, x) < 0.0) else text
    return "%.*f" % (decimals, x)


def signed1(x: float) -> str:
    """Exactly ``"%+.1f" % x``."""
    text = fixed(x, 1)
    return text if text.startswith("-") else "+" + text


def explain(
    prevs: list[int], news: list[int], current: list[int], targets: list[float], los: list[int], his: list[int],
    steps: list[int], ready: list[bool], explore: list[bool], counts: list[int], reason: list[str], zs: list[float],
    estimates: list[EstimateRow], mu_now: list[float], weights: list[float], need: int, cur: str, lam_txt: str, capped_txt: str,
) -> list[tuple[str, str, tuple[str, ...], float]]:
    """Each eligible member's plan line: (action, explanation text, reasons, marginal return at its budget) (see ``engine``)."""
    out: list[tuple[str, str, tuple[str, ...], float]] = []
    for i in range(len(prevs)):
        e = estimates[i]
        new = news[i]
        c = current[i]
        t = targets[i]
        prev = prevs[i]
        action = "increase" if new > prev else "decrease" if new < prev else "hold"
        if c >= 1:
            mu = mu_now[i]  # e.marginal(max(c, 1), weight) with max(c, 1) == c
        else:
            mu = e[E_SAT_A] / e[E_SAT_S] * math.exp(-1 / (weights[i] * e[E_SAT_S]))  # the marginal at 1 cent
        reasons: list[str] = []
        if c != prev:
            reasons.append("moved onto its " + ("floor " if c > prev else "ceiling ") + money(c) + " " + cur)
        if new != c:
            delta = money(new - prev) + " " + cur
            if ready[i]:
                why = ": exploration of an uncertain member for " if explore[i] else ": marginal return held above/below the pool for "
                reasons.append(action + " " + delta + why + str(counts[i]) + " plans")
            elif need != 0:
                reasons.append(action + " " + delta + " to bring the pool sum to the daily budget")
            else:
                reasons.append(action + " " + delta + " to fund/absorb moves of stronger evidence (lowest/highest marginal first)")
            if abs(new - c) == steps[i]:
                reasons.append(capped_txt)
        else:
            hi = his[i]
            lo = los[i]
            if new >= hi and t >= hi - 0.5:
                reasons.append("held at its ceiling")
            elif new <= lo and t <= lo + 0.5:
                reasons.append("held at its floor")
            reasons.append("held: " + (reason[i] or "no qualifying signal"))
        prev_txt = money(prev) + " " + cur
        new_txt = prev_txt if new == prev else money(new) + " " + cur
        baseline_roas = e[E_BASE]
        recent_roas = e[E_RECENT]
        penalty = e[E_PENALTY]
        z_txt = signed1(zs[i])
        risk = (
            f"; risk penalty {fixed((1 - penalty) * 100, 0)}% (frequency {fixed(e[E_FREQ], 2)}, "
            f"engagement decay {fixed(e[E_DECAY], 2)})"
            if penalty < 1.0 else ""
        )
        # Numbers as "%.2f" ("%+.1f" for z; a share as "%.0f" of its percentage) through fixed().
        text = (
            f"{prev_txt} -> {new_txt}; own baseline {'n/a' if baseline_roas is None else fixed(baseline_roas, 2)}, "
            f"last 3 d {'n/a' if recent_roas is None else fixed(recent_roas, 2)} (maturity-corrected); "
            f"marginal return {fixed(mu, 2)} per extra cent vs pool {lam_txt} (elasticity {fixed(e[E_ELAST], 2)}, z {z_txt}); "
            f"shrinkage {fixed(e[E_SHRINK] * 100, 0)}% toward pool{'' if e[E_HAS_DATA] else ' (no usable history)'}{risk}; "
            f"target {money(int(round(t)))} {cur}. {'; '.join(reasons)}"
        )
        out.append((action, text, tuple(reasons), mu))
    return out


def signals(
    m: int, db: float, evidence_z: float, cont_z: float, persistence: int, cooldown_h: float, cont_cooldown_h: float,
    lam: float | None, estimates: list[EstimateRow], current: list[int], targets: list[float], greedy: list[float],
    mu_now: list[float], pend_dir: list[int], pend_cnt: list[int], since_h: list[float | None], last_dir: list[int],
    zs: list[float], dirs_: list[int], counts: list[int], cooling: list[bool], explore: list[bool], ready: list[bool], reason: list[str],
) -> None:
    """Direction, evidence, persistence and cooldown of each member's pull toward its target (fills the per-member lists).

    Per member, from its memory: the pending direction and count, the hours since its last change
    (None: never changed) and the direction of that change (0: none). See ``engine._signals``.

    Exploration (an increase without the usual evidence) is reserved for members that are new or
    starved: own-estimate variance at least twice the pool median, or a budget at most 60% of an
    equal share.
    """
    n = len(current)
    inf = math.inf
    # The per-pool parts of the reasons, formatted once per plan.
    needs_txt = f", needs {evidence_z:g})"
    cooldown_txt = f" h ago (< {cooldown_h:g} h)"
    cont_cooldown_txt = f" h ago (< {cont_cooldown_h:g} h)"
    persistence_txt = f"/{persistence} consecutive plans"
    # Evidence is judged at CURRENT budgets: "holding" is right when marginal returns are equal now,
    # so a move needs this member's marginal to differ from the pool's current (precision-weighted) one.
    num = den = 0.0
    for e, mu0 in zip(estimates, mu_now):
        if 0 < mu0 < inf:
            lv = e[E_LOGVAR]
            p = 1.0 / (1e-9 if 1e-9 > lv else lv)
            num += p * math.log(mu0)
            den += p
    if den > 0:
        lam = math.exp(num / den)
    variances = sorted(e[E_LOGVAR] for e in estimates)
    median_var = variances[len(variances) // 2] if variances else 0.0
    equal_share = sum(current) / n if n else 0.0
    log_lam = math.log(lam) if lam and lam > 0 and math.isfinite(lam) else None
    for i in range(n):
        e = estimates[i]
        c = current[i]
        gap = targets[i] - c
        thr = db * c
        thr = thr if thr > m else m  # max(m, db * c)
        direction = 0
        if abs(gap) >= thr:
            direction = 1 if gap > 0 else -1
        mu = mu_now[i]
        if log_lam is None:
            z = 0.0
        elif math.isinf(mu):
            z = inf
        else:
            pv = e[E_POSTVAR]
            z = (math.log(1e-12 if 1e-12 > mu else mu) - log_lam) / math.sqrt(1e-9 if 1e-9 > pv else pv)
        zs[i] = z
        if direction != 0:
            greedy_gap = greedy[i] - c
            supported = z * direction >= evidence_z and greedy_gap * direction >= thr
            uncertain = e[E_LOGVAR] >= 2.0 * median_var or c <= 0.6 * equal_share
            ex = direction > 0 and not supported and gap >= thr and uncertain
            if not supported and not ex:
                reason[i] = "gap not backed by evidence (z=" + signed1(z) + needs_txt
                direction = 0
            explore[i] = ex
        if direction != 0 and direction == pend_dir[i]:
            count = pend_cnt[i] + 1
        else:
            count = 1 if direction != 0 else 0
        dirs_[i] = direction
        counts[i] = count
        since = since_h[i]
        in_cooldown = False
        continuing = False
        since_f = 0.0
        if since is not None:
            since_f = since
            continuing = direction != 0 and last_dir[i] == direction and z * direction >= cont_z and abs(gap) >= 2 * thr
            in_cooldown = since_f < (cont_cooldown_h if continuing else cooldown_h)
        cooling[i] = in_cooldown
        rdy = direction != 0 and count >= persistence and not in_cooldown
        ready[i] = rdy
        if direction != 0 and not rdy:
            if in_cooldown:
                reason[i] = "cooldown: last change " + fixed(since_f, 0) + (cont_cooldown_txt if continuing else cooldown_txt)
            else:
                reason[i] = "signal held " + str(count) + persistence_txt
        elif direction == 0 and not reason[i]:
            reason[i] = "within deadband (target " + money(int(round(targets[i]))) + " vs current " + money(c) + ")"


#: Whether this module runs compiled (mypyc turns its functions into builtins): fixed() picks the faster of its
#: two equivalent ways.
COMPILED: Final = not isinstance(fixed, types.FunctionType)
