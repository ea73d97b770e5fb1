"""Merge-patching limits and flipping kill switches (pure)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from allot.guardrails.domain import WorkspaceLimits, diff_settings, merge_patch, patch_limits, set_kill_switch
from allot.guardrails.domain.patch import added_accounts


def test_merge_patch_follows_rfc_7386() -> None:
    assert merge_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": None, "e": 4}, "f": [1]}) == {
        "a": 1, "b": {"d": 3, "e": 4}, "f": [1]}
    assert merge_patch({"a": 1}, {"a": None}) == {}
    assert merge_patch({"a": {"b": 1}}, {"a": 5}) == {"a": 5}
    assert merge_patch([1], {"a": 1}) == {"a": 1}


def test_patch_limits_merges_maps_and_resets_with_null() -> None:
    base = WorkspaceLimits(daily_cap_eur_cents=500, fx_rates_to_eur={"USD": "0.9", "GBP": "1.2"},
                           autonomy={"rule": "observe"})
    out = patch_limits(base, {"daily_cap_eur_cents": None, "fx_rates_to_eur": {"USD": None, "JPY": "0.006"},
                              "autonomy": {"pool": "observe"}, "manual_rate_limit": {"count": 4}})
    assert out.daily_cap_eur_cents is None
    assert out.fx_rates_to_eur == {"EUR": Decimal(1), "GBP": Decimal("1.2"), "JPY": Decimal("0.006")}
    assert out.autonomy_of("rule") == "observe" and out.autonomy_of("pool") == "observe"
    assert out.manual_rate_limit.count == 4 and out.manual_rate_limit.window_s == 300
    assert patch_limits(base, {}) == base
    assert diff_settings(base, patch_limits(base, {"autonomy": {"rule": None}}))["autonomy"]["after"]["rule"] == "live"


@pytest.mark.parametrize(("patch", "field"), [
    ({"max_change_pct": -1}, ("max_change_pct",)),
    ({"fx_rates_to_eur": {"USD": 1.1}}, ("fx_rates_to_eur", "USD")),
    ({"nope": 1}, ("nope",)),
    ({"manual_rate_limit": {"count": 0}}, ("manual_rate_limit", "count")),
])
def test_patch_limits_rejects_naming_the_field(patch: dict[str, object], field: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as info:
        patch_limits(WorkspaceLimits(), patch)
    assert info.value.errors()[0]["loc"] == field


def test_kill_switch_workspace_and_per_account() -> None:
    limits = WorkspaceLimits()
    on = set_kill_switch(limits, True)
    assert on.kill_switch and not set_kill_switch(on, False).kill_switch
    acc = set_kill_switch(set_kill_switch(limits, True, "act-1"), True, "act-2")
    assert acc.killed_ad_accounts == frozenset({"act-1", "act-2"}) and not acc.kill_switch
    assert set_kill_switch(acc, False, "act-1").killed_ad_accounts == frozenset({"act-2"})
    assert set_kill_switch(limits, False, "act-3") == limits
    assert diff_settings(limits, acc) == {"killed_ad_accounts": {"before": [], "after": ["act-1", "act-2"]}}


def test_only_accounts_newly_named_need_the_tenancy_check() -> None:
    before = WorkspaceLimits(killed_ad_accounts=frozenset({"a"}), account_whitelist=frozenset({"w1"}))
    after = WorkspaceLimits(killed_ad_accounts=frozenset({"a", "c", "b"}), account_whitelist=None)
    assert added_accounts(before, after) == [("killed_ad_accounts", "b"), ("killed_ad_accounts", "c")]
    assert added_accounts(after, before) == [("account_whitelist", "w1")]
    assert added_accounts(before, before) == []
