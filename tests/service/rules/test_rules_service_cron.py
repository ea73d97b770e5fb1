"""Cron-mode rules on the real broker and Postgres, with a manual clock: '0 9 * * 1-5' fires at 09:00 in each
ad account's own time zone (Tokyo, UTC+9, and an unprofiled account read in UTC), not before, not on the weekend,
once per fire time however often the scheduler scans; a bad expression is a 422 naming schedule.cron."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from allot.contracts import TOPICS, new_envelope
from allot.contracts.payloads import AccountProfiled
from allot.rules.service import SPEC
from allot.runtime.accounts import directory_of
from allot.runtime.clock import ManualClock
from tests.service.rules.rules_support import days_before, report, wait_for_entities
from tests.support.kafka import eventually, publish
from tests.support.service import api_keys, auth, running_service

#: Friday 15 May 2026 23:00 UTC = Saturday 08:00 in Tokyo
START = datetime(2026, 5, 15, 23, 0, tzinfo=UTC)
#: Monday 18 May 09:00 in Tokyo, and 09:00 UTC (the unprofiled account's 09:00)
TOKYO_MONDAY_9 = datetime(2026, 5, 18, 0, 0, tzinfo=UTC)
UTC_MONDAY_9 = datetime(2026, 5, 18, 9, 0, tzinfo=UTC)
#: Real seconds to let the scheduler (scanning every 0.05 s) look at the rule many times.
SCANS = 0.6


def profiled(ws: str, account: str, zone: str) -> Any:
    payload = AccountProfiled(platform="meta", ad_account_id=account, currency="JPY", timezone_name=zone,
                              observed_at=START)
    return new_envelope(event_type="account.profiled", schema_version=TOPICS["account.profiled"].schema_version,
                        payload=payload, producer="test", workspace_id=ws, occurred_at=START)


async def test_a_cron_rule_fires_at_local_nine_on_weekdays_once_per_fire_time(settings: Any, unique: str) -> None:
    ws, tokyo, plain = f"ws-{unique}", f"act-tyo-{unique}", f"act-utc-{unique}"
    clock = ManualClock(START)
    (op,), keys = api_keys((ws, "operator"))
    reports = [report(ws, account, f"e-{account}", day, spend=1_000, revenue=2_000, reported_at=START)
               for account in (tokyo, plain) for day in days_before(START, 2)]

    async with running_service(SPEC, settings, clock=clock, api_keys=keys, rules_scan_interval_s=0.05) as (client,
                                                                                                            ctx):
        await publish(settings.kafka_bootstrap, profiled(ws, tokyo, "Asia/Tokyo"), *reports)
        await eventually(lambda: _true(directory_of(ctx.extra).zone_for(ws, "meta", tokyo).key == "Asia/Tokyo"),
                         what="Tokyo profile applied")
        for account in (tokyo, plain):
            await wait_for_entities(client, op, account, "adset", 1)

        body = {"name": "Weekday mornings", "scope": {"ad_account_ids": [tokyo, plain], "entity_level": "adset"},
                "conditions": [{"metric": "spend", "operator": "gte", "value": 0, "time_range": "last_7d"}],
                "actions": [{"type": "notify_only"}]}
        # validated at create and update: the 422 names schedule.cron and says what is wrong
        r = await client.post("/api/v1/rules", headers=auth(op), json={**body, "schedule": {"cron": "0 25 * * 1-5"}})
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["schedule.cron"], r.text
        assert "schedule.cron: Value error, '0 25 * * 1-5': hour field '25' is not valid; allowed: 0-23" in \
            r.json()["message"], r.text
        r = await client.post("/api/v1/rules", headers=auth(op), json={**body, "schedule": {"mode": "cron"}})
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["schedule.cron"], r.text

        r = await client.post("/api/v1/rules", headers=auth(op),
                              json={**body, "schedule": {"mode": "cron", "cron": "0 9 * * 1-5"}})
        assert r.status_code == 201, r.text
        rule_id = r.json()["id"]
        assert r.json()["schedule"]["mode"] == "cron" and r.json()["schedule"]["cron"] == "0 9 * * 1-5"
        r = await client.patch(f"/api/v1/rules/{rule_id}", headers=auth(op), json={"schedule": {"cron": "* * * * *"}})
        assert r.status_code == 422 and r.json()["field"] == "schedule.cron", r.text
        assert "at most every 5 minutes" in r.json()["message"]
        assert (await client.post(f"/api/v1/rules/{rule_id}/activate", headers=auth(op))).status_code == 200

        async def executions() -> list[dict[str, Any]]:
            r = await client.get(f"/api/v1/rules/{rule_id}/executions", headers=auth(op))
            assert r.status_code == 200, r.text
            return list(reversed(r.json()["executions"]))  # oldest first

        async def at(moment: datetime, count: int) -> list[dict[str, Any]]:
            """Move the clock to ``moment``, wait for ``count`` executions in all, then let the scheduler (every
            0.05 s) scan many more times at that moment: still ``count``."""
            clock.advance((moment - clock.now()).total_seconds())

            async def settled() -> bool | None:
                return True if len(await executions()) >= count else None

            await eventually(settled, timeout=15, what=f"{count} executions at {moment.isoformat()}")
            await asyncio.sleep(SCANS)
            runs = await executions()
            assert len(runs) == count, (moment, runs)
            return runs

        def slots(runs: list[dict[str, Any]]) -> list[tuple[str, datetime]]:
            return [(e["trigger"], datetime.fromisoformat(e["slot_start"])) for e in runs]

        # The weekend: Saturday and Sunday 09:00 pass in Tokyo (00:00 UTC) and in UTC; nothing fires.
        for moment in (TOKYO_MONDAY_9 - timedelta(days=2), TOKYO_MONDAY_9 - timedelta(days=1) + timedelta(minutes=1),
                       UTC_MONDAY_9 - timedelta(days=1) + timedelta(minutes=1)):
            await at(moment, 0)
        # Monday 08:59:59 in Tokyo: not yet.
        await at(TOKYO_MONDAY_9 - timedelta(seconds=1), 0)

        # Monday 09:00 in Tokyo: one execution, for the Tokyo account only, whose slot is the fire time.
        (first,) = await at(TOKYO_MONDAY_9, 1)
        assert (first["trigger"], first["result"], first["entities_evaluated"]) == ("schedule", "notified", 1)
        assert slots([first]) == [("schedule", TOKYO_MONDAY_9)]
        assert [e["entity_id"] for e in first["entities"]] == [f"e-{tokyo}"]
        # Scanned again and again over the next minutes and hours: still once.
        for minutes in (1, 7, 240):
            again = await at(TOKYO_MONDAY_9 + timedelta(minutes=minutes), 1)
            assert again[0]["execution_id"] == first["execution_id"]

        # A manual run evaluates every account now, as an execution of its own, and takes no fire time away.
        manual_at = TOKYO_MONDAY_9 + timedelta(hours=5)
        clock.advance((manual_at - clock.now()).total_seconds())
        r = await client.post(f"/api/v1/rules/{rule_id}/evaluate-now", headers=auth(op))
        assert r.status_code == 200 and r.json()["status"] == "evaluated", r.text
        assert r.json()["execution"]["trigger"] == "manual" and r.json()["execution"]["entities_evaluated"] == 2

        # 09:00 UTC is the unprofiled account's own 09:00: once, for that account only.
        await at(UTC_MONDAY_9 - timedelta(seconds=1), 2)
        for seconds in (0, 30, 600):
            runs = await at(UTC_MONDAY_9 + timedelta(seconds=seconds), 3)
            assert slots(runs) == [("schedule", TOKYO_MONDAY_9), ("manual", manual_at), ("schedule", UTC_MONDAY_9)]
        assert [e["entity_id"] for e in runs[-1]["entities"]] == [f"e-{plain}"]

        # Tuesday 09:00 in Tokyo fires again, once.
        tuesday = TOKYO_MONDAY_9 + timedelta(days=1)
        assert slots(await at(tuesday + timedelta(seconds=5), 4))[-1] == ("schedule", tuesday)


async def _true(value: bool) -> bool | None:
    return True if value else None
