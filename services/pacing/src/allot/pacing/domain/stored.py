"""Plans, snapshots and proposals as stored: what the repository (adapters/postgres.py) returns for the
flight_plans, pacing_transitions, metric_reports (summed per channel / deal), pacing_snapshots, pacing_proposals and
proposal_actions tables."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class StoredPlan:
    """One row of ``flight_plans`` (the columns of ``PLAN_COLUMNS``); ``channels``, ``deals``, ``curve`` and
    ``thresholds`` are the stored JSON, turned into the domain's ``FlightPlan`` by ``workflow.plan_from_row``."""

    plan_id: str
    workspace_id: str
    campaign_id: str
    name: str
    currency: str
    total_budget_cents: int
    flight_start: datetime
    flight_end: datetime
    channels: list[dict[str, Any]]
    deals: list[dict[str, Any]]
    curve: dict[str, Any]
    thresholds: dict[str, Any]
    requires_approval: bool
    snapshot_interval_s: int
    escalate_after_s: int
    state: str
    held_since: datetime | None
    last_slot_at: datetime | None
    created_at: datetime
    updated_at: datetime
    created_by: str


@dataclass(frozen=True, slots=True)
class StoredDuePlan:
    """A plan whose current slot has no snapshot yet, as ``due_plans`` selects it: the plan and the slot's start."""

    plan_id: str
    slot: datetime


@dataclass(frozen=True, slots=True)
class StoredTransition:
    """One row of ``pacing_transitions`` as ``list_transitions`` selects it (its columns but the serial id and the
    plan's ids)."""

    from_state: str
    to_state: str
    reason: str
    actor: str
    snapshot_id: uuid.UUID | None
    at: datetime


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """A plan's delivery of one channel or deal as ``delivery_for`` sums it from ``metric_reports``: ``kind`` is
    ``channel`` or ``deal``, ``name`` the channel's name or the deal's id."""

    plan_id: str
    kind: str
    name: str
    spend_cents: int
    impressions: int


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    """One row of ``pacing_snapshots`` (the columns of ``SNAPSHOT_COLUMNS``); ``alert``, ``channels`` and ``deals``
    are the stored JSON as the workflow wrote it."""

    snapshot_id: uuid.UUID
    plan_id: str
    workspace_id: str
    campaign_id: str
    slot_at: datetime
    taken_at: datetime
    trigger: str
    currency: str
    total_budget_cents: int
    total_spend_cents: int
    expected_spend_cents: int
    pacing_pct: float
    deviation_pct: float
    state_before: str
    state: str
    alert: dict[str, Any] | None
    channels: list[dict[str, Any]]
    deals: list[dict[str, Any]]
    proposal_ids: list[uuid.UUID]


@dataclass(frozen=True, slots=True)
class StoredProposal:
    """One row of ``pacing_proposals`` (the columns of ``PROPOSAL_COLUMNS``)."""

    proposal_id: uuid.UUID
    plan_id: str
    workspace_id: str
    snapshot_id: uuid.UUID
    slot_key: str
    source_channel: str
    target_channel: str
    amount_cents: int
    moved_cents: int | None
    currency: str
    reason: str
    requires_approval: bool
    status: str
    status_reason: str
    request_id: uuid.UUID | None
    correlation_id: uuid.UUID
    created_at: datetime
    decided_at: datetime | None
    decided_by: str
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredOpenProposal:
    """An open proposal as ``open_proposals`` selects it: the plan it belongs to, its pair, amount and status."""

    proposal_id: uuid.UUID
    plan_id: str
    source_channel: str
    target_channel: str
    amount_cents: int
    status: str


@dataclass(frozen=True, slots=True)
class StoredAction:
    """One row of ``proposal_actions``: a budget change a requested proposal asked for, with its outcome."""

    action_id: uuid.UUID
    proposal_id: uuid.UUID
    role: str
    platform: str
    ad_account_id: str
    entity_type: str
    entity_id: str
    from_cents: int
    to_cents: int
    outcome: str | None
    error: str | None
    executed_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredBlockedProposal:
    """A requested proposal ``block_proposals`` closed because the guardrails refused its change set: its new
    status (``blocked``, or ``observed`` when the guardrail only observes)."""

    proposal_id: uuid.UUID
    status: str
