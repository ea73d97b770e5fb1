"""The rule scheduler: every active rule is evaluated once per slot of its interval (or, for a cron rule, once per
fire time of its expression in each scoped account's time zone), across all instances.

Slots are epoch-aligned on the SERVICE clock (real, simulated or manual): ``slot_start(now, interval)``.
Why the task polls in real time: the clock may be a ``ManualClock`` (tests) whose ``sleep`` moves time
forward, so sleeping on it would make time run away. Every ``rules_scan_interval_s`` REAL seconds the
task asks Postgres which active rules have not been evaluated in their current slot, and evaluates
each in its own transaction, which claims ``(f"rule:{id}", slot_start)`` in ``schedule_claims``: N
instances never double-evaluate a slot, and a crash rolls the claim back with the execution.

Cron rules cannot be selected in SQL (the expression is read in each account's zone): each scan reads every
active cron rule and decides in Python which have a fire time in ``(last_slot or last change, now]``; each
due one is evaluated fire time by fire time, earliest first (one transaction and one claim each, the fire
time being the slot). The fire times come from a cache shared by the rules of one scan.
"""

from __future__ import annotations

import asyncio
import uuid

from allot.rules import workflow
from allot.rules.adapters import postgres as db
from allot.rules.settings import RulesSettings
from allot.runtime.accounts import directory_of
from allot.runtime.deps import settings_of
from allot.runtime.logging import get_logger
from allot.runtime.service import ServiceContext

log = get_logger(__name__)


async def evaluate_now(ctx: ServiceContext, rule_id: uuid.UUID, *, workspace_id: str | None,
                       trigger: str) -> workflow.SlotResult:
    """Evaluate one rule for the slot containing ``ctx.clock.now()`` (no-op if that slot is done); a cron rule for
    its earliest due fire time (``not_due`` when none), or, manually, for every account now."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        result = await workflow.evaluate_slot(conn, ctx.emit, rule_id=rule_id, workspace_id=workspace_id,
                                            now=ctx.clock.now(), instance=ctx.instance_id, trigger=trigger,
                                            zones=directory_of(ctx.extra).zone_for)
    workflow.observe(result)
    if result.emitted:
        ctx.flush()
    return result


async def evaluate_due_rules(ctx: ServiceContext, *, batch: int, max_batches: int = 100) -> int:
    """Evaluate every rule whose slot is due now; returns how many evaluations ran here."""
    ran = 0
    seen: set[uuid.UUID] = set()
    for _ in range(max_batches):
        async with ctx.pool.acquire() as conn:
            due = [r for r in await db.due_rules(conn, ctx.clock.now(), batch) if r.rule_id not in seen]
        if not due:
            break
        for row in due:
            seen.add(row.rule_id)
            try:
                result = await evaluate_now(ctx, row.rule_id, workspace_id=None, trigger="schedule")
            except Exception as exc:  # noqa: BLE001 - one broken rule must not stop the others
                log.error("rule_evaluation_failed", rule_id=str(row.rule_id), error=repr(exc))
                continue
            ran += result.status == "evaluated"
        if len(due) < batch:
            break
    return ran + await evaluate_due_cron_rules(ctx)


#: Fire times of one cron rule evaluated in one scan at most: one per distinct UTC offset of its accounts.
MAX_CRON_FIRES_PER_SCAN = 64


async def evaluate_due_cron_rules(ctx: ServiceContext) -> int:
    """Evaluate every cron rule with a fire time due now, each fire time once; returns how many evaluations ran."""
    now = ctx.clock.now()
    zones = directory_of(ctx.extra).zone_for
    async with ctx.pool.acquire() as conn:
        rows = await db.cron_rules(conn)
    ran = 0
    for row in rows:
        try:
            due = workflow.due_cron_fires(row.cron, row.workspace_id, row.ad_account_ids, last_slot=row.last_slot,
                                          updated_at=row.updated_at, now=now, zones=zones)
        except ValueError as exc:  # a stored expression this version cannot read: one rule must not stop the others
            log.error("rule_cron_unreadable", rule_id=str(row.rule_id), error=repr(exc))
            continue
        for _ in range(min(len(due), MAX_CRON_FIRES_PER_SCAN)):
            try:
                result = await evaluate_now(ctx, row.rule_id, workspace_id=None, trigger="schedule")
            except Exception as exc:  # noqa: BLE001 - one broken rule must not stop the others
                log.error("rule_evaluation_failed", rule_id=str(row.rule_id), error=repr(exc))
                break
            ran += result.status == "evaluated"
            if result.status not in ("evaluated", "already_evaluated"):
                break
    return ran


async def rule_scheduler(ctx: ServiceContext) -> None:
    """Background task: evaluate due rules, then wait ``rules_scan_interval_s`` real seconds; forever."""
    settings = settings_of(ctx, RulesSettings)
    if not settings.rules_scheduler_enabled:
        log.info("rule_scheduler_disabled")
        return
    while True:
        await evaluate_due_rules(ctx, batch=settings.rules_scan_batch)
        await asyncio.sleep(settings.rules_scan_interval_s)
