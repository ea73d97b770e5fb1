"""Exact money arithmetic for the guardrails: minor units, FX to EUR cents, half-up rounding, budget minimums.

Money never touches a float here. Amounts are integer minor units of an ISO 4217 currency; FX rates
and overdelivery factors are :class:`~decimal.Decimal`; a converted amount is rounded once, half-up,
to the EUR cent.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Final

from allot.contracts.platforms import DEFAULT_MIN_BUDGET_CENTS, PLATFORM_MIN_BUDGET_CENTS, min_budget_cents  # noqa: F401

#: The platform minimums are shared protocol facts (allot.contracts.platforms), re-exported here for the domain.

#: Minor-unit exponent of currencies that do not have two decimals (ISO 4217). Every other code has 2.
CURRENCY_EXPONENTS: Final[dict[str, int]] = {
    **{
        code: 0
        for code in (
            "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
            "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF",
        )
    },
    **{code: 3 for code in ("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND")},
}

_ONE = Decimal(1)


def currency_exponent(currency: str) -> int:
    """Number of decimals of ``currency``'s minor unit (2 unless ISO 4217 says otherwise)."""
    return CURRENCY_EXPONENTS.get(currency, 2)


def round_half_up(value: Decimal) -> int:
    """``value`` rounded to the nearest integer, halves away from zero (amounts here are never negative)."""
    return int(value.quantize(_ONE, rounding=ROUND_HALF_UP))


def floor_int(value: Decimal) -> int:
    """The largest integer not above ``value``: used for limits, so a limit is never exceeded by rounding."""
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def to_eur_cents(amount_minor: int, currency: str, rate_to_eur: Decimal, factor: Decimal = _ONE) -> int:
    """EUR cents worth ``amount_minor`` × ``factor`` of ``currency`` at ``rate_to_eur`` (EUR per major unit).

    The product is exact (Decimal) and rounded once, half-up, to the cent: 1 USD cent at 0.925 is
    0.925 EUR cents → 1; at 0.5 → 0.5 → 1; at 0.4999 → 0.
    """
    scale = Decimal(10) ** (2 - currency_exponent(currency))
    return round_half_up(Decimal(amount_minor) * factor * rate_to_eur * scale)


def change_pct(from_cents: int, to_cents: int) -> Decimal:
    """|to − from| / from × 100, exact; ``from_cents`` must be positive."""
    return Decimal(abs(to_cents - from_cents)) * 100 / Decimal(from_cents)


def pct2(value: Decimal) -> str:
    """A percentage as a string with 2 decimals (half-up), for reasons and details."""
    return str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
