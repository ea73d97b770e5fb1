"""Money units per platform and currency: what one integer ``*_cents`` amount means, and the lowest daily budget.

Allot's ``*_cents`` fields carry an amount in the unit the *platform* counts that currency in, so a
budget read from a platform and written back is never rescaled. ``minor_unit_offset(platform,
currency)`` says how many of those units make one major unit (one euro, one yen, one forint):

* Meta counts in its own "currency offset" (the table below), which is NOT the ISO 4217 exponent:
  HUF, COP, CRC, IDR and TWD have two ISO decimals but offset 1 (``daily_budget=1000`` is 1000 HUF),
  BHD and JOD have three ISO decimals but offset 100; currencies Meta does not list (e.g. KWD) are
  refused, not guessed.
* Every other platform (the sandbox; Google and TikTok adapters convert at their own edge) counts in
  ISO 4217 minor units.

A currency or platform this module does not know raises :class:`UnknownCurrency` (a ``ValueError``
naming the currency and platform); callers turn it into a rejected action or a 4xx, never a default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Final

__all__ = [
    "ISO_EXPONENTS",
    "META_CURRENCY_OFFSETS",
    "UNITS_PER_USD",
    "UnknownCurrency",
    "is_known_currency",
    "min_budget_minor",
    "minor_unit_offset",
]


class UnknownCurrency(ValueError):
    """A currency (or platform/currency pair) Allot has no unit table for; the message names both."""

    def __init__(self, currency: str, platform: str, why: str = "") -> None:
        self.currency = currency
        self.platform = platform
        super().__init__(
            why or f"currency {currency!r} is not known for platform {platform!r}: Allot has no minor-unit table for it"
        )


#: Meta's currency offsets: ``daily_budget`` (and every other Marketing API money field) is the amount
#: times this offset, as an integer. Source: Marketing API "Currency codes",
#: https://developers.facebook.com/docs/marketing-api/currencies (page updated Apr 16, 2024; read 2026-12-05).
#: Offset 1: CLP, COP, CRC, HUF, ISK, IDR, JPY, KRW, PYG, TWD, VND; every other listed currency is 100.
#: Retired currencies Meta still lists (HRK, LTL, LVL, SKK, VEF) are kept so old accounts read correctly.
_META_OFFSET_1: Final = ("CLP", "COP", "CRC", "HUF", "ISK", "IDR", "JPY", "KRW", "PYG", "TWD", "VND")
_META_OFFSET_100: Final = (
    "AED", "ARS", "AUD", "BDT", "BGN", "BHD", "BOB", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "DZD", "EGP",
    "EUR", "GBP", "GTQ", "HKD", "HNL", "HRK", "ILS", "INR", "JOD", "KES", "LTL", "LVL", "MOP", "MXN", "MYR",
    "NGN", "NIO", "NOK", "NZD", "PEN", "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR", "SEK", "SGD",
    "SKK", "THB", "TRY", "USD", "UYU", "VEF", "ZAR",
)
META_CURRENCY_OFFSETS: Final[Mapping[str, int]] = MappingProxyType(
    {**{c: 1 for c in _META_OFFSET_1}, **{c: 100 for c in _META_OFFSET_100}}
)

#: ISO 4217 minor-unit exponents of the currencies Allot knows outside Meta (Meta's list plus the common
#: three-decimal dinars). Source: ISO 4217 list one (SIX, https://www.six-group.com/en/products-services/
#: financial-information/data-standards.html). Only these codes are accepted; anything else is refused.
_ISO_EXPONENT_0: Final = ("CLP", "ISK", "JPY", "KRW", "PYG", "VND", "UGX", "XAF", "XOF")
_ISO_EXPONENT_3: Final = ("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND")
ISO_EXPONENTS: Final[Mapping[str, int]] = MappingProxyType({
    **{c: 2 for c in META_CURRENCY_OFFSETS},
    **{c: 0 for c in _ISO_EXPONENT_0},
    **{c: 3 for c in _ISO_EXPONENT_3},
})

#: Platform minimum daily budgets are published in US dollars (seed 002: Google $1, TikTok $20 per ad group
#: and $50 per campaign, others $2; Meta's own floor is $1/$5/$40 a day by billing event, "listed in USD,
#: convert them to your currency": Meta Business Help Centre "About minimum budgets",
#: https://www.facebook.com/business/help/203183363050448). To hold them in an account's own currency we
#: use these rounded reference rates (units of the currency per 1 USD, late 2026, two significant digits).
#: Currencies worth a dollar or more use 1, so their floor is never below the dollar figure. A rate that
#: drifts ±20 % still keeps Allot's $2 floor above Meta's lowest $1 minimum; Meta's exact per-account
#: minimum is ``GET /act_{id}/minimum_budgets`` (Marketing API reference "Ad Account Minimum Budgets").
#: VEF has no usable rate, so it has no minimum here and is refused.
UNITS_PER_USD: Final[Mapping[str, Decimal]] = MappingProxyType({
    code: Decimal(rate) for code, rate in {
        # worth at least one US dollar
        "USD": "1", "EUR": "1", "GBP": "1", "CHF": "1", "BHD": "1", "JOD": "1", "KWD": "1", "OMR": "1",
        "LVL": "1", "LYD": "1", "TND": "1",
        # weaker than the dollar
        "AED": "3.6", "ARS": "1400", "AUD": "1.5", "BDT": "120", "BGN": "1.7", "BOB": "6.9", "BRL": "5.3",
        "CAD": "1.4", "CLP": "940", "CNY": "7.1", "COP": "3900", "CRC": "500", "CZK": "21", "DKK": "6.4",
        "DZD": "130", "EGP": "48", "GTQ": "7.6", "HKD": "7.8", "HNL": "26", "HRK": "6.4", "HUF": "350",
        "IDR": "16000", "ILS": "3.3", "INR": "88", "IQD": "1300", "ISK": "125", "JPY": "150", "KES": "130",
        "KRW": "1400", "LTL": "2.9", "MOP": "8", "MXN": "18", "MYR": "4.2", "NGN": "1500", "NIO": "36",
        "NOK": "10", "NZD": "1.7", "PEN": "3.4", "PHP": "57", "PKR": "280", "PLN": "3.6", "PYG": "7000",
        "QAR": "3.6", "RON": "4.3", "RSD": "100", "RUB": "80", "SAR": "3.7", "SEK": "9.4", "SGD": "1.3",
        "SKK": "25", "THB": "32", "TRY": "41", "TWD": "31", "UGX": "3600", "UYU": "40", "VND": "26000",
        "XAF": "560", "XOF": "560", "ZAR": "18",
    }.items()
})

#: Platforms whose API counts money in ISO 4217 minor units (their adapters convert at the edge if not).
_ISO_PLATFORMS: Final = frozenset({"sandbox", "google", "tiktok"})


def minor_unit_offset(platform: str, currency: str) -> int:
    """How many of ``platform``'s integer money units make one major unit of ``currency`` (Meta: its offset).

    Raises :class:`UnknownCurrency` for a currency the platform's table does not list.
    """
    if platform == "meta":
        offset = META_CURRENCY_OFFSETS.get(currency)
        if offset is None:
            raise UnknownCurrency(currency, platform, f"currency {currency!r} is not a Meta ad account currency "
                                                      "(Marketing API 'Currency codes' does not list it)")
        return offset
    exponent = ISO_EXPONENTS.get(currency)
    if exponent is None:
        raise UnknownCurrency(currency, platform)
    return int(10**exponent)


def is_known_currency(platform: str, currency: str) -> bool:
    """True when :func:`minor_unit_offset` has a value for the pair."""
    try:
        minor_unit_offset(platform, currency)
    except UnknownCurrency:
        return False
    return True


def min_budget_minor(platform: str, entity_type: str, currency: str) -> int:
    """Lowest daily budget Allot writes for this entity, in the platform's units of ``currency`` (rounded up).

    The platform's dollar minimum (``allot.contracts.platforms``) × the reference rate × the offset:
    USD/EUR on Meta 200, JPY 300, HUF 700, COP 7800; KWD on the sandbox 2000 (fils); KWD on Meta raises.
    """
    from allot.contracts.platforms import min_budget_cents  # the dollar figures live beside the platform facts

    offset = minor_unit_offset(platform, currency)
    rate = UNITS_PER_USD.get(currency)
    if rate is None:
        raise UnknownCurrency(currency, platform, f"no minimum daily budget is known for {currency!r} "
                                                  f"(no reference rate to convert the {platform} dollar minimum)")
    usd_cents = min_budget_cents(platform, entity_type)
    return math.ceil(Decimal(usd_cents) * rate * offset / 100)
