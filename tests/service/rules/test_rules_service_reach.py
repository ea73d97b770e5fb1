"""Reach is never summed (real broker and Postgres): a frequency_cap rule on last_7d matches on the platform's
deduplicated range reach carried by metrics.ingested (the latest report that carries one wins; equal reported_at:
the greater event id), and an entity without a current one is skipped saying why; a day of several interval
reports has no daily reach."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from allot.contracts.payloads import RangeReach
from allot.rules.service import SPEC
from allot.runtime.clock import ManualClock
from tests.service.rules.rules_support import NOW, days_before, report, wait_for_entities
from tests.support.kafka import publish
from tests.support.service import api_keys, auth, running_service

WHY = "frequency@last_7d (reach for last_7d not reported by the platform yet)"


async def test_frequency_cap_on_last_7d_matches_on_the_platforms_range_reach_and_says_why_without_it(
        settings: Any, unique: str) -> None:
    ws, account = f"ws-{unique}", f"act-{unique}"
    dedup, missing, stale = f"a-dedup-{unique}", f"b-missing-{unique}", f"c-stale-{unique}"
    (op,), keys = api_keys((ws, "operator"))
    yesterday = NOW.date() - timedelta(days=1)
    # 7 whole-day reports each: 20 000 impressions and 8 000 people a day. Summed, the 7-day reach would be 56 000
    # and the frequency 2.5 (no match); the platform's deduplicated 7-day reach is 20 000: frequency 7.0 > 5.
    events = [report(ws, account, e, day, spend=1_000, revenue=1_000, impressions=20_000, reach=8_000)
              for e in (dedup, missing, stale) for day in days_before(NOW, 7)]
    at = events[0].payload.reported_at + timedelta(hours=1)
    small, big = sorted([uuid.uuid4(), uuid.uuid4()])

    def restated(entity: str, reported_at: Any, event_id: Any, through: Any, people: int) -> Any:
        return report(ws, account, entity, yesterday, spend=1_000, revenue=1_000, impressions=20_000, reach=8_000,
                      reported_at=reported_at, event_id=event_id,
                      range_reach=RangeReach(through=through, last_3d=12_000, last_7d=people))

    events += [
        restated(dedup, at, big, yesterday, 20_000),
        restated(dedup, at, small, yesterday, 50_000),  # same reported_at, smaller event id: loses (2.8)
        restated(dedup, at - timedelta(minutes=5), None, yesterday, 40_000),  # older, delivered later: loses (3.5)
        restated(stale, at, None, yesterday - timedelta(days=1), 20_000),  # ends the day before yesterday
    ]
    # Last on each entity's partition: 7 cents 8 days ago (outside last_7d). Once it is projected, all is.
    eight_days_ago = NOW.date() - timedelta(days=8)
    events += [report(ws, account, e, eight_days_ago, spend=7, revenue=0) for e in (dedup, missing, stale)]
    async with running_service(SPEC, settings, clock=ManualClock(NOW), api_keys=keys,
                               rules_scan_interval_s=0.05) as (client, _):
        await publish(settings.kafka_bootstrap, *events)
        await wait_for_entities(client, op, account, "adset", 3, check=lambda out: {
            m["entity_id"]: m["snapshot"]["spend@last_30d"] for m in out["matched"]} == dict.fromkeys(
                (dedup, missing, stale), 7_007))

        r = await client.post("/api/v1/rules/from-template", headers=auth(op), json={
            "template": "frequency_cap", "name": "Frequency cap",
            "scope": {"ad_account_ids": [account], "entity_level": "adset"}})
        assert r.status_code == 201, r.text
        rule_id = r.json()["id"]

        r = await client.post("/api/v1/rules/preview", json={"rule_id": rule_id}, headers=auth(op))
        assert r.status_code == 200, r.text
        preview = r.json()
        assert [(m["entity_id"], m["snapshot"]) for m in preview["matched"]] == [
            (dedup, {"frequency@last_7d": 7.0})]
        assert [(s["entity_id"], s["reason"], s["detail"]) for s in preview["skipped"]] == [
            (missing, "metric_unavailable", WHY), (stale, "metric_unavailable", WHY)]

        # Reach per day: yesterday is one report (its reach, 8 000: frequency 2.5); a day of two hourly reports
        # has no daily reach (8 000 + 8 000 would count twice the people seen in both hours).
        hourly = f"d-hourly-{unique}"
        start = NOW.replace(hour=0, minute=0) - timedelta(days=1)
        two_hours = [report(ws, account, hourly, yesterday, spend=500, revenue=500, impressions=10_000, reach=8_000)
                     for _ in range(2)]
        for i, env in enumerate(two_hours):
            payload = env.payload.model_copy(update={"interval_start": start + timedelta(hours=i),
                                                     "interval_end": start + timedelta(hours=i + 1)})
            two_hours[i] = env.model_copy(update={"payload": payload})
        await publish(settings.kafka_bootstrap, *two_hours)
        await wait_for_entities(client, op, account, "adset", 4, check=lambda out: any(
            m["entity_id"] == hourly and m["snapshot"]["spend@last_30d"] == 1_000 for m in out["matched"]))
        probe = {"name": "reach", "scope": {"ad_account_ids": [account], "entity_level": "adset"},
                 "conditions": [{"metric": "frequency", "operator": "gte", "value": 0, "time_range": "yesterday"}],
                 "actions": [{"type": "notify_only"}]}
        r = await client.post("/api/v1/rules/preview", json=probe, headers=auth(op))
        assert r.status_code == 200, r.text
        out = r.json()
        assert {m["entity_id"]: m["snapshot"]["frequency@yesterday"] for m in out["matched"]} == {
            dedup: 2.5, missing: 2.5, stale: 2.5}
        assert [(s["entity_id"], s["detail"]) for s in out["skipped"]] == [
            (hourly, "frequency@yesterday (reach for yesterday not reported by the platform yet)")]

        # The scheduled path records the same reasons in the execution history.
        assert (await client.post(f"/api/v1/rules/{rule_id}/activate", headers=auth(op))).status_code == 200
        r = await client.post(f"/api/v1/rules/{rule_id}/evaluate-now", headers=auth(op))
        assert r.status_code == 200, r.text
        execution = r.json()["execution"]
        assert execution["matched"] == 1
        assert [(s["entity_id"], s["reason"], s["detail"]) for s in execution["skipped_entities"]] == [
            (missing, "metric_unavailable", WHY), (stale, "metric_unavailable", WHY),
            (hourly, "metric_unavailable", WHY)]
