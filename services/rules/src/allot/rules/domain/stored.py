"""What the repository (adapters/postgres.py) returns: rules, executions, actions, outcomes, the audit log and the
metric projection as stored, one frozen dataclass per kind of row (built in the adapter; values as PostgreSQL
gives them: int for int and bigint, aware datetime for timestamptz, the decoded JSON for jsonb)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from allot.rules.domain.entities import EntityLevel, EntityStatus, Platform
from allot.rules.domain.metrics import DailyCounters


@dataclass(frozen=True, slots=True)
class StoredRule:
    """One row of ``rules`` (the columns of ``RULE_COLUMNS``); ``definition`` is the stored JSON, validated on use
    as a ``RuleDefinition``."""

    rule_id: uuid.UUID
    workspace_id: str
    name: str
    definition: dict[str, Any]
    status: str
    interval_minutes: int
    template: str | None
    last_evaluated_at: datetime | None
    last_slot: datetime | None
    last_error: str | None
    auto_pause_reason: str | None
    auto_paused_at: datetime | None
    breaker_reset_at: datetime | None
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


#: Execution results that count as a fire: the evaluation matched and sent a change set, notified, or tripped the
#: circuit breaker (``no_match``, where nothing matched or every match was skipped, does not).
FIRE_RESULTS = ("requested", "notified", "auto_paused")


@dataclass(frozen=True, slots=True)
class FireStats:
    """A rule's fires (executions whose ``result`` is in ``FIRE_RESULTS``): the last one's ``started_at`` and how
    many started at or after ``since`` (the start of the rule's today)."""

    rule_id: uuid.UUID
    last_fired_at: datetime | None
    fires_today: int


@dataclass(frozen=True, slots=True)
class DueRule:
    """An active interval rule not yet evaluated in its current ``slot``."""

    rule_id: uuid.UUID
    slot: datetime


@dataclass(frozen=True, slots=True)
class CronRule:
    """An active cron-mode rule with what deciding whether it is due needs: its expression (``schedule.cron``),
    its scoped ad accounts (``scope.ad_account_ids``), its last fire time evaluated and its last change."""

    rule_id: uuid.UUID
    workspace_id: str
    cron: str
    ad_account_ids: tuple[str, ...]
    last_slot: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TriggerRule:
    """An active trigger-mode rule: its id and stored definition (validated on use as a ``RuleDefinition``)."""

    rule_id: uuid.UUID
    definition: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of ``audit_log``: ``before`` / ``after`` are a rule's API shape (None when there was none)."""

    id: int
    rule_id: uuid.UUID | None
    action: str
    actor: str
    at: datetime
    before: Any
    after: Any
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredExecution:
    """One row of ``executions``: a rule evaluation (one per rule and slot)."""

    execution_id: uuid.UUID
    rule_id: uuid.UUID
    workspace_id: str
    slot_start: datetime
    started_at: datetime
    trigger: str
    result: str
    entities_evaluated: int
    matched: int
    skipped: int
    skip_counts: dict[str, int]
    skipped_entities: list[dict[str, Any]]
    actions_count: int
    request_ids: tuple[uuid.UUID, ...]
    acted: bool
    auto_pause_reason: str | None


@dataclass(frozen=True, slots=True)
class StoredExecutionEntity:
    """One row of ``execution_entities``: a matched entity of an execution, with its metric snapshot, its planned
    actions and the actions it skipped (JSON as stored)."""

    execution_id: uuid.UUID
    entity_id: str
    rule_id: uuid.UUID
    platform: str
    ad_account_id: str
    entity_level: str
    snapshot: dict[str, Any]
    planned: list[dict[str, Any]]
    skipped_actions: list[dict[str, Any]]
    notify_only: bool


@dataclass(frozen=True, slots=True)
class StoredAction:
    """An action an execution sent (``rule_actions``), with its outcome: None while pending."""

    action_id: uuid.UUID
    execution_id: uuid.UUID
    request_id: uuid.UUID | None
    entity_id: str
    action_type: str
    from_cents: int | None
    to_cents: int | None
    from_status: str | None
    to_status: str | None
    sent_at: datetime | None
    outcome: str | None
    outcome_at: datetime | None
    error: str | None


@dataclass(frozen=True, slots=True)
class PendingAction:
    """An action on an entity sent at ``sent_at`` without an outcome yet."""

    entity_id: str
    sent_at: datetime


@dataclass(frozen=True, slots=True)
class StoredOutcome:
    """A final outcome of an action on an entity: ``success`` False for a platform error, with its ``error``."""

    entity_id: str
    outcome_at: datetime
    success: bool
    error: str | None


@dataclass(frozen=True, slots=True)
class StoredEntity:
    """An entity of the metric projection (``entities``) as of its latest report (whose contract limits the
    platform, level and status to the domain's names)."""

    entity_id: str
    platform: Platform
    ad_account_id: str
    entity_type: EntityLevel
    name: str
    status: EntityStatus
    daily_budget_cents: int | None
    currency: str


@dataclass(frozen=True, slots=True)
class DailyBucket:
    """One row of ``metric_daily``: an entity's counters of one local day and the interval reports summed in it."""

    entity_id: str
    day: date
    counters: DailyCounters
    reports: int


#: The ranges of a stored range reach, in column order (the fields of ``StoredRangeReach`` after ``through``).
RANGE_REACH_RANGES: Final = ("yesterday", "last_3d", "last_7d", "last_14d", "last_30d")


@dataclass(frozen=True, slots=True)
class StoredRangeReach:
    """One row of ``range_reach``: the platform's deduplicated reach over the local days ending with ``through``
    per range (None: that range was not reported)."""

    entity_id: str
    through: date
    yesterday: int | None
    last_3d: int | None
    last_7d: int | None
    last_14d: int | None
    last_30d: int | None

    def by_range(self) -> dict[str, int]:
        """The reported ranges (``RANGE_REACH_RANGES`` order) → people reached."""
        values = (self.yesterday, self.last_3d, self.last_7d, self.last_14d, self.last_30d)
        return {name: v for name, v in zip(RANGE_REACH_RANGES, values, strict=True) if v is not None}
