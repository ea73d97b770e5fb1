"""The guardrails service: every change set is checked against the workspace's hard limits, once per key and day."""

from __future__ import annotations

from allot.guardrails.api import router
from allot.guardrails.handlers import on_action_executed, on_allocation_requested, on_pool_members_changed
from allot.guardrails.scheduler import prune_history, watch_kill_switches
from allot.runtime.accounts import ACCOUNT_TOPIC, load_directory, on_account_profiled, refresh_directory
from allot.runtime.service import ServiceContext, ServiceSpec


async def on_start(ctx: ServiceContext) -> None:
    await load_directory(ctx)


SPEC = ServiceSpec(
    name="guardrails",
    uses_approval_secret=True,
    migrations_package="allot.guardrails.migrations",
    consumes={"allocation.requested": on_allocation_requested, "action.executed": on_action_executed,
              "pool.members_changed": on_pool_members_changed, ACCOUNT_TOPIC: on_account_profiled},
    produces=["guardrail.approved", "guardrail.blocked", "notification.requested"],
    routers=[router],
    tasks=[prune_history, refresh_directory, watch_kill_switches],
    on_start=on_start,
    title="Allot guardrails",
    description=(
        "Decides every requested change set against the workspace's limits and autonomy (kill switch, EUR spend "
        "caps per ad-account local day, whitelists, protected entities, max change, net-change window, observe "
        "mode, manual rate limit); "
        "publishes a signed, expiring guardrail.approved or a guardrail.blocked with the check and the numbers, and "
        "beside a block a notification.requested (none for rate_limited, info for observe-only decisions). "
        "Holds which pool owns which member's budget from pool.members_changed (each pool's full, versioned "
        "membership: a later version replaces it, an older one changes nothing)."
    ),
)
