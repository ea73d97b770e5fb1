"""Money units per platform: Meta's currency offsets (not ISO exponents), per-currency minimums, unknown currencies."""

from __future__ import annotations

import pytest

from allot.contracts.currencies import (
    META_CURRENCY_OFFSETS,
    UNITS_PER_USD,
    UnknownCurrency,
    is_known_currency,
    min_budget_minor,
    minor_unit_offset,
)


@pytest.mark.parametrize(
    ("platform", "currency", "offset"),
    [
        ("meta", "EUR", 100), ("meta", "USD", 100), ("meta", "JPY", 1),
        ("meta", "HUF", 1), ("meta", "COP", 1), ("meta", "CRC", 1), ("meta", "IDR", 1), ("meta", "TWD", 1),
        ("meta", "BHD", 100), ("meta", "JOD", 100),       # ISO says 3 decimals; Meta counts in hundredths
        ("sandbox", "EUR", 100), ("sandbox", "JPY", 1), ("sandbox", "HUF", 100), ("sandbox", "COP", 100),
        ("sandbox", "KWD", 1_000), ("sandbox", "BHD", 1_000), ("google", "USD", 100),
    ],
)
def test_offsets_follow_meta_on_meta_and_iso_elsewhere(platform: str, currency: str, offset: int) -> None:
    assert minor_unit_offset(platform, currency) == offset


@pytest.mark.parametrize(("platform", "currency"), [("meta", "KWD"), ("meta", "eur"), ("meta", "XXX"),
                                                    ("sandbox", "XYZ"), ("tiktok", "")])
def test_unknown_currency_raises_naming_currency_and_platform(platform: str, currency: str) -> None:
    with pytest.raises(UnknownCurrency) as exc:
        minor_unit_offset(platform, currency)
    assert exc.value.currency == currency and exc.value.platform == platform
    assert repr(currency) in str(exc.value)
    assert not is_known_currency(platform, currency)


@pytest.mark.parametrize(
    ("platform", "entity_type", "currency", "minimum"),
    [
        ("meta", "adset", "EUR", 200),      # $2 → 2 EUR (currencies worth a dollar keep the dollar figure)
        ("meta", "adset", "USD", 200),
        ("meta", "adset", "JPY", 300),      # 2 × 150 yen, offset 1
        ("meta", "adset", "HUF", 700),      # 2 × 350 forint, offset 1 — the old table said 200 (2 forint)
        ("meta", "campaign", "COP", 7_800),  # 2 × 3900 pesos, offset 1
        ("sandbox", "adset", "KWD", 2_000),  # 2 dinars in fils (ISO: 3 decimals)
        ("sandbox", "adset", "HUF", 70_000),  # 700 forint in ISO hundredths
        ("google", "campaign", "JPY", 150),  # Google's $1
        ("tiktok", "campaign", "EUR", 5_000),
    ],
)
def test_minimums_are_the_dollar_minimum_in_the_accounts_currency(platform: str, entity_type: str, currency: str,
                                                                  minimum: int) -> None:
    assert min_budget_minor(platform, entity_type, currency) == minimum


def test_kwd_has_no_meta_minimum_because_meta_has_no_kwd() -> None:
    with pytest.raises(UnknownCurrency, match="not a Meta ad account currency"):
        min_budget_minor("meta", "adset", "KWD")


def test_every_meta_currency_but_the_retired_bolivar_has_a_minimum() -> None:
    missing = sorted(c for c in META_CURRENCY_OFFSETS if c not in UNITS_PER_USD)
    assert missing == ["VEF"]
    with pytest.raises(UnknownCurrency, match="no minimum daily budget"):
        min_budget_minor("meta", "adset", "VEF")


def test_meta_offsets_are_only_1_or_100() -> None:
    assert set(META_CURRENCY_OFFSETS.values()) == {1, 100}
    assert sorted(c for c, o in META_CURRENCY_OFFSETS.items() if o == 1) == [
        "CLP", "COP", "CRC", "HUF", "IDR", "ISK", "JPY", "KRW", "PYG", "TWD", "VND"]
