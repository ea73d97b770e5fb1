"""Applies pending ledger actions on the platforms: compare-and-set, retries with backoff, failure backoff.

Each action is handled in one Postgres transaction that holds its ledger row lock across the platform
call. If the process dies after the platform accepted a write but before the commit, the row is still
'pending'; the next attempt reads the platform first, sees the target value and reports
'already_applied' — the write is never sent twice. A conflict or a failure is published with its
notification.requested, in the same transaction (``domain.notices``).

The per-workspace write tokens: ``apply_connection_changes`` keeps the latest state of each connection from
``connection.changed``, and ``TokenProjection.token_for`` looks a token up for a write. Tokens stay sealed at rest
(to the executor's key; see allot.runtime.sealing). ``token_for(workspace, account)`` reads the projection on every
call (one indexed row), so a removed or replaced connection takes effect at the next write; only the opened token
is kept in memory, for ``ttl_s`` seconds, keyed by the change that delivered it. The workspace is part of every
lookup, so an approval for one workspace can never be applied with another workspace's token, and a removed
connection yields nothing: this is the last tenancy check before a platform call. This is the only code that
opens sealed tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import asyncpg

from allot.contracts.currencies import UnknownCurrency, min_budget_minor
from allot.contracts.envelope import Envelope, derive_event_id, new_envelope
from allot.contracts.payloads import ActionExecuted, BudgetAction, ConnectionChanged, Outcome, SealedToken
from allot.contracts.registry import TOPICS
from allot.executor.adapters import postgres as db
from allot.executor.adapters.base import (
    EntityRef,
    PermanentPlatformError,
    PlatformClient,
    PlatformClients,
    PlatformConfigError,
    PlatformDeferred,
    PlatformNotConnected,
    TransientPlatformError,
    WritableStatus,
)
from allot.executor.domain import (
    FAILURE_BACKOFF_COUNT,
    FAILURE_BACKOFF_WINDOW,
    Observed,
    backoff_delay_s,
    entity_outside_account,
    failure_backoff_active,
    plan_write,
)
from allot.executor.domain.notices import executed_notifications
from allot.executor.domain.tokens import account_number
from allot.executor.metrics import OUTCOMES, PLATFORM_CALLS
from allot.executor.settings import ExecutorSettings
from allot.runtime.accounts import directory_of
from allot.runtime.consumer import PoisonEvent
from allot.runtime.db import Conn
from allot.runtime.deps import maybe, need, provide, settings_of
from allot.runtime.logging import bound, get_logger
from allot.runtime.outbox import add_events
from allot.runtime.sealing import Keyring, SealingError
from allot.runtime.service import ServiceContext

log = get_logger(__name__)


#: Real seconds between two looks for due actions when nothing wakes the worker (retries coming due, approvals
#: recorded by another instance).
WORKER_POLL_S = 0.05


class ActionsRecorded:
    """Wakes this instance's worker once a transaction that recorded pending actions has committed, instead of at
    its next poll. Only a hint: the worker reads the ledger either way, and still polls."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    async def wait(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout=timeout_s)


async def run_worker(ctx: ServiceContext) -> None:
    """Background task: apply due actions, a few at a time; when none is due, wait for a wake-up or the next poll."""
    clients = need(ctx, PlatformClients)
    settings = settings_of(ctx, ExecutorSettings)
    recorded = maybe(ctx, ActionsRecorded) or provide(ctx, ActionsRecorded())
    while True:
        recorded.clear()  # before the read: a commit during it leaves the wake-up set, it is not lost
        async with ctx.pool.acquire() as conn:
            due = await db.due_actions(conn, ctx.clock.now(), settings.worker_concurrency)
        if not due:
            await recorded.wait(WORKER_POLL_S)
            continue
        await asyncio.gather(*(execute_action(ctx, clients, action_id) for action_id in due))
        ctx.flush()


async def execute_action(ctx: ServiceContext, clients: dict[str, PlatformClient], action_id: uuid.UUID) -> None:
    settings = settings_of(ctx, ExecutorSettings)
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await db.lock_pending(conn, action_id)
        if row is None:
            return
        action = BudgetAction.model_validate(row["action"])
        now = ctx.clock.now()
        attempts = row["attempts"]
        with bound(correlation_id=str(row["correlation_id"]), workspace_id=row["workspace_id"],
                   event_id=str(row["approval_event_id"])):
            result = await _apply(ctx, conn, clients.get(action.platform), action, row, attempts, settings)
        if result is None:
            return  # retry scheduled
        outcome, fields, attempts = result
        await db.finish(conn, action_id, status=outcome, attempts=attempts, now=now, fields=fields)
        if outcome == "succeeded" or outcome == "already_applied":
            await db.remember_success(conn, action, fields.get("after_cents"), fields.get("after_status"), now)
        elif outcome == "failed":
            await db.remember_failure(conn, action, now, FAILURE_BACKOFF_WINDOW.total_seconds())
        event = new_envelope(
            event_type="action.executed", schema_version=TOPICS["action.executed"].schema_version,
            payload=ActionExecuted(
                action_id=action.action_id, request_id=row["request_id"], decision_id=row["decision_id"],
                source=row["source"], source_id=row["source_id"], platform=action.platform,
                ad_account_id=action.ad_account_id, entity_type=action.entity_type, entity_id=action.entity_id,
                action_type=action.action_type, outcome=outcome, currency=action.currency, attempts=attempts,
                executed_at=now, **fields),
            producer="executor", workspace_id=row["workspace_id"], occurred_at=now,
            event_id=derive_event_id(action.action_id, "executed"), correlation_id=row["correlation_id"],
            causation_id=row["approval_event_id"],
        )
        await add_events(conn, [event, *executed_notifications(event)])
    OUTCOMES.labels(action.platform, action.action_type, outcome).inc()
    log.info("action_executed", action_id=str(action.action_id), entity_id=action.entity_id, outcome=outcome,
             error=fields.get("error"))


async def _tenancy_refusal(ctx: ServiceContext, conn: Any, action: BudgetAction, workspace_id: str,
                           settings: Any) -> str | None:
    """The last line of tenancy, before any platform call: an account another workspace has connected and the
    approval's has not is never written (and, with require_connected_accounts, none not connected to it).
    The account is re-read from the projection first, so a report another instance consumed counts."""
    directory = directory_of(ctx.extra)
    await directory.refresh(conn, [action.ad_account_id])
    return directory.owner_check(workspace_id, action.platform, action.ad_account_id,
                                 strict=settings.require_connected_accounts)


async def _apply(ctx: ServiceContext, conn: Any, client: PlatformClient | None, action: BudgetAction, row: Any,
                 attempts: int, settings: Any) -> tuple[Outcome, dict[str, Any], int] | None:
    now = ctx.clock.now()
    if client is None:
        return "rejected", {"error": f"no platform adapter configured for {action.platform!r}"}, attempts
    refusal = await _tenancy_refusal(ctx, conn, action, row["workspace_id"], settings)
    if refusal is not None:
        PLATFORM_CALLS.labels(action.platform, action.action_type, "not_owned").inc()
        return "rejected", {"error": f"{refusal}; not applied for workspace {row['workspace_id']}"}, attempts
    memory = await db.load_memory(conn, action.platform, action.entity_id)
    if failure_backoff_active(memory, now):
        return "failed", {"error": f"failure backoff: {memory.consecutive_failures} consecutive failures on this "
                                   f"entity since {memory.first_failure_at}; not trying for 24 h "
                                   f"(threshold {FAILURE_BACKOFF_COUNT})"}, attempts
    ref = EntityRef(action.platform, action.ad_account_id, action.entity_type, action.entity_id,
                    workspace_id=row["workspace_id"])
    attempts += 1
    try:
        current = await client.get_entity(ref)
        PLATFORM_CALLS.labels(action.platform, "get", "ok").inc()
        observed = Observed(current.budget_cents, current.status)
        base: dict[str, Any] = {"before_cents": current.budget_cents, "before_status": current.status}
        foreign = entity_outside_account(action, current.ad_account_id)
        if foreign is not None:  # tenancy was checked for the account the action names, not for this one
            return "rejected", {**base, "error": foreign}, attempts
        if current.currency != action.currency:
            return "rejected", {**base, "error": f"currency mismatch: the action is in {action.currency}, the "
                                                f"{action.platform} account of {action.entity_id} is in "
                                                f"{current.currency}"}, attempts
        try:
            minimum = min_budget_minor(action.platform, action.entity_type, action.currency)
        except UnknownCurrency as exc:
            return "rejected", {**base, "error": str(exc)}, attempts
        plan = plan_write(action, observed, memory, min_budget_cents=minimum)
        if plan.kind == "already_applied":
            return "already_applied", {**base, "after_cents": current.budget_cents, "after_status": current.status,
                                       "error": plan.reason}, attempts
        if plan.kind == "conflict":
            return "conflict", {**base, "observed_cents": current.budget_cents, "observed_status": current.status,
                                "error": plan.reason}, attempts
        if plan.kind == "rejected":
            return "rejected", {**base, "error": plan.reason}, attempts
        key = str(action.action_id)
        if action.action_type == "set_budget":
            assert action.to_cents is not None
            written = await client.set_budget(ref, action.to_cents, idempotency_key=key)
            after: dict[str, Any] = {"after_cents": action.to_cents, "after_status": current.status}
        elif action.action_type in ("pause", "activate"):
            target: WritableStatus = "paused" if action.action_type == "pause" else "active"
            written = await client.set_status(ref, target, idempotency_key=key)
            after = {"after_cents": current.budget_cents, "after_status": target}
        else:
            written = await client.relaunch(ref, idempotency_key=key)
            after = {"after_cents": current.budget_cents, "after_status": current.status,
                     "error": f"relaunched as {written.new_entity_id}" if written.new_entity_id else None}
        PLATFORM_CALLS.labels(action.platform, action.action_type, "ok").inc()
        return "succeeded", {**base, **after, "platform_response_id": written.response_id}, attempts
    except PlatformDeferred as exc:
        # Held back by the adapter (its own throttle) or a configuration problem (e.g. an expired Graph API
        # version): not this action's fault, so no attempt is counted; a configuration problem fails the
        # action only once it has lasted config_give_up_h, with the problem as the error.
        PLATFORM_CALLS.labels(action.platform, action.action_type, "deferred").inc()
        attempts -= 1
        config = isinstance(exc, PlatformConfigError)
        waited_h = (now - row["created_at"]).total_seconds() / 3600
        if config and waited_h >= getattr(settings, "meta_config_give_up_h", 24.0):
            return "failed", {"error": f"not applied after {waited_h:.1f} h: {exc.message}"}, attempts
        delay = max(exc.retry_after_s or 0.0, 0.05)
        await db.schedule_retry(conn, action.action_id, attempts, now + timedelta(seconds=delay), exc.message)
        (log.error if config else log.info)("platform_call_deferred", action_id=str(action.action_id),
                                            delay_s=round(delay, 2), error=exc.message)
        return None
    except TransientPlatformError as exc:
        PLATFORM_CALLS.labels(action.platform, action.action_type, "transient").inc()
        if attempts >= settings.max_attempts:
            return "failed", {"error": f"gave up after {attempts} attempts: {exc.message}"}, attempts
        delay = backoff_delay_s(action.action_id, attempts, base_s=settings.retry_base_s, cap_s=settings.retry_cap_s,
                                retry_after_s=exc.retry_after_s)
        await db.schedule_retry(conn, action.action_id, attempts, now + timedelta(seconds=delay), exc.message)
        log.warning("platform_call_retry", action_id=str(action.action_id), attempt=attempts, delay_s=round(delay, 2),
                    error=exc.message)
        return None
    except PlatformNotConnected as exc:
        PLATFORM_CALLS.labels(action.platform, action.action_type, "not_connected").inc()
        return "rejected", {"error": exc.message}, attempts
    except PermanentPlatformError as exc:
        PLATFORM_CALLS.labels(action.platform, action.action_type, "permanent").inc()
        return "failed", {"error": f"platform refused ({exc.code}): {exc.message}"}, attempts


class TokenProjection:
    """Looks write tokens up by (workspace, ad account) and opens them with the executor's keyring."""

    def __init__(self, pool: asyncpg.Pool, keyring: Keyring, *, platform: str = "meta", ttl_s: float = 60.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._pool = pool
        self._keyring = keyring
        self._platform = platform
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        #: change event id → (opened token, expires at): plaintext only in memory, only briefly
        self._opened: dict[Any, tuple[str, float]] = {}

    def forget(self) -> None:
        """Drop every opened token from memory."""
        self._opened.clear()

    async def token_for(self, workspace_id: str, ad_account_id: str) -> str | None:
        """The workspace's write token for the account, or None (not connected here, removed, or unusable)."""
        async with self._pool.acquire() as conn:
            stored = await db.active_token(conn, workspace_id, self._platform, ad_account_id)
        if stored is None:
            await self._refuse_if_claimed_elsewhere(workspace_id, ad_account_id)
            return None
        if stored.write_token is None:
            return None
        now = self._monotonic()
        hit = self._opened.get(stored.event_id)
        if hit is not None and hit[1] > now:
            return hit[0]
        try:
            token = self._keyring.open(stored.write_token)
        except SealingError as exc:
            # stored after a check that it opened: a key dropped from the keyring since (rotation done too early)
            log.error("connection_token_unusable", workspace_id=workspace_id, connection_id=stored.connection_id,
                      reason=str(exc))
            return None
        self._opened = {k: v for k, v in self._opened.items() if v[1] > now}
        self._opened[stored.event_id] = (token, now + self._ttl_s)
        return token

    async def _refuse_if_claimed_elsewhere(self, workspace_id: str, ad_account_id: str) -> None:
        """An account another workspace has connected is never written with a global (single-tenant) token."""
        async with self._pool.acquire() as conn:
            claimed = await db.claimed_elsewhere(conn, self._platform, ad_account_id, workspace_id)
        if claimed:
            raise PlatformNotConnected(
                f"no active {self._platform} connection for account {account_number(ad_account_id)} in workspace "
                f"{workspace_id or '(none)'}")


def _check_opens(keyring: Keyring, event: Envelope[Any], sealed: SealedToken) -> None:
    """Refuse (DLQ with the reason) a write token this executor cannot open, rather than store a dead one."""
    try:
        keyring.open(sealed)
    except SealingError as exc:
        raise PoisonEvent(event.event_id, f"write_token: {exc}") from None


async def apply_connection_changes(conn: Conn, events: Sequence[Envelope[ConnectionChanged]], *,
                                   keyring: Keyring) -> None:
    """Keep the latest state per connection (older changes arriving late are ignored)."""
    for event in events:
        p: ConnectionChanged = event.payload
        ws = event.workspace_id
        token = p.write_token if p.state == "active" else None
        if token is not None:
            _check_opens(keyring, event, token)
        owner = await db.lock_connection_owner(conn, p.connection_id)
        if owner is not None and owner != ws:
            raise PoisonEvent(event.event_id, f"connection {p.connection_id} belongs to another workspace; a "
                                              "connection never changes workspace")
        if not await db.save_connection_change(conn, ws, p, token, event_id=event.event_id):
            log.info("connection_change_stale", workspace_id=ws, connection_id=p.connection_id)
            continue
        log.info("connection_token_updated", workspace_id=ws, connection_id=p.connection_id, state=p.state,
                 ad_accounts=len(p.ad_account_ids), key_id=None if token is None else token.key_id)
