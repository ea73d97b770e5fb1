"""Stable proposals: a new snapshot replaces an open proposal only when the situation changed materially.

Pure: same inputs, same outputs.

* Only proposals waiting for a person (``pending_approval``) are kept. ``needs_budget`` proposals are
  always replaced, so a later snapshot retries them with fresh budgets.
* A draft keeps the open proposal of the same (source, target) pair when its amount moved by at most
  ``tolerance_pct`` % of the open amount (inclusive). A larger move, or a changed direction (another pair),
  supersedes the open proposal and the draft becomes a new proposal.
* Open proposals no draft matches (the channels are back on pace) are superseded.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from allot.pacing.domain.plans import ProposalDraft

MATERIAL_CHANGE_PCT: Final = 10
"""Largest change of a proposal's amount, percent of the open amount, that keeps the open proposal."""


@dataclass(frozen=True, slots=True)
class OpenProposal:
    """An open proposal as stored: its id, pair, amount and status."""

    proposal_id: uuid.UUID
    source_channel: str
    target_channel: str
    amount_cents: int
    status: str


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What a snapshot does with its drafts and the plan's open proposals."""

    kept: dict[uuid.UUID, uuid.UUID]  # draft proposal id -> open proposal id it leaves in place
    superseded: tuple[uuid.UUID, ...]  # open proposals to close
    new: tuple[ProposalDraft, ...]  # drafts that become proposals


def within_tolerance(open_cents: int, new_cents: int, tolerance_pct: int = MATERIAL_CHANGE_PCT) -> bool:
    """True when ``new_cents`` differs from ``open_cents`` by at most ``tolerance_pct`` % of ``open_cents``."""
    return abs(new_cents - open_cents) * 100 <= tolerance_pct * open_cents


def reconcile_proposals(open_: Sequence[OpenProposal], drafts: Sequence[ProposalDraft],
                        tolerance_pct: int = MATERIAL_CHANGE_PCT) -> Reconciled:
    """Keep open proposals whose situation has not changed materially; supersede the rest (see module doc)."""
    waiting = {(o.source_channel, o.target_channel): o for o in open_ if o.status == "pending_approval"}
    kept: dict[uuid.UUID, uuid.UUID] = {}
    new: list[ProposalDraft] = []
    for d in drafts:
        o = waiting.get((d.source_channel, d.target_channel))
        if o is not None and within_tolerance(o.amount_cents, d.amount_cents, tolerance_pct):
            kept[d.proposal_id] = o.proposal_id
        else:
            new.append(d)
    keep_ids = set(kept.values())
    superseded = tuple(o.proposal_id for o in open_ if o.proposal_id not in keep_ids)
    return Reconciled(kept, superseded, tuple(new))
