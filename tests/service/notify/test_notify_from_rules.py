"""Rules and the notifier together on the real broker and Postgres: a notify_only rule matches two ad sets → one
Slack message naming both, their budgets and the condition's numbers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson

from allot.notify.service import SPEC as NOTIFY
from allot.rules.service import SPEC as RULES
from allot.runtime.clock import ManualClock
from tests.service.notify.notify_support import http_receiver, notify_keys
from tests.service.rules.rules_support import NOW, report, wait_for_entities
from tests.support.kafka import eventually, publish
from tests.support.service import api_keys, auth, running_service


async def test_a_notify_only_rule_fire_is_one_slack_message_naming_every_matched_entity(
        settings: Any, unique: str) -> None:
    ws, account = f"ws-{unique}", f"act-{unique}"
    hot, warm, cold = f"hot-{unique}", f"warm-{unique}", f"cold-{unique}"
    (admin,), keys = api_keys((ws, "admin"))
    today = NOW.date()
    at = NOW - timedelta(minutes=1)
    events = [report(ws, account, hot, today, spend=9_500, revenue=0, reported_at=at, name="Prospecting DE"),
              report(ws, account, warm, today, spend=8_500, revenue=0, reported_at=at, budget=10_000,
                     name="Retargeting DE"),
              report(ws, account, cold, today, spend=1_000, revenue=0, reported_at=at, name="Brand")]
    async with http_receiver() as slack, running_service(
            RULES, settings, clock=ManualClock(NOW), api_keys=keys, rules_scan_interval_s=0.05,
            database_schema=f"{settings.database_schema}_rules") as (rules, _), running_service(
            NOTIFY, settings, api_keys=keys, sealing_private_keys=notify_keys(), notify_allow_loopback=True,
            notify_poll_interval_s=0.05, console_url="https://console.example.com",
            database_schema=f"{settings.database_schema}_notify") as (notify, _):
        r = await notify.post("/api/v1/notifications/channels", headers=auth(admin),
                              json={"kind": "slack", "name": "#spend", "url": slack.url})
        assert r.status_code == 201, r.text
        r = await notify.post("/api/v1/notifications/subscriptions", headers=auth(admin),
                              json={"channel_id": r.json()["channel_id"], "kinds": ["rule_notify_only"]})
        assert r.status_code == 201, r.text

        await publish(settings.kafka_bootstrap, *events)
        await wait_for_entities(rules, admin, account, "adset", 3)
        r = await rules.post("/api/v1/rules/from-template", headers=auth(admin), json={
            "template": "daily_spend_protection", "name": "Spend alert",
            "scope": {"ad_account_ids": [account], "entity_level": "adset"}})
        assert r.status_code == 201, r.text
        rule_id = r.json()["id"]

        async def both_projected() -> Any:
            r = await rules.post("/api/v1/rules/preview", json={"rule_id": rule_id}, headers=auth(admin))
            return sorted(m["entity_id"] for m in r.json()["matched"]) == sorted([hot, warm])

        await eventually(both_projected, timeout=15, what="today's spend projected")
        assert (await rules.post(f"/api/v1/rules/{rule_id}/activate", headers=auth(admin))).status_code == 200
        r = await rules.post(f"/api/v1/rules/{rule_id}/evaluate-now", headers=auth(admin))
        assert r.status_code == 200 and r.json()["execution"]["result"] == "notified", r.text

        await eventually(lambda: _async(slack.requests), timeout=30, what="the Slack message")
        (message,) = slack.requests
        body = orjson.loads(message.body)
        text = orjson.dumps(body["blocks"]).decode()
        assert body["text"].startswith("Rule 'Spend alert' matched 2 entities")
        assert f"Prospecting DE (adset {hot})" in text and f"Retargeting DE (adset {warm})" in text
        assert cold not in text and "Brand" not in text
        assert "100.00 EUR" in text, "each entity's daily budget in its currency"
        assert "budget_spent_pct@today &gt; 80" in text and "budget_spent_pct@today=95" in text
        assert f"https://console.example.com/rules/{rule_id}" in text


async def _async(value: Any) -> Any:
    return value
