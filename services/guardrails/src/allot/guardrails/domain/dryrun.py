"""What a decision means for each requested action (pure): the verdict a preview shows beside a proposed move."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from allot.contracts.payloads import BudgetAction
from allot.guardrails.domain.decision import Decision

Verdict = Literal["approved", "trimmed", "dropped", "blocked"]


def action_verdicts(requested: Sequence[BudgetAction], decision: Decision) -> list[dict[str, Any]]:
    """One line per requested action, in order: its verdict, the budget that would be set, and the note about it.

    - ``blocked``: the change set as a whole is blocked (the decision's check and reason apply to every action);
    - ``approved`` / ``trimmed`` (to ``approved_to_cents``) / ``dropped`` (arbitration), with the note naming why.

    In observe mode the verdicts are what the checks would have decided (the decision says it is never applied).
    """
    approved = {a.action_id: a for a in decision.actions}
    # in observe mode, what the checks would have decided
    would_block = decision.details.get("would_have") != "approved" if decision.observe_only else not decision.approved
    out = []
    for a in requested:
        note = next((n for n in decision.notes if n.startswith(f"{a.entity_type} {a.entity_id}:")), None)
        kept = approved.get(a.action_id)
        verdict: Verdict
        if would_block:
            verdict = "blocked"
        elif kept is None:
            verdict = "dropped"
        elif kept.to_cents != a.to_cents:
            verdict = "trimmed"
        else:
            verdict = "approved"
        out.append({
            "action_id": str(a.action_id), "entity_id": a.entity_id, "action_type": a.action_type,
            "from_cents": a.from_cents, "to_cents": a.to_cents, "currency": a.currency, "verdict": verdict,
            "approved_to_cents": kept.to_cents if kept is not None and verdict != "blocked" else None,
            "note": note if note is not None else (decision.reason if verdict == "blocked" else None),
        })
    return out
