"""The estimator kernels: the compiled copy (when built) computes exactly what the pure-Python module does."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from allot.pools.domain import MetricInterval, PoolSettings, estimate
from allot.pools.domain import _kernels as pure

NOW = datetime(2024, 3, 1, tzinfo=UTC)


def _histories(seed: int) -> list[list[MetricInterval]]:
    rng = random.Random(seed)
    out = []
    for k in range(40):
        ivs = []
        hours = rng.choice((4, 8, 24))
        for j in range(rng.randrange(0, 60)):
            end = NOW - timedelta(hours=hours * j - rng.choice((0, 0, 8)))
            ivs.append(MetricInterval(
                end - timedelta(hours=hours if j % 23 else 0), end, rng.randrange(0, 50_000), rng.randrange(0, 200_000),
                float(rng.randrange(0, 40)) if k % 2 else rng.randrange(0, 40),  # conversions as int or float
                rng.randrange(0, 9_000) * (k % 7 != 3), rng.randrange(0, 200), rng.choice((None, 1.1, 2.3)),
            ))
        out.append(ivs)
    return out


def test_metric_interval_row_matches_fields() -> None:
    iv = MetricInterval(NOW - timedelta(hours=8), NOW, 1234, 5678, 3, 900, 12, 1.5)
    assert iv.row == (NOW.timestamp(), 3.0, 1234.0, 5678.0, 3.0, 900.0, 12.0, 1350.0)
    assert MetricInterval(NOW, NOW, 1, 2, 0.0).row[1] == 0.0  # no length: skipped by the estimator


@pytest.mark.skipif(estimate.KERNELS != "native", reason="compiled kernels not built (services/pools/build_native.py)")
def test_native_kernels_equal_pure_python() -> None:
    native = estimate.kernels
    assert native is not pure
    pool = PoolSettings(pool_id="k", daily_budget_cents=300_000)
    for seed in range(5):
        hs = _histories(seed)
        args = (hs, NOW.timestamp(), 14 * 24.0, math.log(2) / 96.0, pool.maturation_curve, 0.7, 1.0, 0.4 * seed, seed % 2 == 0)
        rows = native.evidence_kernel(*args)
        assert rows == pure.evidence_kernel(*args)
        cur = [random.Random(seed).randrange(0, 40_000) for _ in hs]
        assert native.shrink_kernel(rows, cur, 0.6, math.log(7_500.0), 0.1, 0.2) == pure.shrink_kernel(rows, cur, 0.6, math.log(7_500.0), 0.1, 0.2)
        c0 = [r[2] for r in rows[:12]]
        k = [1_000.0 + 50 * i for i in range(12)]
        lo = [2_000.0] * 12
        hi = [60_000.0] * 12
        assert native.solve(c0, k, lo, hi, 150_000, None) == pure.solve(c0, k, lo, hi, 150_000, None)
        assert native.solve(c0, k, lo, hi, 150_000, [0.1] * 12) == pure.solve(c0, k, lo, hi, 150_000, [0.1] * 12)


@pytest.mark.parametrize("kernels", [pure, estimate.kernels], ids=["python", estimate.KERNELS])
def test_evidence_of_a_member_does_not_depend_on_the_other_histories(kernels) -> None:  # type: ignore[no-untyped-def]
    """The per-call caches of interval ages (by end time and by position) only save work: each member's row is
    the row of its history alone, whatever grains, gaps and orders the other members' histories have."""
    pool = PoolSettings(pool_id="k", daily_budget_cents=300_000)
    for seed in range(4):
        hs = _histories(seed)
        # Also members sharing one sequence of end times, and the same sequence shifted by one position.
        hs += [hs[3], hs[3][1:], hs[3][::-1], hs[3]]
        args = (NOW.timestamp(), 14 * 24.0, math.log(2) / 96.0, pool.maturation_curve, 0.7, 1.0, 0.4, True)
        together = kernels.evidence_kernel(hs, *args)
        assert together == [kernels.evidence_kernel([h], *args)[0] for h in hs]
        assert sum(row[0] for row in together) > 100  # the histories do contribute intervals
