"""Rule evaluation against this service's tables: load facts → domain.evaluate_rule → record + emit.

One rule evaluation per (rule, slot) runs inside ONE transaction that (1) locks the rule row, (2) claims
``schedule_claims(f"rule:{id}", slot_start)``, (3) evaluates, (4) writes the execution, its matched
entities and the sent actions, and (5) writes the ``allocation.requested`` change set to the outbox. A
crash anywhere rolls all of it back (the slot can be evaluated again); a committed slot can never be
evaluated or emitted twice, by this instance or another, on restart or replay.

The slot of an interval rule is its epoch-aligned interval; the slot of a cron rule is a fire time (UTC
instant) of its expression read in the scoped accounts' time zones (see :func:`evaluate_cron`): one
execution per fire time, covering the accounts whose local schedule fires at that instant.

History facts fed to the domain's protections (see ``domain.protections``):

- cooldown: per entity, when THIS rule last SENT an action that is not known to have failed (a pending
  action counts: the change is on its way; a guardrail block counts: a policy refusal does not lift in
  minutes, so re-asking every slot would only repeat it);
- max executions per day: this rule's executions of the current UTC day that issued an action;
- pending: actions on the entity (any rule of the workspace) sent < 30 min ago without an outcome;
- failure backoff: executor outcomes of actions on the entity (any rule of the workspace), last 24 h;
- circuit breaker: executor outcomes of this rule's actions in the last 24 h, counted only from the
  rule's last manual (re-)activation. Guardrail blocks resolve "pending" but are neither successes nor
  errors (a policy refusal is not a platform error).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Final

from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.payloads import (
    AllocationRequested,
    BudgetAction,
    GuardrailApproved,
    NotificationRequested,
    NotifiedEntity,
)
from allot.contracts.registry import TOPICS
from allot.rules.adapters import postgres as db
from allot.rules.domain import (
    ActionOutcome,
    Condition,
    ConditionGroup,
    DailyCounters,
    Entity,
    MatchedEntity,
    PlannedAction,
    PlatformReach,
    RuleDefinition,
    RuleEvaluation,
    RuleHistory,
    circuit_state,
    evaluate_rule,
    slot_start,
)
from allot.rules.domain.cron import CronFire, due_fires
from allot.rules.domain.entities import PLATFORMS
from allot.rules.domain.protections import (
    CIRCUIT_BREAKER_WINDOW,
    FAILURE_BACKOFF_WINDOW,
    PENDING_ACTION_WINDOW,
    CircuitState,
    dropped_error,
)
from allot.rules.domain.stored import AuditEntry, FireStats, StoredExecution, StoredRule
from allot.rules.domain.timeranges import MAX_LOOKBACK_DAYS
from allot.rules.metrics import (
    RULE_AUTO_PAUSES,
    RULE_EVALUATIONS,
    RULE_FIRES,
    RULE_NOTIFY_ONLY,
    RULE_OUTCOMES,
    RULE_SKIPS,
)
from allot.runtime.db import Conn
from allot.runtime.logging import get_logger
from allot.runtime.outbox import add_events
from allot.runtime.schedule import claim_slot

log = get_logger(__name__)

SERVICE: Final = "rules"
MAX_ACTIONS_PER_CHANGE_SET: Final = 500
MAX_STORED_SKIPS: Final = 1000
SYSTEM_ACTOR: Final = "system"
_ACTION_TYPES: Final = {"increase_budget_pct": "set_budget", "decrease_budget_pct": "set_budget", "pause": "pause",
                        "activate": "activate", "relaunch": "relaunch"}
#: success of a final outcome; ``expired`` (the approval ran out before the executor got it, nothing was sent)
#: is neither: it clears the pending action so the rule may act again, and counts in no breaker or backoff.
_SUCCESS: Final = {"succeeded": True, "already_applied": True, "failed": False, "conflict": False, "rejected": False}

Emit = Callable[..., Awaitable[None]]


# ---------------------------------------------------------------- views


def rule_view(row: StoredRule) -> dict[str, Any]:
    """The API shape of a rule: its definition fields plus status and bookkeeping."""
    d = row.definition
    return {
        "id": str(row.rule_id),
        "workspace_id": row.workspace_id,
        "name": row.name,
        "status": row.status,
        "scope": d["scope"],
        "targets": d["targets"],
        "conditions": d["conditions"],
        "actions": d["actions"],
        "schedule": d["schedule"],
        "protections": d["protections"],
        "template": row.template,
        "version": row.version,
        "created_by": row.created_by,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "last_evaluated_at": row.last_evaluated_at,
        "last_slot": row.last_slot,
        "last_error": row.last_error,
        "auto_pause_reason": row.auto_pause_reason,
        "auto_paused_at": row.auto_paused_at,
    }


def fires_day_start(rule: StoredRule, now: datetime, zones: ZoneLookup) -> datetime:
    """When the rule's today began (what ``fires_today`` counts from): 00:00 in the time zone of its scoped ad
    accounts (the account directory's) when they all share one, else 00:00 UTC."""
    ids = rule.definition.get("scope", {}).get("ad_account_ids") or []
    found = {account_zone(zones, rule.workspace_id, str(a)) for a in ids}
    zone = found.pop() if len(found) == 1 else UTC
    local = now.astimezone(zone)
    return datetime.combine(local.date(), datetime.min.time(), zone).astimezone(UTC)


def with_fires(view: dict[str, Any], stats: FireStats | None) -> dict[str, Any]:
    """A rule's API shape with its last fire and fires today (none when ``stats`` is None)."""
    return {**view, "last_fired_at": stats.last_fired_at if stats else None,
            "fires_today": stats.fires_today if stats else 0}


async def rule_views_with_fires(conn: Conn, rules: Sequence[StoredRule], now: datetime,
                                zones: ZoneLookup) -> list[dict[str, Any]]:
    """``rule_view`` of each rule with ``last_fired_at`` and ``fires_today``, read in one query for them all."""
    stats = await db.fire_stats(conn, [(r.rule_id, fires_day_start(r, now, zones)) for r in rules])
    return [with_fires(rule_view(r), stats.get(r.rule_id)) for r in rules]


def audit_view(row: AuditEntry) -> dict[str, Any]:
    return {"id": row.id, "rule_id": str(row.rule_id) if row.rule_id else None, "action": row.action,
            "actor": row.actor, "at": row.at, "before": row.before, "after": row.after, "detail": row.detail}


def entity_outcome(notify_only: bool, outcomes: Sequence[str | None]) -> str:
    """One word for what happened to a matched entity: notified | pending | succeeded | blocked | failed | none."""
    if notify_only:
        return "notified"
    if not outcomes:
        return "none"
    if any(o is None for o in outcomes):
        return "pending"
    if all(o in ("succeeded", "already_applied") for o in outcomes):
        return "succeeded"
    if any(o in ("blocked", "observed") for o in outcomes):
        return "blocked"
    return "failed"


async def execution_views(conn: Conn, executions: Sequence[StoredExecution]) -> list[dict[str, Any]]:
    ids = [e.execution_id for e in executions]
    ents = await db.execution_entities(conn, ids)
    acts = await db.execution_actions(conn, ids)
    actions_by: dict[tuple[uuid.UUID, str], list[dict[str, Any]]] = defaultdict(list)
    for a in acts:
        actions_by[(a.execution_id, a.entity_id)].append({
            "action_id": str(a.action_id), "request_id": str(a.request_id) if a.request_id else None,
            "action_type": a.action_type, "from_cents": a.from_cents, "to_cents": a.to_cents,
            "from_status": a.from_status, "to_status": a.to_status, "sent_at": a.sent_at,
            "outcome": a.outcome or "pending", "outcome_at": a.outcome_at, "error": a.error})
    ents_by: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    for e in ents:
        actions = actions_by.get((e.execution_id, e.entity_id), [])
        ents_by[e.execution_id].append({
            "entity_id": e.entity_id, "platform": e.platform, "ad_account_id": e.ad_account_id,
            "entity_level": e.entity_level, "snapshot": e.snapshot, "planned": e.planned,
            "skipped_actions": e.skipped_actions,
            "outcome": entity_outcome(e.notify_only, [None if a["outcome"] == "pending" else a["outcome"]
                                                      for a in actions]),
            "actions": actions})
    out = []
    for x in executions:
        entities = ents_by.get(x.execution_id, [])
        counts: dict[str, int] = defaultdict(int)
        for entity in entities:
            counts[entity["outcome"]] += 1
        out.append({
            "execution_id": str(x.execution_id), "rule_id": str(x.rule_id), "slot_start": x.slot_start,
            "started_at": x.started_at, "trigger": x.trigger, "result": x.result,
            "entities_evaluated": x.entities_evaluated, "matched": x.matched, "skipped": x.skipped,
            "skip_counts": x.skip_counts, "actions_count": x.actions_count,
            "request_ids": [str(r) for r in x.request_ids], "auto_pause_reason": x.auto_pause_reason,
            "outcome_counts": dict(counts), "entities": entities, "skipped_entities": x.skipped_entities})
    return out


# ---------------------------------------------------------------- facts


#: (workspace_id, platform, ad_account_id) → the account's time zone (``AccountDirectory.zone_for``).
ZoneLookup = Callable[[str, str, str], tzinfo]


def _utc(workspace_id: str, platform: str, ad_account_id: str) -> tzinfo:
    return UTC


def _is_utc(zone: tzinfo) -> bool:
    return zone is UTC or getattr(zone, "key", None) == "UTC"


def account_zone(zones: ZoneLookup, workspace_id: str, ad_account_id: str) -> tzinfo:
    """The account's time zone on whichever platform profiled it (an ad account id belongs to one platform), UTC
    when none has: what a cron rule's schedule is read in, the same for the scheduler's scan and the evaluation."""
    for platform in PLATFORMS:
        zone = zones(workspace_id, platform, ad_account_id)
        if not _is_utc(zone):
            return zone
    return UTC


async def load_entities(conn: Conn, workspace_id: str, rule: RuleDefinition,
                        now: datetime, zones: ZoneLookup = _utc, only: set[str] | None = None) -> list[Entity]:
    """Candidate entities of the rule's accounts and level with their daily buckets, the number of interval
    reports in each, and the platform's latest range reach (the domain filters scope and decides whether that
    range reach is current).

    Buckets are keyed by the account's local day (``zones``). Deleted entities are left out unless the
    scope's ``status_in`` asks for them."""
    statuses = rule.scope.entity_filter.status_in or ()
    rows = await db.scope_entities(conn, workspace_id, rule.scope.ad_account_ids, rule.scope.entity_level,
                                   "deleted" in statuses, None if only is None else sorted(only))
    today = now.date()  # every local "today" is within a day of the UTC one
    ids = [r.entity_id for r in rows]
    buckets = await db.daily_buckets(conn, workspace_id, ids,
                                     today - timedelta(days=MAX_LOOKBACK_DAYS + 1), today + timedelta(days=1))
    by_entity: dict[str, dict[date, DailyCounters]] = defaultdict(dict)
    reports: dict[str, dict[date, int]] = defaultdict(dict)
    for b in buckets:
        by_entity[b.entity_id][b.day] = b.counters
        reports[b.entity_id][b.day] = b.reports
    reach = {r.entity_id: PlatformReach(r.through, r.by_range()) for r in await db.range_reach(conn, workspace_id, ids)}
    return [
        Entity(entity_id=r.entity_id, entity_level=r.entity_type, platform=r.platform, ad_account_id=r.ad_account_id,
               name=r.name, status=r.status, currency=r.currency, daily_budget_cents=r.daily_budget_cents,
               buckets=by_entity.get(r.entity_id, {}), range_reach=reach.get(r.entity_id),
               zone=zones(workspace_id, r.platform, r.ad_account_id), reports=reports.get(r.entity_id, {}))
        for r in rows
    ]


async def load_rule_outcomes(conn: Conn, rule: StoredRule, now: datetime) -> list[ActionOutcome]:
    since = now - CIRCUIT_BREAKER_WINDOW
    reset = rule.breaker_reset_at
    if reset is not None and reset - timedelta(microseconds=1) > since:
        since = reset - timedelta(microseconds=1)
    rows = await db.rule_outcomes(conn, rule.rule_id, since)
    return [ActionOutcome(r.outcome_at, r.success, r.error) for r in rows]


async def load_history(conn: Conn, workspace_id: str, rule: StoredRule | None, definition: RuleDefinition,
                       entity_ids: Sequence[str], now: datetime) -> RuleHistory:
    """The protections' facts from this service's tables (``rule`` None = a definition being previewed)."""
    pending: dict[str, list[datetime]] = defaultdict(list)
    for p in await db.pending_actions(conn, workspace_id, entity_ids, now - PENDING_ACTION_WINDOW):
        pending[p.entity_id].append(p.sent_at)
    outcomes: dict[str, list[ActionOutcome]] = defaultdict(list)
    for o in await db.entity_outcomes(conn, workspace_id, entity_ids, now - FAILURE_BACKOFF_WINDOW):
        outcomes[o.entity_id].append(ActionOutcome(o.outcome_at, o.success, o.error))
    if rule is None:
        return RuleHistory(pending_actions_since=pending, entity_outcomes=outcomes)
    cooldown = timedelta(minutes=max(definition.protections.cooldown_minutes, 1))
    return RuleHistory(
        execution_started_at=await db.acting_executions_since(conn, rule.rule_id, db.day_start(now)),
        last_acted_at=await db.last_acted(conn, rule.rule_id, now - cooldown),
        pending_actions_since=pending,
        entity_outcomes=outcomes,
        rule_outcomes=await load_rule_outcomes(conn, rule, now),
    )


# ---------------------------------------------------------------- change sets


def action_id_for(rule_id: uuid.UUID, slot_iso: str, entity_id: str, action_type: str) -> uuid.UUID:
    """Deterministic action id: uuid5(rule_id, "<slot>/<entity>/<action>")."""
    return uuid.uuid5(rule_id, f"{slot_iso}/{entity_id}/{action_type}")


def _reason(name: str, m: MatchedEntity, planned: PlannedAction) -> str:
    values = ", ".join(f"{k}={'n/a' if v is None else format(v, '.4g')}" for k, v in m.snapshot.items())
    text = f"rule '{name}': {values}"
    if planned.requested_pct is not None:
        text += f"; {planned.type} {planned.requested_pct:g}% → applied {planned.applied_pct:g}%"
        if planned.clamps:
            text += f" (clamped: {', '.join(planned.clamps)})"
    return text[:1000]


def budget_actions(rule_id: uuid.UUID, name: str, slot_iso: str, evaluation: RuleEvaluation,
                   entities: dict[str, Entity]) -> list[tuple[MatchedEntity, PlannedAction, BudgetAction]]:
    """The platform-changing actions of an evaluation (notify_only has none), absolute and with stable ids."""
    out = []
    for m in evaluation.matched:
        entity = entities[m.entity_id]
        for planned in m.actions:
            action_type = _ACTION_TYPES.get(planned.type)
            if action_type is None:
                continue
            out.append((m, planned, BudgetAction(
                action_id=action_id_for(rule_id, slot_iso, m.entity_id, planned.type),
                platform=entity.platform,  # type: ignore[arg-type]
                ad_account_id=entity.ad_account_id, entity_type=entity.entity_level, entity_id=entity.entity_id,
                action_type=action_type,  # type: ignore[arg-type]
                currency=planned.currency or entity.currency,
                from_cents=planned.from_cents if action_type == "set_budget" else None,
                to_cents=planned.to_cents if action_type == "set_budget" else None,
                reason=_reason(name, m, planned),
            )))
    return out


def change_set_envelopes(*, rule_id: uuid.UUID, workspace_id: str, slot_iso: str, actions: Sequence[BudgetAction],
                         manual: bool, now: datetime,
                         change_pool_member_budgets: bool = False) -> list[Envelope[AllocationRequested]]:
    """One allocation.requested per fire (split in parts of 500 actions only past the contract's limit)."""
    envelopes = []
    for part, start in enumerate(range(0, len(actions), MAX_ACTIONS_PER_CHANGE_SET)):
        suffix = "" if part == 0 else f"/part{part}"
        request = AllocationRequested(
            request_id=uuid.uuid5(rule_id, f"request/{slot_iso}{suffix}"), source="rule", source_id=str(rule_id),
            idempotency_key=f"{rule_id}/{slot_iso}{suffix}", manual=manual,
            actions=list(actions[start:start + MAX_ACTIONS_PER_CHANGE_SET]), requested_by=SERVICE,
            change_pool_member_budgets=change_pool_member_budgets)
        envelopes.append(new_envelope(
            event_type="allocation.requested", schema_version=TOPICS["allocation.requested"].schema_version,
            payload=request, producer=SERVICE, workspace_id=workspace_id, occurred_at=now,
            step=f"rule/{rule_id}/{slot_iso}{suffix}"))
    return envelopes


_OPERATOR_SYMBOLS: Final = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "=", "neq": "!="}


def condition_text(group: ConditionGroup, targets: dict[str, float]) -> str:
    """``budget_spent_pct@today > 80 AND (...)``: the rule's conditions with thresholds resolved."""
    def value(t: Any) -> str:
        if isinstance(t, float | int):
            return f"{t:g}"
        try:
            return f"{t.resolve(targets):g} ({t.target} x {t.multiplier:g})"
        except KeyError:
            return f"{t.target} x {t.multiplier:g}"

    parts = []
    for node in group.conditions:
        if isinstance(node, Condition):
            op = _OPERATOR_SYMBOLS.get(node.operator, node.operator)
            parts.append(f"{node.key} {op} {' and '.join(value(t) for t in node.thresholds())}")
        else:
            parts.append(f"({condition_text(node, targets)})")
    return f" {group.logic.upper()} ".join(parts)


def notify_envelope(*, rule_id: uuid.UUID, workspace_id: str, slot_iso: str, definition: Any,
                    notify: Sequence[MatchedEntity], entities: dict[str, Entity],
                    now: datetime) -> Envelope[NotificationRequested]:
    """One notification.requested per notify_only fire, listing every matched entity with its budget and values."""
    listed = []
    for m in notify[:200]:
        e = entities.get(m.entity_id)
        values = ", ".join(f"{k}={'n/a' if v is None else format(v, '.4g')}" for k, v in m.snapshot.items())
        listed.append(NotifiedEntity(
            entity_type=m.entity_level,  # type: ignore[arg-type]  # campaign | adset | ad
            entity_id=m.entity_id[:128], name=(e.name if e else "")[:200],
            amount_cents=e.daily_budget_cents if e and e.currency else None,
            currency=e.currency if e and e.currency and e.daily_budget_cents is not None else None,
            detail=(f"daily budget; {values}" if e and e.daily_budget_cents is not None else values)[:300]))
    currencies = {e.currency for e in listed if e.currency}
    noun = "entity" if len(notify) == 1 else "entities"
    n = NotificationRequested(
        notification_id=uuid.uuid5(rule_id, f"notify/{slot_iso}"), workspace_id=workspace_id,
        kind="rule_notify_only", severity="warning",
        title=f"Rule '{definition.name}' matched {len(notify)} {noun}"[:200],
        summary="The rule's conditions hold; it takes no action (notify only).",
        condition=condition_text(definition.conditions, dict(definition.targets))[:500],
        facts={"matched": len(notify), "slot_start": slot_iso, **{k: v for k, v in definition.targets.items()}},
        currency=next(iter(currencies)) if len(currencies) == 1 else None, entities=listed, source=SERVICE,
        source_id=str(rule_id), console_path=f"/rules/{rule_id}", occurred_at=now,
        dedupe_key=(f"rule_notify_only/{rule_id}/" + ",".join(sorted(m.entity_id for m in notify)))[:200])
    topic = "notification.requested"
    return new_envelope(event_type=topic, schema_version=TOPICS[topic].schema_version, payload=n, producer=SERVICE,
                        workspace_id=workspace_id, occurred_at=now,
                        step=f"rule/{rule_id}/{slot_iso}/notify")


# ---------------------------------------------------------------- one slot


#: The trigger name of evaluations started by arriving metrics (schedule.mode "trigger").
TRIGGER = "metric"


@dataclass
class SlotResult:
    """What one attempt to evaluate a rule for a slot did (metrics are counted after commit)."""

    status: str  # evaluated | already_evaluated | not_due (a cron rule between fire times) | not_active | not_found
    rule_id: uuid.UUID
    slot: datetime | None = None
    execution_id: uuid.UUID | None = None
    result: str | None = None  # requested | notified | no_match | auto_paused
    trigger: str = "schedule"
    emitted: int = 0
    notified: int = 0
    skip_counts: dict[str, int] = field(default_factory=dict)


def circuit_reason(state: CircuitState) -> str:
    return (f"circuit breaker: error rate {state.error_rate:.1%} with {state.errors} errors "
            f"in {state.total} actions in the last 24 h")


async def evaluate_slot(conn: Conn, emit: Emit, *, rule_id: uuid.UUID, workspace_id: str | None,
                        now: datetime, instance: str, trigger: str, zones: ZoneLookup = _utc) -> SlotResult:
    """Evaluate ``rule_id`` for the slot containing ``now`` at most once (call inside a transaction)."""
    rule = await db.get_rule(conn, workspace_id, rule_id, for_update=True)
    if rule is None:
        return SlotResult("not_found", rule_id, trigger=trigger)
    if rule.status != "active":
        return SlotResult("not_active", rule_id, trigger=trigger)
    if rule.definition.get("schedule", {}).get("mode") == "cron":
        return await evaluate_cron(conn, emit, rule, now=now, instance=instance, trigger=trigger, zones=zones)
    slot = slot_start(now, rule.interval_minutes)
    execution_id = uuid.uuid5(rule_id, f"execution/{slot.isoformat()}")
    if not await claim_slot(conn, f"rule:{rule_id}", slot, instance):
        return SlotResult("already_evaluated", rule_id, slot, execution_id, trigger=trigger)
    return await _evaluate(conn, emit, rule, slot, now=now, trigger=trigger, zones=zones)


def cron_since(last_slot: datetime | None, updated_at: datetime) -> datetime:
    """Where a cron rule's due fire times start (exclusive): its last fire time evaluated, or its last change
    (activation, edit) when later, so that neither activating nor editing a rule fires a time already past."""
    return updated_at if last_slot is None or updated_at > last_slot else last_slot


def due_cron_fires(cron: str, workspace_id: str, ad_account_ids: Sequence[str], *, last_slot: datetime | None,
                   updated_at: datetime, now: datetime, zones: ZoneLookup) -> tuple[CronFire, ...]:
    """The fire times of a cron rule due at ``now`` (earliest first), each with the accounts it is due for."""
    account_zones = {a: account_zone(zones, workspace_id, a) for a in ad_account_ids}
    return due_fires(cron, account_zones, since=cron_since(last_slot, updated_at), now=now)


async def evaluate_cron(conn: Conn, emit: Emit, rule: StoredRule, *, now: datetime, instance: str,
                        trigger: str, zones: ZoneLookup = _utc) -> SlotResult:
    """Evaluate a (locked, active) cron rule for its earliest due fire time, at most once per fire time.

    The fire time is the slot: claimed in ``schedule_claims`` like an interval slot, the execution's
    ``slot_start``, and ``last_slot`` afterwards (fire times at or before it are done). Only the accounts whose
    local schedule fires at that instant are evaluated, and their dayparts are read at the fire time. Nothing
    due: ``not_due``. A manual run (``evaluate-now``) evaluates every scoped account now, as an execution of
    its own (slot = now), and leaves the next fire time alone."""
    rule_id = rule.rule_id
    if trigger == "manual":
        execution_id = uuid.uuid5(rule_id, f"execution/{now.isoformat()}")
        if not await claim_slot(conn, f"rule:{rule_id}", now, instance):
            return SlotResult("already_evaluated", rule_id, now, execution_id, trigger=trigger)
        return await _evaluate(conn, emit, rule, now, now=now, trigger=trigger, zones=zones, mark_slot=False)
    definition = RuleDefinition.model_validate(rule.definition)
    assert definition.schedule.cron is not None  # validated: mode cron has an expression
    fires = due_cron_fires(definition.schedule.cron, rule.workspace_id, definition.scope.ad_account_ids,
                           last_slot=rule.last_slot, updated_at=rule.updated_at, now=now, zones=zones)
    if not fires:
        return SlotResult("not_due", rule_id, trigger=trigger)
    fire = fires[0]
    execution_id = uuid.uuid5(rule_id, f"execution/{fire.at.isoformat()}")
    if not await claim_slot(conn, f"rule:{rule_id}", fire.at, instance):
        # claimed by a manual run that happened at this very instant: that run covered the fire time
        await db.advance_slot(conn, rule_id, fire.at)
        return SlotResult("already_evaluated", rule_id, fire.at, execution_id, trigger=trigger)
    return await _evaluate(conn, emit, rule, fire.at, now=now, trigger=trigger, zones=zones,
                           accounts=fire.account_ids, schedule_at=fire.at)


async def evaluate_triggered(conn: Conn, emit: Emit, *, rule_id: uuid.UUID, entity_ids: Sequence[str],
                             now: datetime, zones: ZoneLookup = _utc) -> SlotResult:
    """Evaluate a trigger-mode rule for the entities whose metrics just arrived (the consumer's transaction).

    Every protection applies as on a schedule (cooldown, max per day, pending, failure backoff, circuit
    breaker). Each evaluation is an execution of its own, stamped ``now`` (one microsecond after the rule's
    previous one when the clock has not moved: executions are unique per rule and time)."""
    rule = await db.get_rule(conn, None, rule_id, for_update=True)
    if rule is None:
        return SlotResult("not_found", rule_id, trigger=TRIGGER)
    if rule.status != "active":
        return SlotResult("not_active", rule_id, trigger=TRIGGER)
    last = rule.last_slot
    slot = now if last is None or now > last else last + timedelta(microseconds=1)
    return await _evaluate(conn, emit, rule, slot, now=now, trigger=TRIGGER, zones=zones, only=set(entity_ids))


async def run_triggers(conn: Conn, emit: Emit, reported: Sequence[tuple[str, str, str]], *,
                       now: datetime, zones: ZoneLookup = _utc) -> list[SlotResult]:
    """Trigger-mode rules of the accounts in ``reported`` ((workspace, ad account, entity) of new reports), each
    evaluated for its reported entities; rules in id order, so concurrent batches lock them in one order."""
    by_ws: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for ws, account, entity_id in reported:
        by_ws[ws][account].add(entity_id)
    results = []
    for ws, accounts in sorted(by_ws.items()):
        for row in await db.trigger_rules(conn, ws, sorted(accounts)):
            scope = RuleDefinition.model_validate(row.definition).scope.ad_account_ids
            entity_ids = sorted({e for a in scope for e in accounts.get(a, ())})
            if entity_ids:
                results.append(await evaluate_triggered(conn, emit, rule_id=row.rule_id, entity_ids=entity_ids,
                                                        now=now, zones=zones))
    return results


async def _evaluate(conn: Conn, emit: Emit, rule: StoredRule, slot: datetime, *, now: datetime, trigger: str,
                    zones: ZoneLookup, only: set[str] | None = None, accounts: Collection[str] | None = None,
                    schedule_at: datetime | None = None, mark_slot: bool = True) -> SlotResult:
    """Evaluate the (locked, active) rule as of ``now`` for execution ``slot``; record and emit (see the module).

    ``only`` / ``accounts`` narrow the evaluation to these entities / ad accounts of the scope; ``schedule_at``
    is when the dayparts are read (default now); ``mark_slot`` False leaves the rule's ``last_slot`` as it is."""
    rule_id = rule.rule_id
    slot_iso = slot.isoformat()
    execution_id = uuid.uuid5(rule_id, f"execution/{slot_iso}")
    ws = rule.workspace_id
    definition = RuleDefinition.model_validate(rule.definition)
    loaded = definition
    if accounts is not None:
        wanted = set(accounts)
        narrowed = tuple(a for a in definition.scope.ad_account_ids if a in wanted)
        loaded = definition.model_copy(update={"scope": definition.scope.model_copy(
            update={"ad_account_ids": narrowed})})
    entities = await load_entities(conn, ws, loaded, now, zones, only)
    history = await load_history(conn, ws, rule, definition, [e.entity_id for e in entities], now)
    evaluation = evaluate_rule(definition, entities, history, now, schedule_at=schedule_at)
    by_id = {e.entity_id: e for e in entities}

    auto_pause_reason = None
    if evaluation.auto_pause is not None:
        auto_pause_reason = evaluation.auto_pause.auto_pause_reason
        await pause_by_breaker(conn, rule, auto_pause_reason, evaluation.auto_pause.last_error, now,
                               detail={"slot_start": slot_iso, "trigger": trigger})

    planned = budget_actions(rule_id, definition.name, slot_iso, evaluation, by_id)
    envelopes = change_set_envelopes(rule_id=rule_id, workspace_id=ws, slot_iso=slot_iso,
                                     actions=[b for _, _, b in planned], manual=trigger == "manual", now=now,
                                     change_pool_member_budgets=definition.protections.change_pool_member_budgets)
    request_of: dict[uuid.UUID, uuid.UUID] = {}
    for env in envelopes:
        for a in env.payload.actions:
            request_of[a.action_id] = env.payload.request_id
    notify = [m for m in evaluation.matched if all(p.type == "notify_only" for p in m.actions)]
    if auto_pause_reason:
        result = "auto_paused"
    elif planned:
        result = "requested"
    elif notify:
        result = "notified"
    else:
        result = "no_match"
    skipped = [{"entity_id": s.entity_id, "reason": s.reason.value, "detail": s.detail}
               for s in evaluation.skipped[:MAX_STORED_SKIPS]]
    await db.insert_execution(conn, {
        "execution_id": execution_id, "rule_id": rule_id, "workspace_id": ws, "slot_start": slot,
        "started_at": now, "trigger": trigger, "result": result,
        "entities_evaluated": evaluation.entities_evaluated, "matched": len(evaluation.matched),
        "skipped": len(evaluation.skipped), "skip_counts": evaluation.skip_counts(), "skipped_entities": skipped,
        "actions_count": len(planned), "request_ids": [e.payload.request_id for e in envelopes],
        "acted": bool(planned), "auto_pause_reason": auto_pause_reason})
    await db.insert_execution_entities(conn, [
        (execution_id, m.entity_id, rule_id, m.platform, m.ad_account_id, m.entity_level, dict(m.snapshot),
         [asdict(p) for p in m.actions], [asdict(s) for s in m.skipped_actions], m in notify)
        for m in evaluation.matched])
    await db.insert_sent_actions(conn, [
        (b.action_id, rule_id, ws, execution_id, request_of[b.action_id], b.entity_id, b.platform, b.action_type,
         b.from_cents, b.to_cents, p.from_status, p.to_status, now)
        for _, p, b in planned])
    if envelopes:
        await emit(conn, *envelopes)
    if notify:
        await emit(conn, notify_envelope(rule_id=rule_id, workspace_id=ws, slot_iso=slot_iso, definition=definition,
                                         notify=notify, entities=by_id, now=now))
        log.info("rule_notify_only", rule_id=str(rule_id), slot_start=slot_iso,
                 entity_ids=[m.entity_id for m in notify][:50], matched=len(notify))
    await db.mark_evaluated(conn, rule_id, slot if mark_slot else None, now)
    log.info("rule_evaluated", rule_id=str(rule_id), slot_start=slot_iso, trigger=trigger, result=result,
             evaluated=evaluation.entities_evaluated, matched=len(evaluation.matched),
             skipped=len(evaluation.skipped), actions=len(planned))
    return SlotResult("evaluated", rule_id, slot, execution_id, result, trigger, emitted=len(planned),
                      notified=len(notify), skip_counts=evaluation.skip_counts())


def observe(result: SlotResult) -> None:
    """Count a committed evaluation in Prometheus."""
    if result.status != "evaluated" or result.result is None:
        return
    RULE_EVALUATIONS.labels(SERVICE, result.trigger, result.result).inc()
    if result.result == "requested":
        RULE_FIRES.labels(SERVICE, "requested").inc()
    elif result.result == "notified":
        RULE_FIRES.labels(SERVICE, "notify_only").inc()
        RULE_NOTIFY_ONLY.labels(SERVICE).inc(result.notified)
    elif result.result == "auto_paused":
        RULE_FIRES.labels(SERVICE, "auto_paused").inc()
    for reason, n in result.skip_counts.items():
        RULE_SKIPS.labels(SERVICE, reason).inc(n)


def auto_pause_envelope(rule: StoredRule, reason: str, last_error: str | None, now: datetime,
                        detail: dict[str, Any]) -> Envelope[NotificationRequested]:
    """The notification.requested telling the workspace a rule was paused by its circuit breaker."""
    rule_id = rule.rule_id
    facts = {k: v for k, v in detail.items() if isinstance(v, int | float | str) or v is None}
    n = NotificationRequested(
        notification_id=uuid.uuid5(rule_id, f"auto-pause/{now.isoformat()}"), workspace_id=rule.workspace_id,
        kind="rule_auto_paused", severity="critical", title=f"Rule '{rule.name}' was paused automatically"[:200],
        summary=(f"Its actions failed too often on the platform; it stays paused until someone activates it again. "
                 f"Last error: {last_error or 'n/a'}")[:2000],
        condition=reason[:500], facts=dict(list(facts.items())[:50]),
        entities=[NotifiedEntity(entity_type="rule", entity_id=str(rule_id), name=str(rule.name)[:200],
                                 detail=(last_error or "")[:300])],
        source=SERVICE, source_id=str(rule_id), dedupe_key=f"rule_auto_paused/{rule_id}",
        console_path=f"/rules/{rule_id}", occurred_at=now)
    topic = "notification.requested"
    return new_envelope(event_type=topic, schema_version=TOPICS[topic].schema_version, payload=n, producer=SERVICE,
                        workspace_id=rule.workspace_id, occurred_at=now, event_id=n.notification_id)


async def pause_by_breaker(conn: Conn, rule: StoredRule, reason: str, last_error: str | None, now: datetime,
                           detail: dict[str, Any] | None = None) -> Any:
    """Set the rule back to paused with last_error + auto_pause_reason, audited as ``auto_pause`` by ``system``."""
    updated = await db.auto_pause(conn, rule.rule_id, reason=reason, last_error=last_error, now=now)
    await db.audit(conn, workspace_id=rule.workspace_id, rule_id=rule.rule_id, action="auto_pause",
                   actor=SYSTEM_ACTOR, at=now, before=rule_view(rule), after=rule_view(updated),
                   detail={"reason": reason, "last_error": last_error, **(detail or {})})
    await add_events(conn, [auto_pause_envelope(rule, reason, last_error, now, detail or {})])
    RULE_AUTO_PAUSES.labels(SERVICE).inc()
    log.warning("rule_auto_paused", rule_id=str(rule.rule_id), reason=reason, last_error=last_error)
    return updated


async def trip_breakers(conn: Conn, rule_ids: Sequence[uuid.UUID], now: datetime) -> list[uuid.UUID]:
    """After new outcomes: auto-pause each active rule whose circuit breaker trips now."""
    paused = []
    for rule_id in rule_ids:
        rule = await db.get_rule(conn, None, rule_id, for_update=True)
        if rule is None or rule.status != "active":
            continue
        state = circuit_state(await load_rule_outcomes(conn, rule, now), now)
        if state.tripped:
            await pause_by_breaker(conn, rule, circuit_reason(state), state.last_error, now,
                                   detail={"errors": state.errors, "total": state.total})
            paused.append(rule_id)
    return paused


def outcome_success(outcome: str) -> bool | None:
    return _SUCCESS.get(outcome)


async def record_left_out(conn: Conn, approvals: Sequence[tuple[GuardrailApproved, str, datetime]]) -> None:
    """The actions of rules' change sets the guardrails left out of their approvals ((approval, workspace_id,
    approved at) each): ``blocked``, with the note that names each one's entity. One read and one write per batch."""
    by_request = {a.request_id: (a, at) for a, _, at in approvals}
    pending = await db.pending_of_requests(conn, [(a.request_id, ws) for a, ws, _ in approvals])
    dropped = []
    for request_id, action_id, entity in pending:
        approval, at = by_request[request_id]
        if all(action_id != kept.action_id for kept in approval.actions):
            dropped.append((action_id, at, dropped_error(entity, approval.trimmed)))
    if dropped:
        RULE_OUTCOMES.labels(SERVICE, "blocked").inc(len(dropped))
        await db.record_dropped(conn, dropped)


# ---------------------------------------------------------------- preview


def _planned_view(p: PlannedAction) -> dict[str, Any]:
    return {k: v for k, v in asdict(p).items() if v is not None and v != ()}


def with_verdicts(result: dict[str, Any], verdict: dict[str, Any]) -> dict[str, Any]:
    """A preview with the guardrails' dry-run answer: ``guardrails`` at the top (status, check, reason, notes; or
    ``available: false`` and why) and, on every matched entity, the verdict line of each of its proposed actions."""
    lines = verdict.get("actions") or []
    by_entity: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_entity.setdefault(line["entity_id"], []).append(line)
    matched = [{**m, "guardrails": by_entity.get(m["entity_id"], [])} for m in result["matched"]]
    return {**result, "matched": matched, "guardrails": verdict}


#: Rule id of the actions a preview of an unsaved rule proposes (ids must exist; nothing is sent).
PREVIEW_RULE_ID = uuid.UUID(int=0)


async def preview(conn: Conn, workspace_id: str, definition: RuleDefinition, rule: StoredRule | None,
                  now: datetime, zones: ZoneLookup = _utc) -> dict[str, Any]:
    """Run the rule against current data without acting or recording anything."""
    entities = await load_entities(conn, workspace_id, definition, now, zones)
    history = await load_history(conn, workspace_id, rule, definition, [e.entity_id for e in entities], now)
    ev = evaluate_rule(definition, entities, history, now, snapshot_unmatched=True)
    names = {e.entity_id: e.name for e in entities}
    rule_id = rule.rule_id if rule is not None else PREVIEW_RULE_ID
    proposed = budget_actions(rule_id, definition.name, ev.slot_start.isoformat(), ev,
                              {e.entity_id: e for e in entities})
    return {
        "rule_id": str(rule.rule_id) if rule is not None else None,
        "evaluated_at": ev.evaluated_at,
        "slot_start": ev.slot_start,
        "entities_evaluated": ev.entities_evaluated,
        "matched_count": len(ev.matched),
        "skipped_count": len(ev.skipped),
        "skip_counts": ev.skip_counts(),
        "would_auto_pause": None if ev.auto_pause is None else {
            "auto_pause_reason": ev.auto_pause.auto_pause_reason, "last_error": ev.auto_pause.last_error},
        "matched": [{"entity_id": m.entity_id, "name": names.get(m.entity_id), "platform": m.platform,
                     "ad_account_id": m.ad_account_id, "snapshot": dict(m.snapshot),
                     "actions": [_planned_view(p) for p in m.actions],
                     "skipped_actions": [asdict(s) for s in m.skipped_actions]} for m in ev.matched],
        "skipped": [{"entity_id": s.entity_id, "name": names.get(s.entity_id), "reason": s.reason.value,
                     "detail": s.detail, "snapshot": None if s.snapshot is None else dict(s.snapshot)}
                    for s in ev.skipped],
        "proposed_actions": [a.model_dump(mode="json") for _, _, a in proposed],
    }
