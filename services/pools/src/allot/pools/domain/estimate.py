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

import hashlib
import importlib.machinery
import importlib.util
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType

from allot.pools.domain import _kernels
from allot.pools.domain._kernels import LN2 as _LN2
from allot.pools.domain._kernels import maturation_at, saturation_ratio
from allot.pools.domain.models import CompositeWeights, MetricInterval, PoolSettings

__all__ = ["Evidence", "evidence_rows", "gather_evidence", "maturation_at", "saturation_ratio", "shrink_tuples"]


def _native_kernels() -> ModuleType | None:
    """The mypyc-compiled copy of :mod:`~allot.pools.domain._kernels`, if it was built from exactly this source.

    Built (optionally) by ``services/pools/build_native.py`` into ``services/pools/build/native``; any
    problem (not built, stale, other interpreter, ``ALLOT_POOLS_PURE=1``) means the pure-Python kernels.
    Loading a module is the only file access here; the estimator itself does no I/O.
    """
    if os.environ.get("ALLOT_POOLS_PURE"):
        return None
    try:
        source = Path(_kernels.__file__).resolve()
        build = source.parents[4] / "build" / "native"
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        module = None
        # mypyc's output: the compiled code (``..__mypyc``), then the shim module that imports it.
        for stem in ("_kernels_native__mypyc", "_kernels_native"):
            path = next((build / (stem + sfx) for sfx in importlib.machinery.EXTENSION_SUFFIXES if (build / (stem + sfx)).is_file()), None)
            if path is None:
                if stem.endswith("__mypyc"):
                    continue
                return None
            name = f"allot.pools.domain.{stem}"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                return None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        if module is None or getattr(module, "__source_sha256__", None) != digest:
            return None
        return module
    except Exception:  # an accelerator that cannot load is simply not used
        return None


_native = _native_kernels()
#: Which kernels the engine runs in this process: "native" (mypyc) or "python".
KERNELS = "native" if _native is not None else "python"
#: The kernels module in use (the compiled copy or the pure-Python one).
kernels: ModuleType = _native or _kernels
_evidence_kernel = kernels.evidence_kernel
_shrink_kernel = kernels.shrink_kernel


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


def evidence_rows(
    histories: Sequence[Sequence[MetricInterval]], pool: PoolSettings, now: datetime, conv_value: float, cw: CompositeWeights | None = None
) -> list[tuple]:
    """:func:`gather_evidence` for many members at once, as plain tuples in :class:`Evidence` field order (the engine's hot path).

    Everything that depends only on an interval's end (age, maturation fraction, recency weight) is
    computed once per distinct end time in this call: members of a pool report on the same grain.
    The arithmetic per interval is the same, in the same order, as the one-member definition.
    """
    cw = cw or pool.composite
    return _evidence_kernel(
        histories, now.timestamp(), pool.lookback_days * 24.0, _LN2 / (pool.recency_half_life_days * 24.0),
        pool.maturation_curve, pool.min_maturity, cw.roas, cw.cpa * conv_value, (cw.frequency_risk + cw.engagement_decay) > 0,
    )


def shrink_tuples(
    evidence: Sequence[tuple], current_cents: Sequence[int], pool: PoolSettings, ref_spend: float, cw: CompositeWeights | None = None
) -> list[tuple]:
    """Fit each member's concave response and shrink its level toward the pool (empirical Bayes); members
    without data get the pool's level. One estimate row per evidence row (``_kernels.EstimateRow`` lists its
    fields), ``current_cents`` in the same order; ``ref_spend`` is the common spend levels are projected to."""
    cw = cw or pool.composite
    log_ref = math.log(max(ref_spend, 1.0))
    return _shrink_kernel(evidence, current_cents, pool.prior_elasticity, log_ref, cw.frequency_risk, cw.engagement_decay)
