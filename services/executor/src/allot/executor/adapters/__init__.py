"""The executor's adapters: ad-platform clients (one PlatformClient per platform, all raising the same error
types) and the action ledger in Postgres (``postgres``)."""

from allot.executor.adapters.base import (
    PLATFORM_MIN_BUDGET_CENTS,
    EntityRef,
    EntityState,
    PermanentPlatformError,
    PlatformAuthError,
    PlatformClient,
    PlatformError,
    TransientPlatformError,
    WriteResult,
    min_budget_cents,
)

__all__ = [
    "PLATFORM_MIN_BUDGET_CENTS",
    "EntityRef",
    "EntityState",
    "PermanentPlatformError",
    "PlatformAuthError",
    "PlatformClient",
    "PlatformError",
    "TransientPlatformError",
    "WriteResult",
    "min_budget_cents",
]
