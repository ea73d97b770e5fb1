"""Builders shared by the pacing service tests (real broker + real Postgres, service in-process)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.payloads import ActionExecuted, MetricsIngested
from allot.pacing.service import SPEC
from allot.pacing.settings import PacingSettings
from allot.runtime.clock import ManualClock
from allot.runtime.service import ServiceContext
from allot.runtime.settings import Settings
from tests.support.kafka import eventually, read_topic
from tests.support.service import api_keys, auth, running_service

# A 10-day flight; NOW is exactly half way (and on an hour boundary).
FLIGHT_START = datetime(2026, 8, 1, tzinfo=UTC)
FLIGHT_END = datetime(2026, 8, 11, tzinfo=UTC)
NOW = datetime(2026, 8, 6, tzinfo=UTC)


class Pacing:
    """Per-test ids, keys and builders."""

    NOW = NOW
    FLIGHT_START = FLIGHT_START
    FLIGHT_END = FLIGHT_END

    def __init__(self, settings: Settings, unique: str) -> None:
        self.unique = unique
        self.ws = f"ws-{unique}"
        self.other_ws = f"ws-other-{unique}"
        (self.operator, self.viewer, self.stranger), keys_json = api_keys(
            (self.ws, "operator"), (self.ws, "viewer"), (self.other_ws, "operator"))
        base = settings.model_dump()
        base.update(api_keys=keys_json, pacing_scan_interval_s=3600.0)
        self.settings = PacingSettings.model_validate(base)
        self.bootstrap = settings.kafka_bootstrap

    def ent(self, name: str, entity_type: str = "campaign") -> dict[str, str]:
        return {"platform": "sandbox", "ad_account_id": f"act-{self.unique}", "entity_type": entity_type,
                "entity_id": f"{self.unique}-{name}"}

    def plan_body(self, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "campaign_id": f"cmp-{self.unique}",
            "name": "summer flight",
            "currency": "USD",
            "total_budget_cents": 10_000_000,
            "flight_start": FLIGHT_START.isoformat(),
            "flight_end": FLIGHT_END.isoformat(),
            "channels": [
                {"name": "CTV", "allocated_budget_cents": 6_000_000, "entities": [self.ent("c1")],
                 "budget_entity": self.ent("c1")},
                {"name": "DISPLAY", "allocated_budget_cents": 4_000_000,
                 "entities": [self.ent("d1"), self.ent("d1-as", "adset")], "budget_entity": self.ent("d1")},
            ],
            "deals": [{"deal_id": "deal-001", "allocated_budget_cents": 2_000_000, "entities": [self.ent("c1")]}],
        }
        body.update(overrides)
        return body

    def metric(self, name: str, day: int, spend_cents: int, *, reported_at: datetime | None = None,
               daily_budget_cents: int | None = None, impressions: int = 1000, entity_type: str = "campaign",
               currency: str = "USD") -> Envelope[MetricsIngested]:
        start = FLIGHT_START + timedelta(days=day)
        payload = MetricsIngested(
            platform="sandbox", ad_account_id=f"act-{self.unique}", entity_type=entity_type,  # type: ignore[arg-type]
            entity_id=f"{self.unique}-{name}", currency=currency, daily_budget_cents=daily_budget_cents,
            interval_start=start, interval_end=start + timedelta(days=1),
            reported_at=reported_at or start + timedelta(days=1, hours=2), spend_cents=spend_cents,
            impressions=impressions)
        return new_envelope(event_type="metrics.ingested", schema_version=1, payload=payload, producer="test",
                            workspace_id=self.ws, occurred_at=payload.reported_at)

    def executed(self, action: dict[str, Any], plan_id: str, request_id: str,
                 outcome: str = "succeeded") -> Envelope[ActionExecuted]:
        payload = ActionExecuted(
            action_id=action["action_id"], request_id=request_id, decision_id=uuid.uuid4(), source="pacing",
            source_id=plan_id, platform=action["platform"], ad_account_id=action["ad_account_id"],
            entity_type=action["entity_type"], entity_id=action["entity_id"], action_type="set_budget",
            outcome=outcome, currency="USD", before_cents=action["from_cents"], after_cents=action["to_cents"],  # type: ignore[arg-type]
            executed_at=NOW)
        return new_envelope(event_type="action.executed", schema_version=1, payload=payload, producer="test",
                            workspace_id=self.ws, occurred_at=NOW)

    @asynccontextmanager
    async def service(self, clock: ManualClock | None = None, **overrides: Any
                      ) -> AsyncIterator[tuple[httpx.AsyncClient, ServiceContext]]:
        async with running_service(SPEC, self.settings, clock=clock or ManualClock(NOW), **overrides) as (c, ctx):
            yield c, ctx

    async def create_plan(self, client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
        res = await client.post("/api/v1/pacing/plans", json=self.plan_body(**overrides), headers=auth(self.operator))
        assert res.status_code == 201, res.text
        return dict(res.json())

    async def snapshot(self, client: httpx.AsyncClient, plan_id: str) -> dict[str, Any]:
        res = await client.post(f"/api/v1/pacing/plans/{plan_id}/snapshots", headers=auth(self.operator))
        assert res.status_code in (200, 201), res.text
        return dict(res.json())

    async def wait_projection(self, ctx: ServiceContext, event_ids: list[uuid.UUID]) -> None:
        async def applied() -> bool:
            n = await ctx.pool.fetchval("SELECT count(*) FROM processed_events WHERE event_id = ANY($1::uuid[])",
                                        event_ids)
            return bool(n == len(set(event_ids)))

        await eventually(applied, timeout=30, what="metrics consumed by pacing")

    async def events(self, topic: str, plan_id: str, *, min_count: int = 1, timeout: float = 20.0,
                     field: str = "plan_id") -> list[dict[str, Any]]:
        def mine(rec: Any) -> bool:
            return bool(orjson.loads(rec.value)["payload"].get(field) == plan_id)

        records = await read_topic(self.bootstrap, topic, min_count=min_count, timeout=timeout, predicate=mine)
        return [orjson.loads(r.value) for r in records]


@pytest.fixture
def pacing(settings: Settings, unique: str) -> Pacing:
    return Pacing(settings, unique)

