"""The arbiter's times are the decision clock's: an approval records its changes at ``now`` (simulated in the demo),
and a later drop names that time once, with when the winner's priority ends, never a wall-clock time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from allot.contracts.payloads import AllocationRequested, BudgetAction
from allot.guardrails.domain import LedgerFacts, WorkspaceLimits, decide

#: Years away from any wall clock a test runs at.
SIM = datetime(2031, 12, 5, 8, 33, tzinfo=UTC)


def _set_budget(entity: str, frm: int, to: int) -> BudgetAction:
    return BudgetAction(action_id=uuid.uuid4(), platform="meta", ad_account_id="act-1", entity_type="adset",
                        entity_id=entity, action_type="set_budget", currency="EUR", from_cents=frm, to_cents=to)


def _request(source: str, source_id: str, *actions: BudgetAction, opt_in: bool = False) -> AllocationRequested:
    return AllocationRequested(request_id=uuid.uuid4(), source=source, source_id=source_id,
                               idempotency_key=uuid.uuid4().hex, actions=list(actions),
                               change_pool_member_budgets=opt_in)


def test_a_pool_change_recorded_at_simulated_time_is_named_at_that_time_in_a_later_drop() -> None:
    limits = WorkspaceLimits()
    pool = decide(_request("pool", "p-1", _set_budget("as-1", 10_000, 11_000)), limits, LedgerFacts(), now=SIM)
    (record,) = pool.change_records
    assert record.at == SIM == pool.decided_at, "the ledger's time is the decision clock's"

    later = SIM + timedelta(days=2)
    rule = decide(_request("rule", "r-1", _set_budget("as-1", 11_000, 12_000), opt_in=True), limits,
                  LedgerFacts(changes=(record,), pool_membership={"as-1": "p-1"}), now=later)
    assert rule.check == "arbitration" and rule.decided_at == later
    assert rule.details["winner_at"] == SIM.isoformat()
    assert f"changed it at {SIM.isoformat()}, within the last 72 h" in rule.reason
    assert f"priority holds until {(SIM + timedelta(hours=72)).isoformat()}" in rule.reason
    assert rule.reason.count("p-1") == 1

    # the window ends when the note says, on the same clock
    free = decide(_request("rule", "r-1", _set_budget("as-1", 11_000, 12_000), opt_in=True), limits,
                  LedgerFacts(changes=(record,), pool_membership={"as-1": "p-1"}), now=SIM + timedelta(hours=72))
    assert free.approved, free.reason
