"""Facts about ad platforms that every party must agree on (shared by rules, guardrails, ingest and the executor)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Literal

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


# ---------------------------------------------------------------- Meta Graph / Marketing API versions

#: Marketing API versions: (release date, expiry date or None while Meta says "TBD"). Source: Meta's
#: "Marketing API version history", https://developers.facebook.com/docs/marketing-api/marketing-api-changelog/
#: versions (read 2026-12-05). The Marketing API expires versions earlier than the rest of the Graph API
#: (v21.0: Marketing API 2025-09-09, Graph API 2027-01-21); budgets are Marketing API calls, so these dates count.
#: After expiry a call fails with Graph error 2635 "You are calling a deprecated version of the Ads API".
META_API_VERSIONS: Mapping[str, tuple[date, date | None]] = MappingProxyType({
    "v27.0": (date(2026, 11, 4), None),
    "v26.0": (date(2026, 7, 29), None),
    "v25.0": (date(2026, 2, 18), date(2027, 2, 23)),
    "v24.0": (date(2025, 10, 8), date(2026, 11, 10)),
    "v23.0": (date(2025, 5, 29), date(2026, 6, 9)),
    "v22.0": (date(2025, 1, 21), date(2026, 2, 19)),
    "v21.0": (date(2024, 10, 2), date(2025, 9, 9)),
    "v20.0": (date(2024, 5, 21), date(2025, 5, 6)),
    "v19.0": (date(2024, 1, 23), date(2025, 2, 4)),
})
#: The default: inside Meta's supported window on 2026-12-05 with no published expiry yet.
META_DEFAULT_API_VERSION = "v26.0"
#: Warn this many days before a configured version's published expiry.
META_VERSION_WARN_DAYS = 60

VersionState = Literal["supported", "expiring", "expired", "unknown"]


@dataclass(frozen=True, slots=True)
class VersionCheck:
    """Where a configured Graph API version stands on a given day, and what an operator should read."""

    version: str
    state: VersionState
    expires_on: date | None
    days_left: int | None
    message: str

    @property
    def needs_attention(self) -> bool:
        """True for expiring, expired and unknown versions (log a warning, show it in /readyz)."""
        return self.state != "supported"


def check_meta_api_version(version: str, today: date, *, warn_days: int = META_VERSION_WARN_DAYS) -> VersionCheck:
    """Classify ``version`` against Meta's published expiry dates on ``today`` (pure: the caller passes the day).

    ``expiring`` when the expiry is within ``warn_days`` days (inclusive), ``expired`` on or after it (and
    for versions older than the table), ``unknown`` for a version the table does not list.
    """
    entry = META_API_VERSIONS.get(version)
    newest = META_DEFAULT_API_VERSION
    if entry is None:
        key = _version_key(version)
        if key is not None and key < min(_version_key(v) or (0, 0) for v in META_API_VERSIONS):
            return VersionCheck(version, "expired", None, None,
                                f"Meta Graph API {version} is older than every version Meta still lists; "
                                f"it has expired: set ALLOT_META_API_VERSION to {newest}")
        return VersionCheck(version, "unknown", None, None,
                            f"Meta Graph API {version} is not in Allot's version table; check its expiry on "
                            "Meta's Marketing API version history page")
    _, expires = entry
    if expires is None:
        return VersionCheck(version, "supported", None, None, f"Meta Graph API {version}: no expiry published yet")
    days_left = (expires - today).days
    if days_left <= 0:
        return VersionCheck(version, "expired", expires, days_left,
                            f"Meta Graph API {version} expired on {expires.isoformat()}: every call fails; set "
                            f"ALLOT_META_API_VERSION to {newest}")
    if days_left <= warn_days:
        return VersionCheck(version, "expiring", expires, days_left,
                            f"Meta Graph API {version} expires on {expires.isoformat()} (in {days_left} days): "
                            f"set ALLOT_META_API_VERSION to {newest} before then")
    return VersionCheck(version, "supported", expires, days_left,
                        f"Meta Graph API {version} is supported until {expires.isoformat()}")


def _version_key(version: str) -> tuple[int, int] | None:
    head, _, tail = version.removeprefix("v").partition(".")
    if not head.isdigit() or not (tail or "0").isdigit():
        return None
    return int(head), int(tail or "0")
