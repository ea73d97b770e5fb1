"""WorkspaceLimits validation, exact FX conversion and the settings diff for the audit log."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from allot.contracts.currencies import UnknownCurrency
from allot.guardrails.domain import (
    ManualRateLimit,
    WorkspaceLimits,
    diff_settings,
    round_half_up,
    to_eur_cents,
)


def test_defaults_are_the_documented_ones() -> None:
    limits = WorkspaceLimits()
    assert limits.kill_switch is False
    assert limits.killed_ad_accounts == frozenset()
    assert limits.daily_cap_eur_cents is None and limits.monthly_cap_eur_cents is None
    assert limits.fx_rates_to_eur == {"EUR": Decimal(1)}
    assert limits.account_whitelist is None and limits.platform_whitelist is None
    assert limits.max_change_pct == Decimal(20)
    assert limits.net_change_pct_window == Decimal(20)
    assert limits.net_change_window_h == 72
    assert limits.autonomy == {"pool": "live", "rule": "live", "pacing": "live", "manual": "live", "undo": "live"}
    assert limits.manual_rate_limit == ManualRateLimit(count=1, window_s=300)
    assert limits.overdelivery_factors == {
        "meta": Decimal("1.75"), "google": Decimal("2.0"), "tiktok": Decimal("1.25"), "sandbox": Decimal("1.25"),
    }
    assert limits.source_priority == ["pool", "pacing", "rule"]
    assert limits.approval_ttl_s == 900


@pytest.mark.parametrize(
    ("given", "rate"),
    [
        ("0.9234", Decimal("0.9234")),
        (" 1.0850 ", Decimal("1.0850")),
        (923_400, Decimal("0.9234")),          # integer = micro-rate
        (1_000_000, Decimal(1)),
        (6_100, Decimal("0.0061")),
        (Decimal("0.5"), Decimal("0.5")),
        ("1E-7", Decimal("1E-7")),
    ],
)
def test_fx_rate_accepts_decimal_strings_and_integer_micro_rates(given: object, rate: Decimal) -> None:
    assert WorkspaceLimits(fx_rates_to_eur={"USD": given}).fx_rates_to_eur["USD"] == rate


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (0.92, "must not be a float"),
        (True, "not a boolean"),
        ("abc", "not a decimal number"),
        ("0", "positive finite"),
        ("-1.2", "positive finite"),
        (0, "positive finite"),
        ("NaN", "positive finite"),
        ("Infinity", "positive finite"),
        ([1], "decimal string or an integer micro-rate"),
    ],
)
def test_fx_rate_rejects_floats_and_nonsense_with_a_clear_field_error(given: object, message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        WorkspaceLimits(fx_rates_to_eur={"USD": given})
    errors = exc.value.errors()
    assert errors[0]["loc"] == ("fx_rates_to_eur", "USD")
    assert message in errors[0]["msg"]


def test_fx_float_in_a_json_body_is_rejected() -> None:
    with pytest.raises(ValidationError, match="must not be a float"):
        WorkspaceLimits.model_validate_json('{"fx_rates_to_eur": {"USD": 0.92}}')


def test_fx_eur_is_always_one() -> None:
    assert WorkspaceLimits(fx_rates_to_eur={"USD": "0.9"}).rate_to_eur("EUR") == Decimal(1)
    assert WorkspaceLimits(fx_rates_to_eur={"EUR": "1.000"}).rate_to_eur("EUR") == Decimal(1)
    assert WorkspaceLimits().rate_to_eur("USD") is None
    with pytest.raises(ValidationError, match="EUR rate must be 1"):
        WorkspaceLimits(fx_rates_to_eur={"EUR": "1.1"})


def test_fx_currency_code_must_be_iso_4217_shaped() -> None:
    with pytest.raises(ValidationError) as exc:
        WorkspaceLimits(fx_rates_to_eur={"usd": "0.9"})
    assert exc.value.errors()[0]["loc"] == ("fx_rates_to_eur", "usd", "[key]")


@pytest.mark.parametrize(
    ("field", "value", "loc"),
    [
        ("daily_cap_eur_cents", -1, ("daily_cap_eur_cents",)),
        ("monthly_cap_eur_cents", -1, ("monthly_cap_eur_cents",)),
        ("max_change_pct", 0, ("max_change_pct",)),
        ("max_change_pct", "abc", ("max_change_pct",)),
        ("net_change_pct_window", -5, ("net_change_pct_window",)),
        ("net_change_window_h", 0, ("net_change_window_h",)),
        ("approval_ttl_s", 0, ("approval_ttl_s",)),
        ("overdelivery_factors", {"google": "0.9"}, ("overdelivery_factors", "google")),
        ("overdelivery_factors", {"bing": "1.5"}, ("overdelivery_factors", "bing", "[key]")),
        ("autonomy", {"pool": "dry-run"}, ("autonomy", "pool")),
        ("autonomy", {"robot": "live"}, ("autonomy", "robot", "[key]")),
        ("source_priority", ["pool", "pool"], ("source_priority",)),
        ("source_priority", [], ("source_priority",)),
        ("platform_whitelist", ["myspace"], ("platform_whitelist", 0)),
        ("killed_ad_accounts", [""], ("killed_ad_accounts", 0)),
        ("manual_rate_limit", {"count": 0, "window_s": 300}, ("manual_rate_limit", "count")),
        ("kill_switch", "maybe", ("kill_switch",)),
        ("no_such_field", 1, ("no_such_field",)),
    ],
)
def test_invalid_settings_name_the_field(field: str, value: object, loc: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationError) as exc:
        WorkspaceLimits.model_validate({field: value})
    assert [e["loc"] for e in exc.value.errors()] == [loc]


def test_partial_maps_keep_the_defaults_of_the_keys_not_given() -> None:
    limits = WorkspaceLimits(overdelivery_factors={"google": "2.5"}, autonomy={"rule": "observe"})
    assert limits.overdelivery_factors["google"] == Decimal("2.5")
    assert limits.overdelivery_factors["meta"] == Decimal("1.75")
    assert limits.autonomy_of("rule") == "observe"
    assert limits.autonomy_of("pool") == "live"


def test_percentages_given_as_json_numbers_are_exact() -> None:
    limits = WorkspaceLimits.model_validate_json('{"max_change_pct": 20.01, "net_change_pct_window": 15}')
    assert limits.max_change_pct == Decimal("20.01")
    assert limits.net_change_pct_window == Decimal(15)


def test_json_round_trip_is_lossless() -> None:
    limits = WorkspaceLimits(
        kill_switch=True,
        killed_ad_accounts={"act-2", "act-1"},
        daily_cap_eur_cents=100_000,
        fx_rates_to_eur={"USD": "0.9234", "JPY": 6_100},
        account_whitelist={"act-1"},
        platform_whitelist={"meta", "google"},
        protected_entities={"as-9"},
        max_change_pct="15.5",
        manual_rate_limit={"count": 2, "window_s": 60},
    )
    dumped = limits.model_dump(mode="json")
    assert dumped["killed_ad_accounts"] == ["act-1", "act-2"]
    assert dumped["platform_whitelist"] == ["google", "meta"]
    assert dumped["fx_rates_to_eur"] == {"EUR": "1", "USD": "0.9234", "JPY": "0.0061"}
    assert WorkspaceLimits.model_validate_json(limits.model_dump_json()) == limits


def test_limits_are_immutable() -> None:
    with pytest.raises(ValidationError):
        WorkspaceLimits().kill_switch = True  # type: ignore[misc]


def test_priority_rank() -> None:
    limits = WorkspaceLimits()
    assert [limits.priority_rank(s) for s in ("pool", "pacing", "rule", "manual", "undo")] == [0, 1, 2, None, None]


# ------------------------------------------------------------------ diff for the audit log


def test_diff_of_identical_settings_is_empty() -> None:
    assert diff_settings(WorkspaceLimits(), WorkspaceLimits()) == {}


def test_diff_lists_only_changed_fields_with_json_before_and_after() -> None:
    before = WorkspaceLimits(protected_entities={"b", "a"}, daily_cap_eur_cents=1000)
    after = WorkspaceLimits(
        protected_entities={"c", "a"}, daily_cap_eur_cents=1000, kill_switch=True, max_change_pct="15",
        fx_rates_to_eur={"USD": "0.9"},
    )
    assert diff_settings(before, after) == {
        "kill_switch": {"before": False, "after": True},
        "protected_entities": {"before": ["a", "b"], "after": ["a", "c"]},
        "max_change_pct": {"before": "20", "after": "15"},
        "fx_rates_to_eur": {"before": {"EUR": "1"}, "after": {"EUR": "1", "USD": "0.9"}},
    }


# ------------------------------------------------------------------ money


@pytest.mark.parametrize(
    ("amount", "currency", "rate", "factor", "eur_cents"),
    [
        (10_000, "EUR", "1", "1", 10_000),
        (100, "USD", "0.925", "1", 93),         # 92.5 → 93: half rounds up
        (100, "USD", "0.9249", "1", 92),        # 92.49 → 92
        (1, "USD", "0.5", "1", 1),              # 0.5 → 1
        (1, "USD", "0.4999", "1", 0),
        (1, "EUR", "1", "1.25", 1),             # 1.25 → 1
        (2, "EUR", "1", "1.25", 3),             # 2.5 → 3
        (10_000, "EUR", "1", "1.25", 12_500),
        (10_000, "EUR", "1", "2.0", 20_000),
        (1_000, "JPY", "0.0061", "1", 610),     # JPY has no minor unit: 1000 yen = 6.10 EUR
        (1_000, "KWD", "3", "1", 300),          # KWD has 3 decimals: 1000 fils = 1 KWD = 3 EUR
        (1_000, "HUF", "0.0025", "1", 3),       # ISO: 1000 fillér = 10 HUF = 0.025 EUR → 3 cents
        (333, "USD", "0.9", "2.0", 599),        # 599.4 → 599, rounded once after the factor
    ],
)
def test_to_eur_cents_rounds_half_up_once_to_the_cent(
    amount: int, currency: str, rate: str, factor: str, eur_cents: int
) -> None:
    assert to_eur_cents(amount, currency, Decimal(rate), Decimal(factor), platform="sandbox") == eur_cents


@pytest.mark.parametrize(
    ("amount", "currency", "rate", "eur_cents"),
    [
        (10_000, "EUR", "1", 10_000),           # offset 100, like ISO
        (10_000, "USD", "0.9", 9_000),
        (1_000, "JPY", "0.0061", 610),          # offset 1, like ISO
        (1_000, "HUF", "0.0025", 250),          # offset 1 (ISO has 2 decimals): 1000 = 1000 HUF = 2.50 EUR
        (40_000, "COP", "0.00022", 880),        # offset 1: 40 000 COP = 8.80 EUR (ISO would read 88 cents)
        (1_000, "TWD", "0.028", 2_800),         # offset 1: 1000 TWD = 28 EUR
        (1_000, "BHD", "2.4", 2_400),           # offset 100 (ISO has 3 decimals): 10.00 BHD = 24 EUR
    ],
)
def test_meta_amounts_are_read_with_metas_currency_offsets(amount: int, currency: str, rate: str,
                                                           eur_cents: int) -> None:
    assert to_eur_cents(amount, currency, Decimal(rate), platform="meta") == eur_cents


@pytest.mark.parametrize(("platform", "currency"), [("meta", "KWD"), ("meta", "XYZ"), ("sandbox", "XYZ")])
def test_unknown_currency_is_refused_never_guessed(platform: str, currency: str) -> None:
    with pytest.raises(UnknownCurrency, match=currency):
        to_eur_cents(100, currency, Decimal(1), platform=platform)


def test_round_half_up_is_not_bankers_rounding() -> None:
    assert [round_half_up(Decimal(v)) for v in ("0.5", "1.5", "2.5", "2.4999")] == [1, 2, 3, 2]
