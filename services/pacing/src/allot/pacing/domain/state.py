"""Campaign pacing state machine as a pure decision function.

::

    ACTIVE ──critical alert──▶ PACING_HOLD ──still critical ≥ escalate_after_s──▶ PAUSED
       ▲                           │
       └──── no longer critical ───┘

``PACING_HOLD`` is the engine's automatic hold; ``PAUSED`` is manual and is
never left automatically (an escalation hands the campaign to a human).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from allot.pacing.domain.errors import PacingInputError
from allot.pacing.domain.models import AlertLevel, PacingAlert, require_aware


class CampaignPacingState(StrEnum):
    """Pacing-relevant campaign states; compares equal to its string value."""

    ACTIVE = "ACTIVE"
    PACING_HOLD = "PACING_HOLD"
    PAUSED = "PAUSED"


@dataclass(frozen=True, slots=True)
class PacingTransition:
    """A state change decided by ``decide_pacing_state``, with its reason."""

    from_state: CampaignPacingState
    to_state: CampaignPacingState
    reason: str
    held_since: datetime | None  # start of the automatic hold; None once it ends


def decide_pacing_state(
    current_state: CampaignPacingState,
    alert: PacingAlert | None,
    held_since: datetime | None,
    now: datetime,
    escalate_after_s: float,
) -> PacingTransition | None:
    """Return the transition the latest alert calls for, or None when the state must not change.

    * ACTIVE + critical alert -> PACING_HOLD (``held_since = now``).
    * PACING_HOLD + no alert or a warning -> ACTIVE.
    * PACING_HOLD + critical alert held for at least ``escalate_after_s``
      seconds (``now - held_since >= escalate_after_s``) -> PAUSED.
      A clock behind ``held_since`` counts as no time held.
    * PAUSED never changes automatically.
    """
    require_aware("now", now)
    if not math.isfinite(escalate_after_s) or escalate_after_s < 0:
        raise PacingInputError(f"escalate_after_s must be finite and >= 0, got {escalate_after_s!r}")
    critical = alert if alert is not None and alert.level is AlertLevel.CRITICAL else None

    if current_state is CampaignPacingState.PAUSED:
        return None

    if current_state is CampaignPacingState.ACTIVE:
        if critical is None:
            return None
        return PacingTransition(
            from_state=current_state,
            to_state=CampaignPacingState.PACING_HOLD,
            reason=f"Automatic pacing hold: {critical.message}",
            held_since=now,
        )

    if current_state is not CampaignPacingState.PACING_HOLD:  # pragma: no cover - exhaustive enum
        raise PacingInputError(f"unknown campaign state {current_state!r}")
    if held_since is None:
        raise PacingInputError("held_since is required while in PACING_HOLD")
    require_aware("held_since", held_since)

    if critical is None:
        detail = "deviation within thresholds" if alert is None else alert.message
        return PacingTransition(
            from_state=current_state,
            to_state=CampaignPacingState.ACTIVE,
            reason=f"Pacing recovered, releasing automatic hold: {detail}",
            held_since=None,
        )
    held_s = max((now - held_since).total_seconds(), 0.0)
    if held_s < escalate_after_s:
        return None
    return PacingTransition(
        from_state=current_state,
        to_state=CampaignPacingState.PAUSED,
        reason=(
            f"Escalated to manual pause: still critical after {held_s:,.0f}s on hold "
            f"(limit {escalate_after_s:,.0f}s): {critical.message}"
        ),
        held_since=held_since,
    )
