"""Tenancy of ad accounts: a workspace may reference only accounts it has connected (issue #14, point 2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from allot.contracts.payloads import AccountProfiled
from allot.runtime.accounts import AccountDirectory, bare_account_id, ownership_problem, profile_from_event
from allot.runtime.settings import Settings

T = datetime(2026, 3, 8, 12, tzinfo=UTC)


def connect(d: AccountDirectory, workspace: str, account: str = "123", *, platform: str = "meta",
            state: str = "connected", at: datetime = T) -> None:
    d.put(profile_from_event(workspace, AccountProfiled(
        platform=platform, ad_account_id=account, currency="EUR", timezone_name="UTC", state=state,  # type: ignore[arg-type]
        observed_at=at)))


@pytest.mark.parametrize(("owners", "strict", "expected"), [
    ({"ws-a"}, True, None),
    ({"ws-a"}, False, None),
    ({"ws-a", "ws-b"}, True, None),                     # connected here too (e.g. an agency and its client)
    ({"ws-b"}, False, "ad account act_9 is connected to another workspace"),
    ({"ws-b"}, True, "ad account act_9 is connected to another workspace"),
    (set(), True, "ad account act_9 is not connected to this workspace"),
    (set(), False, None),
])
def test_ownership_problem_table(owners: set[str], strict: bool, expected: str | None) -> None:
    assert ownership_problem("act_9", workspace_id="ws-a", owners=owners, strict=strict) == expected


def test_an_account_connected_to_another_workspace_is_refused_always() -> None:
    d = AccountDirectory()
    connect(d, "ws-b")
    assert d.owner_check("ws-a", "meta", "123", strict=False) == "ad account 123 is connected to another workspace"
    assert d.owner_check("ws-b", "meta", "123", strict=True) is None


def test_the_act_prefix_names_the_same_account() -> None:
    d = AccountDirectory()
    connect(d, "ws-b", "act_123")
    assert bare_account_id("act_123") == bare_account_id("123") == "123"
    assert d.owner_check("ws-a", "meta", "123", strict=False) is not None
    assert d.owner_check("ws-a", "meta", "act_123", strict=False) is not None


def test_platform_none_checks_every_platform_and_a_platform_only_its_own() -> None:
    d = AccountDirectory()
    connect(d, "ws-b", "act_x", platform="sandbox")
    assert d.owner_check("ws-a", "meta", "act_x", strict=False) is None
    assert d.owner_check("ws-a", "sandbox", "act_x", strict=False) is not None
    assert d.owner_check("ws-a", None, "act_x", strict=False) is not None
    assert d.owners_of(None, "act_x") == {"ws-b"}


def test_a_disconnected_account_no_longer_belongs_to_its_former_workspace() -> None:
    d = AccountDirectory()
    connect(d, "ws-b")
    connect(d, "ws-b", state="disconnected", at=T + timedelta(minutes=1))
    assert d.owners_of("meta", "123") == frozenset()
    assert d.owner_check("ws-a", "meta", "123", strict=False) is None
    assert d.owner_check("ws-b", "meta", "123", strict=True) == "ad account 123 is not connected to this workspace"
    connect(d, "ws-b", state="disconnected", at=T)          # an older report changes nothing
    connect(d, "ws-b", state="error", at=T + timedelta(minutes=2))  # unreadable, still connected
    assert d.owners_of("meta", "123") == {"ws-b"}


def test_refusals_name_each_field_and_a_missing_id_only_when_strict() -> None:
    d = AccountDirectory()
    connect(d, "ws-a", "mine")
    connect(d, "ws-b", "theirs")
    refs = [("members.0.adAccountId", "meta", "mine"), ("members.1.adAccountId", "meta", "theirs"),
            ("members.2.adAccountId", "meta", None), ("members.3.adAccountId", "meta", "nobodys")]
    assert d.refusals("ws-a", refs, strict=False) == [
        ("members.1.adAccountId", "ad account theirs is connected to another workspace")]
    assert d.refusals("ws-a", refs, strict=True) == [
        ("members.1.adAccountId", "ad account theirs is connected to another workspace"),
        ("members.2.adAccountId", "required: an ad account connected to this workspace"),
        ("members.3.adAccountId", "ad account nobodys is not connected to this workspace")]


def test_strict_mode_is_the_default_outside_the_test_harness(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALLOT_REQUIRE_CONNECTED_ACCOUNTS", raising=False)
    assert Settings().require_connected_accounts is True
    monkeypatch.setenv("ALLOT_REQUIRE_CONNECTED_ACCOUNTS", "false")
    assert Settings().require_connected_accounts is False
