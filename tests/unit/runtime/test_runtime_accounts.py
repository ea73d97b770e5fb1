"""The account directory: later reports win, UTC for unknown accounts, the same migration in every service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest

from allot.contracts.localday import UnknownTimeZone
from allot.contracts.payloads import AccountProfiled
from allot.runtime.accounts import MIGRATION_FILE_SUFFIX, AccountDirectory, directory_of, profile_from_event

T = datetime(2026, 3, 8, 12, tzinfo=UTC)
SERVICES = ("guardrails", "rules", "pacing", "pools", "executor")


def report(zone: str, *, at: datetime = T, account: str = "act-1") -> AccountProfiled:
    return AccountProfiled(platform="meta", ad_account_id=account, currency="USD", timezone_name=zone, observed_at=at)


def test_unknown_accounts_are_utc_and_a_report_names_the_zone_per_workspace() -> None:
    d = AccountDirectory()
    assert d.zone_for("ws-1", "meta", "act-1").key == "UTC"
    assert d.put(profile_from_event("ws-1", report("America/New_York")))
    assert d.zone_for("ws-1", "meta", "act-1").key == "America/New_York"
    assert d.zone_for("ws-2", "meta", "act-1").key == "UTC"       # another workspace's account of that id
    assert d.zone_for("ws-1", "sandbox", "act-1").key == "UTC"    # another platform's


def test_later_observed_at_wins_whatever_the_arrival_order() -> None:
    d = AccountDirectory()
    assert d.put(profile_from_event("ws-1", report("Europe/Berlin", at=T)))
    assert not d.put(profile_from_event("ws-1", report("America/New_York", at=T - timedelta(minutes=1))))
    assert not d.put(profile_from_event("ws-1", report("America/New_York", at=T)))  # a tie keeps the held one
    assert d.zone_for("ws-1", "meta", "act-1").key == "Europe/Berlin"
    assert d.put(profile_from_event("ws-1", report("America/New_York", at=T + timedelta(seconds=1))))
    assert d.zone_for("ws-1", "meta", "act-1").key == "America/New_York"
    assert len(d) == 1


def test_an_unknown_zone_is_refused_with_its_name() -> None:
    with pytest.raises(UnknownTimeZone, match="Mars/Base"):
        profile_from_event("ws-1", report("Mars/Base"))


def test_the_directory_lives_once_in_the_service_context() -> None:
    extra: dict[str, object] = {}
    assert directory_of(extra) is directory_of(extra)


def test_every_service_creates_the_projection_with_the_same_migration() -> None:
    texts = {}
    for service in SERVICES:
        files = [f for f in resources.files(f"allot.{service}.migrations").iterdir()
                 if f.name.endswith(MIGRATION_FILE_SUFFIX)]
        assert len(files) == 1, (service, files)
        texts[service] = files[0].read_text()
    assert len(set(texts.values())) == 1, "the ad_accounts migration differs between services"
    assert "CREATE TABLE IF NOT EXISTS ad_accounts" in texts["guardrails"]


def _statements(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.startswith("--"))


def test_the_runtime_owns_the_same_table_the_services_created() -> None:
    """The runtime's migration (applied into every schema that consumes account.profiled) creates exactly the
    table the services' own copies created, so whichever runs first, the schema is the same."""
    (owned,) = [f for f in resources.files("allot.runtime.accounts_migrations").iterdir()
                if f.name.endswith(MIGRATION_FILE_SUFFIX)]
    service = next(f for f in resources.files("allot.guardrails.migrations").iterdir()
                   if f.name.endswith(MIGRATION_FILE_SUFFIX))
    assert _statements(owned.read_text()) == _statements(service.read_text())
