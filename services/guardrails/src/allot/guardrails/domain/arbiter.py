"""Cross-source arbitration: pool priority over lower sources, and the rolling net-change window per entity.

Only set_budget actions are arbitrated; pauses, activations and relaunches pass through untouched.
The request being decided is always the later change (earlier ones are already approved), so it is
the one trimmed or dropped:

0. Ownership (pool members only). A pool member's budget belongs to its pool: a rule's set_budget on it
   is *dropped* (the note names the pool and how to opt in), unless the rule opted in explicitly
   (``change_pool_member_budgets``). Pause and activate stay allowed. So a rule and a pool never take
   turns moving the same budget.
1. Priority (pool members only). Among the ranked sources (``source_priority``, default
   pool > pacing > rule), a set_budget on a pool member is *dropped* when a higher-ranked source
   changed that entity within the window; the note names the winner once, when it changed the entity
   and until when its priority holds. Unranked sources (manual, undo by default) neither win nor lose
   this step.
2. Net window (every entity, every source). Σ(to − from) of the entity's changes within
   (now − window, now] plus this change must stay within ``net_change_pct_window`` % of the budget at
   window start (the ``from_cents`` of the oldest change in the window, or this action's
   ``from_cents``); the limit is floored to the cent and reaching it exactly passes. A change that
   brings the net closer to zero always passes. Otherwise the change is *trimmed* to what is left,
   or *dropped* when nothing is left (or the trimmed budget would fall under the platform minimum);
   the note names the winner: the latest other source/id that changed the entity in the window.

Every time in a note or detail is a ledger time (``ChangeRecord.at``: the decision time, on the
service clock that also gives ``now``: simulated in the demo), so the window and the messages agree.

Dropping or trimming leaves the rest of the change set approved, with notes, except:

* nothing is left → the change set is blocked (check ``arbitration``), naming the winner;
* a *decrease* was trimmed or dropped in a change set that also increases budgets (a reallocation:
  the decrease funds the increases) → the whole set is blocked, because approving the increases
  alone would add budget the requester never asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from allot.contracts.payloads import AllocationRequested, BudgetAction
from allot.guardrails.domain.checks import Block
from allot.guardrails.domain.decision import ChangeRecord, Detail
from allot.guardrails.domain.facts import LedgerFacts
from allot.guardrails.domain.money import floor_int, min_budget_minor
from allot.guardrails.domain.settings import WorkspaceLimits


@dataclass(frozen=True)
class Arbitration:
    """Actions left after arbitration (trimmed where needed), notes on every cut, or a block."""

    actions: tuple[BudgetAction, ...]
    notes: tuple[str, ...] = ()
    block: Block | None = None


@dataclass(frozen=True)
class _Cut:
    note: str
    decrease: bool
    details: dict[str, Detail]
    replacement: BudgetAction | None = None  # None = dropped


def _who(record: ChangeRecord) -> str:
    return f"{record.source} {record.source_id}"


def _winner_details(winner: ChangeRecord | None) -> dict[str, Detail]:
    if winner is None:
        return {"winner_source": None, "winner_source_id": None, "winner_at": None}
    return {"winner_source": winner.source, "winner_source_id": winner.source_id, "winner_at": winner.at.isoformat()}


def _ownership_cut(request: AllocationRequested, action: BudgetAction, facts: LedgerFacts) -> _Cut | None:
    pool_id = facts.pool_membership.get(action.entity_id)
    if pool_id is None or request.source != "rule" or request.change_pool_member_budgets:
        return None
    return _Cut(
        note=(
            f"{action.entity_type} {action.entity_id}: change {action.from_cents} → {action.to_cents} by "
            f"{request.source} {request.source_id} dropped: the entity is a member of pool {pool_id}, which owns its "
            "budget (rules may pause or activate it; a rule changes pool members' budgets only with "
            "protections.change_pool_member_budgets)"
        ),
        decrease=(action.to_cents or 0) < (action.from_cents or 0),
        details={"entity_id": action.entity_id, "pool_id": pool_id, "from_cents": action.from_cents,
                 "to_cents": action.to_cents, "owner": "pool"},
    )


def _priority_cut(
    request: AllocationRequested,
    action: BudgetAction,
    history: list[ChangeRecord],
    limits: WorkspaceLimits,
    facts: LedgerFacts,
) -> _Cut | None:
    pool_id = facts.pool_membership.get(action.entity_id)
    rank = limits.priority_rank(request.source)
    if pool_id is None or rank is None:
        return None
    winners = [c for c in history if (r := limits.priority_rank(c.source)) is not None and r < rank]
    if not winners:
        return None
    winner = winners[-1]
    window = timedelta(hours=limits.net_change_window_h)
    if (winner.source, winner.source_id) == ("pool", pool_id):
        by = f"the entity is a member of pool {pool_id}, which (higher priority) changed it"
    else:
        by = f"the entity is a member of pool {pool_id} and {_who(winner)} (higher priority) changed it"
    return _Cut(
        note=(
            f"{action.entity_type} {action.entity_id}: change {action.from_cents} → {action.to_cents} by "
            f"{request.source} {request.source_id} dropped: {by} at {winner.at.isoformat()}, within the last "
            f"{limits.net_change_window_h} h (priority holds until {(winner.at + window).isoformat()})"
        ),
        decrease=(action.to_cents or 0) < (action.from_cents or 0),
        details={"entity_id": action.entity_id, "pool_id": pool_id, "from_cents": action.from_cents,
                 "to_cents": action.to_cents, **_winner_details(winner)},
    )


def _net_window_cut(
    request: AllocationRequested, action: BudgetAction, history: list[ChangeRecord], limits: WorkspaceLimits
) -> _Cut | None:
    from_cents, to_cents = action.from_cents or 0, action.to_cents or 0
    delta = to_cents - from_cents
    baseline = history[0].from_cents if history else from_cents
    prior = sum(c.delta_cents for c in history)
    net = prior + delta
    limit = floor_int(Decimal(baseline) * limits.net_change_pct_window / 100)
    if abs(net) <= limit or abs(net) <= abs(prior):
        return None
    allowed = (limit - prior) if delta > 0 else (-limit - prior)
    mine = (request.source, request.source_id)
    winner = next((c for c in reversed(history) if (c.source, c.source_id) != mine), history[-1] if history else None)
    by = f"{_who(winner)} at {winner.at.isoformat()}" if winner is not None else "no earlier change"
    window = (
        f"net change within {limits.net_change_window_h} h is limited to {limits.net_change_pct_window}% of "
        f"{baseline} = {limit}; already {prior:+d} (latest other change: {by})"
    )
    details: dict[str, Detail] = {
        "entity_id": action.entity_id, "from_cents": from_cents, "to_cents": to_cents,
        "baseline_cents": baseline, "limit_cents": limit, "prior_net_cents": prior, **_winner_details(winner),
    }
    trimmed_to = from_cents + allowed
    minimum = min_budget_minor(action.platform, action.entity_type, action.currency)  # currency checked at step 8
    who = f"{request.source} {request.source_id}"
    nothing_left = (delta > 0 and allowed <= 0) or (delta < 0 and allowed >= 0)
    if nothing_left or trimmed_to < minimum:
        why = (
            "nothing is left"
            if nothing_left
            else f"what is left ({from_cents} → {trimmed_to}) is below the {action.platform} minimum of {minimum}"
        )
        return _Cut(
            note=f"{action.entity_type} {action.entity_id}: change {from_cents} → {to_cents} by {who} dropped: "
            f"{window}; {why}",
            decrease=delta < 0,
            details=details,
        )
    return _Cut(
        note=f"{action.entity_type} {action.entity_id}: change by {who} trimmed from {from_cents} → {to_cents} "
        f"to {from_cents} → {trimmed_to}: {window}",
        decrease=delta < 0,
        details={**details, "trimmed_to_cents": trimmed_to},
        replacement=action.model_copy(update={"to_cents": trimmed_to}),
    )


def arbitrate(
    request: AllocationRequested, limits: WorkspaceLimits, facts: LedgerFacts, *, now: datetime
) -> Arbitration:
    """Apply priority and the net-change window to every set_budget of ``request`` (see the module doc).

    Guarantees: no approved set_budget moves an entity's net change within the window beyond the limit
    (unless it moves it closer to zero); every trimmed or dropped action has a note naming the winner;
    a reallocation is never approved with a cut decrease.
    """
    since = now - timedelta(hours=limits.net_change_window_h)
    deltas = [(a.to_cents or 0) - (a.from_cents or 0) for a in request.actions if a.action_type == "set_budget"]
    reallocation = any(d > 0 for d in deltas) and any(d < 0 for d in deltas)
    kept: list[BudgetAction] = []
    cuts: list[_Cut] = []
    for action in request.actions:
        if action.action_type != "set_budget":
            kept.append(action)
            continue
        history = sorted(
            (c for c in facts.changes if c.entity_id == action.entity_id and c.at > since), key=lambda c: c.at
        )
        cut = _ownership_cut(request, action, facts)
        if cut is None:
            cut = _priority_cut(request, action, history, limits, facts)
        if cut is None:
            cut = _net_window_cut(request, action, history, limits)
        if cut is None:
            kept.append(action)
            continue
        cuts.append(cut)
        if cut.replacement is not None:
            kept.append(cut.replacement)
    notes = tuple(c.note for c in cuts)
    cut_decrease = next((c for c in cuts if c.decrease), None)
    if reallocation and cut_decrease is not None:
        return Arbitration((), notes, Block(
            "arbitration",
            f"{cut_decrease.note}; the change set reallocates budget and this decrease funds its increases, "
            "so it is blocked whole",
            cut_decrease.details,
        ))
    if not kept:
        first = cuts[0]
        return Arbitration((), notes, Block("arbitration", first.note, first.details))
    return Arbitration(tuple(kept), notes)
