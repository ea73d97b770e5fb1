"""Facts about ad platforms that every party must agree on (shared by rules, guardrails and the executor)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: Lowest daily budget a platform accepts, in minor units of the entity's currency, by platform and level.
#: Seed 002: "Platform budget minimums apply (Google $1, TikTok $20-50, others $2)" — TikTok's range is
#: $20 per ad group and $50 per campaign.
PLATFORM_MIN_BUDGET_CENTS: Mapping[str, Mapping[str, int]] = MappingProxyType({
    "google": MappingProxyType({"campaign": 100, "adset": 100, "ad": 100}),
    "tiktok": MappingProxyType({"campaign": 5000, "adset": 2000, "ad": 2000}),
    "meta": MappingProxyType({"campaign": 200, "adset": 200, "ad": 200}),
    "sandbox": MappingProxyType({"campaign": 200, "adset": 200, "ad": 200}),
})
#: Minimum for any platform or level not in the table ("others $2").
DEFAULT_MIN_BUDGET_CENTS = 200


def min_budget_cents(platform: str, entity_type: str) -> int:
    """Smallest daily budget (minor units) the platform accepts for an entity of that level."""
    return PLATFORM_MIN_BUDGET_CENTS.get(platform, {}).get(entity_type, DEFAULT_MIN_BUDGET_CENTS)
