"""The rules service: if-then automation rules evaluated every interval against its own metric projection."""

from __future__ import annotations

from allot.rules.api import audit_router, router
from allot.rules.handlers import (
    on_account_profiled,
    on_action_executed,
    on_guardrail_approved,
    on_guardrail_blocked,
    on_metrics_ingested,
)
from allot.rules.scheduler import rule_scheduler
from allot.rules.settings import RulesSettings
from allot.runtime.accounts import ACCOUNT_TOPIC, load_directory, refresh_directory
from allot.runtime.service import ServiceContext, ServiceSpec


async def on_start(ctx: ServiceContext) -> None:
    await load_directory(ctx)


SPEC = ServiceSpec(
    name="rules",
    migrations_package="allot.rules.migrations",
    consumes_by_key=frozenset({"metrics.ingested"}),
    consumes={
        "metrics.ingested": on_metrics_ingested,
        "guardrail.blocked": on_guardrail_blocked,
        "guardrail.approved": on_guardrail_approved,
        "action.executed": on_action_executed,
        ACCOUNT_TOPIC: on_account_profiled,
    },
    produces=["allocation.requested", "notification.requested"],
    routers=[router, audit_router],
    tasks=[rule_scheduler, refresh_directory],
    on_start=on_start,
    settings_class=RulesSettings,
    title="Allot rules",
    description="If-then rules (scope, conditions, actions, schedule, protections) evaluated every slot against "
    "delivery metrics; matches become allocation.requested change sets with absolute targets.",
)
