"""account.profiled → rules evaluate today / yesterday over the account's local days (real broker and Postgres)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from allot.contracts import TOPICS, new_envelope
from allot.contracts.payloads import AccountProfiled, MetricsIngested
from allot.rules.service import SPEC
from allot.runtime.accounts import directory_of
from allot.runtime.clock import ManualClock
from tests.support.kafka import eventually, publish
from tests.support.service import api_keys, auth, running_service

#: 02:00 UTC on 1 April 2026 = 22:00 on 31 March in New York (EDT, UTC-4)
NOW = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)


def hourly(ws: str, account: str, entity: str, start: datetime, spend: int) -> Any:
    payload = MetricsIngested(platform="meta", ad_account_id=account, entity_type="adset", entity_id=entity,
                              currency="USD", daily_budget_cents=10_000, interval_start=start,
                              interval_end=start + timedelta(hours=1), reported_at=start + timedelta(hours=1),
                              spend_cents=spend, impressions=1_000)
    return new_envelope(event_type="metrics.ingested", schema_version=TOPICS["metrics.ingested"].schema_version,
                        payload=payload, producer="test", workspace_id=ws, occurred_at=payload.reported_at)


def profiled(ws: str, account: str, zone: str) -> Any:
    payload = AccountProfiled(platform="meta", ad_account_id=account, currency="USD", timezone_name=zone,
                              observed_at=NOW)
    return new_envelope(event_type="account.profiled", schema_version=TOPICS["account.profiled"].schema_version,
                        payload=payload, producer="test", workspace_id=ws, occurred_at=NOW)


async def spend_today_and_yesterday(client: Any, key: str, account: str) -> tuple[float, float] | None:
    body = {"name": "probe", "scope": {"ad_account_ids": [account], "entity_level": "adset"},
            "conditions": [{"metric": "spend", "operator": "gte", "value": 0, "time_range": "today"},
                           {"metric": "spend", "operator": "gte", "value": 0, "time_range": "yesterday"}],
            "actions": [{"type": "notify_only"}]}
    r = await client.post("/api/v1/rules/preview", json=body, headers=auth(key))
    if r.status_code == 422 and "unknown ad account" in r.text:
        return None  # not projected yet
    assert r.status_code == 200, r.text
    matched = r.json()["matched"]
    if not matched:
        return None
    snap = matched[0]["snapshot"]
    return snap["spend@today"], snap["spend@yesterday"]


async def test_a_new_york_accounts_today_is_its_local_day_and_known_intervals_move_to_it(
        settings: Any, unique: str) -> None:
    ws, account, entity = f"ws-{unique}", f"act-{unique}", f"as-{unique}"
    (op,), keys = api_keys((ws, "operator"))
    reports = [
        hourly(ws, account, entity, datetime(2026, 3, 31, 3, tzinfo=UTC), 300),   # NY: 30 March 23:00
        hourly(ws, account, entity, datetime(2026, 3, 31, 12, tzinfo=UTC), 200),  # NY: 31 March 08:00
        hourly(ws, account, entity, datetime(2026, 4, 1, 0, tzinfo=UTC), 500),    # NY: 31 March 20:00
    ]
    async with running_service(SPEC, settings, clock=ManualClock(NOW), api_keys=keys,
                               rules_scan_interval_s=0.05) as (client, ctx):
        await publish(settings.kafka_bootstrap, *reports)

        async def utc_days() -> tuple[float, float] | None:
            got = await spend_today_and_yesterday(client, op, account)
            return got if got == (500, 500) else None

        # Not profiled yet: UTC days (today 1 April = 500; yesterday 31 March = 300 + 200).
        assert await eventually(utc_days, timeout=20, what="UTC buckets") == (500, 500)

        await publish(settings.kafka_bootstrap, profiled(ws, account, "America/New_York"))
        await eventually(lambda: _true(directory_of(ctx.extra).zone_for(ws, "meta", account).key
                                       == "America/New_York"), what="profile applied")
        # The account's intervals were re-bucketed: today (31 March in New York) = 200 + 500, yesterday = 300.
        assert await spend_today_and_yesterday(client, op, account) == (700, 300)

        # A report after the profile lands on the New York day directly: 01:00 UTC = 31 March 21:00 there.
        await publish(settings.kafka_bootstrap, hourly(ws, account, entity, datetime(2026, 4, 1, 1, tzinfo=UTC), 100))

        async def with_new_report() -> tuple[float, float] | None:
            got = await spend_today_and_yesterday(client, op, account)
            return got if got == (800, 300) else None

        assert await eventually(with_new_report, timeout=20, what="new report on the local day") == (800, 300)


async def _true(value: bool) -> bool:
    return value
