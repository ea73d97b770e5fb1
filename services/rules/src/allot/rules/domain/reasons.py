"""Stable reason codes for skipped entities, skipped actions and clamps (stored in execution history)."""

from __future__ import annotations

from enum import StrEnum


class SkipReason(StrEnum):
    """Why an in-scope entity (or one action on it) was not acted on."""

    CONDITIONS_NOT_MET = "conditions_not_met"
    METRIC_UNAVAILABLE = "metric_unavailable"  # a referenced metric was None (division by zero / no budget /
    # reach of the range not reported by the platform)
    METRIC_NOT_SUPPORTED_ON_PLATFORM = "metric_not_supported_on_platform"  # Meta-only metric, non-Meta entity
    ACTION_NOT_SUPPORTED_ON_PLATFORM = "action_not_supported_on_platform"  # relaunch on a non-Meta entity
    PENDING_ACTION = "pending_action"
    FAILURE_BACKOFF = "failure_backoff"
    COOLDOWN = "cooldown"
    MAX_EXECUTIONS_PER_DAY = "max_executions_per_day"
    CIRCUIT_BREAKER = "circuit_breaker"
    NO_DAILY_BUDGET = "no_daily_budget"
    AT_DAILY_CAP = "at_daily_cap"
    AT_PLATFORM_MINIMUM = "at_platform_minimum"
    NO_BUDGET_CHANGE = "no_budget_change"
    ALREADY_IN_STATUS = "already_in_status"
    UNKNOWN_CURRENCY = "unknown_currency"  # no minimum budget is known for the entity's currency on its platform
    OUTSIDE_SCHEDULE = "outside_schedule"  # outside the rule's dayparts in the account's time zone


class Clamp(StrEnum):
    """A limit that shortened a budget change (the change still happens, smaller)."""

    BUDGET_CHANGE_LIMIT = "budget_change_limit"
    BUDGET_DAILY_CAP = "budget_daily_cap"
    PLATFORM_MINIMUM = "platform_minimum"
