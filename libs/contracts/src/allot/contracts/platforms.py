"""Facts about ad platforms that every party must agree on (shared by rules, guardrails and the executor)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: Lowest daily budget Allot writes on a platform, in US dollar cents, by platform and level.
#: Seed 002: "Platform budget minimums apply (Google $1, TikTok $20-50, others $2)" — TikTok's range is
#: $20 per ad group and $50 per campaign. In an account's own currency (and the platform's units of it)
#: the minimum is :func:`allot.contracts.currencies.min_budget_minor`; these figures equal it for USD and
#: for currencies worth a dollar or more (EUR, GBP, CHF ...), and are wrong for JPY, HUF, COP and the like.
PLATFORM_MIN_BUDGET_CENTS: Mapping[str, Mapping[str, int]] = MappingProxyType({
    "google": MappingProxyType({"campaign": 100, "adset": 100, "ad": 100}),
    "tiktok": MappingProxyType({"campaign": 5000, "adset": 2000, "ad": 2000}),
    "meta": MappingProxyType({"campaign": 200, "adset": 200, "ad": 200}),
    "sandbox": MappingProxyType({"campaign": 200, "adset": 200, "ad": 200}),
})
#: Minimum for any platform or level not in the table ("others $2").
DEFAULT_MIN_BUDGET_CENTS = 200


def min_budget_cents(platform: str, entity_type: str) -> int:
    """Smallest daily budget in US cents for an entity of that level (per currency: ``min_budget_minor``)."""
    return PLATFORM_MIN_BUDGET_CENTS.get(platform, {}).get(entity_type, DEFAULT_MIN_BUDGET_CENTS)
