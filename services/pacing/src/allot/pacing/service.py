"""The pacing service: flight plans, metrics projection, scheduled snapshots, proposals -> change sets.

I/O-free at import (``make schemas`` imports SPEC).
"""

from __future__ import annotations

from allot.pacing.api import router
from allot.pacing.handlers import on_action_executed, on_guardrail_blocked, on_metrics_ingested
from allot.pacing.scheduler import snapshot_scheduler
from allot.pacing.settings import PacingSettings
from allot.runtime.accounts import ACCOUNT_TOPIC, load_directory, on_account_profiled, refresh_directory
from allot.runtime.service import ServiceContext, ServiceSpec


async def on_start(ctx: ServiceContext) -> None:
    await load_directory(ctx)


SPEC = ServiceSpec(
    name="pacing",
    migrations_package="allot.pacing.migrations",
    consumes_by_key=frozenset({"metrics.ingested"}),
    consumes={"metrics.ingested": on_metrics_ingested, "action.executed": on_action_executed,
              "guardrail.blocked": on_guardrail_blocked, ACCOUNT_TOPIC: on_account_profiled},
    produces=["pacing.snapshot_taken", "pacing.deviation_detected", "pacing.reallocation_recommended",
              "allocation.requested", "notification.requested"],
    routers=[router],
    tasks=[snapshot_scheduler, refresh_directory],
    on_start=on_start,
    settings_class=PacingSettings,
    title="Allot pacing",
    description=(
        "Tracks campaign spend against flight plans, takes pacing snapshots on a schedule, detects deviations "
        "(a critical one with a notification.requested), "
        "holds/escalates campaigns and turns approved reallocation proposals into allocation.requested change sets."
    ),
)
