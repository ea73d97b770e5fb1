"""Pools, members and allocations as stored: what the repository (adapters/postgres.py) returns for the pools,
pool_members and allocations tables (``SELECT *``: every column the migrations leave, tier dropped by 0006)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class StoredPool:
    """One row of ``pools``. ``engine_state`` is ``EngineState.to_dict()`` of the last plan; the engine knobs
    (``persistence_intervals`` .. ``composite_weights``) are None where the pool follows the engine's default."""

    pool_id: uuid.UUID
    workspace_id: str
    name: str
    optimization_metric: str
    daily_budget_cents: int
    currency: str
    allocation_frequency_hours: int
    default_min_budget_cents: int
    default_max_budget_cents: int | None
    min_budget_change_cents: int
    status: str
    autonomy: str
    engine_state: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    last_manual_allocate_at: datetime | None
    last_scheduled_slot: datetime | None
    persistence_intervals: int | None
    cooldown_hours: float | None
    deadband_pct: float | None
    exploration_share: float | None
    composite_weights: dict[str, Any] | None
    membership_version: int


@dataclass(frozen=True, slots=True)
class StoredMember:
    """One row of ``pool_members`` (a removed member stays, ``is_active`` false)."""

    member_id: uuid.UUID
    pool_id: uuid.UUID
    workspace_id: str
    entity_type: str
    entity_id: str
    ad_account_id: str | None
    entity_name: str | None
    platform: str
    currency: str
    min_budget_cents: int | None
    max_budget_cents: int | None
    weight: float
    is_active: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StoredAllocation:
    """One row of ``allocations``: an allocation (its id is its change set's request id) or a simulation, with the
    settings and member snapshots taken when it was queued and, once planned, its inputs, plan and actions."""

    allocation_id: uuid.UUID
    pool_id: uuid.UUID
    workspace_id: str
    kind: str
    trigger: str
    idempotency_key: str | None
    slot: str | None
    status: str
    autonomy: str
    settings: dict[str, Any]
    members: list[dict[str, Any]]
    inputs: dict[str, Any] | None
    plan: dict[str, Any] | None
    actions: list[dict[str, Any]]
    decision: dict[str, Any] | None
    requested_by: str
    created_at: datetime
    planned_at: datetime | None
    updated_at: datetime
    event_id: uuid.UUID | None
