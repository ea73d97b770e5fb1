"""Ingest reads the platform's deduplicated reach over the complete-day ranges once per account and local day and
attaches it to each entity's latest interval report (real broker and Postgres, Graph fake)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from allot.fakes.meta.insights import reach_of
from allot.ingest.workflow import run_cycle
from allot.runtime.settings import Settings
from tests.service.ingest.ingest_support import DAY, IngestWorld, for_account, new_account_id, payloads, wait_projected
from tests.support.kafka import publish, read_topic
from tests.support.service import running_service

pytestmark = pytest.mark.slow


def _reach_reads(w: IngestWorld, acct: str) -> list[dict[str, str]]:
    return [c for c in w.fake.reads.insights_calls if "reach" in c.get("fields", "") and "after" not in c
            and c["level"] in ("adset", "campaign")]


async def test_range_reach_is_read_once_a_local_day_and_rides_on_the_latest_report(settings: Settings) -> None:
    acct = new_account_id()
    w = IngestWorld(settings)
    w.account(acct, hours=2)  # today (2 July in New York): local hours 0 and 1
    for back in range(1, 4):  # and 3 000 impressions on each of the three days before
        w.fake.reads.deliver(f"s{acct}", DAY - timedelta(days=back), 10, spend=2_000, impressions=3_000)
    boot = settings.kafka_bootstrap
    async with running_service(w.spec, w.settings, clock=w.clock) as (_, ctx):
        await publish(boot, w.connection(acct, "read-token"))
        await wait_projected(ctx, acct)
        before = len(_reach_reads(w, acct))
        assert (await run_cycle(ctx))[f"con-{acct}/act_{acct}"] == "ok"

        reads = _reach_reads(w, acct)[before:]
        assert len(reads) == 10  # 5 ranges × (ad set, campaign), through yesterday, one row per entity each
        assert {json.loads(c["time_range"])["until"] for c in reads} == {"2026-07-01"}
        assert all("time_increment" not in c and "breakdowns" not in c for c in reads)

        metrics = payloads(await read_topic(boot, "metrics.ingested", min_count=10, predicate=for_account(acct)))
        assert len(metrics) == 10  # (3 past hours + 2 today) × (ad set, campaign)
        carrying = {(m["payload"]["entity_type"], m["payload"]["interval_start"]): m["payload"]["range_reach"]
                    for m in metrics if m["payload"].get("range_reach") is not None}
        # only the latest interval of each entity (01:00 in New York = 05:00 UTC) carries it
        assert set(carrying) == {("adset", "2026-07-02T05:00:00Z"), ("campaign", "2026-07-02T05:00:00Z")}
        day = 2_000  # 3 000 impressions / 1.5 a day in the fake's model
        expected = {"through": "2026-07-01", "yesterday": day,
                    "last_3d": reach_of([3_000] * 3, daily_frequency=1.5, overlap=0.5),
                    "last_7d": reach_of([3_000] * 3, daily_frequency=1.5, overlap=0.5),
                    "last_14d": 4_000, "last_30d": 4_000}
        assert carrying[("adset", "2026-07-02T05:00:00Z")] == expected
        assert carrying[("campaign", "2026-07-02T05:00:00Z")] == expected
        assert expected["last_3d"] < 3 * day  # deduplicated: less than the sum of the daily reaches

        # An hour later, same local day: no new reach read, and nothing unchanged is re-published.
        w.clock.advance(3600)
        assert (await run_cycle(ctx))[f"con-{acct}/act_{acct}"] == "ok"
        assert len(_reach_reads(w, acct)) == before + 10
        assert len(await read_topic(boot, "metrics.ingested", predicate=for_account(acct), timeout=3)) == 10

        # The local day rolls over (04:30 UTC = 3 July 00:30 in New York): read again through 2 July, re-published.
        w.clock.advance(int(timedelta(hours=15, minutes=30).total_seconds()))
        assert (await run_cycle(ctx))[f"con-{acct}/act_{acct}"] == "ok"
        reads = _reach_reads(w, acct)[before + 10:]
        assert len(reads) == 10 and {json.loads(c["time_range"])["until"] for c in reads} == {"2026-07-02"}
        latest = payloads(await read_topic(boot, "metrics.ingested", min_count=12, predicate=for_account(acct)))
        rolled = [m["payload"] for m in latest if (m["payload"].get("range_reach") or {}).get("through")
                  == "2026-07-02"]
        assert {(p["entity_type"], p["interval_start"]) for p in rolled} == {
            ("adset", "2026-07-02T05:00:00Z"), ("campaign", "2026-07-02T05:00:00Z")}
        # yesterday is now 2 July: 2 hours × 500 impressions / 1.5
        assert rolled[0]["range_reach"]["yesterday"] == 667
