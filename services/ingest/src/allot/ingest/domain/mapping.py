"""Graph rows → Allot facts: money in the account's units, intervals in UTC, fingerprints and event ids."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final, Literal

from allot.contracts.envelope import derive_event_id
from allot.ingest.domain.errors import AccountProblem
from allot.ingest.domain.intervals import local_hour_interval, parse_hour_label, zone

HOURLY_BREAKDOWN = "hourly_stats_aggregated_by_advertiser_time_zone"
#: The complete-day ranges whose deduplicated reach ingest reads (metrics.ingested.range_reach), in local days
#: ending with the account's yesterday: Meta's ``date_preset`` of the same names, read as explicit time ranges.
REACH_RANGES: Final[Mapping[str, int]] = {"yesterday": 1, "last_3d": 3, "last_7d": 7, "last_14d": 14, "last_30d": 30}
#: Scopes that let a token change something; ingest refuses a token holding any of them.
WRITE_SCOPES = frozenset({"ads_management", "business_management", "pages_manage_ads", "pages_manage_metadata",
                          "pages_manage_posts", "catalog_management", "publish_video", "whatsapp_business_management"})
#: AdAccount.account_status codes (Marketing API reference "Ad Account") → AccountProfiled.account_status.
_ACCOUNT_STATUS = {1: "active", 2: "disabled", 3: "unsettled", 7: "pending", 8: "pending", 9: "pending",
                   100: "pending", 101: "closed", 201: "active", 202: "closed"}
EntityStatus = Literal["active", "paused", "deleted"]


def meta_offset(currency: str) -> int:
    """Integer money units per major unit of ``currency`` in Meta's terms (AccountProblem when unknown)."""
    try:
        from allot.contracts.currencies import UnknownCurrency, minor_unit_offset
    except ImportError:  # pragma: no cover - contracts without the currency table
        raise AccountProblem(f"currency {currency!r}: this Allot has no Meta currency table") from None
    try:
        return minor_unit_offset("meta", currency)
    except UnknownCurrency as exc:
        raise AccountProblem(f"{exc}; Allot cannot convert this account's spend, so it is not read") from None


def to_minor(amount: str | int | float | None, offset: int) -> int:
    """A Graph money string in major units ("12.34") → integer units of the account (offset 100 → 1234)."""
    if amount in (None, ""):
        return 0
    try:
        value = Decimal(str(amount)) * offset
    except InvalidOperation:
        raise ValueError(f"not a money amount: {amount!r}") from None
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def to_count(value: str | int | float | Decimal | None) -> int:
    if value in (None, ""):
        return 0
    return int(Decimal(str(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def action_total(actions: Iterable[Mapping[str, Any]] | None, action_type: str) -> Decimal:
    """Sum of the ``value`` of entries of ``actions`` / ``action_values`` with this ``action_type``."""
    total = Decimal(0)
    for a in actions or ():
        if a.get("action_type") == action_type:
            total += Decimal(str(a.get("value", "0")))
    return total


def account_status(code: int | str | None) -> str:
    try:
        return _ACCOUNT_STATUS.get(int(code or 0), "unknown")
    except (TypeError, ValueError):
        return "unknown"


def entity_status(effective_status: str | None) -> EntityStatus:
    s = (effective_status or "").upper()
    if s == "ACTIVE":
        return "active"
    if s in ("DELETED", "ARCHIVED"):
        return "deleted"
    return "paused"


def write_scopes(scopes: Sequence[str]) -> list[str]:
    """The scopes of a token that can change something (empty = read-only)."""
    return sorted(s for s in scopes if s in WRITE_SCOPES or "manage" in s or s.startswith("publish"))


@dataclass(frozen=True)
class Entity:
    """A campaign or ad set as Graph lists it (budgets in the account's units)."""

    entity_type: Literal["campaign", "adset"]
    entity_id: str
    name: str
    status: EntityStatus
    daily_budget: int | None
    lifetime_budget: int | None
    parent_id: str | None


def parse_entity(entity_type: Literal["campaign", "adset"], row: Mapping[str, Any]) -> Entity:
    def budget(key: str) -> int | None:
        raw = row.get(key)
        return int(raw) if raw not in (None, "", "0") else None

    return Entity(entity_type, str(row["id"]), str(row.get("name", "")),
                  entity_status(row.get("effective_status") or row.get("status")), budget("daily_budget"),
                  budget("lifetime_budget"), str(row["campaign_id"]) if row.get("campaign_id") else None)


@dataclass(frozen=True)
class IntervalReport:
    """One entity's full counters for one local hour, as Graph reports them now."""

    entity_type: Literal["campaign", "adset"]
    entity_id: str
    entity_name: str
    parent_id: str | None
    interval_start: datetime
    interval_end: datetime
    spend: int
    impressions: int
    clicks: int
    conversions: int
    revenue: int
    extra: dict[str, int] = field(default_factory=dict)

    def counters(self) -> tuple[int, ...]:
        return (self.spend, self.impressions, self.clicks, self.conversions, self.revenue)


def map_insight_row(level: Literal["campaign", "adset"], row: Mapping[str, Any], *, timezone_name: str,
                    offset: int, conversion_action: str) -> IntervalReport | None:
    """One hourly insights row → an IntervalReport in UTC (None for an hour the local clock skipped).

    Conversions and revenue are the ``actions`` / ``action_values`` of ``conversion_action``; spend and
    revenue are converted to the account's integer units with Meta's offset.
    """
    tz = zone(timezone_name)
    day = date.fromisoformat(str(row["date_start"]))
    interval = local_hour_interval(day, parse_hour_label(str(row[HOURLY_BREAKDOWN])), tz)
    if interval is None:
        return None
    entity_id = str(row["adset_id"] if level == "adset" else row["campaign_id"])
    name = str(row.get("adset_name" if level == "adset" else "campaign_name", ""))
    parent = str(row["campaign_id"]) if level == "adset" and row.get("campaign_id") else None
    revenue = action_total(row.get("action_values"), conversion_action) * offset
    return IntervalReport(
        entity_type=level, entity_id=entity_id, entity_name=name, parent_id=parent,
        interval_start=interval[0], interval_end=interval[1], spend=to_minor(row.get("spend"), offset),
        impressions=to_count(row.get("impressions")), clicks=to_count(row.get("clicks")),
        conversions=to_count(action_total(row.get("actions"), conversion_action)),
        revenue=int(revenue.quantize(Decimal(1), rounding=ROUND_HALF_UP)))


def range_reach_by_entity(rows: Mapping[tuple[str, str], Sequence[Mapping[str, Any]]],
                          listed: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, int | None]]:
    """(entity type, entity id) → range name → people, from the insights rows of each (level, range name).

    A row's ``reach`` is the platform's deduplicated reach of the entity over the whole range (no
    ``time_increment``: one row per entity). An entity ``listed`` with no row for a range delivered nothing in
    it: reach 0. A row without ``reach`` leaves that range unreported (None)."""
    out: dict[tuple[str, str], dict[str, int | None]] = {key: dict.fromkeys(REACH_RANGES, 0) for key in listed}
    for (level, name), level_rows in rows.items():
        for row in level_rows:
            entity_id = row.get(f"{level}_id")
            if entity_id is None:
                continue
            ranges = out.setdefault((level, str(entity_id)), dict.fromkeys(REACH_RANGES, 0))
            ranges[name] = to_count(row["reach"]) if row.get("reach") not in (None, "") else None
    return out


def fingerprint(report: IntervalReport, entity: Entity | None, *, latest: bool,
                range_reach: Sequence[Any] = ()) -> str:
    """What a consumer would see change: the counters, and for an entity's latest interval also its budget,
    status and name (so a person's edit in Ads Manager is re-published once, not the whole window) and the
    platform's range reach it carries (re-published once when the local day rolls over)."""
    parts: list[Any] = list(report.counters())
    if latest and entity is not None:
        parts += [entity.daily_budget, entity.status, entity.name]
    if latest and range_reach:
        parts.append(tuple(range_reach))
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def report_event_id(workspace_id: str, ad_account_id: str, report: IntervalReport, fp: str) -> uuid.UUID:
    """Same account, entity, interval and numbers → same id, across restarts and replays."""
    cause = f"ingest/meta/{workspace_id}/{ad_account_id}/{report.entity_type}/{report.entity_id}/" \
            f"{report.interval_start.isoformat()}"
    return derive_event_id(cause, fp)


def profile_fingerprint(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]
