"""The pools service: budget pools whose shared daily budget the engine reallocates across their members."""

from __future__ import annotations

from allot.pools.api import router
from allot.pools.handlers import (
    on_action_executed,
    on_guardrail_blocked,
    on_metrics_ingested,
    on_pacing_reallocation_recommended,
)
from allot.pools.scheduler import allocation_worker, pool_scheduler
from allot.pools.settings import PoolsSettings
from allot.pools.workflow import AllocationWake
from allot.runtime.accounts import ACCOUNT_TOPIC, load_directory, on_account_profiled, refresh_directory
from allot.runtime.deps import provide
from allot.runtime.service import ServiceContext, ServiceSpec


async def on_start(ctx: ServiceContext) -> None:
    provide(ctx, AllocationWake())
    await load_directory(ctx)


SPEC = ServiceSpec(
    name="pools",
    migrations_package="allot.pools.migrations",
    consumes_by_key=frozenset({"metrics.ingested"}),
    consumes={
        "metrics.ingested": on_metrics_ingested,
        "guardrail.blocked": on_guardrail_blocked,
        "action.executed": on_action_executed,
        "pacing.reallocation_recommended": on_pacing_reallocation_recommended,
        ACCOUNT_TOPIC: on_account_profiled,
    },
    produces=["allocation.requested", "notification.requested", "pool.members_changed"],
    routers=[router],
    tasks=[allocation_worker, pool_scheduler, refresh_directory],
    on_start=on_start,
    settings_class=PoolsSettings,
    title="Allot budget pools",
    description=(
        "Budget pools: a shared daily budget reallocated across campaigns and ad sets toward an optimisation "
        "metric by a pure engine, on a schedule or on demand, observe or live; every live allocation is one "
        "allocation.requested change set (absolute budgets, the pool's daily budget as the spend event) that the "
        "guardrails decide on. A plan that starts a freeze (members held by the oscillation detector, or a "
        "pool-wide freeze) publishes one notification.requested (pool_frozen). Every membership change (pool "
        "created, member added or removed, pool deleted) publishes pool.members_changed: the pool's full, versioned "
        "membership, which the guardrails hold as the owner of each member's budget."
    ),
)
