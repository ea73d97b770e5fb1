"""The executor's pure decisions: compare-and-set, minimums, out-of-band edits, failure backoff, undo."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from allot.contracts.payloads import BudgetAction
from allot.executor.domain import (
    EntityMemory,
    Observed,
    backoff_delay_s,
    entity_outside_account,
    failure_backoff_active,
    inverse_action,
    plan_write,
)

NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)


def budget(from_cents: int = 10_000, to_cents: int = 12_000, platform: str = "sandbox",
           entity_type: str = "adset") -> BudgetAction:
    return BudgetAction(action_id=uuid.uuid4(), platform=platform, ad_account_id="act", entity_type=entity_type,
                        entity_id="e1", action_type="set_budget", currency="USD", from_cents=from_cents,
                        to_cents=to_cents)


def status_action(kind: str) -> BudgetAction:
    return BudgetAction(action_id=uuid.uuid4(), platform="sandbox", ad_account_id="act", entity_type="adset",
                        entity_id="e1", action_type=kind, currency="USD")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("observed", "memory", "kind"),
    [
        (10_000, EntityMemory(), "write"),                          # platform still shows from: apply
        (12_000, EntityMemory(), "already_applied"),                # our write landed before a crash: never resend
        (11_000, EntityMemory(), "conflict"),                       # someone else moved it
        (11_000, EntityMemory(last_budget_cents=10_000), "conflict"),
    ],
)
def test_budget_writes_are_compare_and_set(observed: int, memory: EntityMemory, kind: str) -> None:
    assert plan_write(budget(), Observed(observed, "active"), memory, min_budget_cents=200).kind == kind


def test_an_out_of_band_edit_is_named_with_the_observed_value() -> None:
    plan = plan_write(
        budget(), Observed(15_000, "active"), EntityMemory(last_budget_cents=10_000), min_budget_cents=200
    )
    assert plan.kind == "conflict" and plan.out_of_band
    assert "Allot last set 10000" in plan.reason and "15000" in plan.reason


@pytest.mark.parametrize(("platform", "entity_type", "to_cents", "kind"), [
    ("google", "campaign", 100, "write"), ("google", "campaign", 99, "rejected"),
    ("tiktok", "adset", 2000, "write"), ("tiktok", "adset", 1999, "rejected"),
    ("tiktok", "campaign", 4999, "rejected"), ("meta", "adset", 200, "write"), ("meta", "adset", 199, "rejected"),
])
def test_platform_budget_minimums_reject_below_the_floor(platform: str, entity_type: str, to_cents: int,
                                                         kind: str) -> None:
    from allot.executor.adapters.base import min_budget_cents

    action = budget(from_cents=10_000, to_cents=to_cents, platform=platform, entity_type=entity_type)
    plan = plan_write(action, Observed(10_000, "active"), EntityMemory(),
                      min_budget_cents=min_budget_cents(platform, entity_type))
    assert plan.kind == kind
    if kind == "rejected":
        assert "below the platform minimum" in plan.reason


@pytest.mark.parametrize(("kind", "observed", "memory_status", "expected"), [
    ("pause", "active", None, "write"), ("pause", "paused", None, "already_applied"),
    ("activate", "paused", "paused", "write"), ("activate", "paused", "active", "conflict"),
    ("pause", "deleted", None, "rejected"),
])
def test_status_changes(kind: str, observed: str, memory_status: str | None, expected: str) -> None:
    plan = plan_write(status_action(kind), Observed(100, observed), EntityMemory(last_status=memory_status),
                      min_budget_cents=200)
    assert plan.kind == expected


@pytest.mark.parametrize(
    ("failures", "age_h", "active"), [(4, 1, False), (5, 1, True), (5, 24, True), (5, 24.01, False)]
)
def test_failure_backoff_after_five_consecutive_failures_within_24h(failures: int, age_h: float, active: bool) -> None:
    memory = EntityMemory(consecutive_failures=failures, first_failure_at=NOW - timedelta(hours=age_h))
    assert failure_backoff_active(memory, NOW) is active


def test_backoff_grows_is_jittered_deterministically_and_honours_retry_after() -> None:
    aid = uuid.uuid4()
    delays = [backoff_delay_s(aid, n, base_s=1, cap_s=60) for n in range(1, 8)]
    assert delays == [backoff_delay_s(aid, n, base_s=1, cap_s=60) for n in range(1, 8)]
    for n, d in enumerate(delays, start=1):
        ceiling = min(60, 2 ** (n - 1))
        assert ceiling / 2 <= d <= ceiling
    assert backoff_delay_s(aid, 1, base_s=1, retry_after_s=30) == 30


def test_undo_inverts_budget_and_status_changes_with_new_deterministic_ids() -> None:
    request = uuid.uuid4()
    action = budget(10_000, 12_000)
    inv = inverse_action(action, applied_before_cents=10_000, applied_after_cents=12_000, undo_of=request)
    assert inv is not None and (inv.from_cents, inv.to_cents) == (12_000, 10_000)
    assert inv.action_id == inverse_action(action, applied_before_cents=10_000, applied_after_cents=12_000,
                                           undo_of=request).action_id  # type: ignore[union-attr]
    assert inv.action_id != action.action_id
    paused = inverse_action(
        status_action("pause"), applied_before_cents=None, applied_after_cents=None, undo_of=request
    )
    assert paused is not None and paused.action_type == "activate"


@pytest.mark.parametrize(("action_account", "platform_account", "refused"), [
    ("act_1", "1", False),          # Meta reports the bare number
    ("act_1", "act_1", False),
    ("1", None, False),             # the platform does not say: nothing to compare
    ("act_1", "2", True),           # another account's entity named under an owned account
])
def test_an_entity_of_another_ad_account_is_never_written(action_account: str, platform_account: str | None,
                                                          refused: bool) -> None:
    action = budget().model_copy(update={"ad_account_id": action_account})
    reason = entity_outside_account(action, platform_account)
    assert (reason is not None) == refused
    if refused:
        assert reason == "entity e1 belongs to ad account 2 on sandbox, not to act_1 named by the action"
