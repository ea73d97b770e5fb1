"""Pure executor decisions: what to do with one approved action given the platform's current truth."""

from allot.executor.domain.decide import (
    FAILURE_BACKOFF_COUNT,
    FAILURE_BACKOFF_WINDOW,
    EntityMemory,
    Observed,
    WritePlan,
    backoff_delay_s,
    entity_outside_account,
    failure_backoff_active,
    inverse_action,
    plan_write,
)

__all__ = [
    "FAILURE_BACKOFF_COUNT", "FAILURE_BACKOFF_WINDOW", "EntityMemory", "Observed", "WritePlan", "backoff_delay_s",
    "entity_outside_account", "failure_backoff_active", "inverse_action", "plan_write",
]
