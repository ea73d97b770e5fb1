"""Guardrails, pools and pacing publish their own notification.requested, and the notifier delivers it: each
service runs in-process beside the notifier, on the real broker and Postgres (each in its own schema), and a
loopback receiver stands in for Slack.

- a guardrail blocks a pool's change set (a daily cap) → one Slack message naming the check and the numbers;
- the oscillation detector holds a pool member → one message; later plans of the same hold publish nothing more;
- a critical pacing deviation → one message; the warning before it published nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from allot.guardrails.service import SPEC as GUARDRAILS
from allot.notify.service import SPEC as NOTIFY
from allot.pools.domain import MemberMemory
from allot.pools.scheduler import run_queued
from allot.runtime.service import ServiceContext
from tests.service.guardrails.guardrails_support import action, decision_of, envelope, request
from tests.service.notify.notify_support import HttpReceiver, http_receiver, notify_keys
from tests.service.pacing.conftest import Pacing
from tests.service.pools.pools_support import BASE, PoolsCase
from tests.support.kafka import eventually, publish
from tests.support.service import api_keys, auth, running_service

CONSOLE = "https://console.example.com"
NOTIFY_FAST = dict(notify_allow_loopback=True, notify_poll_interval_s=0.05, console_url=CONSOLE)


def running_notify(settings: Any, keys: str) -> Any:
    return running_service(NOTIFY, settings, api_keys=keys, sealing_private_keys=notify_keys(),
                           database_schema=f"{settings.database_schema}_notify", **NOTIFY_FAST)


async def subscribe_slack(notify: Any, admin: str, slack: HttpReceiver, kinds: list[str]) -> None:
    r = await notify.post("/api/v1/notifications/channels", headers=auth(admin),
                          json={"kind": "slack", "name": "#alerts", "url": slack.url})
    assert r.status_code == 201, r.text
    r = await notify.post("/api/v1/notifications/subscriptions", headers=auth(admin),
                          json={"channel_id": r.json()["channel_id"], "kinds": kinds})
    assert r.status_code == 201, r.text


async def messages(slack: HttpReceiver, count: int) -> list[dict[str, Any]]:
    """The first ``count`` Slack bodies, waiting for them."""
    async def arrived() -> bool:
        return len(slack.requests) >= count

    await eventually(arrived, timeout=30, what=f"{count} Slack message(s)")
    return [orjson.loads(r.body) for r in slack.requests]


def text_of(body: dict[str, Any]) -> str:
    return orjson.dumps(body["blocks"]).decode()


async def published_notifications(bootstrap: str, ctx: ServiceContext,
                                  mine: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Every notification.requested a service published that ``mine`` accepts: waits until the service's outbox
    is empty (each row is deleted only after the broker acknowledged it), then reads the topic up to its end."""
    async def relayed() -> bool:
        return await ctx.pool.fetchval("SELECT count(*) FROM outbox") == 0

    await eventually(relayed, timeout=30, what="the outbox relayed")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()  # fetches the cluster's metadata, partitions included
        parts = [TopicPartition("notification.requested", p)
                 for p in sorted(consumer.partitions_for_topic("notification.requested") or ())]
        assert parts, "notification.requested has no partitions"
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, "notification.requested not read to its end in 30 s"
            batch = await consumer.getmany(*parts, timeout_ms=500)
            for records in batch.values():
                for r in records:
                    try:  # other tests share the topic, some publish poison on purpose
                        body = orjson.loads(r.value)
                        ours = mine(body)
                    except (orjson.JSONDecodeError, KeyError, TypeError):
                        continue
                    if ours:
                        found.append(body)
        return found
    finally:
        await consumer.stop()


# ---------------------------------------------------------------- guardrails


async def test_a_guardrail_block_is_one_slack_message_naming_the_check_and_its_numbers(
        settings: Any, unique: str) -> None:
    ws, pool_id = f"ws-{unique}", f"pool-{unique}"
    (admin, viewer), keys = api_keys((ws, "admin"), (ws, "viewer"))
    async with http_receiver() as slack, running_service(
            GUARDRAILS, settings, api_keys=keys,
            database_schema=f"{settings.database_schema}_guardrails") as (guardrails, gctx), running_notify(
            settings, keys) as (notify, _):
        await subscribe_slack(notify, admin, slack, ["guardrail_blocked"])
        r = await guardrails.put("/api/v1/guardrails/limits", headers=auth(admin),
                                 json={"daily_cap_eur_cents": 1_000})
        assert r.status_code == 200, r.text

        # +1,000 cents of daily budget counts 1.75 × as exposure: 1,750 > the 1,000 cap.
        change = request(action(f"as-{unique}", 10_000, 11_000), source="pool", source_id=pool_id)
        await publish(settings.kafka_bootstrap, envelope(ws, change))
        decided = await decision_of(guardrails, viewer, change.request_id)
        assert decided["status"] == "blocked" and decided["check"] == "daily_cap"

        (body,) = await messages(slack, 1)
        text = text_of(body)
        assert body["text"].startswith("Guardrails blocked a pool change: daily_cap")
        assert "10.00 EUR" in text and "17.50 EUR" in text and "7.50 EUR" in text, "cap, exposure, over by"
        assert f"pool {pool_id}" in text and f"{CONSOLE}/automation/budget-pools/{pool_id}" in text
        (published,) = await published_notifications(
            settings.kafka_bootstrap, gctx, lambda e: e["workspace_id"] == ws)
        assert published["producer"] == "guardrails" and published["causation_id"] == decided["event_id"]
        assert len(slack.requests) == 1


# ---------------------------------------------------------------- pools


async def test_a_member_held_by_the_oscillation_detector_is_one_message_and_later_plans_add_none(
        settings: Any, unique: str) -> None:
    P = PoolsCase(settings, unique)
    (admin,), notify_keys_json = api_keys((P.ws, "admin"))
    async with http_receiver() as slack, P.service(
            pools_worker_enabled=False, pools_scheduler_enabled=False, pools_manual_rate_limit_s=0,
            database_schema=f"{settings.database_schema}_pools") as (pools, ctx, clock), running_notify(
            settings, notify_keys_json) as (notify, _):
        await subscribe_slack(notify, admin, slack, ["pool_frozen"])
        await P.publish_history(settings.kafka_bootstrap, ctx, P.history(10))
        # 40,000 over four members at 10,000 each (nothing to repair); every signal moves at once, no cooldown.
        pool = await P.create_pool(pools, dailyBudgetCents=40_000, persistenceIntervals=1, cooldownHours=0,
                                   explorationShare=0, deadbandPct=0)
        pid = pool["id"]
        # As the engine stores it: m4's last three changes went up, down, up. The data (m4 is clearly the worst)
        # now moves it down: its third reversal, which the oscillation detector answers with a hold.
        flip_flop = MemberMemory(last_change_at=clock.now() - timedelta(days=1), recent_directions=(1, -1, 1))
        await ctx.pool.execute("UPDATE pools SET engine_state = $2 WHERE pool_id = $1::uuid", pid,
                               {"members": {P.entity["m4"]: flip_flop.to_dict()}})

        first = await allocate(pools, ctx, P, pid)
        m4 = next(line for line in first["plan"]["members"] if line["entityId"] == P.entity["m4"])
        assert first["status"] == "requested" and m4["afterCents"] < m4["beforeCents"], first["plan"]

        (body,) = await messages(slack, 1)
        text = text_of(body)
        until = (clock.now() + timedelta(hours=72)).strftime("%Y-%m-%d %H:%M UTC")
        assert body["text"].startswith(f"Pool 'Prospecting {unique}': Campaign m4 (campaign {P.entity['m4']}) "
                                       f"frozen until {until}"), body["text"]
        assert "kept changing direction" in text and "3 direction reversals within the last 6 changes" in text
        assert f"{CONSOLE}/automation/budget-pools/{pid}" in text

        # The next day's plan: m4 is still held (the others keep moving); the same hold says nothing more.
        clock.advance(86_400)
        second = await allocate(pools, ctx, P, pid)
        m4 = next(line for line in second["plan"]["members"] if line["entityId"] == P.entity["m4"])
        assert "kept reversing" in m4["why"] and m4["afterCents"] == m4["beforeCents"], second["plan"]
        assert second["status"] == "requested", "the other members still move"
        published = await published_notifications(settings.kafka_bootstrap, ctx,
                                                  lambda e: e["payload"]["source_id"] == pid)
        assert [(e["payload"]["kind"], e["producer"]) for e in published] == [("pool_frozen", "pools")]
        assert len(slack.requests) == 1


async def allocate(client: Any, ctx: ServiceContext, P: PoolsCase, pid: str) -> dict[str, Any]:
    """A manual allocation, run now; its log entry."""
    r = await client.post(f"{BASE}/{pid}/allocate", headers=auth(P.operator))
    assert r.status_code == 202, r.text
    assert await run_queued(ctx) == 1
    (log,) = [a for a in await P.allocations(client, pid) if a["id"] == r.json()["requestId"]]
    return log


# ---------------------------------------------------------------- pacing


async def test_a_critical_pacing_deviation_is_one_message_and_a_warning_none(settings: Any, unique: str) -> None:
    pacing = Pacing(settings, unique)
    (admin,), notify_keys_json = api_keys((pacing.ws, "admin"))
    async with http_receiver() as slack, pacing.service(
            database_schema=f"{settings.database_schema}_pacing") as (client, ctx), running_notify(
            settings, notify_keys_json) as (notify, _):
        await subscribe_slack(notify, admin, slack, ["pacing_critical"])
        plan = await pacing.create_plan(client, channels=[
            {"name": "ALL", "allocated_budget_cents": 10_000_000, "entities": [pacing.ent("e1")],
             "budget_entity": pacing.ent("e1")}], deals=[])
        pid = plan["plan_id"]
        spent = [pacing.metric("e1", day, 1_025_000, daily_budget_cents=1_000_000) for day in range(4)]
        await publish(pacing.bootstrap, *spent)
        await pacing.wait_projection(ctx, [m.event_id for m in spent])

        warned = await pacing.snapshot(client, pid)  # 4,100,000 of 5,000,000 expected: -18 %, a warning
        assert warned["alert"]["level"] == "warning", warned
        ctx.clock.advance(86_400)  # type: ignore[attr-defined]
        critical = await pacing.snapshot(client, pid)  # of 6,000,000 expected: -31.67 %, critical
        assert critical["alert"]["level"] == "critical", critical

        (body,) = await messages(slack, 1)
        assert body["text"].startswith(f"Pacing plan {pid} is underpacing by -31.7%"), body["text"]
        assert "beyond the critical threshold" in text_of(body)
        published = await published_notifications(settings.kafka_bootstrap, ctx,
                                                  lambda e: e["payload"]["source_id"] == pid)
        assert [(e["payload"]["kind"], e["producer"]) for e in published] == [("pacing_critical", "pacing")]
        deviations = await pacing.events("pacing.deviation_detected", pid, min_count=2)
        assert published[0]["causation_id"] == next(
            d["event_id"] for d in deviations if d["payload"]["alert_level"] == "critical")
        assert len(slack.requests) == 1

