"""Connections HTTP API (admin role; every route is scoped to the caller's workspace).

- POST   /api/v1/connections        connect a platform: ad accounts, a read token (ingest), a write token (executor)
- GET    /api/v1/connections        this workspace's connections (?include_removed=true for removed ones too)
- GET    /api/v1/connections/{id}   one connection
- PATCH  /api/v1/connections/{id}   replace ad accounts, tokens or the Graph API version (tokens re-sealed)
- DELETE /api/v1/connections/{id}   remove: ingest stops reading, the executor stops writing

Tokens are sealed to the ingest and executor public keys before anything is stored or published; no response
carries a token (only ``*_token_set``, the last 4 characters and the key id it is sealed to), no log line either.
Each change commits the row and its ``connection.changed`` event (outbox) in one transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from allot.connections.adapters import postgres as db
from allot.connections.domain import (
    Connection,
    ConnectionProblem,
    changed_payload,
    normalise_ad_account_ids,
    token_hint,
    validate_api_version,
    validate_token,
    validate_token_pair,
)
from allot.connections.settings import RecipientKeys
from allot.contracts.envelope import new_envelope
from allot.contracts.payloads import SealedToken
from allot.contracts.registry import TOPICS
from allot.runtime.auth import Principal, require
from allot.runtime.db import Conn
from allot.runtime.deps import need
from allot.runtime.http import ApiError, problem_error
from allot.runtime.logging import get_logger
from allot.runtime.openapi import Body as ResponseBody
from allot.runtime.openapi import documented
from allot.runtime.sealing import seal
from allot.runtime.service import ServiceContext, get_ctx

log = get_logger(__name__)
router = APIRouter(prefix="/api/v1/connections", tags=["connections"])
TOPIC = "connection.changed"
_ID = r"^[A-Za-z0-9_-]{1,64}$"


class ConnectionCreate(BaseModel):
    """A new connection. Tokens are write-only: they are sealed at once and never shown again."""

    model_config = ConfigDict(extra="forbid")

    platform: str = Field(min_length=1, max_length=32, description="'meta'.")
    ad_account_ids: list[str] = Field(max_length=200, description="Ad account ids ('act_' prefix optional).")
    read_token: SecretStr = Field(description="For ingest: a system-user token with ads_read only.")
    write_token: SecretStr = Field(description="For the executor: a system-user token with ads_management.")
    graph_api_version: str | None = Field(default=None, max_length=16, description="e.g. 'v23.0'; default: the "
                                                                                   "services' configured version.")


class ConnectionPatch(BaseModel):
    """Fields to replace; absent fields stay. New tokens are sealed to the current keys."""

    model_config = ConfigDict(extra="forbid")

    ad_account_ids: list[str] | None = Field(default=None, max_length=200)
    read_token: SecretStr | None = None
    write_token: SecretStr | None = None
    graph_api_version: str | None = Field(default=None, max_length=16)


class ConnectionView(ResponseBody):
    """A connection as the API shows it: which tokens are set, their last 4 characters and the key they are sealed
    to; never a token."""

    connection_id: str
    workspace_id: str
    platform: str
    ad_account_ids: list[str]
    state: str = Field(description="active | removed")
    graph_api_version: str | None
    read_token_set: bool
    read_token_last4: str | None
    read_token_key_id: str | None = Field(description="The ingest key the read token is sealed to.")
    write_token_set: bool
    write_token_last4: str | None
    write_token_key_id: str | None = Field(description="The executor key the write token is sealed to.")
    version: int
    created_at: datetime
    updated_at: datetime


class ConnectionList(ResponseBody):
    connections: list[ConnectionView]


def _keys(ctx: ServiceContext) -> RecipientKeys:
    return need(ctx, RecipientKeys)


def _seal_tokens(ctx: ServiceContext, read: str | None, write: str | None) -> tuple[SealedToken | None,
                                                                                      SealedToken | None]:
    keys = _keys(ctx)
    return (None if read is None else seal(read, keys["ingest"]),
            None if write is None else seal(write, keys["executor"]))


async def _claim(conn: Conn, workspace_id: str, connection_id: str, platform: str,
                 accounts: list[str]) -> None:
    """409 naming the account when an active connection other than this one holds it (another workspace's is
    not named: the caller learns only that the account is taken)."""
    await db.lock_accounts(conn, platform, accounts)
    held = await db.claims(conn, platform, accounts)
    for i, account in enumerate(accounts):
        owner = held.get(account)
        if owner is None or owner[1] == connection_id:
            continue
        if owner[0] != workspace_id:
            raise ApiError(409, "ad_account_taken", f"ad_account_ids.{i}: ad account {account} is already "
                           "connected to another workspace", field=f"ad_account_ids.{i}")
        raise ApiError(409, "ad_account_taken", f"ad_account_ids.{i}: ad account {account} is already in "
                       f"connection {owner[1]} of this workspace", field=f"ad_account_ids.{i}",
                       extra={"connection_id": owner[1]})


async def _save(ctx: ServiceContext, conn: Conn, c: Connection, *, created_by: str | None) -> None:
    """Row, claims and the connection.changed event in the caller's transaction."""
    if created_by is not None:
        await db.insert(conn, c, created_by=created_by)
    else:
        await db.update(conn, c)
    try:
        async with conn.transaction():  # savepoint: a lost race on a claim becomes the same 409
            await db.set_claims(conn, c)
    except asyncpg.UniqueViolationError:
        raise ApiError(409, "ad_account_taken", "ad_account_ids: an ad account was connected elsewhere at the same "
                       "time; retry to see which", field="ad_account_ids") from None
    now = c.updated_at
    envelope = new_envelope(event_type=TOPIC, schema_version=TOPICS[TOPIC].schema_version,
                            payload=changed_payload(c, now=now), producer="connections",
                            workspace_id=c.workspace_id, occurred_at=now,
                            step=f"connection/{c.connection_id}/v{c.version}")
    await ctx.emit(conn, envelope)


@router.post("", status_code=201, **documented(ConnectionView, 409))
async def create_connection(body: ConnectionCreate, principal: Principal = Depends(require("admin")),
                            ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    try:
        accounts = normalise_ad_account_ids(body.platform, body.ad_account_ids)
        read = validate_token("read_token", body.read_token.get_secret_value())
        write = validate_token("write_token", body.write_token.get_secret_value())
        validate_token_pair(read, write)
        version = validate_api_version(body.graph_api_version)
    except ConnectionProblem as exc:
        raise problem_error(exc) from None
    sealed_read, sealed_write = _seal_tokens(ctx, read, write)
    now = ctx.clock.now()
    connection = Connection(
        connection_id=f"conn_{uuid.uuid4().hex[:20]}", workspace_id=principal.workspace_id,
        platform=body.platform, ad_account_ids=accounts, state="active", read_token=sealed_read,
        write_token=sealed_write, read_token_hint=token_hint(read), write_token_hint=token_hint(write),
        graph_api_version=version, version=1, created_at=now, updated_at=now)
    async with ctx.pool.acquire() as conn, conn.transaction():
        await _claim(conn, principal.workspace_id, connection.connection_id, body.platform, accounts)
        await _save(ctx, conn, connection, created_by=principal.key_id)
    ctx.flush()
    log.info("connection_created", workspace_id=principal.workspace_id, connection_id=connection.connection_id,
             platform=connection.platform, ad_accounts=len(accounts), key_id=principal.key_id)
    return connection.view()


@router.get("", **documented(ConnectionList))
async def list_connections(include_removed: bool = Query(False),
                           principal: Principal = Depends(require("admin")),
                           ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await db.list_for(conn, principal.workspace_id, include_removed=include_removed)
    return {"connections": [c.view() for c in rows]}


async def _existing(conn: Conn, principal: Principal, connection_id: str, *,
                    for_update: bool = False) -> Connection:
    found = await db.get(conn, principal.workspace_id, connection_id, for_update=for_update)
    if found is None:
        raise ApiError(404, "not_found", f"connection_id: no connection {connection_id} in this workspace",
                       field="connection_id")
    return found


@router.get("/{connection_id}", **documented(ConnectionView, 404))
async def get_connection(connection_id: str = Path(pattern=_ID), principal: Principal = Depends(require("admin")),
                         ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        return (await _existing(conn, principal, connection_id)).view()


@router.patch("/{connection_id}", **documented(ConnectionView, 404, 409))
async def patch_connection(body: ConnectionPatch, connection_id: str = Path(pattern=_ID),
                           principal: Principal = Depends(require("admin")),
                           ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    given = body.model_fields_set
    if not given:
        raise ApiError(422, "validation_failed", "body: nothing to change (ad_account_ids, read_token, write_token "
                       "or graph_api_version)", field="body")
    async with ctx.pool.acquire() as conn, conn.transaction():
        before = await _existing(conn, principal, connection_id, for_update=True)
        if before.state != "active":
            raise ApiError(409, "connection_removed", f"connection_id: connection {connection_id} was removed; "
                           "create a new one", field="connection_id")
        try:
            accounts = (before.ad_account_ids if body.ad_account_ids is None
                        else normalise_ad_account_ids(before.platform, body.ad_account_ids))
            read = None if body.read_token is None else validate_token("read_token", body.read_token.get_secret_value())
            write = (None if body.write_token is None
                     else validate_token("write_token", body.write_token.get_secret_value()))
            if read is not None and write is not None:
                validate_token_pair(read, write)
            version = (validate_api_version(body.graph_api_version) if "graph_api_version" in given
                       else before.graph_api_version)
        except ConnectionProblem as exc:
            raise problem_error(exc) from None
        sealed_read, sealed_write = _seal_tokens(ctx, read, write)
        after = Connection(
            connection_id=before.connection_id, workspace_id=before.workspace_id, platform=before.platform,
            ad_account_ids=accounts, state="active", read_token=sealed_read or before.read_token,
            write_token=sealed_write or before.write_token,
            read_token_hint=before.read_token_hint if read is None else token_hint(read),
            write_token_hint=before.write_token_hint if write is None else token_hint(write),
            graph_api_version=version, version=before.version + 1, created_at=before.created_at,
            updated_at=ctx.clock.now())
        await _claim(conn, principal.workspace_id, connection_id, before.platform, accounts)
        await _save(ctx, conn, after, created_by=None)
    ctx.flush()
    log.info("connection_changed", workspace_id=principal.workspace_id, connection_id=connection_id,
             fields=sorted(given), version=after.version, key_id=principal.key_id)
    return after.view()


@router.delete("/{connection_id}", **documented(ConnectionView, 404))
async def delete_connection(connection_id: str = Path(pattern=_ID), principal: Principal = Depends(require("admin")),
                            ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn, conn.transaction():
        before = await _existing(conn, principal, connection_id, for_update=True)
        if before.state != "active":
            raise ApiError(404, "not_found", f"connection_id: connection {connection_id} is already removed",
                           field="connection_id")
        # the sealed tokens are dropped: nothing of them stays at rest once the connection is gone
        after = Connection(
            connection_id=before.connection_id, workspace_id=before.workspace_id, platform=before.platform,
            ad_account_ids=before.ad_account_ids, state="removed", read_token=None, write_token=None,
            read_token_hint="", write_token_hint="", graph_api_version=before.graph_api_version,
            version=before.version + 1, created_at=before.created_at, updated_at=ctx.clock.now())
        await _save(ctx, conn, after, created_by=None)
    ctx.flush()
    log.info("connection_removed", workspace_id=principal.workspace_id, connection_id=connection_id,
             key_id=principal.key_id)
    return after.view()
