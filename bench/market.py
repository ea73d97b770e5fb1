"""A seeded ad-market simulator for the budget-pool benchmark, independent of the sandbox the engine was tuned on.

Pure: no clock, no I/O; every random draw comes from ``random.Random`` seeded
from the scenario seed, so the same seed always gives the same scenario, the
same deliveries for the same budgets and the same oracle.

A scenario is one pool over ``DAYS`` (28) days after ``warmup_days`` (3) of
history at the initial budgets, with a plan every ``cadence_h`` hours (4, 8, 12
or 24) and 2-20 members. Every scenario belongs to one FAMILY:

- ``stable``: no structural event.
- ``fatigue``: the member with the highest true marginal value at the equal
  split (day 0) fatigues from a random day in 5-12: its level decays 4-10 %
  per day down to 20-40 % of where it was (its CTR falls and its frequency
  rises with it).
- ``newcomer``: a strong member (the oracle gives it at least 4x the floor on
  its first day) joins on a random day in 8-16 at the pool floor, with no
  history; before that it is not a member at all. The pool budget stays the
  same, so on that day the members' budgets sum to B + floor and the policy
  has to take the floor back from the others.
- ``low_volume``: under one conversion per member per day on average at the
  equal split (counts per interval are mostly 0 or 1).

Every member, in every family:

- Response: expected conversions per day ``V * level(d) * x^h / (x^h + K^h)``
  at daily SPEND rate ``x``; Hill exponent ``h`` uniform in 0.8-2.5 (above 1 the
  curve is S-shaped: returns first rise, then fall), ``K`` log-uniform in
  0.3-3x the equal share. Revenue = conversions x AOV, the interval's AOV with
  log-normal noise (sigma 0.3). ``V`` is set so that the value per cent at the
  equal share (ROAS, or conversions per cent for conversion pools) spreads by a
  factor 3-5 between the worst and the best member.
- ``level(d)``: weekly seasonality (a pattern shared by the pool plus member
  jitter, at most +-5..20 %), times a multiplicative random-walk drift (2-6 %
  per week), times fatigue where it applies. Parameters are constant within a
  day.
- Delivery caps: 30-40 % of the members cannot spend more than a daily cap
  (0.4-1.3x the equal share, with the member's seasonality). A member spends
  ``min(budget, cap)`` with +-5 % pacing noise, so spend is often below budget.
- Conversions per interval ~ Poisson(expected x hours/24) at the realised
  spend.
- Late reporting: per scenario 40-80 % of conversions are reported at the end
  of their interval, the rest after an exponential delay (mean 12-48 h, at most
  7 days). :meth:`Market.history` shows every interval as reported at ``now``:
  intervals younger than the 7-day window carry what was reported by ``now``
  and ``reported_at=now``; older ones are final and carry ``reported_at`` =
  end + 7 days (the last restatement; this is what the pools service's metric
  projection would hold). Only the intervals inside the window are rebuilt on
  each call; new intervals are appended.

The pool: daily budget ``B = n x share`` (share 50-500 EUR/day in integer
cents), initial budgets the equal split (largest remainder), member floor 10 %
of the share, no ceiling, otherwise the PoolSettings defaults; ~75 % of the
pools optimise ROAS (value = revenue), the rest conversions (value =
conversions).

Oracle (:func:`oracle`): for every day, with that day's true parameters
(seasonality, drift, fatigue, caps, membership), the budgets that maximise the
total expected value ``sum_i R_i(min(b_i, cap_i))`` subject to ``sum b_i = B``
and ``b_i >= floor``. The curves are not concave, so it is solved globally: a
dynamic programme over a grid of 100 units of the budget above the floors,
then refined by best-pair exchanges with steps halving from one grid unit down
to under one cent. It is not step-limited and knows everything; a policy's
score is its true expected value over the 28 days as a % of the oracle's.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from operator import add
from statistics import NormalDist

from allot.pools.domain import MetricInterval, OptimizationMetric, PoolSettings

__all__ = [
    "CADENCES_H",
    "DAY0",
    "DAYS",
    "FAMILIES",
    "MAX_DELAY_H",
    "Market",
    "MemberTruth",
    "OracleDay",
    "Scenario",
    "equal_split",
    "make_scenario",
    "oracle",
    "oracle_day",
]

FAMILIES: tuple[str, ...] = ("stable", "fatigue", "newcomer", "low_volume")
CADENCES_H: tuple[int, ...] = (4, 8, 12, 24)
DAYS = 28
WARMUP_DAYS = 3
DAY0 = datetime(2024, 3, 4, tzinfo=UTC)
"""Start of scored day 0 (a Monday); the warm-up runs before it."""
MAX_DELAY_H = 168.0
"""Reporting window: every conversion is reported at most this long after its interval ends."""
AOV_SIGMA = 0.3
PACING_NOISE = 0.05
ORACLE_GRID = 100

_INV_NORMAL = NormalDist().inv_cdf
#: Older engine versions' MetricInterval has no ``reported_at``; the market then leaves it out (same numbers).
_HAS_REPORTED_AT = "reported_at" in {f.name for f in fields(MetricInterval)}


def _slot_restamper() -> Callable[[MetricInterval, datetime], MetricInterval] | None:
    """A cheap "same interval, reported again at ``at``" (slot copy), when it provably equals the constructor's result.

    Re-reporting an unchanged interval happens for every interval inside the
    reporting window on every plan; copying the slots costs a fraction of the
    frozen dataclass constructor. Used only if every slot of the copy equals
    what the constructor gives (i.e. no derived field depends on
    ``reported_at``); otherwise None and the constructor is used.
    """
    slots = getattr(MetricInterval, "__slots__", None)
    if not _HAS_REPORTED_AT or not slots or "reported_at" not in slots:
        return None
    setters = [(getattr(MetricInterval, name).__get__, getattr(MetricInterval, name).__set__) for name in slots if name != "reported_at"]
    set_at = MetricInterval.reported_at.__set__  # type: ignore[attr-defined]
    new = object.__new__

    def restamp(iv: MetricInterval, at: datetime) -> MetricInterval:
        o = new(MetricInterval)
        for get, put in setters:
            put(o, get(iv))
        set_at(o, at)
        return o

    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    t1, t2 = t0 + timedelta(hours=4), t0 + timedelta(days=2)
    sample = MetricInterval(t0, t1, 1234, 5678, 3.0, 900, 12, 1.5, reported_at=t1)  # type: ignore[call-arg]
    want = MetricInterval(t0, t1, 1234, 5678, 3.0, 900, 12, 1.5, reported_at=t2)  # type: ignore[call-arg]
    got = restamp(sample, t2)
    return restamp if all(getattr(got, name) == getattr(want, name) for name in slots) else None


_restamp = _slot_restamper()


@dataclass(frozen=True, slots=True)
class MemberTruth:
    """One member's true market (the policies never see it)."""

    member_id: str
    role: str
    """``regular``, ``fatigue`` (the member that fatigues) or ``newcomer`` (the member that joins late)."""
    hill: float
    """Hill exponent h (above 1: S-shaped)."""
    half_sat_cents: float
    """K: daily spend at which the member reaches half of its saturation level."""
    saturation_conversions: float
    """V: conversions per day at saturation at level 1."""
    aov_cents: float
    """Mean revenue per conversion."""
    join_day: int | None
    """First day the member is in the pool (None: from the start of the warm-up)."""
    levels: tuple[float, ...]
    """Multiplier of V for each day from ``-warmup_days`` to ``DAYS - 1`` (seasonality x drift x fatigue)."""
    caps: tuple[float, ...] | None
    """Daily spend ceiling for each of those days, or None when the member is not capped."""
    fatigue: tuple[float, ...]
    """The fatigue part of ``levels`` alone (1.0 for members that do not fatigue); drives CTR and frequency."""
    ctr: float
    cpm_cents: float
    """Cost per 1000 impressions."""
    base_frequency: float

    def hill_share(self, spend_per_day: float) -> float:
        """x^h / (x^h + K^h), the share of saturation reached at a daily spend rate."""
        if spend_per_day <= 0:
            return 0.0
        return 1.0 / (1.0 + (self.half_sat_cents / spend_per_day) ** self.hill)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One pool's market over the warm-up and the scored days."""

    seed: int
    family: str
    cadence_h: int
    metric: OptimizationMetric
    share_cents: int
    budget_cents: int
    floor_cents: int
    members: tuple[MemberTruth, ...]
    immediate_share: float
    """Share of conversions reported at the end of their interval."""
    delay_mean_h: float
    """Mean of the exponential reporting delay of the others (capped at MAX_DELAY_H)."""
    warmup_days: int = WARMUP_DAYS

    # -- time -------------------------------------------------------------------------------------------
    @property
    def start(self) -> datetime:
        """Start of the warm-up."""
        return DAY0 - timedelta(days=self.warmup_days)

    @property
    def steps(self) -> int:
        """Plans over the scored days."""
        return DAYS * 24 // self.cadence_h

    def day_of(self, at: datetime) -> int:
        """Day index of ``at`` (0 = DAY0; negative in the warm-up)."""
        return math.floor((at - DAY0).total_seconds() / 86_400.0)

    def _di(self, day: int) -> int:
        return day + self.warmup_days

    # -- truth ------------------------------------------------------------------------------------------
    @property
    def value_is_revenue(self) -> bool:
        """True when the pool's value is revenue (roas/revenue pools), False for conversions."""
        return self.metric in (OptimizationMetric.ROAS, OptimizationMetric.REVENUE)

    def is_active(self, i: int, day: int) -> bool:
        """Whether member ``i`` is in the pool on ``day``."""
        j = self.members[i].join_day
        return j is None or day >= j

    def active(self, day: int) -> list[int]:
        """Indexes of the members in the pool on ``day``."""
        return [i for i in range(len(self.members)) if self.is_active(i, day)]

    def cap(self, i: int, day: int) -> float:
        """Member ``i``'s daily spend ceiling on ``day`` (inf when uncapped)."""
        caps = self.members[i].caps
        return math.inf if caps is None else caps[self._di(day)]

    def conversions_per_day(self, i: int, spend_per_day: float, day: int) -> float:
        """Expected conversions per day at a realised daily spend rate."""
        m = self.members[i]
        return m.saturation_conversions * m.levels[self._di(day)] * m.hill_share(spend_per_day)

    def value_per_day(self, i: int, budget_cents: float, day: int) -> float:
        """True expected value per day (revenue cents or conversions) at a daily budget (spend = min(budget, cap))."""
        conv = self.conversions_per_day(i, min(budget_cents, self.cap(i, day)), day)
        return conv * self.members[i].aov_cents if self.value_is_revenue else conv

    # -- the pool ---------------------------------------------------------------------------------------
    def pool(self) -> PoolSettings:
        """The pool as the policies see it: defaults except budget, cadence, floor and metric."""
        return PoolSettings(
            pool_id=f"market-{self.seed}", daily_budget_cents=self.budget_cents, optimization_metric=self.metric,
            allocation_frequency_hours=self.cadence_h, default_min_budget_cents=self.floor_cents,
        )

    def initial_budgets(self) -> dict[str, int]:
        """Equal split of B (largest remainder, earlier members first) over the members present from the start."""
        ids = [m.member_id for m in self.members if m.join_day is None]
        return dict(zip(ids, equal_split(self.budget_cents, len(ids))))


def equal_split(total: int, n: int) -> list[int]:
    """``n`` integers as equal as possible summing to ``total`` (the remainder goes to the first ones)."""
    base, rest = divmod(total, n)
    return [base + (1 if k < rest else 0) for k in range(n)]


# -- scenario generation ------------------------------------------------------------------------------------

def _loguniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def make_scenario(
    seed: int,
    family: str | None = None,
    cadence_h: int | None = None,
    *,
    warmup_days: int = WARMUP_DAYS,
    metric: OptimizationMetric | None = None,
) -> Scenario:
    """The scenario of ``seed``; family, cadence and metric are drawn from the seed unless given."""
    rng = random.Random(seed)
    fam = family if family is not None else rng.choice(FAMILIES)
    if fam not in FAMILIES:
        raise ValueError(f"unknown family {fam!r}")
    cad = cadence_h if cadence_h is not None else rng.choice(CADENCES_H)
    if cad not in CADENCES_H:
        raise ValueError(f"cadence must be one of {CADENCES_H}")
    drawn_metric = OptimizationMetric.CONVERSIONS if rng.random() < 0.25 else OptimizationMetric.ROAS
    met = metric if metric is not None else drawn_metric
    by_revenue = met in (OptimizationMetric.ROAS, OptimizationMetric.REVENUE)
    n = rng.randint(2, 20)
    share = rng.randint(5_000, 50_000)
    floor = share // 10
    n_old = n - 1 if fam == "newcomer" else n
    days_total = warmup_days + DAYS

    # Value per cent at the equal share: spread by a factor F between the worst and the best member.
    spread = rng.uniform(3.0, 5.0)
    u = [rng.random() for _ in range(n_old)]
    lo_u, hi_u = min(u), max(u)
    eff = [spread ** ((x - lo_u) / (hi_u - lo_u) if hi_u > lo_u else 0.5) for x in u]
    gmean = math.exp(sum(math.log(e) for e in eff) / n_old)
    eff = [e / gmean for e in eff]
    roas0 = _loguniform(rng, 1.5, 4.0)
    conv0 = rng.uniform(0.12, 0.4) if fam == "low_volume" else _loguniform(rng, 3.0, 25.0)

    # Seasonality (weekly, shared pattern + member jitter), drift.
    amp = rng.uniform(0.05, 0.20)
    pattern = [rng.uniform(-1.0, 1.0) for _ in range(7)]
    drift_sd = rng.uniform(0.02, 0.06) / math.sqrt(7.0)
    n_capped = round(n_old * rng.uniform(0.3, 0.4))
    capped = set(rng.sample(range(n_old), n_capped))

    def seasonal_path() -> tuple[list[float], list[float]]:
        jitter = [rng.uniform(-1.0, 1.0) for _ in range(7)]
        season, drift = [], []
        walk = 0.0
        for k in range(days_total):
            day = k - warmup_days
            wd = (DAY0 + timedelta(days=day)).weekday()
            season.append(1.0 + amp * max(-1.0, min(1.0, 0.75 * pattern[wd] + 0.25 * jitter[wd])))
            drift.append(math.exp(walk))
            walk += rng.gauss(0.0, drift_sd)
        return season, drift

    members: list[MemberTruth] = []
    for i in range(n_old):
        hill = rng.uniform(0.8, 2.5)
        k_half = share * _loguniform(rng, 0.3, 3.0)
        h_at_share = 1.0 / (1.0 + (k_half / share) ** hill)
        if by_revenue:
            conv = conv0 * math.exp(rng.gauss(0.0, 0.4))
            aov = roas0 * eff[i] * share / conv
        else:
            conv = conv0 * eff[i]
            aov = 6_000.0 * math.exp(rng.gauss(0.0, 0.5))
        season, drift = seasonal_path()
        cap_base = share * rng.uniform(0.4, 1.3) if i in capped else None
        members.append(MemberTruth(
            member_id="", role="regular", hill=hill, half_sat_cents=k_half, saturation_conversions=conv / h_at_share,
            aov_cents=aov, join_day=None, levels=tuple(s * d for s, d in zip(season, drift)),
            caps=tuple(cap_base * s for s in season) if cap_base is not None else None, fatigue=(1.0,) * days_total,
            ctr=rng.uniform(0.005, 0.03), cpm_cents=rng.uniform(400.0, 1_500.0), base_frequency=rng.uniform(1.1, 2.0),
        ))

    fatigue_params = (rng.randint(5, 12), rng.uniform(0.04, 0.10), rng.uniform(0.2, 0.4))
    newcomer_params = (rng.randint(8, 16), rng.uniform(1.0, 1.3), rng.uniform(0.8, 2.0), _loguniform(rng, 0.7, 2.0))
    newcomer_path = seasonal_path()
    newcomer_misc = (rng.uniform(0.005, 0.03), rng.uniform(400.0, 1_500.0), rng.uniform(1.1, 2.0), rng.gauss(0.0, 0.4))
    delays = (rng.uniform(0.4, 0.8), rng.uniform(12.0, 48.0))
    order = list(range(n))
    rng.shuffle(order)

    scn = Scenario(
        seed=seed, family=fam, cadence_h=cad, metric=met, share_cents=share, budget_cents=n * share, floor_cents=floor,
        members=tuple(members), immediate_share=delays[0], delay_mean_h=delays[1], warmup_days=warmup_days,
    )
    if fam == "fatigue":
        marg = [_marginal(scn, i, float(share), 0) for i in range(n_old)]
        best = max(range(n_old), key=lambda i: marg[i])
        start_day, rate, floor_level = fatigue_params
        fat = tuple(1.0 if k - warmup_days < start_day else max(floor_level, (1.0 - rate) ** (k - warmup_days - start_day + 1))
                    for k in range(days_total))
        m = members[best]
        members[best] = replace(m, role="fatigue", fatigue=fat, levels=tuple(lv * f for lv, f in zip(m.levels, fat)))
    elif fam == "newcomer":
        join, boost, hill, k_rel = newcomer_params
        ctr, cpm, freq, conv_noise = newcomer_misc
        k_half = share * k_rel
        h_at_share = 1.0 / (1.0 + (k_half / share) ** hill)
        best_eff = max(eff) * boost
        if by_revenue:
            conv = conv0 * math.exp(conv_noise)
            aov = roas0 * best_eff * share / conv
        else:
            conv = conv0 * best_eff
            aov = 6_000.0 * math.exp(conv_noise)
        season, drift = newcomer_path
        members.append(MemberTruth(
            member_id="", role="newcomer", hill=hill, half_sat_cents=k_half, saturation_conversions=conv / h_at_share,
            aov_cents=aov, join_day=join, levels=tuple(s * d for s, d in zip(season, drift)), caps=None,
            fatigue=(1.0,) * days_total, ctr=ctr, cpm_cents=cpm, base_frequency=freq,
        ))
    # Neutral ids in a shuffled order: a member's id or position says nothing about its role.
    named = [replace(members[k], member_id=f"m{pos + 1:02d}") for pos, k in enumerate(order)]
    named.sort(key=lambda m: m.member_id)
    scn = replace(scn, members=tuple(named))
    if fam == "newcomer":
        # Strong enough that the oracle gives it at least 4x the floor on its first day.
        idx = next(i for i, m in enumerate(scn.members) if m.role == "newcomer")
        for _ in range(20):
            day = scn.members[idx].join_day or 0
            if oracle_day(scn, day).budgets[scn.members[idx].member_id] >= 4 * floor:
                break
            m = scn.members[idx]
            bigger = replace(m, saturation_conversions=m.saturation_conversions * 1.25)
            scn = replace(scn, members=tuple(bigger if k == idx else x for k, x in enumerate(scn.members)))
    return scn


def _marginal(scn: Scenario, i: int, budget: float, day: int) -> float:
    """Value per extra cent at ``budget`` (0 above the cap), central difference."""
    eps = max(1.0, budget * 1e-4)
    return (scn.value_per_day(i, budget + eps, day) - scn.value_per_day(i, budget - eps, day)) / (2 * eps)


# -- oracle -------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OracleDay:
    """The best allocation of one day and its total expected value."""

    day: int
    budgets: Mapping[str, float]
    value: float


def _day_curves(scn: Scenario, idx: Sequence[int], day: int) -> list[tuple[float, float, float, float]]:
    """(value scale, K, h, cap) of each member in ``idx`` on ``day``: value = scale / (1 + (K / min(b, cap))^h)."""
    out = []
    for i in idx:
        m = scn.members[i]
        scale = m.saturation_conversions * m.levels[scn._di(day)] * (m.aov_cents if scn.value_is_revenue else 1.0)
        out.append((scale, m.half_sat_cents, m.hill, scn.cap(i, day)))
    return out


def _value(curve: tuple[float, float, float, float], budget: float) -> float:
    scale, k_half, hill, cap = curve
    x = budget if budget < cap else cap
    return scale / (1.0 + (k_half / x) ** hill) if x > 0 else 0.0


def oracle_day(scn: Scenario, day: int, grid: int = ORACLE_GRID) -> OracleDay:
    """Best budgets of ``day`` (see the module docstring): DP on a grid above the floors, then exchange refinement."""
    idx = scn.active(day)
    curves = _day_curves(scn, idx, day)
    total = float(scn.budget_cents)
    floor = float(scn.floor_cents)
    unit = (total - floor * len(idx)) / grid
    vals = [[_value(c, floor + k * unit) for k in range(grid + 1)] for c in curves]
    # best[j]: best value of the members so far with j units; args[m][j]: units of member m in it.
    best = vals[0][:]
    args: list[list[int]] = [list(range(grid + 1))]
    for m in range(1, len(idx)):
        rev = vals[m][::-1]
        last = m == len(idx) - 1
        new = [-math.inf] * (grid + 1)
        arg = [0] * (grid + 1)
        for j in range(grid if last else 0, grid + 1):
            sums = list(map(add, best[: j + 1], rev[grid - j:]))
            top = max(sums)
            new[j] = top
            arg[j] = j - sums.index(top)
        best = new
        args.append(arg)
    units = [0] * len(idx)
    j = grid
    for m in range(len(idx) - 1, -1, -1):
        units[m] = args[m][j]
        j -= units[m]
    budgets = _refine(curves, [floor + k * unit for k in units], floor, unit)
    value = sum(_value(c, b) for c, b in zip(curves, budgets))
    return OracleDay(day=day, budgets={scn.members[i].member_id: b for i, b in zip(idx, budgets)}, value=value)


def _refine(curves: Sequence[tuple[float, float, float, float]], budgets: list[float], floor: float, step: float) -> list[float]:
    """Best-pair exchanges of ``step`` (halving down to a quarter cent) while any exchange gains value."""
    b = list(budgets)
    n = len(b)
    if n < 2:
        return b
    cur = [_value(c, x) for c, x in zip(curves, b)]
    tiny = 1e-13 * max(1.0, sum(cur))
    while step >= 0.25:
        for _ in range(100_000):
            up = [_value(c, x + step) - v for c, x, v in zip(curves, b, cur)]
            down = [v - _value(c, x - step) if x - step >= floor - 1e-9 else math.inf for c, x, v in zip(curves, b, cur)]
            r = max(range(n), key=up.__getitem__)
            d = min(range(n), key=down.__getitem__)
            if r == d:  # the best receiver is also the cheapest donor: pair it with the runner-up on either side
                r2 = max((k for k in range(n) if k != d), key=up.__getitem__)
                d2 = min((k for k in range(n) if k != r), key=down.__getitem__)
                r, d = (r2, d) if up[r2] - down[d] >= up[r] - down[d2] else (r, d2)
            if up[r] - down[d] <= tiny:
                break
            b[r] += step
            b[d] -= step
            cur[r] = _value(curves[r], b[r])
            cur[d] = _value(curves[d], b[d])
        step /= 2.0
    return b


def oracle(scn: Scenario) -> list[OracleDay]:
    """The oracle of every scored day (0 .. DAYS-1)."""
    return [oracle_day(scn, d) for d in range(DAYS)]


# -- delivery and reporting ---------------------------------------------------------------------------------

def _poisson(lam: float, u: float) -> int:
    """Poisson(lam) by inversion of one uniform ``u`` (normal approximation above 500)."""
    if lam <= 0.0:
        return 0
    if lam > 500.0:
        return max(0, round(lam + math.sqrt(lam) * _INV_NORMAL(min(max(u, 1e-12), 1 - 1e-12))))
    p = math.exp(-lam)
    c = p
    k = 0
    while u > c and k < 10_000:
        k += 1
        p *= lam / k
        c += p
    return k


@dataclass(slots=True)
class _Open:
    """An interval still inside the reporting window."""

    start: datetime
    end: datetime
    spend: int
    aov: float
    report_ts: list[float]
    """POSIX seconds at which each conversion is reported, sorted."""
    impressions: int
    clicks: int
    frequency: float
    shown: MetricInterval | None = None
    """The last report built (reused, re-stamped, while its count does not change)."""
    shown_count: int = -1


class Market:
    """One run of a scenario: deliveries for the budgets a policy sets, and the history as reported at any ``now``.

    Noise uses common random numbers: the draws of member ``i`` in interval
    ``k`` come from their own generator seeded by (scenario, i, k), so two
    policies that set the same budgets see exactly the same data.
    """

    def __init__(self, scn: Scenario) -> None:
        self.scn = scn
        self._final: dict[str, list[MetricInterval]] = {m.member_id: [] for m in scn.members}
        self._open: dict[str, list[_Open]] = {m.member_id: [] for m in scn.members}
        self._index = {m.member_id: i for i, m in enumerate(scn.members)}
        self.delivered: list[tuple[datetime, dict[str, int]]] = []
        """(interval start, spend per member) of every delivered interval."""
        budgets = scn.initial_budgets()
        t = scn.start
        while t < DAY0:
            self.deliver(t, budgets)
            t += timedelta(hours=scn.cadence_h)

    def deliver(self, start: datetime, budgets: Mapping[str, int]) -> dict[str, int]:
        """Run the interval starting at ``start`` with these daily budgets (members not in the pool are skipped); its spend per member."""
        scn = self.scn
        hours = scn.cadence_h
        k = round((start - scn.start).total_seconds() / 3600.0 / hours)
        day = scn.day_of(start)
        end = start + timedelta(hours=hours)
        end_ts = end.timestamp()
        spent: dict[str, int] = {}
        for mid, budget in budgets.items():
            i = self._index[mid]
            if not scn.is_active(i, day):
                continue
            m = scn.members[i]
            rng = random.Random(scn.seed * 1_000_000_007 + i * 100_003 + k)
            eps = rng.uniform(-PACING_NOISE, PACING_NOISE)
            u_count = rng.random()
            z_aov = rng.gauss(0.0, 1.0)
            z_imp = rng.gauss(0.0, 1.0)
            z_clk = rng.gauss(0.0, 1.0)
            rate = min(float(budget), scn.cap(i, day)) * (1.0 + eps)
            spend = round(rate * hours / 24.0)
            conversions = _poisson(scn.conversions_per_day(i, rate, day) * hours / 24.0, u_count)
            aov = m.aov_cents * math.exp(AOV_SIGMA * z_aov - 0.5 * AOV_SIGMA**2)
            ts = []
            for _ in range(conversions):
                if rng.random() < scn.immediate_share:
                    ts.append(end_ts)
                else:
                    ts.append(end_ts + 3600.0 * min(MAX_DELAY_H, rng.expovariate(1.0 / scn.delay_mean_h)))
            ts.sort()
            fat = m.fatigue[scn._di(day)]
            impressions = max(0, round(spend / m.cpm_cents * 1000.0 * math.exp(0.05 * z_imp)))
            clicks = max(0, round(impressions * m.ctr * math.sqrt(fat) * math.exp(0.1 * z_clk)))
            frequency = m.base_frequency * (1.0 + 0.3 * rate / m.half_sat_cents) / math.sqrt(fat)
            self._open[mid].append(_Open(start, end, spend, aov, ts, impressions, clicks, frequency))
            spent[mid] = spend
        self.delivered.append((start, spent))
        return spent

    def history(self, now: datetime, shared: dict[tuple[object, ...], MetricInterval] | None = None) -> dict[str, list[MetricInterval]]:
        """Every member in the pool at ``now`` → its ended intervals as reported at ``now`` (fresh lists, oldest first).

        Intervals past the reporting window were built once; the ones inside it
        are rebuilt with ``reported_at=now`` (re-stamped when their count has
        not changed). ``shared``, when given, must be one dict per ``now``
        shared by several markets of the same scenario (other policies): an
        interval that came out identical (same member, start, spend, frequency
        and reported count) is then built once for all of them.
        """
        scn = self.scn
        now_ts = now.timestamp()
        window = timedelta(hours=MAX_DELAY_H)
        day = scn.day_of(now)
        out: dict[str, list[MetricInterval]] = {}
        for i, m in enumerate(scn.members):
            if not scn.is_active(i, day):
                continue
            mid = m.member_id
            final = self._final[mid]
            opened = self._open[mid]
            while opened and opened[0].end + window <= now:
                o = opened.pop(0)
                final.append(self._report(o, len(o.report_ts), o.end + window))
            seen = list(final)
            for o in opened:
                if o.end > now:
                    break
                count = bisect.bisect_right(o.report_ts, now_ts)
                key = (mid, o.start, o.spend, o.frequency, count)
                iv = shared.get(key) if shared is not None else None
                if iv is None:
                    if count == o.shown_count and o.shown is not None and not _HAS_REPORTED_AT:
                        iv = o.shown
                    elif count == o.shown_count and o.shown is not None and _restamp is not None:
                        iv = _restamp(o.shown, now)
                    else:
                        iv = self._report(o, count, now)
                    if shared is not None:
                        shared[key] = iv
                o.shown, o.shown_count = iv, count
                seen.append(iv)
            out[mid] = seen
        return out

    @staticmethod
    def _report(o: _Open, count: int, at: datetime) -> MetricInterval:
        if not _HAS_REPORTED_AT:
            return MetricInterval(o.start, o.end, o.spend, round(count * o.aov), float(count), o.impressions, o.clicks, o.frequency)
        return MetricInterval(
            o.start, o.end, o.spend, round(count * o.aov), float(count), o.impressions, o.clicks, o.frequency, reported_at=at,
        )
