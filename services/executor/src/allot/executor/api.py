"""Executor HTTP API: look at a change set's ledger, and undo it (through the guardrails, like any change).

Routes:
- GET  /api/v1/change-sets                     viewer   — the workspace's most recent change sets (?limit=), newest
                                                          first, each action with its outcome, the account's time
                                                          zone and the undo issued for it
- GET  /api/v1/change-sets/{request_id}        viewer   — every action of the change set with its outcome
- POST /api/v1/change-sets/{request_id}/undo   operator — issue the inverse change set (within the undo window)
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from allot.contracts.envelope import derive_event_id, new_envelope
from allot.contracts.payloads import AllocationRequested, BudgetAction
from allot.contracts.registry import TOPICS
from allot.executor.adapters import postgres as db
from allot.executor.domain import inverse_action
from allot.executor.settings import ExecutorSettings
from allot.runtime.accounts import directory_of
from allot.runtime.auth import Principal, require
from allot.runtime.deps import settings_of
from allot.runtime.http import ApiError
from allot.runtime.openapi import documented
from allot.runtime.service import ServiceContext, get_ctx

router = APIRouter(prefix="/api/v1/change-sets", tags=["change-sets"])


class ActionOutcome(BaseModel):
    """One action of a change set and what became of it (the ledger row)."""

    action_id: str
    action: dict[str, Any] = Field(description="The BudgetAction as approved and signed (allot.contracts.payloads).")
    created_at: datetime
    finished_at: datetime | None
    status: str = Field(description="pending | succeeded | failed | conflict | rejected | already_applied")
    attempts: int
    before_cents: int | None
    after_cents: int | None
    observed_cents: int | None
    before_status: str | None
    after_status: str | None
    observed_status: str | None
    platform_response_id: str | None
    error: str | None


class ChangeSetSummary(BaseModel):
    """A change set with its actions' outcomes, the account's time zone and the undo issued for it."""

    request_id: str
    source: str
    source_id: str
    created_at: datetime
    finished_at: datetime | None = Field(description="When its last action finished.")
    timezone_name: str = Field(description="The ad account's IANA time zone.")
    undo_request_id: str | None
    undo_requested_at: datetime | None
    actions: list[ActionOutcome]


class ChangeSets(BaseModel):
    change_sets: list[ChangeSetSummary] = Field(description="Newest first.")


class ChangeSet(BaseModel):
    request_id: str
    source: str
    source_id: str
    actions: list[ActionOutcome]


class UndoRequested(BaseModel):
    undo_request_id: str = Field(description="The inverse change set's request id (the same for a repeated undo).")
    undo_of: str
    actions: int = Field(description="How many inverse actions it has.")
    status: str
    note: str

_FIELDS = ("status", "attempts", "before_cents", "after_cents", "observed_cents", "before_status", "after_status",
           "observed_status", "platform_response_id", "error")


def _view(row: Any) -> dict[str, Any]:
    return {"action_id": str(row["action_id"]), "action": row["action"], "created_at": row["created_at"],
            "finished_at": row["finished_at"], **{k: row[k] for k in _FIELDS}}


@router.get("", **documented(ChangeSets))
async def list_change_sets(limit: int = Query(50, ge=1, le=200), principal: Principal = Depends(require("viewer")),
                           ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await db.recent_change_sets(conn, principal.workspace_id, limit)
    directory = directory_of(ctx.extra)
    sets: dict[Any, dict[str, Any]] = {}
    for r in rows:
        cs = sets.get(r["request_id"])
        if cs is None:
            cs = sets[r["request_id"]] = {
                "request_id": str(r["request_id"]), "source": r["source"], "source_id": r["source_id"],
                "created_at": r["created_at"], "finished_at": r["finished_at"],
                "timezone_name": directory.zone_for(principal.workspace_id, r["platform"], r["ad_account_id"]).key,
                "undo_request_id": str(r["undo_request_id"]) if r["undo_request_id"] else None,
                "undo_requested_at": r["undo_requested_at"], "actions": []}
        if r["finished_at"] and (cs["finished_at"] is None or r["finished_at"] > cs["finished_at"]):
            cs["finished_at"] = r["finished_at"]
        cs["actions"].append(_view(r))
    return {"change_sets": list(sets.values())}


@router.get("/{request_id}", **documented(ChangeSet, 404))
async def get_change_set(request_id: uuid.UUID, principal: Principal = Depends(require("viewer")),
                         ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await db.change_set(conn, request_id, principal.workspace_id)
    if not rows:
        raise ApiError(404, "not_found", f"change set {request_id} not found", field="request_id")
    return {"request_id": str(request_id), "source": rows[0]["source"], "source_id": rows[0]["source_id"],
            "actions": [_view(r) for r in rows]}


@router.post("/{request_id}/undo", status_code=202, **documented(UndoRequested, 404, 409))
async def undo_change_set(request_id: uuid.UUID, principal: Principal = Depends(require("operator")),
                          ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    settings = settings_of(ctx, ExecutorSettings)
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn, conn.transaction():
        rows = await db.change_set(conn, request_id, principal.workspace_id)
        if not rows:
            raise ApiError(404, "not_found", f"change set {request_id} not found", field="request_id")
        done = [r for r in rows if r["status"] == "succeeded"]
        if not done:
            raise ApiError(409, "nothing_to_undo", "no action of this change set was applied", field="request_id")
        executed_at = max(r["finished_at"] for r in done)
        if now - executed_at > timedelta(hours=settings.undo_window_h):
            raise ApiError(409, "undo_window_passed",
                           f"executed at {executed_at.isoformat()}, older than the {settings.undo_window_h} h "
                           "undo window",
                           field="request_id")
        inverse: list[BudgetAction] = []
        for r in done:
            inv = inverse_action(BudgetAction.model_validate(r["action"]), applied_before_cents=r["before_cents"],
                                 applied_after_cents=r["after_cents"], undo_of=request_id)
            if inv is not None:
                inverse.append(inv)
        if not inverse:
            raise ApiError(409, "not_reversible", "the applied actions cannot be reverted (e.g. relaunch)")
        undo_id = derive_event_id(request_id, "undo")
        undo_id, first = await db.claim_undo(conn, request_id, undo_id, principal.key_id, now)
        if first:  # a repeated undo answers with the same id and issues nothing new
            request = AllocationRequested(
                request_id=undo_id, source="undo", source_id=rows[0]["source_id"], idempotency_key=f"undo:{request_id}",
                manual=True, actions=inverse, requested_by=principal.key_id, undo_of=request_id)
            await ctx.emit(conn, new_envelope(
                event_type="allocation.requested", schema_version=TOPICS["allocation.requested"].schema_version,
                payload=request, producer="executor", workspace_id=principal.workspace_id, occurred_at=now,
                event_id=undo_id, correlation_id=rows[0]["correlation_id"]))
    ctx.flush()
    return {"undo_request_id": str(undo_id), "undo_of": str(request_id), "actions": len(inverse),
            "status": "requested", "note": "the inverse change set goes through the guardrails like any other"}
