"""The decision chain: order, scope checks, autonomy, rate limit, minimums, max change, replay and the events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from allot.contracts.payloads import AllocationRequested, BudgetAction
from allot.contracts.signing import ApprovalRejected, verify_approval
from allot.guardrails.domain import (
    ChangeRecord,
    Decision,
    LedgerFacts,
    ManualRequest,
    WorkspaceLimits,
    blocked_event,
    decide,
    http_status,
    signed_approval,
)

NOW = datetime(2026, 5, 18, 12, 0, tzinfo=UTC)
SECRET = b"test-secret"


def act(
    entity: str = "as-1",
    frm: int | None = 10_000,
    to: int | None = 11_000,
    *,
    kind: str = "set_budget",
    platform: str = "meta",
    account: str = "act-1",
    level: str = "adset",
    currency: str = "EUR",
) -> BudgetAction:
    return BudgetAction.model_validate({
        "action_id": uuid.uuid5(uuid.NAMESPACE_URL, f"{entity}/{kind}/{frm}/{to}"),
        "platform": platform, "ad_account_id": account, "entity_type": level, "entity_id": entity,
        "action_type": kind, "currency": currency, "from_cents": frm, "to_cents": to,
    })


def req(*actions: BudgetAction, **overrides: Any) -> AllocationRequested:
    fields: dict[str, Any] = {
        "request_id": uuid.uuid5(uuid.NAMESPACE_URL, f"req/{overrides.get('idempotency_key', 'k-1')}"),
        "source": "rule", "source_id": "r-1", "idempotency_key": "k-1",
        "actions": list(actions) or [act()],
    }
    return AllocationRequested.model_validate({**fields, **overrides})


def run(request: AllocationRequested | None = None, limits: WorkspaceLimits | None = None, **facts: Any) -> Decision:
    return decide(request or req(), limits or WorkspaceLimits(), LedgerFacts(**facts), now=NOW)


# ------------------------------------------------------------------ approval


def test_clean_request_is_approved_with_everything_the_service_records() -> None:
    decision = run(req(act("as-1", 10_000, 11_000), act("as-2", None, None, kind="pause")))
    assert decision.approved and decision.status == "approved" and decision.check is None
    assert [a.entity_id for a in decision.actions] == ["as-1", "as-2"]
    assert decision.expires_at == NOW + timedelta(seconds=900)
    assert decision.decided_at == NOW
    assert decision.exposure_eur_cents == 1_750                 # +1000 × meta 1.75
    assert decision.ledger.eur_cents == 1_750
    assert (decision.ledger.day.isoformat(), decision.ledger.month) == ("2026-05-18", "2026-05")
    assert decision.change_records == (
        ChangeRecord(entity_id="as-1", source="rule", source_id="r-1", from_cents=10_000, to_cents=11_000,
                     at=NOW, decision_id=decision.decision_id),
    )
    assert decision.counts_toward_rate_limit is False and decision.replayed is False
    assert http_status(decision) == 200


def test_same_inputs_give_the_same_decision() -> None:
    assert run() == run()
    assert run().decision_id != run(req(idempotency_key="k-2")).decision_id


def test_ttl_is_configurable() -> None:
    assert run(limits=WorkspaceLimits(approval_ttl_s=60)).expires_at == NOW + timedelta(seconds=60)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(req(), WorkspaceLimits(), LedgerFacts(), now=NOW.replace(tzinfo=None))


# ------------------------------------------------------------------ kill switch and scope


@pytest.mark.parametrize("kind", ["set_budget", "pause", "activate"])
def test_workspace_kill_switch_blocks_every_action_type(kind: str) -> None:
    a = act() if kind == "set_budget" else act(frm=None, to=None, kind=kind)
    decision = run(req(a), WorkspaceLimits(kill_switch=True))
    assert (decision.status, decision.check, decision.details["scope"]) == ("blocked", "kill_switch", "workspace")
    assert decision.actions == () and decision.ledger.eur_cents == 0 and decision.change_records == ()
    assert decision.expires_at is None
    assert http_status(decision) == 423


@pytest.mark.parametrize(
    ("accounts", "blocked"),
    [(("act-1",), False), (("act-1", "act-2"), True), (("act-2",), True)],
)
def test_account_kill_switch_blocks_only_change_sets_touching_that_account(
    accounts: tuple[str, ...], blocked: bool
) -> None:
    request = req(*(act(f"as-{i}", account=a) for i, a in enumerate(accounts)))
    decision = run(request, WorkspaceLimits(killed_ad_accounts={"act-2"}))
    assert decision.approved is not blocked
    if blocked:
        assert decision.check == "kill_switch"
        assert decision.details["scope"] == "ad_account" and decision.details["ad_account_id"] == "act-2"
        assert "act-2" in decision.reason


def test_account_kill_switch_blocks_pauses_too() -> None:
    pause = req(act(frm=None, to=None, kind="pause", account="act-2"))
    decision = run(pause, WorkspaceLimits(killed_ad_accounts={"act-2"}))
    assert decision.check == "kill_switch"


@pytest.mark.parametrize(
    ("limits", "action", "check"),
    [
        (WorkspaceLimits(platform_whitelist={"meta"}), act(platform="google"), "platform_whitelist"),
        (WorkspaceLimits(platform_whitelist={"meta", "google"}), act(platform="google"), None),
        (WorkspaceLimits(platform_whitelist=set()), act(), "platform_whitelist"),
        (WorkspaceLimits(platform_whitelist=None), act(platform="tiktok"), None),
        (WorkspaceLimits(account_whitelist={"act-1"}), act(account="act-9"), "account_whitelist"),
        (WorkspaceLimits(account_whitelist={"act-1"}), act(account="act-1"), None),
        (WorkspaceLimits(account_whitelist=None), act(account="act-9"), None),
        (WorkspaceLimits(protected_entities={"as-1"}), act("as-1"), "protected_entity"),
        (WorkspaceLimits(protected_entities={"as-1"}), act("as-1", None, None, kind="pause"), "protected_entity"),
        (WorkspaceLimits(protected_entities={"as-1"}), act("as-2"), None),
    ],
)
def test_whitelists_and_protected_entities(limits: WorkspaceLimits, action: BudgetAction, check: str | None) -> None:
    decision = run(req(action), limits)
    assert decision.check == check
    assert decision.approved is (check is None)


def test_one_outsider_blocks_the_whole_change_set_and_is_named() -> None:
    request = req(act("as-1", account="act-1"), act("as-2", account="act-7"))
    decision = run(request, WorkspaceLimits(account_whitelist={"act-1"}))
    assert decision.check == "account_whitelist"
    assert decision.details["ad_account_id"] == "act-7" and "act-7" in decision.reason
    protected = run(req(act("as-1"), act("as-2")), WorkspaceLimits(protected_entities={"as-2"}))
    assert protected.details["entity_id"] == "as-2" and "as-2 is protected" in protected.reason


# ------------------------------------------------------------------ order of checks


EVERYTHING_WRONG: dict[str, Any] = {
    "kill_switch": True,
    "killed_ad_accounts": {"act-1"},
    "platform_whitelist": {"google"},
    "account_whitelist": {"act-9"},
    "protected_entities": {"as-1"},
    "daily_cap_eur_cents": 0,
}


@pytest.mark.parametrize(
    ("fixed", "expected"),
    [
        ((), "kill_switch"),
        (("kill_switch",), "kill_switch"),                    # then the per-account switch
        (("kill_switch", "killed_ad_accounts"), "platform_whitelist"),
        (("kill_switch", "killed_ad_accounts", "platform_whitelist"), "account_whitelist"),
        (("kill_switch", "killed_ad_accounts", "platform_whitelist", "account_whitelist"), "protected_entity"),
        (("kill_switch", "killed_ad_accounts", "platform_whitelist", "account_whitelist", "protected_entities"),
         "rate_limited"),
    ],
)
def test_checks_run_in_the_documented_order(fixed: tuple[str, ...], expected: str) -> None:
    settings = {k: v for k, v in EVERYTHING_WRONG.items() if k not in fixed}
    decision = run(
        req(act("as-1", 10_000, 13_000), manual=True, source="manual", source_id="u-1"),
        WorkspaceLimits(**settings),
        recent_manual_requests=(ManualRequest(source="manual", source_id="u-1", at=NOW),),
    )
    assert decision.check == expected


def test_after_the_rate_limit_come_minimum_then_max_change_then_caps() -> None:
    limits = WorkspaceLimits(daily_cap_eur_cents=0)
    assert run(req(act("as-1", 10_000, 150)), limits).check == "budget_minimum"
    assert run(req(act("as-1", 10_000, 13_000)), limits).check == "max_change"
    assert run(req(act("as-1", 10_000, 11_000)), limits).check == "daily_cap"


# ------------------------------------------------------------------ autonomy


def test_observe_mode_blocks_but_reports_the_approval_it_would_have_given() -> None:
    decision = run(req(act("as-1", 10_000, 11_000)), WorkspaceLimits(autonomy={"rule": "observe"}))
    assert (decision.status, decision.check, decision.observe_only) == ("blocked", "observe_mode", True)
    assert decision.details["would_have"] == "approved" and decision.details["would_have_check"] is None
    assert decision.details["new_exposure_eur_cents"] == 1_750
    assert [a.to_cents for a in decision.actions] == [11_000]        # what would have been executed
    assert decision.expires_at is None
    assert decision.ledger.eur_cents == 0 and decision.exposure_eur_cents == 0
    assert decision.change_records == () and decision.counts_toward_rate_limit is False
    assert http_status(decision) == 202
    event = blocked_event(decision, req(act("as-1", 10_000, 11_000)))
    assert event.observe_only is True and event.check == "observe_mode"


def test_observe_mode_reports_the_block_it_would_have_given() -> None:
    limits = WorkspaceLimits(autonomy={"rule": "observe"}, daily_cap_eur_cents=1_000)
    decision = run(req(act("as-1", 10_000, 11_000)), limits)
    assert decision.check == "observe_mode" and decision.observe_only
    assert decision.details["would_have"] == "blocked" and decision.details["would_have_check"] == "daily_cap"
    assert decision.details["over_by_eur_cents"] == 750               # 1000 × 1.75 against a 1000 cap
    assert decision.actions == ()
    assert "would have been blocked by daily_cap" in decision.reason


def test_observe_mode_reports_a_rate_limit_without_counting() -> None:
    limits = WorkspaceLimits(autonomy={"manual": "observe"})
    recent = (ManualRequest(source="manual", source_id="u-1", at=NOW - timedelta(seconds=10)),)
    decision = run(req(source="manual", source_id="u-1", manual=True), limits, recent_manual_requests=recent)
    assert decision.check == "observe_mode"
    assert decision.details["would_have_check"] == "rate_limited"
    assert decision.details["would_have_retry_after_s"] == 290
    assert decision.retry_after_s is None and decision.counts_toward_rate_limit is False


def test_observe_is_per_source() -> None:
    limits = WorkspaceLimits(autonomy={"pool": "observe"})
    assert run(req(source="rule"), limits).approved
    assert run(req(source="pool", source_id="p-1"), limits).check == "observe_mode"


def test_checks_before_autonomy_still_block_for_real_in_observe_mode() -> None:
    decision = run(req(), WorkspaceLimits(autonomy={"rule": "observe"}, kill_switch=True))
    assert decision.check == "kill_switch" and decision.observe_only is False


# ------------------------------------------------------------------ manual rate limit


@pytest.mark.parametrize(
    ("age_s", "blocked", "retry_after_s"),
    [
        (0, True, 300),
        (1, True, 299),
        (299, True, 1),
        (299.5, True, 1),          # rounded up, never 0
        (300, False, None),        # exactly window_s old: no longer counts
        (301, False, None),
    ],
)
def test_manual_rate_limit_boundary(age_s: float, blocked: bool, retry_after_s: int | None) -> None:
    recent = (ManualRequest(source="manual", source_id="u-1", at=NOW - timedelta(seconds=age_s)),)
    decision = run(req(source="manual", source_id="u-1", manual=True), recent_manual_requests=recent)
    assert (decision.check == "rate_limited") is blocked
    assert decision.retry_after_s == retry_after_s
    if blocked:
        assert http_status(decision) == 429
        event = blocked_event(decision, req(source="manual", source_id="u-1", manual=True))
        assert event.retry_after_s == retry_after_s
    else:
        assert decision.approved and decision.counts_toward_rate_limit is True


@pytest.mark.parametrize(
    ("recent", "blocked"),
    [
        ((("manual", "u-2"),), False),     # another person
        ((("pool", "u-1"),), False),       # another source with the same id
        ((("manual", "u-1"),), True),
    ],
)
def test_manual_rate_limit_is_per_source_and_source_id(recent: tuple[tuple[str, str], ...], blocked: bool) -> None:
    rows = tuple(ManualRequest(source=s, source_id=i, at=NOW - timedelta(seconds=5)) for s, i in recent)
    decision = run(req(source="manual", source_id="u-1", manual=True), recent_manual_requests=rows)
    assert (decision.check == "rate_limited") is blocked


def test_scheduled_requests_are_not_rate_limited_and_not_counted() -> None:
    rows = (ManualRequest(source="pool", source_id="p-1", at=NOW),)
    decision = run(req(source="pool", source_id="p-1", manual=False), recent_manual_requests=rows)
    assert decision.approved and decision.counts_toward_rate_limit is False


def test_manual_pool_allocation_is_rate_limited() -> None:
    rows = (ManualRequest(source="pool", source_id="p-1", at=NOW - timedelta(seconds=60)),)
    decision = run(req(source="pool", source_id="p-1", manual=True), recent_manual_requests=rows)
    assert decision.check == "rate_limited" and decision.retry_after_s == 240


def test_rate_limit_count_and_window_are_configurable() -> None:
    limits = WorkspaceLimits(manual_rate_limit={"count": 2, "window_s": 60})
    one = (ManualRequest(source="manual", source_id="u-1", at=NOW - timedelta(seconds=10)),)
    two = (*one, ManualRequest(source="manual", source_id="u-1", at=NOW - timedelta(seconds=50)))
    request = req(source="manual", source_id="u-1", manual=True)
    assert run(request, limits, recent_manual_requests=one).approved
    blocked = run(request, limits, recent_manual_requests=two)
    assert blocked.check == "rate_limited" and blocked.retry_after_s == 10   # the older one frees a slot


# ------------------------------------------------------------------ platform minimums and max change


@pytest.mark.parametrize(
    ("platform", "level", "to_cents", "ok"),
    [
        ("google", "campaign", 99, False), ("google", "campaign", 100, True),
        ("tiktok", "adset", 1_999, False), ("tiktok", "adset", 2_000, True),
        ("tiktok", "campaign", 4_999, False), ("tiktok", "campaign", 5_000, True),
        ("meta", "adset", 199, False), ("meta", "adset", 200, True),
        ("sandbox", "campaign", 199, False), ("sandbox", "campaign", 200, True),
    ],
)
def test_platform_budget_minimums(platform: str, level: str, to_cents: int, ok: bool) -> None:
    frm = to_cents + 1 if ok else round(to_cents / 0.9)  # a small decrease, within 20 %
    decision = run(req(act(frm=frm, to=to_cents, platform=platform, level=level)))
    assert decision.approved is ok
    if not ok:
        assert decision.check == "budget_minimum"
        assert decision.details["minimum_cents"] == to_cents + 1 and decision.details["to_cents"] == to_cents
        assert "below the" in decision.reason and platform in decision.reason


@pytest.mark.parametrize(
    ("platform", "currency", "minimum"),
    [
        ("meta", "EUR", 200), ("meta", "USD", 200),
        ("meta", "JPY", 300),        # offset 1: 300 yen, not 2 yen
        ("meta", "HUF", 700),        # offset 1: 700 forint, not 2 forint
        ("meta", "COP", 7_800),      # offset 1: 7800 pesos, not 2 pesos
        ("sandbox", "KWD", 2_000),   # ISO: 3 decimals, 2 dinars = 2000 fils
    ],
)
def test_budget_minimums_are_in_the_actions_currency(platform: str, currency: str, minimum: int) -> None:
    below = run(req(act(frm=minimum, to=minimum - 1, platform=platform, currency=currency)))
    assert below.check == "budget_minimum" and below.details["minimum_cents"] == minimum
    assert below.details["currency"] == currency
    assert run(req(act(frm=minimum + 1, to=minimum, platform=platform, currency=currency))).approved


@pytest.mark.parametrize(("platform", "currency", "kind"), [("meta", "KWD", "set_budget"), ("meta", "XYZ", "pause"),
                                                            ("sandbox", "XYZ", "activate")])
def test_a_currency_without_a_unit_table_is_blocked_naming_it(platform: str, currency: str, kind: str) -> None:
    a = act(platform=platform, currency=currency) if kind == "set_budget" else act(frm=None, to=5_000, kind=kind,
                                                                                    platform=platform,
                                                                                    currency=currency)
    decision = run(req(a))
    assert decision.check == "currency_unknown"
    assert decision.details == {"entity_id": "as-1", "platform": platform, "currency": currency}
    assert currency in decision.reason and http_status(decision) == 423


@pytest.mark.parametrize(
    ("frm", "to", "ok", "pct"),
    [
        (10_000, 12_000, True, None),       # exactly +20 %
        (10_000, 12_001, False, "20.01"),
        (10_000, 8_000, True, None),        # exactly −20 %
        (10_000, 7_999, False, "20.01"),
        (10_000, 10_000, True, None),
        (333, 399, True, None),             # 19.82 %
        (333, 400, False, "20.12"),
    ],
)
def test_max_single_change_is_inclusive(frm: int, to: int, ok: bool, pct: str | None) -> None:
    decision = run(req(act("as-1", frm, to)))
    assert decision.approved is ok
    if not ok:
        assert decision.check == "max_change"
        assert decision.details == {"entity_id": "as-1", "from_cents": frm, "to_cents": to,
                                    "change_pct": pct, "max_change_pct": "20"}
        assert "as-1" in decision.reason and f"{pct}%" in decision.reason


def test_max_change_blocks_the_whole_set_rather_than_trimming() -> None:
    decision = run(req(act("as-1", 10_000, 11_000), act("as-2", 10_000, 12_500)))
    assert decision.check == "max_change" and decision.details["entity_id"] == "as-2"
    assert decision.actions == ()


def test_max_change_pct_is_configurable() -> None:
    limits = WorkspaceLimits(max_change_pct="15")
    assert run(req(act(frm=10_000, to=11_500)), limits).approved
    assert run(req(act(frm=10_000, to=11_501)), limits).check == "max_change"


def test_undo_is_exempt_from_the_single_change_limit() -> None:
    undo = req(act(frm=8_000, to=10_000), source="undo", source_id="u-1")   # +25 % reverts −20 %
    assert run(undo).approved
    assert run(req(act(frm=8_000, to=10_000), source="manual", source_id="u-1")).check == "max_change"


def test_a_change_from_a_zero_budget_is_blocked() -> None:
    decision = run(req(act(frm=0, to=1_000)))
    assert decision.check == "max_change" and "zero budget" in decision.reason


def test_the_same_entity_twice_is_an_invalid_request() -> None:
    decision = run(req(act("as-1", 10_000, 11_000), act("as-1", None, None, kind="pause")))
    assert decision.check == "invalid_request" and decision.details["entity_id"] == "as-1"


# ------------------------------------------------------------------ idempotent replay


def test_replay_returns_the_stored_decision_and_records_nothing_again() -> None:
    request = req(act("as-1", 10_000, 11_000), manual=True, source="manual", source_id="u-1")
    first = run(request, WorkspaceLimits(daily_cap_eur_cents=10_000), today_exposure_eur_cents=100)
    assert first.approved and first.ledger.eur_cents == 1_750 and first.change_records

    later = decide(
        request.model_copy(update={"request_id": uuid.uuid4()}),  # a retry with a new request id
        WorkspaceLimits(kill_switch=True, daily_cap_eur_cents=0),   # even if the world changed since
        LedgerFacts(today_exposure_eur_cents=1_350, existing_decision=first,
                    recent_manual_requests=(ManualRequest(source="manual", source_id="u-1", at=NOW),)),
        now=NOW + timedelta(minutes=1),
    )
    assert later.replayed is True
    same = ("decision_id", "request_id", "status", "check", "reason", "details", "actions", "notes",
            "decided_at", "expires_at", "exposure_eur_cents", "observe_only", "retry_after_s", "utc_day")
    assert {f: getattr(later, f) for f in same} == {f: getattr(first, f) for f in same}
    assert later.ledger.eur_cents == 0
    assert later.change_records == () and later.counts_toward_rate_limit is False
    assert signed_approval(later, request, "ws-1", SECRET) == signed_approval(first, request, "ws-1", SECRET)
    assert decide(request, WorkspaceLimits(), LedgerFacts(existing_decision=later), now=NOW) == later


def test_replay_of_a_block_is_the_same_block() -> None:
    first = run(req(), WorkspaceLimits(kill_switch=True))
    again = run(req(), WorkspaceLimits(), existing_decision=first)
    assert (again.status, again.check, again.decision_id) == ("blocked", "kill_switch", first.decision_id)
    assert blocked_event(again, req()) == blocked_event(first, req())


def test_an_existing_decision_of_another_key_or_day_is_refused() -> None:
    first = run(req())
    with pytest.raises(ValueError, match="existing decision"):
        run(req(idempotency_key="k-2"), existing_decision=first)
    with pytest.raises(ValueError, match="existing decision"):
        decide(req(), WorkspaceLimits(), LedgerFacts(existing_decision=first), now=NOW + timedelta(days=1))


def test_next_utc_day_is_a_new_decision_counted_again() -> None:
    first = run(req())
    tomorrow = decide(req(), WorkspaceLimits(), LedgerFacts(), now=NOW + timedelta(days=1))
    assert tomorrow.decision_id != first.decision_id and tomorrow.ledger.eur_cents == first.ledger.eur_cents


# ------------------------------------------------------------------ events


def test_signed_approval_verifies_and_carries_the_trim_notes() -> None:
    request = req(act("as-1", 10_000, 11_000))
    decision = run(request)
    approval = signed_approval(decision, request, "ws-1", SECRET)
    assert approval.decision_id == decision.decision_id and approval.request_id == request.request_id
    assert approval.actions == list(decision.actions) and approval.trimmed == list(decision.notes)
    assert approval.approved_at == NOW and approval.expires_at == NOW + timedelta(seconds=900)
    verify_approval(approval, "ws-1", SECRET, now=NOW + timedelta(seconds=899))
    with pytest.raises(ApprovalRejected, match="expired"):
        verify_approval(approval, "ws-1", SECRET, now=NOW + timedelta(seconds=900))
    with pytest.raises(ApprovalRejected, match="does not match"):
        verify_approval(approval, "ws-2", SECRET, now=NOW)
    tampered = approval.model_copy(update={"actions": [act("as-1", 10_000, 12_000)]})
    with pytest.raises(ApprovalRejected, match="does not match"):
        verify_approval(tampered, "ws-1", SECRET, now=NOW)


def test_blocked_event_carries_check_reason_and_numbers() -> None:
    request = req(act("as-1", 10_000, 12_001))
    decision = run(request)
    event = blocked_event(decision, request)
    assert (event.decision_id, event.request_id, event.source, event.source_id) == (
        decision.decision_id, request.request_id, "rule", "r-1")
    assert event.check == "max_change" and event.reason == decision.reason
    assert event.details["change_pct"] == "20.01" and event.observe_only is False


def test_builders_refuse_the_wrong_kind_of_decision_or_request() -> None:
    approved, blocked = run(req()), run(req(), WorkspaceLimits(kill_switch=True))
    with pytest.raises(ValueError, match="not an approval"):
        signed_approval(blocked, req(), "ws-1", SECRET)
    with pytest.raises(ValueError, match="not a block"):
        blocked_event(approved, req())
    with pytest.raises(ValueError, match="is for"):
        signed_approval(approved, req(source_id="r-2"), "ws-1", SECRET)


def test_decision_survives_a_json_round_trip() -> None:
    decision = run(req(act("as-1", 10_000, 11_000), act("as-2", None, None, kind="pause")))
    assert Decision.model_validate_json(decision.model_dump_json()) == decision
