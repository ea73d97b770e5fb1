"""Ingest HTTP API (scoped to the caller's workspace; no route ever returns a token).

- GET  /api/v1/ingest/accounts                          viewer   — each connected account: state, detail,
                                                                   currency, time zone, what was read and when
- POST /api/v1/ingest/accounts/{ad_account_id}/sync     operator — "sync now": read the account at the next scan
                                                                   instead of waiting for its interval (202)
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from allot.ingest.adapters import postgres as db
from allot.runtime.auth import Principal, require
from allot.runtime.http import ApiError
from allot.runtime.openapi import documented
from allot.runtime.service import ServiceContext, get_ctx

router = APIRouter(prefix="/api/v1/ingest", tags=["ingest"])
_ACCOUNT = r"^(act_)?[0-9]{1,32}$"


class AccountStatusView(BaseModel):
    """What ingest says about one connected account (never its token)."""

    connection_id: str
    ad_account_id: str
    state: str
    detail: str
    currency: str | None
    timezone_name: str | None
    read_since: str | None = Field(description="The first day read (ISO 8601 date).")
    read_until: str | None = Field(description="The last day read (ISO 8601 date).")
    last_read_at: str | None = Field(description="ISO 8601 instant of the last successful read.")
    last_attempt_at: str | None = Field(description="ISO 8601 instant of the last attempt.")


class Accounts(BaseModel):
    accounts: list[AccountStatusView]


class SyncScheduled(BaseModel):
    ad_account_id: str = Field(description="The account id, without 'act_'.")
    status: str = Field(description="scheduled: read at the next scan.")


def _status(s: db.AccountStatus) -> dict[str, Any]:
    return {
        "connection_id": s.connection_id, "ad_account_id": s.ad_account_id, "state": s.state, "detail": s.detail,
        "currency": s.currency, "timezone_name": s.timezone_name,
        "read_since": s.read_since.isoformat() if s.read_since else None,
        "read_until": s.read_until.isoformat() if s.read_until else None,
        "last_read_at": s.last_read_at.isoformat() if s.last_read_at else None,
        "last_attempt_at": s.last_attempt_at.isoformat() if s.last_attempt_at else None,
    }


@router.get("/accounts", **documented(Accounts))
async def list_accounts(principal: Principal = Depends(require("viewer")),
                        ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        statuses = await db.account_statuses(conn, principal.workspace_id)
    return {"accounts": [_status(s) for s in statuses]}


@router.post("/accounts/{ad_account_id}/sync", status_code=202, **documented(SyncScheduled, 404))
async def sync_account(ad_account_id: str = Path(pattern=_ACCOUNT, description="Ad account id ('act_' optional)."),
                       principal: Principal = Depends(require("operator")),
                       ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    account = ad_account_id.removeprefix("act_")
    async with ctx.pool.acquire() as conn:
        if not await db.request_read(conn, principal.workspace_id, account):
            raise ApiError(404, "not_found", f"ad_account_id: this workspace has no connected account {account}",
                           field="ad_account_id")
    return {"ad_account_id": account, "status": "scheduled"}
