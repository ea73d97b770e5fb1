"""Stable proposals: a new snapshot replaces an open proposal only on a material change (pure)."""

from __future__ import annotations

import uuid

from allot.pacing.domain import OpenProposal, ProposalDraft, reconcile_proposals, within_tolerance

OPEN = OpenProposal(uuid.uuid4(), "CTV", "DISPLAY", 100_000, "pending_approval")


def draft(amount: int, source: str = "CTV", target: str = "DISPLAY") -> ProposalDraft:
    return ProposalDraft(uuid.uuid4(), source, target, amount, "reason")


def test_tolerance_is_ten_percent_inclusive() -> None:
    assert within_tolerance(100_000, 110_000) and within_tolerance(100_000, 90_000)
    assert not within_tolerance(100_000, 110_001) and not within_tolerance(100_000, 89_999)


def test_a_small_change_keeps_the_open_proposal() -> None:
    d = draft(108_000)
    rec = reconcile_proposals([OPEN], [d])
    assert rec.kept == {d.proposal_id: OPEN.proposal_id} and rec.new == () and rec.superseded == ()


def test_a_material_change_supersedes_it() -> None:
    d = draft(111_000)
    rec = reconcile_proposals([OPEN], [d])
    assert rec.kept == {} and rec.new == (d,) and rec.superseded == (OPEN.proposal_id,)


def test_a_changed_direction_supersedes_it() -> None:
    d = draft(100_000, source="DISPLAY", target="CTV")
    rec = reconcile_proposals([OPEN], [d])
    assert rec.new == (d,) and rec.superseded == (OPEN.proposal_id,)


def test_back_on_pace_supersedes_and_needs_budget_is_always_retried() -> None:
    assert reconcile_proposals([OPEN], []).superseded == (OPEN.proposal_id,)
    waiting = OpenProposal(uuid.uuid4(), "CTV", "DISPLAY", 100_000, "needs_budget")
    d = draft(100_000)
    rec = reconcile_proposals([waiting], [d])
    assert rec.new == (d,) and rec.superseded == (waiting.proposal_id,)
