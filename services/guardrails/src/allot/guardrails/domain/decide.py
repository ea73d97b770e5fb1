"""The full guardrail chain: one request, the workspace's limits and the ledger facts in, one decision out.

Order of checks (the first that blocks decides; later ones are not evaluated):

 1. idempotency replay — a decision stored for (source, idempotency_key, UTC day) is returned
    unchanged (``as_replay``: same id, outcome, actions and expiry; nothing recorded again);
 2. kill switch — workspace-wide, then per ad account (blocks pauses too);
 3. platform whitelist;  4. account whitelist;  5. protected entities;
 6. autonomy — for a source in 'observe' mode the rest of the chain still runs, and the decision is
    blocked with check ``observe_mode`` and ``observe_only=True``, reporting what would have happened;
 7. manual rate limit (``rate_limited`` with ``retry_after_s``);
 8. request shape (the same entity twice → ``invalid_request``);
 9. platform budget minimums (``budget_minimum``);
10. max single change % (``max_change``; blocks, never trims);
11. cross-source arbitration (priority for pool members, net-change window; trims or drops with
    notes, blocks with ``arbitration`` when nothing is left or a reallocation lost a decrease);
12. spend caps on worst-case exposure (``fx_rate_missing`` / ``exposure_unknown`` when it cannot be
    computed, then ``daily_cap``, ``monthly_cap``; blocks, never trims).

Same inputs, same decision: no clock, no I/O, no randomness; the decision id is a uuid5 of the
request id, source, idempotency key and UTC day.

Two days: idempotency is per UTC day (the seed's "idempotent per UTC day", the same for every account),
while spend caps and the ledger count on the ad account's local day and month (``zone``; where the
platform resets daily budgets), so a daily cap covers exactly one platform day.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from allot.contracts.localday import local_day
from allot.contracts.payloads import AllocationRequested, BudgetAction
from allot.guardrails.domain.arbiter import arbitrate
from allot.guardrails.domain.checks import (
    Block,
    Exposure,
    check_account_whitelist,
    check_budget_minimums,
    check_caps,
    check_kill_switch,
    check_manual_rate_limit,
    check_max_change,
    check_platform_whitelist,
    check_protected,
    check_request_shape,
    compute_exposure,
)
from allot.guardrails.domain.decision import (
    DECISION_NAMESPACE,
    ChangeRecord,
    Decision,
    Detail,
    LedgerIncrement,
)
from allot.guardrails.domain.facts import LedgerFacts
from allot.guardrails.domain.settings import WorkspaceLimits


@dataclass(frozen=True)
class _Outcome:
    block: Block | None
    actions: tuple[BudgetAction, ...] = ()
    notes: tuple[str, ...] = ()
    exposure: Exposure | None = None


def decision_id_for(request: AllocationRequested, utc_day: str) -> uuid.UUID:
    """The deterministic id of the decision on ``request`` taken on ``utc_day`` (ISO date)."""
    return uuid.uuid5(
        DECISION_NAMESPACE, f"{request.request_id}/{request.source}/{request.idempotency_key}/{utc_day}"
    )


_UTC = ZoneInfo("UTC")


def ledger_zone(zones: list[tzinfo]) -> tzinfo:
    """The zone whose local day a change set counts on: its accounts' zone, in action order (UTC when none).

    A change set normally touches one ad account (a pool, rule or plan lives in one); one that mixes
    accounts in different zones counts on the first action's account's day."""
    return zones[0] if zones else _UTC


def decide(request: AllocationRequested, limits: WorkspaceLimits, facts: LedgerFacts, *, now: datetime,
           zone: tzinfo = _UTC) -> Decision:
    """Run the whole guardrail chain on the whole change set and return exactly one decision.

    Guarantees: an approval's actions passed every check (possibly trimmed by arbitration, with a note
    each) and expire at ``now + approval_ttl_s``; a block names its check, a human reason and the
    numbers; a replay returns the stored decision with nothing to record; only a live approval
    carries a ledger increment, change records and a rate-limit count. ``facts`` hold the ledger of
    ``zone``'s local day and month (the account's), and the increment names that day.
    Raises ValueError when ``now`` is naive or ``existing_decision`` belongs to another key or day.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (UTC)")
    now = now.astimezone(UTC)
    day = now.date()

    existing = facts.existing_decision
    if existing is not None:
        key = (request.source, request.idempotency_key, day)
        if (existing.source, existing.idempotency_key, existing.utc_day) != key:
            raise ValueError(
                f"existing decision is for ({existing.source}, {existing.idempotency_key}, {existing.utc_day}), "
                f"not ({request.source}, {request.idempotency_key}, {day})"
            )
        return existing.as_replay()

    base = _Base(request, now, zone)
    for scope_check in (check_kill_switch, check_platform_whitelist, check_account_whitelist, check_protected):
        block = scope_check(request, limits)
        if block is not None:
            return base.blocked(block)

    observe = limits.autonomy_of(request.source) == "observe"
    outcome = _evaluate(request, limits, facts, now=now)
    if observe:
        return base.observed(outcome, limits, facts)
    if outcome.block is not None:
        return base.blocked(outcome.block, notes=outcome.notes)
    return base.approved(outcome, limits, facts)


def _evaluate(request: AllocationRequested, limits: WorkspaceLimits, facts: LedgerFacts, *, now: datetime) -> _Outcome:
    """Steps 7–12 of the chain."""
    for block in (
        check_manual_rate_limit(request, limits, facts, now=now),
        check_request_shape(request),
        check_budget_minimums(request),
        check_max_change(request, limits),
    ):
        if block is not None:
            return _Outcome(block)
    arbitration = arbitrate(request, limits, facts, now=now)
    if arbitration.block is not None:
        return _Outcome(arbitration.block, notes=arbitration.notes)
    exposure = compute_exposure(request, arbitration.actions, limits, facts)
    notes = arbitration.notes + exposure.notes
    if exposure.block is not None:
        return _Outcome(exposure.block, notes=notes)
    cap_block = check_caps(exposure.eur_cents, limits, facts)
    if cap_block is not None:
        return _Outcome(cap_block, notes=notes, exposure=exposure)
    return _Outcome(None, arbitration.actions, notes, exposure)


class _Base:
    """The fields every decision on one request shares, and the three ways to finish it."""

    def __init__(self, request: AllocationRequested, now: datetime, zone: tzinfo) -> None:
        day = now.date()
        self.request = request
        self.now = now
        self.ledger_day = local_day(now, zone)
        self.decision_id = decision_id_for(request, day.isoformat())
        self.fields: dict[str, object] = {
            "decision_id": self.decision_id,
            "request_id": request.request_id,
            "source": request.source,
            "source_id": request.source_id,
            "idempotency_key": request.idempotency_key,
            "utc_day": day,
            "decided_at": now,
            "ledger": LedgerIncrement(day=self.ledger_day, month=f"{self.ledger_day:%Y-%m}", eur_cents=0),
        }

    def blocked(self, block: Block, *, notes: tuple[str, ...] = ()) -> Decision:
        return Decision.model_validate({
            **self.fields,
            "status": "blocked",
            "check": block.check,
            "reason": block.reason,
            "details": dict(block.details),
            "retry_after_s": block.retry_after_s,
            "notes": notes,
        })

    def observed(self, outcome: _Outcome, limits: WorkspaceLimits, facts: LedgerFacts) -> Decision:
        mode = f"{self.request.source} is in observe mode"
        details: dict[str, Detail]
        if outcome.block is not None:
            details = {**outcome.block.details, "would_have": "blocked", "would_have_check": outcome.block.check}
            if outcome.block.retry_after_s is not None:
                details["would_have_retry_after_s"] = outcome.block.retry_after_s
            reason = f"{mode}: would have been blocked by {outcome.block.check}: {outcome.block.reason}"
        else:
            details = {**_exposure_details(outcome, limits, facts), "would_have": "approved", "would_have_check": None}
            reason = f"{mode}: would have approved {len(outcome.actions)} action(s)" + (
                f" with {len(outcome.notes)} note(s)" if outcome.notes else ""
            )
        return Decision.model_validate({
            **self.fields,
            "status": "blocked",
            "check": "observe_mode",
            "reason": reason,
            "details": details,
            "observe_only": True,
            "actions": outcome.actions,
            "notes": outcome.notes,
        })

    def approved(self, outcome: _Outcome, limits: WorkspaceLimits, facts: LedgerFacts) -> Decision:
        exposure = outcome.exposure or Exposure()
        records = tuple(
            ChangeRecord(
                entity_id=a.entity_id,
                source=self.request.source,
                source_id=self.request.source_id,
                from_cents=a.from_cents or 0,
                to_cents=a.to_cents or 0,
                at=self.now,
                decision_id=self.decision_id,
            )
            for a in outcome.actions
            if a.action_type == "set_budget"
        )
        day = self.ledger_day
        return Decision.model_validate({
            **self.fields,
            "status": "approved",
            "reason": f"approved {len(outcome.actions)} action(s)"
            + (f" with {len(outcome.notes)} note(s)" if outcome.notes else ""),
            "details": _exposure_details(outcome, limits, facts),
            "actions": outcome.actions,
            "notes": outcome.notes,
            "expires_at": self.now + timedelta(seconds=limits.approval_ttl_s),
            "exposure_eur_cents": exposure.eur_cents,
            "ledger": LedgerIncrement(
                day=day, month=f"{day:%Y-%m}", eur_cents=exposure.eur_cents, pool_id=exposure.pool_id
            ),
            "change_records": records,
            "counts_toward_rate_limit": self.request.manual,
        })


def _exposure_details(outcome: _Outcome, limits: WorkspaceLimits, facts: LedgerFacts) -> dict[str, Detail]:
    exposure = outcome.exposure or Exposure()
    return {
        "actions": len(outcome.actions),
        "notes": len(outcome.notes),
        "exposure_basis": exposure.basis,
        "new_exposure_eur_cents": exposure.eur_cents,
        "today_after_eur_cents": facts.today_exposure_eur_cents + exposure.eur_cents,
        "month_after_eur_cents": facts.month_exposure_eur_cents + exposure.eur_cents,
        "daily_cap_eur_cents": limits.daily_cap_eur_cents,
        "monthly_cap_eur_cents": limits.monthly_cap_eur_cents,
    }
