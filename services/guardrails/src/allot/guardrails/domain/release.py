"""What an approval that expired before execution gives back (pure).

An approved decision reserves worst-case exposure on the day's, month's and pool's ledger rows and
records its budget changes for the net-change window and the arbiter. When the executor reports its
actions ``expired`` (the approval's lifetime ended before the executor received it; nothing was sent
to the platform), that reservation is released once, so the source's next plan is judged on what was
really applied.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from allot.guardrails.domain.decision import Decision, LedgerIncrement


@dataclass(frozen=True)
class Release:
    """Exposure to subtract and the decision whose change records no longer count."""

    decision_id: uuid.UUID
    ledger: LedgerIncrement
    approvals: int  #: 1 when the decision counted one approval on its day's row


def release_of(decision: Decision, *, now: datetime) -> Release | None:
    """The release of an approved decision; None for a block or an observe-only decision (nothing reserved), and
    for an approval that has not expired yet (a report of ``expired`` before the expiry cannot be true)."""
    if not decision.approved or decision.observe_only:
        return None
    if decision.expires_at is None or now < decision.expires_at:
        return None
    return Release(decision.decision_id, decision.ledger, 1)
