"""Exact money arithmetic for the guardrails: minor units, FX to EUR cents, half-up rounding, budget minimums.

Money never touches a float here. Amounts are integers in the platform's units of a currency; FX rates
and overdelivery factors are :class:`~decimal.Decimal`; a converted amount is rounded once, half-up,
to the EUR cent.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from allot.contracts.currencies import UnknownCurrency, min_budget_minor, minor_unit_offset  # noqa: F401
from allot.contracts.platforms import DEFAULT_MIN_BUDGET_CENTS, PLATFORM_MIN_BUDGET_CENTS, min_budget_cents  # noqa: F401

#: The platform minimums and currency units are shared protocol facts (allot.contracts.platforms and
#: allot.contracts.currencies), re-exported here for the domain. An amount's unit depends on the platform
#: (Meta's currency offsets are not ISO 4217 exponents: 1000 HUF is ``1000`` on Meta), so every conversion
#: here takes the platform; an unknown currency raises UnknownCurrency, never a default exponent.

_ONE = Decimal(1)


def round_half_up(value: Decimal) -> int:
    """``value`` rounded to the nearest integer, halves away from zero (amounts here are never negative)."""
    return int(value.quantize(_ONE, rounding=ROUND_HALF_UP))


def floor_int(value: Decimal) -> int:
    """The largest integer not above ``value``: used for limits, so a limit is never exceeded by rounding."""
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def to_eur_cents(amount_minor: int, currency: str, rate_to_eur: Decimal, factor: Decimal = _ONE, *,
                 platform: str) -> int:
    """EUR cents worth ``amount_minor`` × ``factor`` of ``currency`` at ``rate_to_eur`` (EUR per major unit).

    ``amount_minor`` is in ``platform``'s units of the currency (``minor_unit_offset``: Meta's offset, else
    ISO 4217). The product is exact (Decimal) and rounded once, half-up, to the cent: 1 USD cent at 0.925
    is 0.925 EUR cents → 1; at 0.5 → 0.5 → 1; at 0.4999 → 0. Raises UnknownCurrency for an unknown pair.
    """
    offset = minor_unit_offset(platform, currency)
    return round_half_up(Decimal(amount_minor) * factor * rate_to_eur * 100 / offset)


def change_pct(from_cents: int, to_cents: int) -> Decimal:
    """|to − from| / from × 100, exact; ``from_cents`` must be positive."""
    return Decimal(abs(to_cents - from_cents)) * 100 / Decimal(from_cents)


def pct2(value: Decimal) -> str:
    """A percentage as a string with 2 decimals (half-up), for reasons and details."""
    return str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
