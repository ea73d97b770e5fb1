"""Settings of the rules service (ALLOT_RULES_* on top of the shared ALLOT_* settings)."""

from __future__ import annotations

from pydantic import Field

from allot.runtime.settings import Settings


class RulesSettings(Settings):
    """Shared settings plus the rule scheduler's knobs."""

    rules_scan_interval_s: float = Field(
        default=1.0, gt=0, description="REAL seconds between checks for active rules whose slot is due."
    )
    rules_scan_batch: int = Field(default=100, ge=1, le=5000, description="Due rules fetched per scan query.")
    rules_scheduler_enabled: bool = Field(default=True, description="Run the background rule scheduler.")
