"""A rule as stored: what the repository (adapters/postgres.py) returns for the rules table."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


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
