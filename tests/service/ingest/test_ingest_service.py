"""Ingest on the real broker and Postgres against the Graph fake: connection in → account.profiled and hourly
metrics.ingested out; a second cycle publishes only restated intervals; a write-capable token is refused."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson
from allot.contracts.envelope import new_envelope
from allot.contracts.payloads import ConnectionChanged
from allot.contracts.registry import TOPICS
from allot.fakes.meta import MetaFakeState, create_meta_fake
from allot.ingest.reading import run_cycle
from allot.ingest.service import make_spec
from allot.ingest.settings import IngestSettings
from allot.runtime.clock import ManualClock
from allot.runtime.sealing import Keyring, generate_keypair, seal
from allot.runtime.settings import Settings

from tests.support.kafka import eventually, publish, read_topic
from tests.support.service import running_service

# 12:00 UTC = 08:00 in New York (EDT): local hours 0..7 of 2 July have happened.
NOW = datetime(2026, 7, 2, 12, tzinfo=UTC)
DAY = date(2026, 7, 2)


def _payloads(records: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in records]


def _for(account: str) -> Any:
    return lambda r: orjson.loads(r.value)["payload"]["ad_account_id"] == account


async def test_connection_to_profile_and_hourly_metrics_then_only_restatements(settings: Settings) -> None:
    acct, bad_acct = str(random.randint(10**11, 10**12)), str(random.randint(10**11, 10**12))
    fake = MetaFakeState()
    fake.access_tokens |= {"read-token", "admin-token"}
    fake.reads.grant("read-token", "ads_read", "read_insights")
    fake.reads.grant("admin-token", "ads_read", "ads_management")
    for a in (acct, bad_acct):
        fake.add_account(a, "EUR", name="Shop")
        fake.reads.set_account(a, timezone_name="America/New_York")
        fake.add_object(f"c{a}", "campaign", a, name="Summer")
        fake.add_object(f"s{a}", "adset", a, name="Prospecting", daily_budget=5000, parent_id=f"c{a}")
    for hour in range(4):
        fake.reads.deliver(f"s{acct}", DAY, hour, spend=1000 + hour, impressions=500, clicks=5,
                           actions={"purchase": 1}, action_values={"purchase": 2500})
    fake.reads.deliver(f"s{bad_acct}", DAY, 0, spend=700, impressions=100)
    fake.reads.page_size = 3  # insights and entity edges come in several pages

    ring = Keyring.parse("ingest", "k1:" + (kp := generate_keypair("k1")).private_key)
    ws = f"ws-{uuid.uuid4().hex[:8]}"
    clock = ManualClock(NOW)
    spec = make_spec(graph_transport=httpx.ASGITransport(app=create_meta_fake(fake)))
    base = {**settings.model_dump(), "ingest_graph_url": "http://graph.local", "ingest_scan_interval_s": 3600.0,
            "sealing_private_keys": f"k1:{kp.private_key}"}
    async with running_service(spec, IngestSettings.model_validate(base), clock=clock) as (client, ctx):
        def connection(cid: str, account: str, token: str) -> Any:
            payload = ConnectionChanged(connection_id=cid, platform="meta", ad_account_ids=[account], state="active",
                                        read_token=seal(token, ring.public_key()), changed_at=NOW)
            return new_envelope(event_type="connection.changed", payload=payload, producer="test", workspace_id=ws,
                                schema_version=TOPICS["connection.changed"].schema_version, occurred_at=NOW)

        await publish(settings.kafka_bootstrap, connection(f"con-{acct}", acct, "read-token"),
                      connection(f"con-{bad_acct}", bad_acct, "admin-token"))

        async def projected() -> int:
            async with ctx.pool.acquire() as conn:
                return int(await conn.fetchval("SELECT count(*) FROM accounts"))
        await eventually(lambda: projected(), what="both accounts projected")  # noqa: PLW0108
        assert (await eventually(lambda: projected())) == 2

        results = await run_cycle(ctx)
        assert results == {f"con-{acct}/act_{acct}": "ok", f"con-{bad_acct}/act_{bad_acct}": "error"}

        profiles = _payloads(await read_topic(settings.kafka_bootstrap, "account.profiled", min_count=1,
                                              predicate=_for(acct)))
        assert len(profiles) == 1 and profiles[0]["workspace_id"] == ws
        p = profiles[0]["payload"]
        assert (p["currency"], p["timezone_name"], p["state"], p["account_status"], p["name"]) == \
            ("EUR", "America/New_York", "connected", "active", "Shop")

        metrics = _payloads(await read_topic(settings.kafka_bootstrap, "metrics.ingested", min_count=8,
                                             predicate=_for(acct)))
        assert len(metrics) == 8  # 4 local hours × (ad set, campaign)
        by = {(m["payload"]["entity_type"], m["payload"]["interval_start"]): m["payload"] for m in metrics}
        first = by[("adset", "2026-07-02T04:00:00Z")]  # local midnight in New York = 04:00 UTC
        assert (first["spend_cents"], first["conversions"], first["revenue_cents"], first["currency"]) == \
            (1000, 1, 2500, "EUR")
        assert first["interval_end"] == "2026-07-02T05:00:00Z" and first["parent_id"] == f"c{acct}"
        assert by[("adset", "2026-07-02T07:00:00Z")]["daily_budget_cents"] == 5000
        assert by[("campaign", "2026-07-02T05:00:00Z")]["spend_cents"] == 1001

        refused = _payloads(await read_topic(settings.kafka_bootstrap, "account.profiled", min_count=1,
                                             predicate=_for(bad_acct)))
        assert [r["payload"]["state"] for r in refused] == ["error"]
        assert "ads_management" in refused[0]["payload"]["detail"]
        assert await read_topic(settings.kafka_bootstrap, "metrics.ingested", predicate=_for(bad_acct),
                                timeout=3) == []
        ready = (await client.get("/readyz")).json()
        assert "ads_management" in ready["details"]["accounts_in_error"][f"con-{bad_acct}/act_{bad_acct}"]
        assert fake.writes == []  # nothing was ever written

        # Late conversions restate 01:00 local; an hour later only that interval (both levels) is re-published.
        fake.reads.add_conversions(f"s{acct}", DAY, 1, "purchase", 2, 5000)
        clock.advance(3600)
        assert (await run_cycle(ctx))[f"con-{acct}/act_{acct}"] == "ok"
        metrics = _payloads(await read_topic(settings.kafka_bootstrap, "metrics.ingested", min_count=10,
                                             predicate=_for(acct)))
        assert len(metrics) == 10 and len({m["event_id"] for m in metrics}) == 10
        restated = [m["payload"] for m in metrics if m["payload"]["reported_at"] == "2026-07-02T13:00:00Z"]
        assert {(r["entity_type"], r["interval_start"], r["conversions"], r["revenue_cents"]) for r in restated} == \
            {("adset", "2026-07-02T05:00:00Z", 3, 7500), ("campaign", "2026-07-02T05:00:00Z", 3, 7500)}
        # the refused account is not re-announced while nothing changed
        assert len(await read_topic(settings.kafka_bootstrap, "account.profiled", predicate=_for(bad_acct),
                                    timeout=3)) == 1
