"""Value objects of the pacing domain.

Money is in currency units (dollars, not cents) as floats, as the seed API does;
every computed money amount and percentage is rounded to 2 decimals.
Percentages are percent points (``92.18`` means 92.18 %), fill and win rates
are fractions in ``[0, 1]``, times are timezone-aware datetimes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TypedDict

from allot.pacing.domain.errors import PacingInputError


def require_finite_non_negative(name: str, value: float) -> float:
    """Return ``value`` as a float, or raise PacingInputError when it is negative, NaN or infinite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PacingInputError(f"{name} must be a number, got {value!r}")
    as_float = float(value)
    if not math.isfinite(as_float):
        raise PacingInputError(f"{name} must be finite, got {value!r}")
    if as_float < 0:
        raise PacingInputError(f"{name} must not be negative, got {value!r}")
    return as_float


def require_aware(name: str, value: datetime) -> datetime:
    """Return ``value`` unchanged, or raise PacingInputError when it is not timezone-aware."""
    if not isinstance(value, datetime):
        raise PacingInputError(f"{name} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise PacingInputError(f"{name} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value


def _set(obj: object, name: str, value: object) -> None:
    # Frozen dataclasses normalise their fields (int -> float) in __post_init__.
    object.__setattr__(obj, name, value)


@dataclass(frozen=True, slots=True)
class PacingConfig:
    """Thresholds (percent points of deviation) and reallocation limits; defaults are the seed's."""

    underpacing_warning_pct: float = 10.0
    underpacing_critical_pct: float = 25.0
    overpacing_warning_pct: float = 10.0
    overpacing_critical_pct: float = 25.0
    min_reallocation_amount: float = 100.0  # currency units
    max_reallocation_pct: float = 30.0  # percent of total budget, per proposal

    def __post_init__(self) -> None:
        for name in (
            "underpacing_warning_pct",
            "underpacing_critical_pct",
            "overpacing_warning_pct",
            "overpacing_critical_pct",
            "min_reallocation_amount",
            "max_reallocation_pct",
        ):
            _set(self, name, require_finite_non_negative(name, getattr(self, name)))
        if self.underpacing_critical_pct < self.underpacing_warning_pct:
            raise PacingInputError("underpacing_critical_pct must be >= underpacing_warning_pct")
        if self.overpacing_critical_pct < self.overpacing_warning_pct:
            raise PacingInputError("overpacing_critical_pct must be >= overpacing_warning_pct")
        if self.max_reallocation_pct > 100.0:
            raise PacingInputError("max_reallocation_pct must be at most 100")


class AlertLevel(StrEnum):
    """Severity of a pacing deviation; compares equal to its string value."""

    WARNING = "warning"
    CRITICAL = "critical"


class PacingDirection(StrEnum):
    """Whether spend runs behind (underpacing) or ahead of (overpacing) plan."""

    UNDERPACING = "underpacing"
    OVERPACING = "overpacing"


@dataclass(frozen=True, slots=True)
class PacingAlert:
    """A deviation that strictly exceeded a configured threshold."""

    level: AlertLevel
    direction: PacingDirection
    deviation_pct: float  # rounded to 2 decimals; negative = underpacing
    threshold_pct: float  # signed threshold that was exceeded, e.g. -25.0
    message: str


@dataclass(frozen=True, slots=True)
class ChannelSnapshot:
    """Pacing of one channel at one instant; money in currency units, rates in [0, 1]."""

    channel: str
    allocated_budget: float
    spend: float
    pacing_pct: float
    impressions: int = 0
    effective_cpm: float = 0.0  # spend per 1,000 impressions
    fill_rate: float = 0.0
    expected_spend: float = 0.0
    deviation_pct: float = 0.0
    alert: PacingAlert | None = None

    def __post_init__(self) -> None:
        _set(self, "allocated_budget", require_finite_non_negative("allocated_budget", self.allocated_budget))
        _set(self, "spend", require_finite_non_negative("spend", self.spend))
        _set(self, "effective_cpm", require_finite_non_negative("effective_cpm", self.effective_cpm))
        _set(self, "expected_spend", require_finite_non_negative("expected_spend", self.expected_spend))
        if isinstance(self.impressions, bool) or not isinstance(self.impressions, int) or self.impressions < 0:
            raise PacingInputError(f"impressions must be a non-negative integer, got {self.impressions!r}")
        fill_rate = require_finite_non_negative("fill_rate", self.fill_rate)
        if fill_rate > 1.0:
            raise PacingInputError(f"fill_rate must be within [0, 1], got {self.fill_rate!r}")
        _set(self, "fill_rate", fill_rate)


@dataclass(frozen=True, slots=True)
class DealSnapshot:
    """Spend and delivery of one deal; the pacing fields are None until the engine computes them."""

    deal_id: str
    allocated_budget: float
    spend: float
    impressions: int = 0
    effective_cpm: float = 0.0  # spend per 1,000 impressions
    win_rate: float = 0.0
    fill_rate: float = 0.0
    pacing_pct: float | None = None
    expected_spend: float | None = None
    deviation_pct: float | None = None
    alert: PacingAlert | None = None

    def __post_init__(self) -> None:
        _set(self, "allocated_budget", require_finite_non_negative("allocated_budget", self.allocated_budget))
        _set(self, "spend", require_finite_non_negative("spend", self.spend))
        _set(self, "effective_cpm", require_finite_non_negative("effective_cpm", self.effective_cpm))
        if isinstance(self.impressions, bool) or not isinstance(self.impressions, int) or self.impressions < 0:
            raise PacingInputError(f"impressions must be a non-negative integer, got {self.impressions!r}")
        for name in ("win_rate", "fill_rate"):
            rate = require_finite_non_negative(name, getattr(self, name))
            if rate > 1.0:
                raise PacingInputError(f"{name} must be within [0, 1], got {rate!r}")
            _set(self, name, rate)


@dataclass(frozen=True, slots=True)
class ReallocationProposal:
    """A recommendation (not an action) to move ``amount`` currency units between two channels."""

    source_channel: str
    target_channel: str
    amount: float  # rounded to 2 decimals, >= min_reallocation_amount
    reason: str


# The seed's snapshot model calls its recommendations PacingRecommendation.
PacingRecommendation = ReallocationProposal


@dataclass(frozen=True, slots=True)
class PacingSnapshot:
    """Point-in-time pacing of a campaign, its channels and deals, with any recommendations."""

    snapshot_id: str  # uuid5(campaign_id, timestamp) unless given
    campaign_id: str
    timestamp: datetime  # aware UTC
    total_budget: float
    total_spend: float  # sum of channel spend
    pacing_pct: float
    expected_spend: float
    deviation_pct: float  # positive = overpacing, negative = underpacing
    channel_snapshots: tuple[ChannelSnapshot, ...] = field(default_factory=tuple)
    deal_snapshots: tuple[DealSnapshot, ...] = field(default_factory=tuple)
    recommendations: tuple[ReallocationProposal, ...] = field(default_factory=tuple)
    alert: PacingAlert | None = None


class DealPacing(TypedDict):
    """Result of ``BudgetPacingEngine.calculate_deal_pacing`` (seed's dict shape)."""

    deal_id: str
    pacing_pct: float
    expected_spend: float
    actual_spend: float
    deviation_pct: float
    alert: PacingAlert | None
