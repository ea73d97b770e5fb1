"""Rules service against the real broker and Postgres: scale winners fires once per slot, holds for its cooldown,
survives a metrics replay, and re-fires after the cooldown; kill losers pauses; notify_only emits no change set but
one notification."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from allot.contracts import decode
from allot.rules.service import SPEC
from allot.runtime.clock import ManualClock
from tests.service.rules.rules_support import NOW, change_sets, days_before, report, wait_for_entities
from tests.support.kafka import eventually, publish, read_topic
from tests.support.service import api_keys, auth, running_service


async def evaluate(client: Any, key: str, rule_id: str) -> dict[str, Any]:
    r = await client.post(f"/api/v1/rules/{rule_id}/evaluate-now", headers=auth(key))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["execution"] is not None, body
    return body


async def test_scale_winners_fires_once_holds_for_cooldown_and_ignores_a_metrics_replay(
    settings: Any, unique: str
) -> None:
    ws, account = f"ws-{unique}", f"act-{unique}"
    winner, loser = f"win-{unique}", f"lose-{unique}"
    clock = ManualClock(NOW)
    (op,), keys = api_keys((ws, "operator"))
    events = []
    for day in days_before(NOW, 3):
        # first report of the day undercounts conversions; the matured re-report (later reported_at) wins
        early = report(ws, account, winner, day, spend=10_000, revenue=5_000, reported_at=None)
        matured_at = early.payload.reported_at + timedelta(minutes=2)
        events.append(report(ws, account, winner, day, spend=10_000, revenue=40_000, reported_at=matured_at))
        events.append(early)  # delivered out of order: must not override the later report
        events.append(report(ws, account, loser, day, spend=10_000, revenue=12_000))
    async with running_service(SPEC, settings, clock=clock, api_keys=keys, rules_scan_interval_s=0.05) as (client, _):
        await publish(settings.kafka_bootstrap, *events)
        await wait_for_entities(client, op, account, "adset", 2,
                                check=lambda out: {m["entity_id"] for m in out["matched"]} == {winner, loser})

        r = await client.post("/api/v1/rules/from-template", headers=auth(op), json={
            "template": "scale_winners", "name": "Scale winners", "targets": {"target_roas": 2.0},
            "scope": {"ad_account_ids": [account], "entity_level": "adset"}})
        assert r.status_code == 201, r.text
        rule = r.json()
        rule_id = rule["id"]
        assert rule["status"] == "paused" and rule["protections"]["cooldown_minutes"] == 720

        # preview: runs the logic on current data, acts on nothing
        r = await client.post("/api/v1/rules/preview", json={"rule_id": rule_id}, headers=auth(op))
        assert r.status_code == 200, r.text
        preview = r.json()
        assert preview["entities_evaluated"] == 2
        assert [m["entity_id"] for m in preview["matched"]] == [winner]
        assert preview["matched"][0]["snapshot"]["roas@last_3d"] == 4.0
        assert preview["matched"][0]["actions"][0]["to_cents"] == 12_000
        assert [(s["entity_id"], s["reason"]) for s in preview["skipped"]] == [(loser, "conditions_not_met")]

        assert (await client.post(f"/api/v1/rules/{rule_id}/activate", headers=auth(op))).status_code == 200
        first = await evaluate(client, op, rule_id)
        slot_iso = first["execution"]["slot_start"]
        [fire] = await change_sets(settings.kafka_bootstrap, rule_id, 1)
        request = fire.payload
        assert request.source == "rule" and request.source_id == rule_id
        assert request.idempotency_key == f"{rule_id}/{NOW.replace(minute=0).isoformat()}"
        [action] = request.actions
        assert (action.entity_id, action.action_type, action.from_cents, action.to_cents) == (
            winner, "set_budget", 10_000, 12_000)
        assert action.action_id == uuid.uuid5(uuid.UUID(rule_id), f"{NOW.replace(minute=0).isoformat()}/{winner}/"
                                                                  "increase_budget_pct")

        execution = first["execution"]
        assert execution["result"] == "requested" and execution["matched"] == 1
        assert execution["entities"][0]["outcome"] == "pending"
        assert execution["entities"][0]["snapshot"]["roas@last_3d"] == 4.0

        # replaying every metrics report and evaluating again in the same slot changes nothing
        await publish(settings.kafka_bootstrap, *events)
        again = await evaluate(client, op, rule_id)
        assert again["status"] == "already_evaluated" and again["execution"]["slot_start"] == slot_iso

        # later slots: pending (action in flight < 30 min), then cooldown (720 min)
        clock.advance(15 * 60)
        body = await evaluate(client, op, rule_id)
        assert body["execution"]["skip_counts"].get("pending_action") == 1, body
        clock.advance(30 * 60)
        body = await evaluate(client, op, rule_id)
        assert body["execution"]["skip_counts"].get("cooldown") == 1, body
        assert len(await change_sets(settings.kafka_bootstrap, rule_id, 1, timeout=3)) == 1

        # the budget grew on the platform; after the cooldown the rule scales again from the new budget
        await publish(settings.kafka_bootstrap, report(ws, account, winner, NOW.date() - timedelta(days=1),
                                                       spend=10_000, revenue=40_000, budget=12_000,
                                                       reported_at=NOW + timedelta(minutes=30)))
        await wait_for_entities(client, op, account, "adset", 2, actions=[{"type": "increase_budget_pct", "pct": 20}],
                                check=lambda out: any(m["actions"][0].get("from_cents") == 12_000
                                                      for m in out["matched"] if m["entity_id"] == winner))
        clock.advance(12 * 3600)
        body = await evaluate(client, op, rule_id)
        assert body["execution"]["result"] == "requested", body
        fires = await change_sets(settings.kafka_bootstrap, rule_id, 2)
        assert len(fires) == 2
        assert (fires[1].payload.actions[0].from_cents, fires[1].payload.actions[0].to_cents) == (12_000, 14_400)

        r = await client.get(f"/api/v1/rules/{rule_id}/executions", headers=auth(op))
        results = [e["result"] for e in r.json()["executions"]]
        assert results == ["requested", "no_match", "no_match", "requested"]

        metrics = (await client.get("/metrics")).text
        assert 'allot_rule_fires_total{outcome="requested",service="rules"}' in metrics


async def test_kill_losers_pauses_and_notify_only_emits_nothing(settings: Any, unique: str) -> None:
    ws, account = f"ws-{unique}", f"act-{unique}"
    loser, fine = f"lose-{unique}", f"fine-{unique}"
    clock = ManualClock(NOW)
    (op,), keys = api_keys((ws, "operator"))
    events = []
    for day in days_before(NOW, 7):
        events.append(report(ws, account, loser, day, spend=10_000, revenue=5_000, conversions=2))  # cpa 5000
        events.append(report(ws, account, fine, day, spend=10_000, revenue=50_000, conversions=10))  # cpa 1000
    # today: the loser has spent 90 % of its budget
    events.append(report(ws, account, loser, NOW.date(), spend=9_000, revenue=0, conversions=0,
                         reported_at=NOW - timedelta(minutes=1)))
    async with running_service(SPEC, settings, clock=clock, api_keys=keys, rules_scan_interval_s=0.05) as (client, _):
        await publish(settings.kafka_bootstrap, *events)
        await wait_for_entities(client, op, account, "adset", 2)

        r = await client.post("/api/v1/rules/from-template", headers=auth(op), json={
            "template": "kill_losers", "name": "Kill losers", "targets": {"target_cpa": 2000},
            "scope": {"ad_account_ids": [account], "entity_level": "adset"}})
        assert r.status_code == 201, r.text
        kill_id = r.json()["id"]
        r = await client.post("/api/v1/rules/from-template", headers=auth(op), json={
            "template": "daily_spend_protection", "name": "Spend alert",
            "scope": {"ad_account_ids": [account], "entity_level": "adset"}})
        assert r.status_code == 201, r.text
        notify_id = r.json()["id"]


        async def todays_spend_projected() -> Any:
            r = await client.post("/api/v1/rules/preview", json={"rule_id": notify_id}, headers=auth(op))
            return [m["entity_id"] for m in r.json()["matched"]] == [loser]

        await eventually(todays_spend_projected, timeout=10, what="today's report projected")
        # notify first: the kill rule's pause puts the loser in flight (pending) for every rule
        assert (await client.post(f"/api/v1/rules/{notify_id}/activate", headers=auth(op))).status_code == 200
        notify = await evaluate(client, op, notify_id)
        assert (await client.post(f"/api/v1/rules/{kill_id}/activate", headers=auth(op))).status_code == 200
        kill = await evaluate(client, op, kill_id)

        assert kill["execution"]["result"] == "requested"
        [fire] = await change_sets(settings.kafka_bootstrap, kill_id, 1)
        [action] = fire.payload.actions
        assert (action.entity_id, action.action_type, action.to_cents) == (loser, "pause", None)

        assert notify["execution"]["result"] == "notified"
        assert [e["entity_id"] for e in notify["execution"]["entities"]] == [loser]
        assert notify["execution"]["entities"][0]["outcome"] == "notified"
        assert notify["execution"]["entities"][0]["snapshot"]["budget_spent_pct@today"] == 90.0
        assert await change_sets(settings.kafka_bootstrap, notify_id, 0, timeout=3) == []
        # ...but one notification.requested for the fire, naming the entity, its budget and the condition
        [note] = [decode("notification.requested", r.value) for r in await read_topic(
            settings.kafka_bootstrap, "notification.requested", min_count=1,
            predicate=lambda r: decode("notification.requested", r.value).payload.source_id == notify_id)]
        assert (note.workspace_id, note.payload.workspace_id, note.payload.kind) == (ws, ws, "rule_notify_only")
        assert note.payload.title == "Rule 'Spend alert' matched 1 entity"
        assert note.payload.condition == "budget_spent_pct@today > 80"
        [entity] = note.payload.entities
        assert (entity.entity_id, entity.name, entity.amount_cents, entity.currency) == (
            loser, f"{loser} name", 10_000, "EUR")
        assert "budget_spent_pct@today=90" in entity.detail
        assert note.payload.console_path == f"/rules/{notify_id}"

        # the scheduler (not only evaluate-now) evaluates the next slot on its own
        clock.advance(15 * 60)

        async def next_slot() -> Any:
            r = await client.get(f"/api/v1/rules/{notify_id}/executions", headers=auth(op))
            return len(r.json()["executions"]) == 2

        await eventually(next_slot, timeout=10, what="scheduler evaluated the next slot")
