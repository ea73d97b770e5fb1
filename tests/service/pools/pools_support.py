"""Builders shared by the pools service tests (real broker + real Postgres, service in-process)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.payloads import MetricsIngested
from allot.pools.service import SPEC
from allot.runtime.clock import ManualClock
from allot.runtime.service import ServiceContext
from allot.runtime.settings import Settings
from tests.support.kafka import eventually, publish, read_topic
from tests.support.service import api_keys, auth, running_service

BASE = "/api/v1/budget-pools"
#: Noon: the next 24 h slot boundary is 12 h away, so the scheduler stays quiet unless a test moves the clock.
NOW = datetime(2026, 9, 10, 12, tzinfo=UTC)
TODAY = NOW.date().isoformat()
#: Member ROAS in the published history: m1 is clearly the best.
ROAS = {"m1": 4.0, "m2": 2.0, "m3": 1.5, "m4": 1.0}


class PoolsCase:
    """Per-test workspace ids, keys, entities and builders."""

    def __init__(self, settings: Settings, unique: str) -> None:
        self.unique = unique
        self.settings = settings
        self.ws = f"ws-{unique}"
        self.other_ws = f"ws2-{unique}"
        (self.operator, self.viewer, self.other), self.keys_json = api_keys(
            (self.ws, "operator"), (self.ws, "viewer"), (self.other_ws, "operator")
        )
        self.account = f"act-{unique}"
        self.entity = self.entities()

    def entities(self, group: str = "") -> dict[str, str]:
        """Entity ids of m1..m4; another ``group`` is another set of entities (an entity is in one pool only)."""
        return {k: f"{k}{group}-{self.unique}" for k in ROAS}

    @asynccontextmanager
    async def service(
        self, clock: ManualClock | None = None, **overrides: Any
    ) -> AsyncIterator[tuple[httpx.AsyncClient, ServiceContext, ManualClock]]:
        clock = clock or ManualClock(NOW)
        settings = self.settings.model_copy(update={"api_keys": self.keys_json})
        async with running_service(SPEC, settings, clock=clock, **overrides) as (client, ctx):
            yield client, ctx, clock

    # ------------------------------------------------------------ bodies

    def member(self, key: str, group: str = "", **extra: Any) -> dict[str, Any]:
        return {
            "entityType": "campaign",
            "entityId": self.entities(group).get(key, key),
            "adAccountId": self.account,
            "entityName": f"Campaign {key}",
            **extra,
        }

    def pool_body(self, *, members: int = 4, group: str = "", **extra: Any) -> dict[str, Any]:
        return {
            "name": f"Prospecting {self.unique}",
            "optimizationMetric": "roas",
            "dailyBudgetCents": 44_000,
            "currency": "EUR",
            "allocationFrequencyHours": 24,
            "minBudgetCents": 2_000,
            "minBudgetChange": 100,
            "status": "active",
            "autonomy": "live",
            "members": [self.member(k, group) for k in list(ROAS)[:members]],
            **extra,
        }

    async def create_pool(self, client: httpx.AsyncClient, **extra: Any) -> dict[str, Any]:
        r = await client.post(BASE, json=self.pool_body(**extra), headers=auth(self.operator))
        assert r.status_code == 201, r.text
        return r.json()

    # ------------------------------------------------------------ metrics

    def metric(
        self,
        key: str,
        day_start: datetime,
        *,
        spend: int,
        roas: float,
        budget: int = 10_000,
        reported_at: datetime | None = None,
        group: str = "",
    ) -> Envelope[Any]:
        revenue = int(spend * roas)
        payload = MetricsIngested(
            platform="sandbox",
            ad_account_id=self.account,
            entity_type="campaign",
            entity_id=self.entities(group)[key],
            entity_name=f"Campaign {key}",
            currency="EUR",
            daily_budget_cents=budget,
            interval_start=day_start,
            interval_end=day_start + timedelta(days=1),
            reported_at=reported_at or NOW - timedelta(minutes=5),
            spend_cents=spend,
            impressions=spend * 10,
            clicks=spend // 10,
            conversions=revenue // 5_000,
            revenue_cents=revenue,
            reach=spend * 5,
        )
        return new_envelope(
            event_type="metrics.ingested",
            schema_version=1,
            payload=payload,
            producer="test",
            workspace_id=self.ws,
            occurred_at=NOW,
        )

    def history(
        self, days: int = 10, *, roas: dict[str, float] | None = None, groups: tuple[str, ...] = ("",)
    ) -> list[Envelope[Any]]:
        """``days`` full UTC days before today for every member (of each entity group); spend ~ the budget, ROAS
        per member."""
        midnight = NOW.replace(hour=0)
        out = []
        for group in groups:
            for key, r in (roas or ROAS).items():
                for d in range(days, 0, -1):
                    out.append(
                        self.metric(
                            key, midnight - timedelta(days=d), spend=10_000 + (d % 3) * 300, roas=r, group=group
                        )
                    )
        return out

    async def publish_history(self, bootstrap: str, ctx: ServiceContext, envelopes: list[Envelope[Any]]) -> None:
        await publish(bootstrap, *envelopes)
        expected = len({(e.payload.entity_id, e.payload.interval_start) for e in envelopes})

        async def stored() -> bool:
            async with ctx.pool.acquire() as conn:
                n = await conn.fetchval("SELECT count(*) FROM member_metrics WHERE workspace_id = $1", self.ws)
            return n >= expected

        await eventually(stored, timeout=30, what="the metric projection")

    # ------------------------------------------------------------ bus

    async def requests_for(
        self, bootstrap: str, pool_id: str, min_count: int = 1, timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        """allocation.requested envelopes (dicts) of one pool."""

        def mine(r: Any) -> bool:
            return bool(orjson.loads(r.value)["payload"]["source_id"] == pool_id)

        records = await read_topic(
            bootstrap, "allocation.requested", min_count=min_count, timeout=timeout, predicate=mine
        )
        return [orjson.loads(r.value) for r in records]

    async def allocations(self, client: httpx.AsyncClient, pool_id: str, **params: Any) -> list[dict[str, Any]]:
        r = await client.get(f"{BASE}/{pool_id}/allocations", params=params, headers=auth(self.viewer))
        assert r.status_code == 200, r.text
        return list(r.json()["allocations"])


def field_of(r: httpx.Response) -> list[str]:
    """Every field a 4xx body names."""
    body = r.json()
    fields = [e["field"] for e in body.get("errors", [])]
    if body.get("field"):
        fields.append(body["field"])
    return fields


def action_id(pool_id: str, slot: str, entity_id: str) -> str:
    return str(uuid.uuid5(uuid.UUID(pool_id), f"{slot}/{entity_id}"))


__all__ = ["BASE", "NOW", "ROAS", "TODAY", "PoolsCase", "action_id", "auth", "eventually", "field_of"]
