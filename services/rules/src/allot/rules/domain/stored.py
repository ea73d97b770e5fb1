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
