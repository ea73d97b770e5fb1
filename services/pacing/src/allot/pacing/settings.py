"""Settings of the pacing service (ALLOT_PACING_* on top of the shared ALLOT_* settings)."""

from __future__ import annotations

from pydantic import Field

from allot.runtime.settings import Settings


class PacingSettings(Settings):
    """Shared settings plus the pacing defaults and scheduler knobs."""

    pacing_snapshot_interval_s: int = Field(default=3600, ge=60, description="Default snapshot interval (clock s).")
    pacing_escalate_after_s: int = Field(
        default=86_400, ge=0, description="Default time in PACING_HOLD (clock s) before escalation to PAUSED."
    )
    pacing_scan_interval_s: float = Field(
        default=1.0, gt=0, description="REAL seconds between checks for plans whose snapshot slot is due."
    )
    pacing_scan_batch: int = Field(default=200, ge=1, le=5000, description="Plans snapshotted per transaction.")
