"""Pure pacing domain: expected vs actual spend, alerts, reallocations, snapshots, pacing state."""

from allot.pacing.domain.curves import CurveKind, PacingCurve, weighted_seconds
from allot.pacing.domain.engine import (
    SNAPSHOT_NAMESPACE,
    ZERO_EXPECTED_FLOOR,
    BudgetPacingEngine,
    effective_cpm,
    round2,
    snapshot_id_for,
)
from allot.pacing.domain.errors import PacingInputError
from allot.pacing.domain.models import (
    AlertLevel,
    ChannelSnapshot,
    DealPacing,
    DealSnapshot,
    PacingAlert,
    PacingConfig,
    PacingDirection,
    PacingRecommendation,
    PacingSnapshot,
    ReallocationProposal,
)
from allot.pacing.domain.state import CampaignPacingState, PacingTransition, decide_pacing_state

__all__ = [
    "SNAPSHOT_NAMESPACE",
    "ZERO_EXPECTED_FLOOR",
    "AlertLevel",
    "BudgetPacingEngine",
    "CampaignPacingState",
    "ChannelSnapshot",
    "CurveKind",
    "DealPacing",
    "DealSnapshot",
    "PacingAlert",
    "PacingConfig",
    "PacingCurve",
    "PacingDirection",
    "PacingInputError",
    "PacingRecommendation",
    "PacingSnapshot",
    "PacingTransition",
    "ReallocationProposal",
    "decide_pacing_state",
    "effective_cpm",
    "round2",
    "snapshot_id_for",
    "weighted_seconds",
]
