"""The console's money, amounts and times: integer minor units, the user's locale, the account's time zone."""

from __future__ import annotations

import pytest

from allot.console import formatting as fmt


def test_money_follows_the_locale_and_the_currency() -> None:
    assert fmt.money(123_456, "EUR", "en") == "€1,234.56"
    assert fmt.money(123_456, "EUR", "de") == "1.234,56\u00a0€"
    assert fmt.money(-5, "USD") == "-$0.05"
    assert fmt.money(1_500, "JPY") == "¥1,500"
    assert fmt.money(100, "HUF") == "100\u00a0HUF"
    assert fmt.money(None, "EUR") == "—"
    assert fmt.locale_of("de-DE,de;q=0.9,en;q=0.8") == "de" and fmt.locale_of("xx, en-GB") == "en"
    assert fmt.locale_of(None) == "en"


@pytest.mark.parametrize(("text", "cents"), [("300", 30_000), ("300.5", 30_050), ("300,05", 30_005),
                                             (" 1 200 ", 120_000), ("0", 0)])
def test_amounts_typed_in_major_units_become_minor_units(text: str, cents: int) -> None:
    assert fmt.parse_amount(text, "EUR") == cents


@pytest.mark.parametrize("text", ["", "abc", "1.234", "-5", "1e3", "12.345"])
def test_bad_amounts_say_what_is_wrong(text: str) -> None:
    with pytest.raises(ValueError, match="amount"):
        fmt.parse_amount(text, "EUR")


def test_times_are_shown_in_the_accounts_zone() -> None:
    assert fmt.when("2026-12-06T15:04:00+00:00", "Europe/Berlin") == "6 Dec 2026, 16:04 CET"
    assert fmt.when("2026-07-01T00:30:00+00:00", "America/New_York") == "30 Jun 2026, 20:30 EDT"
    assert fmt.when(None) == "—"
    assert fmt.cadence(24) == "once a day" and fmt.cadence(4) == "every 4 hours"


def test_service_messages_show_cents_as_money() -> None:
    text = "active members' floors (minBudgetCents) sum to 120000 cents, above the pool's daily budget of 18000 cents"
    assert fmt.humanize(text, "EUR") == ("active members' floors (minBudgetCents) sum to €1,200.00, above the pool's "
                                         "daily budget of €180.00")
