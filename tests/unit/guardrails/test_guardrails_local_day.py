"""Caps and the ledger count on the ad account's local day; idempotency stays per UTC day."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from allot.contracts.localday import zone_named
from allot.contracts.payloads import AllocationRequested, BudgetAction
from allot.guardrails.domain import Decision, LedgerFacts, WorkspaceLimits, decide, decision_id_for, ledger_zone

NY = zone_named("America/New_York")
BERLIN = zone_named("Europe/Berlin")


def req(key: str = "k-1", to: int = 11_000) -> AllocationRequested:
    return AllocationRequested.model_validate({
        "request_id": uuid.uuid5(uuid.NAMESPACE_URL, f"local-day/{key}"), "source": "rule", "source_id": "r-1",
        "idempotency_key": key,
        "actions": [BudgetAction.model_validate({
            "action_id": uuid.uuid5(uuid.NAMESPACE_URL, f"local-day/{key}/a"), "platform": "meta",
            "ad_account_id": "act-ny", "entity_type": "adset", "entity_id": "as-1", "action_type": "set_budget",
            "currency": "EUR", "from_cents": 10_000, "to_cents": to})],
    })


def test_the_ledger_day_and_month_are_the_accounts_while_the_idempotency_day_stays_utc() -> None:
    # 02:00 UTC on 1 April is still 31 March (and March) in New York
    now = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)
    ny = decide(req(), WorkspaceLimits(), LedgerFacts(), now=now, zone=NY)
    utc = decide(req(), WorkspaceLimits(), LedgerFacts(), now=now)
    assert ny.approved and utc.approved
    assert (ny.ledger.day, ny.ledger.month) == (date(2026, 3, 31), "2026-03")
    assert (utc.ledger.day, utc.ledger.month) == (date(2026, 4, 1), "2026-04")
    assert ny.utc_day == utc.utc_day == date(2026, 4, 1)
    assert ny.decision_id == utc.decision_id == decision_id_for(req(), "2026-04-01")


def test_a_blocked_decision_names_the_local_day_too() -> None:
    now = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)
    blocked = decide(req(), WorkspaceLimits(kill_switch=True), LedgerFacts(), now=now, zone=NY)
    assert blocked.status == "blocked" and blocked.ledger.day == date(2026, 3, 31) and blocked.ledger.eur_cents == 0


def test_on_the_25_hour_day_the_late_evening_still_counts_on_it() -> None:
    # New York falls back on 1 November 2026; 04:30 UTC on 2 November is 23:30 EST on 1 November
    d = decide(req(), WorkspaceLimits(), LedgerFacts(), now=datetime(2026, 11, 2, 4, 30, tzinfo=UTC), zone=NY)
    assert d.ledger.day == date(2026, 11, 1)
    # ... and on the 23-hour day in Berlin (29 March 2026), 22:30 UTC is already 30 March 00:30 CEST
    d = decide(req(), WorkspaceLimits(), LedgerFacts(), now=datetime(2026, 3, 29, 22, 30, tzinfo=UTC), zone=BERLIN)
    assert d.ledger.day == date(2026, 3, 30)


def test_the_daily_cap_reads_the_facts_of_the_local_day() -> None:
    # the facts the service loads are those of the ledger day; the cap blocks on them (1750 + 1750 > 3000)
    now = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)
    limits = WorkspaceLimits(daily_cap_eur_cents=3_000)
    blocked = decide(req(), limits, LedgerFacts(today_exposure_eur_cents=1_750), now=now, zone=NY)
    assert blocked.check == "daily_cap" and blocked.ledger.day == date(2026, 3, 31)
    assert decide(req(), limits, LedgerFacts(), now=now, zone=NY).approved


def test_ledger_zone_is_the_first_accounts_zone_and_utc_without_any() -> None:
    assert ledger_zone([NY, BERLIN]) is NY
    assert ledger_zone([]).utcoffset(datetime(2026, 1, 1)) == timedelta(0)


def test_decisions_stored_before_local_days_still_load() -> None:
    stored = decide(req(), WorkspaceLimits(), LedgerFacts(), now=datetime(2026, 4, 1, 2, tzinfo=UTC)).model_dump(
        mode="json")
    stored["ledger"]["utc_day"] = stored["ledger"].pop("day")  # the shape rows of migration 0001/0002 have
    loaded = Decision.model_validate(stored)
    assert loaded.ledger.day == date(2026, 4, 1) and "utc_day" not in loaded.ledger.model_dump()
