"""The guardrails service: every change set is checked against the workspace's hard limits, once per key and day."""

from __future__ import annotations

from allot.guardrails.api import router
from allot.guardrails.handlers import on_action_executed, on_allocation_requested
from allot.guardrails.tasks import prune_history
from allot.runtime.service import ServiceSpec

SPEC = ServiceSpec(
    name="guardrails",
    uses_approval_secret=True,
    migrations_package="allot.guardrails.migrations",
    consumes={"allocation.requested": on_allocation_requested, "action.executed": on_action_executed},
    produces=["guardrail.approved", "guardrail.blocked"],
    routers=[router],
    tasks=[prune_history],
    title="Allot guardrails",
    description=(
        "Decides every requested change set against the workspace's limits and autonomy (kill switch, EUR spend "
        "caps, whitelists, protected entities, max change, net-change window, observe mode, manual rate limit); "
        "publishes a signed, expiring guardrail.approved or a guardrail.blocked with the check and the numbers."
    ),
)
