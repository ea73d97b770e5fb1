"""The sandbox publishes account.profiled for the accounts it delivers for (real broker): UTC unless configured."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from allot.runtime.clock import ManualClock
from allot.sandbox.service import SandboxSettings, build
from tests.support.kafka import eventually, read_topic

NOW = datetime(2026, 3, 7, 12, tzinfo=UTC)


async def profiles_of(bootstrap: str, account: str, count: int) -> list[dict[str, Any]]:
    records = await read_topic(bootstrap, "account.profiled", min_count=count, timeout=20.0,
                               predicate=lambda r: r.key == account.encode())
    return [orjson.loads(r.value) for r in records]


async def test_accounts_are_profiled_in_their_configured_zone_and_again_when_it_changes(
        settings: Any, unique: str) -> None:
    ny, plain = f"act-ny-{unique}", f"act-utc-{unique}"
    clock = ManualClock(NOW)
    sandbox_settings = SandboxSettings(**{**settings.model_dump(), "sandbox_tick_s": 0.05,
                                          "sandbox_default_workspace": f"ws-{unique}",
                                          "sandbox_account_timezones": {ny: "America/New_York"}})
    app = build(sandbox_settings, clock=clock)
    auth = {"Authorization": f"Bearer {sandbox_settings.sandbox_token}"}
    async with app.router.lifespan_context(app), \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox") as http:
        for account in (ny, plain):
            r = await http.post("/sandbox/entities", headers=auth, json={
                "id": f"as-{account}", "ad_account_id": account, "entity_type": "adset", "currency": "EUR",
                "daily_budget_cents": 10_000})
            assert r.status_code == 201, r.text
        clock.advance(3 * 3600)

        first = await profiles_of(settings.kafka_bootstrap, ny, 1)
        assert first[0]["workspace_id"] == f"ws-{unique}" and first[0]["producer"] == "sandbox"
        assert {k: first[0]["payload"][k] for k in ("platform", "ad_account_id", "currency", "timezone_name")} == {
            "platform": "sandbox", "ad_account_id": ny, "currency": "EUR", "timezone_name": "America/New_York"}
        other = await profiles_of(settings.kafka_bootstrap, plain, 1)
        assert other[0]["payload"]["timezone_name"] == "UTC"  # the default: the demo's days do not change
        # the account's delivery is on the bus too
        await read_topic(settings.kafka_bootstrap, "metrics.ingested", min_count=1, timeout=20.0,
                         predicate=lambda r: ny.encode() in (r.value or b""))

        r = await http.put(f"/sandbox/accounts/{ny}/workspace", headers=auth,
                           json={"workspace_id": f"ws-{unique}", "timezone_name": "Mars/Base"})
        assert r.status_code == 422 and "timezone_name" in r.text
        r = await http.put(f"/sandbox/accounts/{ny}/workspace", headers=auth,
                           json={"workspace_id": f"ws-{unique}", "timezone_name": "Europe/Berlin"})
        assert r.status_code == 200 and r.json()["timezone_name"] == "Europe/Berlin"
        clock.advance(3600)

        async def moved() -> list[dict[str, Any]] | None:
            got = await profiles_of(settings.kafka_bootstrap, ny, 2)
            return got if got[-1]["payload"]["timezone_name"] == "Europe/Berlin" else None

        again = await eventually(moved, timeout=20, what="the new zone published")
        assert len(again) == 2  # published once per change, not once per report


async def test_an_account_bound_to_another_workspace_is_first_disconnected_from_the_one_it_leaves(
        settings: Any, unique: str) -> None:
    account, first_ws, second_ws = f"act-move-{unique}", f"ws-{unique}", f"ws2-{unique}"
    clock = ManualClock(NOW)
    sandbox_settings = SandboxSettings(**{**settings.model_dump(), "sandbox_tick_s": 0.05,
                                          "sandbox_default_workspace": first_ws})
    app = build(sandbox_settings, clock=clock)
    auth = {"Authorization": f"Bearer {sandbox_settings.sandbox_token}"}
    async with app.router.lifespan_context(app), \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox") as http:
        r = await http.post("/sandbox/entities", headers=auth, json={
            "id": f"as-{account}", "ad_account_id": account, "entity_type": "adset", "currency": "EUR",
            "daily_budget_cents": 10_000})
        assert r.status_code == 201, r.text
        clock.advance(3 * 3600)
        [registered] = await profiles_of(settings.kafka_bootstrap, account, 1)
        assert (registered["workspace_id"], registered["payload"]["state"]) == (first_ws, "connected")

        r = await http.put(f"/sandbox/accounts/{account}/workspace", headers=auth, json={"workspace_id": second_ws})
        assert r.status_code == 200, r.text
        clock.advance(3600)
        moved = await profiles_of(settings.kafka_bootstrap, account, 3)
        assert [(p["workspace_id"], p["payload"]["state"]) for p in moved] == [
            (first_ws, "connected"), (first_ws, "disconnected"), (second_ws, "connected")]
