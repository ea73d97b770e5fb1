"""Settings of the pools service (ALLOT_POOLS_* on top of the shared ALLOT_* settings)."""

from __future__ import annotations

from pydantic import Field

from allot.runtime.settings import Settings


class PoolsSettings(Settings):
    """Shared settings plus the pool scheduler's, worker's and API's knobs."""

    pools_scheduler_enabled: bool = Field(default=True, description="Run the background pool scheduler.")
    pools_scan_interval_s: float = Field(
        default=1.0, gt=0, description="REAL seconds between checks for pools whose allocation slot is due."
    )
    pools_scan_batch: int = Field(default=100, ge=1, le=5000, description="Due pools fetched per scan query.")
    pools_worker_enabled: bool = Field(
        default=True, description="Run the worker that plans queued (async) allocations."
    )
    pools_worker_interval_s: float = Field(
        default=0.5, gt=0, description="REAL seconds between polls for queued allocations (the API also wakes it)."
    )
    pools_sync_timeout_s: float = Field(
        default=20.0,
        gt=0,
        le=120,
        description="REAL seconds a synchronous allocate waits for the guardrail/executor outcome.",
    )
    pools_manual_rate_limit_s: int = Field(
        default=60, ge=0, description="CLOCK seconds between two manual allocate calls of one pool (0 = no limit)."
    )
    pools_history_days: int = Field(default=28, ge=1, le=400, description="Days of metric history loaded for a plan.")
