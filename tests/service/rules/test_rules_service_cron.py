"""Cron-mode rules on the real broker and Postgres, with a manual clock: '0 9 * * 1-5' fires at 09:00 in each
ad account's own time zone (Tokyo, UTC+9, and an unprofiled account read in UTC), not before, not on the weekend,
once per fire time however often the scheduler scans; a bad expression is a 422 naming schedule.cron.

That a rule did not fire at a moment is asserted only once the scheduler has looked at it then: a sentinel cron
rule ('*/5 * * * *', never matching) whose id follows the rule's is evaluated right after it in every scan (the
scheduler reads cron rules in id order and evaluates them one by one), so once the sentinel's execution for the
moment's fire time is there, any execution of the rule at that moment is too, however slow the scan."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from allot.contracts import TOPICS, new_envelope
from allot.contracts.payloads import AccountProfiled
from allot.rules.adapters import postgres as db
from allot.rules.domain import validate_rule
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
#: The sentinel's schedule: every 5 minutes in UTC, so each moment the test stops at (never two in one 5 minutes)
#: is a fire time of its own for the sentinel.
SENTINEL_CRON = "*/5 * * * *"


def sentinel_fire(moment: datetime) -> datetime:
    """The sentinel's latest fire time at ``moment``."""
    return moment.replace(minute=moment.minute - moment.minute % 5, second=0, microsecond=0)


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
        # The sentinel: stored with the rule's id + 1 (the API would give it a random one), so that no cron rule
        # comes between them in the scheduler's order; it matches nothing (its executions are no_match).
        sentinel = str(uuid.UUID(int=uuid.UUID(rule_id).int + 1))
        definition = validate_rule({**body, "name": "Sentinel", "scope": {"ad_account_ids": [plain],
                                                                         "entity_level": "adset"},
                                    "conditions": [{"metric": "spend", "operator": "gt", "value": 10**12,
                                                    "time_range": "today"}],
                                    "schedule": {"mode": "cron", "cron": SENTINEL_CRON}})
        async with ctx.pool.acquire() as conn:
            await db.insert_rule(conn, rule_id=uuid.UUID(sentinel), workspace_id=ws, name=definition.name,
                                 definition=definition.model_dump(mode="json"),
                                 interval_minutes=definition.schedule.interval_minutes, template=None,
                                 created_by="test", now=clock.now())
        assert (await client.post(f"/api/v1/rules/{sentinel}/activate", headers=auth(op))).status_code == 200

        async def executions(rule: str) -> list[dict[str, Any]]:
            r = await client.get(f"/api/v1/rules/{rule}/executions", params={"limit": 200}, headers=auth(op))
            assert r.status_code == 200, r.text
            return list(reversed(r.json()["executions"]))  # oldest first

        async def at(moment: datetime, count: int) -> list[dict[str, Any]]:
            """Move the clock to ``moment`` and wait for the sentinel's execution at its fire time there: the scan
            that ran it looked at the rule at ``moment`` just before, so the rule's executions are all there by now
            (``count`` in all, whether they were due at ``moment`` or should never have been)."""
            clock.advance((moment - clock.now()).total_seconds())
            fire = sentinel_fire(moment)

            async def sentinel_ran() -> bool | None:
                runs = await executions(sentinel)
                return True if runs and datetime.fromisoformat(runs[-1]["slot_start"]) == fire else None

            await eventually(sentinel_ran, timeout=15, what=f"the sentinel's execution at {fire.isoformat()}")
            runs = await executions(rule_id)
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
        # Scanned again over the next minutes and hours: still once.
        for minutes in (5, 10, 240):
            again = await at(TOKYO_MONDAY_9 + timedelta(minutes=minutes), 1)
            assert again[0]["execution_id"] == first["execution_id"]

        # A manual run evaluates every account now, as an execution of its own, and takes no fire time away.
        manual_at = TOKYO_MONDAY_9 + timedelta(hours=5)
        await at(manual_at, 1)
        r = await client.post(f"/api/v1/rules/{rule_id}/evaluate-now", headers=auth(op))
        assert r.status_code == 200 and r.json()["status"] == "evaluated", r.text
        assert r.json()["execution"]["trigger"] == "manual" and r.json()["execution"]["entities_evaluated"] == 2

        # 09:00 UTC is the unprofiled account's own 09:00: once, for that account only.
        await at(UTC_MONDAY_9 - timedelta(seconds=1), 2)
        for seconds in (0, 300, 600):
            runs = await at(UTC_MONDAY_9 + timedelta(seconds=seconds), 3)
            assert slots(runs) == [("schedule", TOKYO_MONDAY_9), ("manual", manual_at), ("schedule", UTC_MONDAY_9)]
        assert [e["entity_id"] for e in runs[-1]["entities"]] == [f"e-{plain}"]

        # Tuesday 09:00 in Tokyo fires again, once.
        tuesday = TOKYO_MONDAY_9 + timedelta(days=1)
        assert slots(await at(tuesday + timedelta(seconds=5), 4))[-1] == ("schedule", tuesday)


async def _true(value: bool) -> bool | None:
    return True if value else None
