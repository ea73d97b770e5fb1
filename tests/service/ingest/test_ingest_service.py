"""Ingest on the real broker and Postgres against the Graph fake: connection in → account.profiled and hourly
metrics.ingested out; a second cycle publishes only restated intervals; a write-capable token is refused."""

from __future__ import annotations

from datetime import timedelta

import pytest

from allot.ingest.workflow import run_cycle
from allot.runtime.settings import Settings
from tests.service.ingest.ingest_support import (
    DAY,
    NOW,
    IngestWorld,
    for_account,
    new_account_id,
    payloads,
    wait_projected,
)
from tests.support.kafka import publish, read_topic
from tests.support.service import running_service

pytestmark = pytest.mark.slow


async def test_connection_to_profile_and_hourly_metrics_then_only_restatements(settings: Settings) -> None:
    acct, bad_acct = new_account_id(), new_account_id()
    w = IngestWorld(settings)
    w.account(acct)
    w.account(bad_acct, hours=1)
    w.fake.reads.page_size = 3  # insights and entity edges come in several pages
    boot = settings.kafka_bootstrap
    async with running_service(w.spec, w.settings, clock=w.clock) as (client, ctx):
        await publish(boot, w.connection(acct, "read-token"), w.connection(bad_acct, "admin-token"))
        await wait_projected(ctx, acct, bad_acct)

        results = await run_cycle(ctx)  # (other tests' connections on the shared topic are read too: ignored)
        assert {k: results[k] for k in (f"con-{acct}/act_{acct}", f"con-{bad_acct}/act_{bad_acct}")} == \
            {f"con-{acct}/act_{acct}": "ok", f"con-{bad_acct}/act_{bad_acct}": "error"}

        profiles = payloads(await read_topic(boot, "account.profiled", min_count=1, predicate=for_account(acct)))
        assert len(profiles) == 1 and profiles[0]["workspace_id"] == w.ws
        p = profiles[0]["payload"]
        assert (p["currency"], p["timezone_name"], p["state"], p["account_status"], p["name"]) == \
            ("EUR", "America/New_York", "connected", "active", "Shop")

        metrics = payloads(await read_topic(boot, "metrics.ingested", min_count=8, predicate=for_account(acct)))
        assert len(metrics) == 8  # 4 local hours × (ad set, campaign)
        by = {(m["payload"]["entity_type"], m["payload"]["interval_start"]): m["payload"] for m in metrics}
        first = by[("adset", "2026-07-02T04:00:00Z")]  # local midnight in New York = 04:00 UTC
        assert (first["spend_cents"], first["conversions"], first["revenue_cents"], first["currency"]) == \
            (1000, 1, 2500, "EUR")
        assert first["interval_end"] == "2026-07-02T05:00:00Z" and first["parent_id"] == f"c{acct}"
        assert by[("adset", "2026-07-02T07:00:00Z")]["daily_budget_cents"] == 5000
        assert by[("campaign", "2026-07-02T05:00:00Z")]["spend_cents"] == 1001

        refused = payloads(await read_topic(boot, "account.profiled", min_count=1, predicate=for_account(bad_acct)))
        assert [r["payload"]["state"] for r in refused] == ["error"]
        assert "ads_management" in refused[0]["payload"]["detail"]
        assert await read_topic(boot, "metrics.ingested", predicate=for_account(bad_acct), timeout=3) == []
        ready = (await client.get("/readyz")).json()
        assert "ads_management" in ready["details"]["accounts_in_error"][f"con-{bad_acct}/act_{bad_acct}"]
        assert w.fake.writes == []  # nothing was ever written

        # Late conversions restate 01:00 local; an hour later only that interval (both levels) is re-published.
        w.fake.reads.add_conversions(f"s{acct}", DAY, 1, "purchase", 2, 5000)
        w.clock.advance(3600)
        assert (await run_cycle(ctx))[f"con-{acct}/act_{acct}"] == "ok"
        metrics = payloads(await read_topic(boot, "metrics.ingested", min_count=10, predicate=for_account(acct)))
        assert len(metrics) == 10 and len({m["event_id"] for m in metrics}) == 10
        restated = [m["payload"] for m in metrics if m["payload"]["reported_at"] == "2026-07-02T13:00:00Z"]
        assert {(r["entity_type"], r["interval_start"], r["conversions"], r["revenue_cents"]) for r in restated} == \
            {("adset", "2026-07-02T05:00:00Z", 3, 7500), ("campaign", "2026-07-02T05:00:00Z", 3, 7500)}
        # the refused account is not re-announced while nothing changed
        assert len(await read_topic(boot, "account.profiled", predicate=for_account(bad_acct), timeout=3)) == 1


async def test_scheduler_reads_a_new_connection_by_itself_and_a_removal_disconnects(settings: Settings) -> None:
    acct = new_account_id()
    w = IngestWorld(settings, ingest_scan_interval_s=0.2)
    w.account(acct, hours=2)
    boot = settings.kafka_bootstrap
    async with running_service(w.spec, w.settings, clock=w.clock) as (_, ctx):
        await publish(boot, w.connection(acct, "read-token"))
        metrics = await read_topic(boot, "metrics.ingested", min_count=4, predicate=for_account(acct))
        assert len(metrics) == 4  # nobody called run_cycle: the account was due as soon as it arrived
        await publish(boot, w.connection(acct, "read-token", state="removed", changed_at=NOW + timedelta(hours=1)))
        profiles = payloads(await read_topic(boot, "account.profiled", min_count=2, predicate=for_account(acct)))
        assert [p["payload"]["state"] for p in profiles] == ["connected", "disconnected"]
        assert (profiles[1]["payload"]["currency"], profiles[1]["payload"]["timezone_name"]) == \
            ("EUR", "America/New_York")
        assert f"con-{acct}/act_{acct}" not in await run_cycle(ctx)  # no longer read
