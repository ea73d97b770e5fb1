"""The ingest API on the real broker and Postgres: a workspace sees only its own accounts' read status, and
"sync now" makes one account due at the next scan instead of after its interval."""

from __future__ import annotations

from typing import Any

import pytest

from allot.runtime.settings import Settings
from tests.service.ingest.ingest_support import DAY, IngestWorld, for_account, new_account_id, wait_projected
from tests.support.kafka import eventually, publish, read_topic
from tests.support.service import api_keys, auth, running_service

pytestmark = pytest.mark.slow


async def test_account_status_is_per_workspace_and_sync_now_reads_at_the_next_scan(settings: Settings) -> None:
    acct = new_account_id()
    # the interval is a day: without "sync now" the account is read once at start and then not again
    w = IngestWorld(settings, ingest_scan_interval_s=0.2, ingest_interval_s=86_400)
    w.account(acct, hours=2)
    (viewer, operator, stranger), keys = api_keys((w.ws, "viewer"), (w.ws, "operator"), ("ws-other", "admin"))
    boot = settings.kafka_bootstrap
    async with running_service(w.spec, w.settings, clock=w.clock, api_keys=keys) as (http, ctx):
        await publish(boot, w.connection(acct, "read-token"))
        await wait_projected(ctx, acct)
        assert len(await read_topic(boot, "metrics.ingested", min_count=4, predicate=for_account(acct))) == 4

        async def read_once() -> dict[str, Any] | None:
            r = await http.get("/api/v1/ingest/accounts", headers=auth(viewer))
            assert r.status_code == 200, r.text
            mine = [a for a in r.json()["accounts"] if a["ad_account_id"] == acct]
            return mine[0] if mine and mine[0]["last_read_at"] else None

        status = await eventually(read_once, what="the account's first read recorded")
        assert (status["state"], status["currency"], status["timezone_name"]) == \
            ("connected", "EUR", "America/New_York")
        assert "token" not in str(status).lower()
        other = await http.get("/api/v1/ingest/accounts", headers=auth(stranger))
        assert other.status_code == 200 and acct not in str(other.json())

        assert (await http.post(f"/api/v1/ingest/accounts/{acct}/sync", headers=auth(viewer))).status_code == 403
        unknown = await http.post(f"/api/v1/ingest/accounts/{acct}/sync", headers=auth(stranger))
        assert unknown.status_code == 404 and "ad_account_id" in unknown.text
        bad = await http.post("/api/v1/ingest/accounts/not-an-id/sync", headers=auth(operator))
        assert bad.status_code == 422 and "ad_account_id" in bad.text

        # a late conversion; the interval is a day away, so only "sync now" publishes the restatement now
        w.fake.reads.add_conversions(f"s{acct}", DAY, 1, "purchase", 1, 900)
        w.clock.advance(60)
        r = await http.post(f"/api/v1/ingest/accounts/act_{acct}/sync", headers=auth(operator))
        assert r.status_code == 202 and r.json() == {"ad_account_id": acct, "status": "scheduled"}
        metrics = await read_topic(boot, "metrics.ingested", min_count=6, predicate=for_account(acct))
        assert len(metrics) == 6  # the restated hour at ad-set and campaign level, nothing else

