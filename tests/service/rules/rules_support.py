"""Helpers shared by the rules service tests (metrics reports, keys, waiting for the projection, a rule's
definition)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx

from allot.contracts import TOPICS, decode, new_envelope
from allot.contracts.payloads import MetricsIngested, RangeReach
from tests.support.kafka import eventually, read_topic
from tests.support.service import auth

NOW = datetime(2026, 5, 17, 0, 5, tzinfo=UTC)


def report(ws: str, account: str, entity: str, day: date, *, spend: int, revenue: int, conversions: int = 10,
           impressions: int = 20_000, clicks: int = 400, reach: int = 8_000, budget: int | None = 10_000,
           platform: str = "meta", level: str = "adset", reported_at: datetime | None = None,
           status: str = "active", extra: dict[str, int] | None = None, name: str | None = None,
           range_reach: RangeReach | None = None, event_id: Any = None) -> Any:
    start = datetime.combine(day, time(0), UTC)
    at = reported_at or start + timedelta(days=1, minutes=1)
    payload = MetricsIngested(platform=platform, ad_account_id=account, entity_type=level, entity_id=entity,
                              entity_name=name or f"{entity} name", status=status, currency="EUR",
                              daily_budget_cents=budget, interval_start=start, interval_end=start + timedelta(days=1),
                              reported_at=at, spend_cents=spend, impressions=impressions, clicks=clicks,
                              conversions=conversions, revenue_cents=revenue, reach=reach, extra=extra or {},
                              range_reach=range_reach)
    return new_envelope(event_type="metrics.ingested", schema_version=TOPICS["metrics.ingested"].schema_version,
                        payload=payload, producer="test", workspace_id=ws, occurred_at=at, event_id=event_id)


def rule_body(account: str, **over: Any) -> dict[str, Any]:
    body = {"name": "CPA guard", "scope": {"ad_account_ids": [account], "entity_level": "adset"},
            "targets": {"target_cpa": 2000},
            "conditions": {"logic": "and", "conditions": [
                {"metric": "cpa", "operator": "gt", "value": "target * 1.5", "time_range": "last_7d"}]},
            "actions": [{"type": "pause"}], "schedule": {"interval_minutes": 15},
            "protections": {"cooldown_minutes": 60}}
    return {**body, **over}


def days_before(now: datetime, n: int) -> list[date]:
    return [now.date() - timedelta(days=k) for k in range(1, n + 1)]


async def wait_for_entities(client: httpx.AsyncClient, key: str, account: str, level: str, count: int,
                            check: Any = None, actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Poll a preview over the account until ``count`` entities are projected (and ``check(body)`` holds)."""
    body = {"name": "probe", "scope": {"ad_account_ids": [account], "entity_level": level},
            "conditions": [{"metric": "spend", "operator": "gte", "value": 0, "time_range": "last_30d"}],
            "actions": actions or [{"type": "notify_only"}]}

    async def ready() -> Any:
        r = await client.post("/api/v1/rules/preview", json=body, headers=auth(key))
        if r.status_code != 200:
            return None
        out = r.json()
        if out["entities_evaluated"] != count or (check is not None and not check(out)):
            return None
        return out

    return await eventually(ready, timeout=20, what=f"{count} entities of {account} projected")


async def change_sets(bootstrap: str, rule_id: str, count: int, timeout: float = 15.0) -> list[Any]:
    records = await read_topic(bootstrap, "allocation.requested", min_count=count, timeout=timeout,
                               predicate=lambda r: r.key == rule_id.encode())
    return [decode("allocation.requested", r.value) for r in records]
