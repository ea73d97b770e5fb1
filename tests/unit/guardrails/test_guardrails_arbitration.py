"""Cross-source arbitration: the rolling net-change window and pool-member priority, naming the winner."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from allot.contracts.payloads import AllocationRequested, BudgetAction
from allot.guardrails.domain import (
    ChangeRecord,
    Decision,
    LedgerFacts,
    WorkspaceLimits,
    action_verdicts,
    decide,
    signed_approval,
)

NOW = datetime(2026, 5, 18, 12, 0, tzinfo=UTC)
H72 = timedelta(hours=72)


def act(
    entity: str = "as-1",
    frm: int | None = 10_000,
    to: int | None = 11_000,
    *,
    kind: str = "set_budget",
    platform: str = "meta",
    level: str = "adset",
) -> BudgetAction:
    return BudgetAction.model_validate({
        "action_id": uuid.uuid5(uuid.NAMESPACE_URL, f"{entity}/{kind}/{frm}/{to}"),
        "platform": platform, "ad_account_id": "act-1", "entity_type": level, "entity_id": entity,
        "action_type": kind, "currency": "EUR", "from_cents": frm, "to_cents": to,
    })


def req(*actions: BudgetAction, source: str = "rule", source_id: str = "r-1",
        opt_in: bool = False) -> AllocationRequested:
    return AllocationRequested.model_validate({
        "request_id": uuid.uuid5(uuid.NAMESPACE_URL, f"req/{source}/{source_id}"),
        "source": source, "source_id": source_id, "idempotency_key": "k-1", "actions": list(actions),
        "change_pool_member_budgets": opt_in,
    })


def chg(
    frm: int, to: int, ago: timedelta, source: str = "pool", source_id: str = "p-1", entity: str = "as-1"
) -> ChangeRecord:
    return ChangeRecord(entity_id=entity, source=source, source_id=source_id, from_cents=frm, to_cents=to, at=NOW - ago)


def run(request: AllocationRequested, *changes: ChangeRecord, limits: WorkspaceLimits | None = None,
        **facts: Any) -> Decision:
    return decide(request, limits or WorkspaceLimits(), LedgerFacts(changes=changes, **facts), now=NOW)


# ------------------------------------------------------------------ net-change window


@pytest.mark.parametrize(
    ("ago", "to_cents", "notes"),
    [
        (H72, 12_500, 0),                                # exactly 72 h old: outside the window
        (H72 + timedelta(seconds=1), 12_500, 0),
        (H72 - timedelta(seconds=1), 12_000, 1),         # inside: net limited to 20 % of 10 000
        (timedelta(0), 12_000, 1),
    ],
)
def test_net_window_edge_at_72_hours(ago: timedelta, to_cents: int, notes: int) -> None:
    decision = run(req(act("as-1", 11_000, 12_500)), chg(10_000, 11_000, ago))
    assert decision.approved
    assert [a.to_cents for a in decision.actions] == [to_cents]
    assert len(decision.notes) == notes


@pytest.mark.parametrize(
    ("to_cents", "approved_to", "trimmed"),
    [
        (12_000, 12_000, False),   # net exactly +20 % of the window-start budget: passes untouched
        (12_001, 12_000, True),    # one cent over: trimmed to what is left
        (12_100, 12_000, True),
    ],
)
def test_net_window_limit_is_inclusive_and_trims_to_what_is_left(
    to_cents: int, approved_to: int, trimmed: bool
) -> None:
    decision = run(req(act("as-1", 11_000, to_cents)), chg(10_000, 11_000, timedelta(hours=5)))
    assert decision.approved
    assert [a.to_cents for a in decision.actions] == [approved_to]
    assert bool(decision.notes) is trimmed
    if trimmed:
        note = decision.notes[0]
        assert "trimmed" in note and "pool p-1" in note and "20% of 10000 = 2000" in note
        assert decision.change_records[0].to_cents == 12_000                # the record is the trimmed change
        assert decision.exposure_eur_cents == 1_750                         # counted on the trimmed increase


def test_trimmed_action_keeps_its_id_and_the_approval_lists_the_note() -> None:
    request = req(act("as-1", 11_000, 12_500))
    decision = run(request, chg(10_000, 11_000, timedelta(hours=5)))
    assert decision.actions[0].action_id == request.actions[0].action_id
    approval = signed_approval(decision, request, "ws-1", b"s")
    assert approval.actions[0].to_cents == 12_000 and approval.trimmed == list(decision.notes)


def test_nothing_left_blocks_and_names_the_winner() -> None:
    decision = run(req(act("as-1", 12_000, 12_500)), chg(10_000, 12_000, timedelta(hours=1)))
    assert decision.status == "blocked" and decision.check == "arbitration"
    assert "pool p-1" in decision.reason and "nothing is left" in decision.reason
    assert decision.details["winner_source"] == "pool" and decision.details["winner_source_id"] == "p-1"
    assert decision.details["limit_cents"] == 2_000 and decision.details["prior_net_cents"] == 2_000
    assert decision.actions == () and decision.ledger.eur_cents == 0


def test_winner_is_the_latest_other_source_in_the_window() -> None:
    changes = (
        chg(10_000, 10_500, timedelta(hours=20), "pacing", "plan-7"),
        chg(10_500, 11_500, timedelta(hours=10), "manual", "alice"),
        chg(11_500, 12_000, timedelta(hours=2), "rule", "r-1"),       # the requester itself
    )
    decision = run(req(act("as-1", 12_000, 12_400)), *changes)
    assert decision.check == "arbitration"
    assert (decision.details["winner_source"], decision.details["winner_source_id"]) == ("manual", "alice")


def test_baseline_is_the_budget_at_window_start_across_several_changes() -> None:
    changes = (chg(10_000, 10_800, timedelta(hours=30)), chg(10_800, 11_500, timedelta(hours=3), "rule", "r-2"))
    decision = run(req(act("as-1", 11_500, 13_000)), *changes)
    assert [a.to_cents for a in decision.actions] == [12_000]      # 10 000 + 20 %


def test_a_change_back_toward_the_start_always_passes() -> None:
    decision = run(req(act("as-1", 12_000, 10_000)), chg(10_000, 12_000, timedelta(hours=1)))
    assert decision.approved and decision.notes == ()
    assert [a.to_cents for a in decision.actions] == [10_000]


def test_decreases_are_trimmed_too() -> None:
    decision = run(req(act("as-1", 8_500, 7_000)), chg(10_000, 8_500, timedelta(hours=1)))
    assert [a.to_cents for a in decision.actions] == [8_000]        # −20 % of 10 000
    assert "trimmed" in decision.notes[0]


def test_overshooting_through_zero_is_trimmed_on_the_other_side() -> None:
    decision = run(req(act("as-1", 11_000, 9_000)), chg(10_000, 11_000, timedelta(hours=1)))
    assert decision.approved and decision.notes == ()               # net −1 000 is within 2 000
    decision = run(req(act("as-1", 11_000, 8_900)), chg(10_000, 11_000, timedelta(hours=1)),
                   limits=WorkspaceLimits(net_change_pct_window=10))
    assert [a.to_cents for a in decision.actions] == [9_000]        # net capped at −10 % of 10 000


def test_window_length_and_percentage_are_configurable() -> None:
    limits = WorkspaceLimits(net_change_window_h=24, net_change_pct_window=10)
    inside = run(req(act("as-1", 10_500, 11_500)), chg(10_000, 10_500, timedelta(hours=23)), limits=limits)
    outside = run(req(act("as-1", 10_500, 11_500)), chg(10_000, 10_500, timedelta(hours=24)), limits=limits)
    assert [a.to_cents for a in inside.actions] == [11_000]
    assert outside.approved and [a.to_cents for a in outside.actions] == [11_500]


def test_other_entities_history_does_not_count() -> None:
    decision = run(req(act("as-1", 11_000, 12_500)), chg(10_000, 12_000, timedelta(hours=1), entity="as-2"))
    assert [a.to_cents for a in decision.actions] == [12_500]


def test_a_trim_below_the_platform_minimum_drops_the_change() -> None:
    action = act("as-1", 1_900, 2_200, platform="tiktok")
    decision = run(req(action), chg(1_600, 1_900, timedelta(hours=1), entity="as-1"))
    assert decision.check == "arbitration"
    assert "below the tiktok minimum of 2000" in decision.reason


def test_undo_within_the_window_passes() -> None:
    undo = req(act("as-1", 8_000, 10_000), source="undo", source_id="u-1")
    decision = run(undo, chg(10_000, 8_000, timedelta(hours=2)))
    assert decision.approved and [a.to_cents for a in decision.actions] == [10_000]


# ------------------------------------------------------------------ pool-member priority


POOL = {"as-1": "p-1"}


@pytest.mark.parametrize(
    ("earlier", "requester", "dropped"),
    [
        (("pool", "p-1"), ("rule", "r-1"), True),
        (("pool", "p-1"), ("pacing", "plan-1"), True),
        (("pacing", "plan-1"), ("rule", "r-1"), True),
        (("rule", "r-1"), ("pacing", "plan-1"), False),
        (("rule", "r-9"), ("pool", "p-1"), False),
        (("pacing", "plan-1"), ("pool", "p-1"), False),
        (("rule", "r-9"), ("rule", "r-1"), False),           # same rank
        (("pool", "p-1"), ("manual", "alice"), False),       # people are unranked
        (("manual", "alice"), ("rule", "r-1"), False),
        (("undo", "alice"), ("rule", "r-1"), False),
    ],
)
def test_lower_priority_change_to_a_pool_member_is_dropped_naming_the_winner(
    earlier: tuple[str, str], requester: tuple[str, str], dropped: bool
) -> None:
    # rules opted in to changing pool members' budgets: what is left to decide is priority
    decision = run(
        req(act("as-1", 10_500, 11_000), source=requester[0], source_id=requester[1], opt_in=True),
        chg(10_000, 10_500, timedelta(hours=1), *earlier),
        pool_membership=POOL,
    )
    assert decision.approved is not dropped
    if dropped:
        assert decision.check == "arbitration"
        if earlier == ("pool", "p-1"):  # the winner is the entity's own pool: named once
            assert "member of pool p-1, which (higher priority) changed it at" in decision.reason
            assert decision.reason.count("p-1") == 1
        else:
            assert f"{earlier[0]} {earlier[1]} (higher priority)" in decision.reason
            assert "member of pool p-1" in decision.reason
        assert (decision.details["winner_source"], decision.details["winner_source_id"]) == earlier
        assert decision.details["pool_id"] == "p-1"


def test_a_rule_never_changes_a_pool_members_budget_unless_it_opted_in() -> None:
    """Ownership: the pool owns its members' budgets, with or without a recent pool change; pauses stay allowed."""
    decision = run(req(act("as-1", 10_000, 11_000), act("as-2", 10_000, 11_000)), pool_membership=POOL)
    assert decision.approved and [a.entity_id for a in decision.actions] == ["as-2"]
    (note,) = decision.notes
    assert "member of pool p-1, which owns its budget" in note and "change_pool_member_budgets" in note
    alone = run(req(act("as-1", 10_000, 11_000)), pool_membership=POOL)
    assert alone.check == "arbitration" and alone.details["owner"] == "pool" and alone.details["pool_id"] == "p-1"
    assert run(req(act("as-1", None, None, kind="pause")), pool_membership=POOL).approved
    assert run(req(act("as-1", 10_000, 11_000), opt_in=True), pool_membership=POOL).approved
    # pacing and people are not rules: only priority and the net window apply to them
    assert run(req(act("as-1", 10_000, 11_000), source="pacing", source_id="plan-1"), pool_membership=POOL).approved


def test_priority_only_applies_to_pool_members() -> None:
    decision = run(req(act("as-1", 10_500, 11_000)), chg(10_000, 10_500, timedelta(hours=1)), pool_membership={})
    assert decision.approved and decision.notes == ()


@pytest.mark.parametrize(("ago", "dropped"), [(H72, False), (H72 - timedelta(seconds=1), True)])
def test_priority_only_looks_inside_the_window(ago: timedelta, dropped: bool) -> None:
    decision = run(req(act("as-1", 10_500, 11_000), opt_in=True), chg(10_000, 10_500, ago), pool_membership=POOL)
    assert (decision.check == "arbitration") is dropped


def test_priority_order_is_configurable() -> None:
    limits = WorkspaceLimits(source_priority=["rule", "pacing", "pool"])
    decision = run(req(act("as-1", 10_500, 11_000), source="pool", source_id="p-1"),
                   chg(10_000, 10_500, timedelta(hours=1), "rule", "r-1"), limits=limits, pool_membership=POOL)
    assert decision.check == "arbitration" and "rule r-1 (higher priority)" in decision.reason


def test_only_budget_changes_are_arbitrated() -> None:
    decision = run(req(act("as-1", None, None, kind="pause")), chg(10_000, 12_000, timedelta(hours=1)),
                   pool_membership=POOL)
    assert decision.approved and decision.notes == ()


def test_a_dropped_change_leaves_the_rest_approved_with_a_note() -> None:
    request = req(act("as-1", 10_500, 11_000), act("as-2", 10_000, 11_000))
    decision = run(request, chg(10_000, 10_500, timedelta(hours=1)), pool_membership=POOL)
    assert decision.approved
    assert [a.entity_id for a in decision.actions] == ["as-2"]
    assert len(decision.notes) == 1 and "as-1" in decision.notes[0] and "pool p-1" in decision.notes[0]
    assert [r.entity_id for r in decision.change_records] == ["as-2"]
    assert decision.exposure_eur_cents == 1_750                     # only as-2's increase counts


# ------------------------------------------------------------------ reallocations


def test_a_reallocation_whose_decrease_is_cut_is_blocked_whole() -> None:
    request = req(act("as-1", 10_000, 8_500), act("as-2", 10_000, 11_500), source="pacing", source_id="plan-1")
    decision = run(request, chg(11_000, 10_000, timedelta(hours=3), "rule", "r-9"))
    assert decision.check == "arbitration"
    assert "rule r-9" in decision.reason and "reallocates budget" in decision.reason
    assert decision.details["entity_id"] == "as-1" and decision.details["winner_source_id"] == "r-9"
    assert decision.actions == ()


def test_a_reallocation_whose_increase_is_cut_is_approved_trimmed() -> None:
    request = req(act("as-1", 10_000, 8_500), act("as-2", 11_000, 12_500), source="pacing", source_id="plan-1")
    decision = run(request, chg(10_000, 11_000, timedelta(hours=3), "rule", "r-9", entity="as-2"))
    assert decision.approved
    assert [(a.entity_id, a.to_cents) for a in decision.actions] == [("as-1", 8_500), ("as-2", 12_000)]
    assert len(decision.notes) == 1 and "rule r-9" in decision.notes[0]


# ------------------------------------------------------------------ dry-run verdicts per action


def test_dry_run_verdicts_name_each_actions_fate() -> None:
    trimmed, other = act("as-1", 11_000, 12_500), act("as-2", 10_000, 11_000)
    request = req(trimmed, other)
    decision = run(request, chg(10_000, 11_000, timedelta(hours=5)))
    lines = {v["entity_id"]: v for v in action_verdicts(request.actions, decision)}
    assert lines["as-1"]["verdict"] == "trimmed" and lines["as-1"]["approved_to_cents"] == 12_000
    assert "trimmed" in lines["as-1"]["note"]
    assert lines["as-2"]["verdict"] == "approved" and lines["as-2"]["note"] is None


def test_dry_run_verdicts_in_observe_mode_are_what_the_checks_would_decide() -> None:
    limits = WorkspaceLimits(autonomy={"rule": "observe"})
    request = req(act("as-1", 11_000, 12_500))
    decision = run(request, chg(10_000, 11_000, timedelta(hours=5)), limits=limits)
    assert decision.observe_only and not decision.approved
    (line,) = action_verdicts(request.actions, decision)
    assert line["verdict"] == "trimmed" and line["approved_to_cents"] == 12_000
    doubling = req(act("as-1", 10_000, 20_000))
    blocked = run(doubling, limits=limits)
    (line,) = action_verdicts(doubling.actions, blocked)
    assert line["verdict"] == "blocked" and "max_change" in blocked.reason
