"""account.profiled → the guardrails count caps on the account's local day (real broker and Postgres)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.payloads import AccountProfiled
from allot.guardrails.service import SPEC
from allot.runtime.accounts import directory_of
from tests.service.guardrails.guardrails_support import action, decision_of, envelope, request
from tests.support.kafka import eventually, publish, read_topic
from tests.support.service import api_keys, auth, running_service

LIMITS = "/api/v1/guardrails/limits"
#: 02:00 UTC on 1 April 2026 = 22:00 on 31 March in New York (EDT)
NOW = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)


class StillClock:
    """Time stands at ``NOW``; background tasks' sleeps really wait (so they never move the time)."""

    def now(self) -> datetime:
        return NOW

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def profiled(ws: str, account: str, zone: str, *, observed_at: datetime = NOW) -> Envelope[Any]:
    payload = AccountProfiled(platform="meta", ad_account_id=account, currency="EUR", timezone_name=zone,
                              observed_at=observed_at)
    return new_envelope(event_type="account.profiled", schema_version=1, payload=payload, producer="test",
                        workspace_id=ws, occurred_at=observed_at)


async def test_a_new_york_account_counts_its_spend_on_new_york_days(
        settings: Any, unique: str, kafka_bootstrap: str) -> None:
    ws = f"ws-{unique}"
    ny = f"act-ny-{unique}"
    (admin, viewer), keys_json = api_keys((ws, "admin"), (ws, "viewer"))
    async with running_service(SPEC, settings.model_copy(update={"api_keys": keys_json}),
                               clock=StillClock()) as (client, ctx):  # type: ignore[arg-type]
        r = await client.put(LIMITS, json={"daily_cap_eur_cents": 3_000}, headers=auth(admin))
        assert r.status_code == 200, r.text

        # Before any profile the account's day is the UTC day: +1000 × 1.75 = 1750 counted on 1 April.
        first = request(action(f"a-{unique}", 10_000, 11_000, account=ny), key="k-1")
        await publish(kafka_bootstrap, envelope(ws, first))
        ok = await decision_of(client, viewer, first.request_id)
        assert ok["status"] == "approved" and ok["exposure_eur_cents"] == 1_750

        # The account is profiled in New York; a report observed earlier (Berlin) arrives later and loses.
        await publish(kafka_bootstrap, profiled(ws, ny, "America/New_York"),
                      profiled(ws, ny, "Europe/Berlin", observed_at=NOW - timedelta(hours=1)))
        accounts = directory_of(ctx.extra)
        await eventually(lambda: _is(accounts.zone_for(ws, "meta", ny).key, "America/New_York"),
                         what="New York profile applied")

        # Now it is still 31 March there: 1750 fits under the 3000 cap (on 1 April it would be 3500 and blocked).
        second = request(action(f"b-{unique}", 10_000, 11_000, account=ny), key="k-2")
        await publish(kafka_bootstrap, envelope(ws, second))
        ok2 = await decision_of(client, viewer, second.request_id)
        assert ok2["status"] == "approved", ok2
        # ... and a third on the same New York day does exceed it: 1750 + 1750 = 3500 > 3000.
        third = request(action(f"c-{unique}", 10_000, 11_000, account=ny), key="k-3")
        await publish(kafka_bootstrap, envelope(ws, third))
        blocked = await decision_of(client, viewer, third.request_id)
        assert blocked["status"] == "blocked" and blocked["check"] == "daily_cap"
        assert blocked["details"]["counted_eur_cents"] == 1_750

        r = await client.get("/api/v1/guardrails/ledger", params={"ad_account_id": ny}, headers=auth(viewer))
        ledger = r.json()
        assert (ledger["day"], ledger["month"], ledger["timezone_name"]) == ("2026-03-31", "2026-03",
                                                                              "America/New_York")
        assert ledger["exposure_eur_cents"] == 1_750 and ledger["month_exposure_eur_cents"] == 1_750
        assert ledger["decisions"] == {"approved": 1, "blocked": 1, "observed": 0}
        r = await client.get("/api/v1/guardrails/ledger", headers=auth(viewer))
        utc = r.json()
        assert (utc["day"], utc["timezone_name"], utc["exposure_eur_cents"]) == ("2026-04-01", "UTC", 1_750)

        # A restart reads the projection back from the table (a fresh directory knows New York too).
        async with ctx.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT timezone_name, observed_at FROM ad_accounts WHERE ad_account_id = $1",
                                      ny)
        assert (row["timezone_name"], row["observed_at"]) == ("America/New_York", NOW)


async def test_an_unknown_time_zone_goes_to_the_dlq_with_the_reason(
        settings: Any, unique: str, kafka_bootstrap: str) -> None:
    ws = f"ws-{unique}"
    account = f"act-mars-{unique}"
    async with running_service(SPEC, settings, clock=StillClock()) as (_client, ctx):  # type: ignore[arg-type]
        await publish(kafka_bootstrap, profiled(ws, account, "Mars/Olympus_Mons"))
        dead = await read_topic(kafka_bootstrap, "account.profiled.dlq", min_count=1, timeout=20.0,
                                predicate=lambda r: account.encode() in (r.value or b""))
        headers = dict(dead[0].headers)
        assert headers["x-dlq-reason"] == b"rejected_by_handler"
        assert b"Mars/Olympus_Mons" in headers["x-dlq-error"] and account.encode() in headers["x-dlq-error"]
        assert directory_of(ctx.extra).get(ws, "meta", account) is None
        async with ctx.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM ad_accounts WHERE ad_account_id = $1", account) == 0


async def _is(value: object, expected: object) -> bool:
    return value == expected
