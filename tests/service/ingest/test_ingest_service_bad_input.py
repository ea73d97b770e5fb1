"""Bad input never stops ingest silently, throttling slows one account only, async report runs, a person's budget
edit, and a restart that publishes nothing twice (real broker + Postgres, Graph fake)."""

from __future__ import annotations

import pytest

from allot.ingest.workflow import IngestState, run_cycle
from allot.runtime.deps import need
from allot.runtime.settings import Settings
from tests.service.ingest.ingest_support import NOW, IngestWorld, for_account, new_account_id, payloads, wait_projected
from tests.support.kafka import eventually, publish, read_topic
from tests.support.service import running_service

pytestmark = pytest.mark.slow


async def test_bad_accounts_are_reported_and_the_others_go_on(settings: Settings) -> None:
    ok, throttled, revoked, unknown, kwd, moved = (new_account_id() for _ in range(6))
    w = IngestWorld(settings, ingest_async_min_entities=1)  # every account through async report runs
    for a in (ok, throttled, moved):
        w.account(a)
    w.account(kwd, currency="KWD")
    w.fake.add_fault("rate_limit", count=2, object_id=f"act_{throttled}", on="read", code=80000,
                     regain_access_minutes=2)
    boot = settings.kafka_bootstrap
    key = {a: f"con-{a}/act_{a}" for a in (ok, throttled, revoked, unknown, kwd, moved)}
    async with running_service(w.spec, w.settings, clock=w.clock) as (client, ctx):
        await publish(boot, *(w.connection(a, "read-token") for a in (ok, throttled, unknown, kwd, moved)),
                      w.connection(revoked, "revoked-token"))
        await wait_projected(ctx, ok, throttled, revoked, unknown, kwd, moved)
        results = await run_cycle(ctx)  # (other tests' connections on the shared topic are read too: ignored)
        assert {k: results[k] for k in key.values()} == {
            key[ok]: "ok", key[throttled]: "ok", key[moved]: "ok",
            key[revoked]: "error", key[unknown]: "error", key[kwd]: "error",
        }
        st = need(ctx, IngestState)
        assert st.pacers[key[throttled]].waited_s >= 120  # estimated_time_to_regain_access: 2 minutes
        assert st.pacers[key[ok]].waited_s == 0  # the throttled account held no other back
        assert {c["mode"] for c in w.fake.reads.insights_calls} == {"async"}

        errors = {}
        for a in (revoked, unknown, kwd):
            recs = payloads(await read_topic(boot, "account.profiled", min_count=1, predicate=for_account(a)))
            assert [r["payload"]["state"] for r in recs] == ["error"]
            errors[a] = recs[0]["payload"]["detail"]
        assert "revoked" in errors[revoked] and "190" in errors[revoked]
        assert f"act_{unknown} does not exist" in errors[unknown]
        assert "KWD" in errors[kwd]
        kwd_profile = payloads(await read_topic(boot, "account.profiled", min_count=1, predicate=for_account(kwd)))
        assert (kwd_profile[0]["payload"]["currency"], kwd_profile[0]["payload"]["timezone_name"]) == \
            ("KWD", "America/New_York")  # what Meta said, beside the error
        details = (await client.get("/readyz")).json()["details"]["accounts_in_error"]
        assert set(details) & set(key.values()) == {key[revoked], key[unknown], key[kwd]}
        for a in (throttled, moved):
            assert len(await read_topic(boot, "metrics.ingested", min_count=8, predicate=for_account(a))) == 8

        # The account's time zone changes: an error naming both zones, no metrics, until it is reconnected.
        w.fake.reads.set_account(moved, timezone_name="Europe/Berlin")
        # A person raises the ad set's budget in Ads Manager: only its latest interval is re-published.
        w.fake.objects[f"s{ok}"].daily_budget = 6000
        w.clock.advance(3600)
        results = await run_cycle(ctx)
        assert results[key[moved]] == "error" and results[key[ok]] == "ok"
        moved_profiles = payloads(await read_topic(boot, "account.profiled", min_count=2, predicate=for_account(moved)))
        assert [p["payload"]["state"] for p in moved_profiles] == ["connected", "error"]
        assert "America/New_York to Europe/Berlin" in moved_profiles[1]["payload"]["detail"]
        ok_metrics = payloads(await read_topic(boot, "metrics.ingested", min_count=9, predicate=for_account(ok)))
        assert len(ok_metrics) == 9
        first_read = min(m["payload"]["reported_at"] for m in ok_metrics)
        edited = [m["payload"] for m in ok_metrics if m["payload"]["reported_at"] != first_read]
        assert [(e["entity_type"], e["daily_budget_cents"], e["interval_start"]) for e in edited] == \
            [("adset", 6000, "2026-07-02T07:00:00Z")]

        await publish(boot, w.connection(moved, "read-token", changed_at=NOW.replace(hour=13)))

        async def reconnected() -> bool:
            async with ctx.pool.acquire() as conn:
                return await conn.fetchval("SELECT state FROM accounts WHERE ad_account_id = $1", moved) == "pending"
        await eventually(reconnected, what="reconnection projected")
        assert (await run_cycle(ctx))[key[moved]] == "ok"
        moved_profiles = payloads(await read_topic(boot, "account.profiled", min_count=3, predicate=for_account(moved)))
        assert (moved_profiles[-1]["payload"]["state"], moved_profiles[-1]["payload"]["timezone_name"]) == \
            ("connected", "Europe/Berlin")

    # A restart reads everything again and publishes nothing it already published.
    async with running_service(w.spec, w.settings, clock=w.clock) as (_, ctx):
        assert (await run_cycle(ctx))[key[ok]] == "ok"
        assert len(await read_topic(boot, "metrics.ingested", min_count=9, predicate=for_account(ok))) == 9
        assert len(await read_topic(boot, "account.profiled", min_count=1, predicate=for_account(ok))) == 1
    assert w.fake.writes == []
