"""Pools, members, allocations and the projections as stored: what the repository (adapters/postgres.py) returns.

``StoredPool``, ``StoredMember``, ``StoredAllocation``, ``StoredOutcome``, ``StoredEntity`` and ``StoredNote`` are
rows of their tables (``SELECT *``: every column the migrations leave, tier dropped by 0006); the others are what
one query selects (named after it), each column typed as the query returns it."""

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


@dataclass(frozen=True, slots=True)
class StoredDuePool:
    """A pool whose current slot has not run yet, as ``due_pools`` selects it: the pool and the slot's start."""

    pool_id: uuid.UUID
    workspace_id: str
    slot: datetime


@dataclass(frozen=True, slots=True)
class StoredOwner:
    """The pool an entity is an active member of, as ``active_owners`` selects it."""

    entity_id: str
    pool_id: uuid.UUID
    pool_name: str


@dataclass(frozen=True, slots=True)
class StoredOutcome:
    """One row of ``allocation_outcomes``: the outcome of one executed action of an allocation."""

    action_id: uuid.UUID
    allocation_id: uuid.UUID
    entity_id: str
    outcome: str
    before_cents: int | None
    after_cents: int | None
    observed_cents: int | None
    error: str | None
    executed_at: datetime


@dataclass(frozen=True, slots=True)
class StoredBlockedAllocation:
    """An allocation ``record_blocked`` changed because the guardrails refused (or only observed) its change set:
    its new status (``blocked`` or ``guardrail_observed``)."""

    allocation_id: uuid.UUID
    status: str


@dataclass(frozen=True, slots=True)
class StoredOutcomeCount:
    """An allocation's progress as ``outcome_counts`` selects it: its status, how many actions it has and the
    outcomes stored so far (one per executed action, in no particular order)."""

    allocation_id: uuid.UUID
    status: str
    action_count: int
    outcomes: list[str]


@dataclass(frozen=True, slots=True)
class StoredEntity:
    """One row of ``entities``: an entity's state from its latest report (or a later executed budget change).
    ``interval_start`` and ``event_id`` order the reports (rows stored before migration 0008: -infinity and the
    nil UUID)."""

    workspace_id: str
    entity_id: str
    platform: str
    ad_account_id: str
    entity_type: str
    entity_name: str
    status: str
    daily_budget_cents: int | None
    currency: str
    reported_at: datetime
    interval_start: datetime
    event_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class StoredReportedEntity:
    """A reported entity as ``reported_entities`` selects it: the entity, its ad account's time zone and name, and
    the pool it is an active member of (None where there is no such account or pool)."""

    entity_id: str
    entity_type: str
    entity_name: str
    platform: str
    ad_account_id: str
    status: str
    daily_budget_cents: int | None
    currency: str
    reported_at: datetime
    timezone_name: str | None
    ad_account_name: str | None
    pool_id: uuid.UUID | None
    pool_name: str | None


@dataclass(frozen=True, slots=True)
class StoredInterval:
    """One entity's metrics over one interval as ``history_of`` selects them from ``member_metrics``: a reported
    interval, or an old UTC day summed (first start, last end)."""

    entity_id: str
    interval_start: datetime
    interval_end: datetime
    spend_cents: int
    revenue_cents: int
    conversions: int
    impressions: int
    clicks: int
    reach: int


@dataclass(frozen=True, slots=True)
class StoredMemberPool:
    """A pool (not deleted) that an entity is an active member of, as ``pools_with_member`` selects it."""

    pool_id: uuid.UUID
    entity_id: str


@dataclass(frozen=True, slots=True)
class StoredNote:
    """One row of ``pool_notes``: something logged against a pool that is not an allocation (``body`` is the
    stored JSON, merged into the note's view)."""

    note_id: uuid.UUID
    pool_id: uuid.UUID
    workspace_id: str
    kind: str
    at: datetime
    body: dict[str, Any]
