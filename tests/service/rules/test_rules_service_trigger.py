"""Trigger-mode rules on the real broker and Postgres: evaluated for an entity when its metrics arrive, firing once
on a threshold crossing and holding for the cooldown on the next crossings; the schedule leaves them alone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from allot.rules.service import SPEC
from allot.runtime.clock import ManualClock
from tests.service.rules.rules_support import NOW, change_sets, days_before, report, wait_for_entities
from tests.support.kafka import eventually, publish
from tests.support.service import api_keys, auth, running_service


async def test_a_trigger_rule_fires_on_the_crossing_and_respects_its_cooldown(settings: Any, unique: str) -> None:
    ws, account, entity = f"ws-{unique}", f"act-{unique}", f"e-{unique}"
    clock = ManualClock(NOW)
    (op,), keys = api_keys((ws, "operator"))
    days = days_before(NOW, 3)

    def restated(revenue: int, minutes: int) -> list[Any]:
        """Every day of the look-back re-reported (later reported_at) with this revenue for 10 000 spend."""
        return [report(ws, account, entity, d, spend=10_000, revenue=revenue,
                       reported_at=NOW - timedelta(hours=1) + timedelta(minutes=minutes)) for d in days]

    async with running_service(SPEC, settings, clock=clock, api_keys=keys, rules_scan_interval_s=0.05) as (client, _):
        await publish(settings.kafka_bootstrap, *restated(12_000, 0))  # ROAS 1.2: below the target
        await wait_for_entities(client, op, account, "adset", 1)
        r = await client.post("/api/v1/rules/from-template", headers=auth(op), json={
            "template": "scale_winners", "name": "Scale winners now", "targets": {"target_roas": 2.0},
            "scope": {"ad_account_ids": [account], "entity_level": "adset"},
            "schedule": {"mode": "trigger"}})
        assert r.status_code == 201, r.text
        rule_id = r.json()["id"]
        assert r.json()["schedule"]["mode"] == "trigger"
        assert (await client.post(f"/api/v1/rules/{rule_id}/activate", headers=auth(op))).status_code == 200

        async def executions(more_than: int) -> list[dict[str, Any]]:
            """The rule's executions (newest first) once there are more than ``more_than`` (a batch of reports may
            arrive in several consumer batches, each its own evaluation)."""
            async def enough() -> list[dict[str, Any]] | None:
                rows = (await client.get(f"/api/v1/rules/{rule_id}/executions", headers=auth(op))).json()
                return rows["executions"] if len(rows["executions"]) > more_than else None
            return await eventually(enough, timeout=20, what=f"more than {more_than} executions of the trigger rule")

        # Still below the target: evaluated on arrival, no match, nothing sent (the scheduler never runs it).
        await publish(settings.kafka_bootstrap, *restated(13_000, 1))
        below = await executions(0)
        assert {(e["trigger"], e["result"]) for e in below} == {("metric", "no_match")}, below

        # The crossing: ROAS 4 arrives → one change set at once.
        await publish(settings.kafka_bootstrap, *restated(40_000, 2))
        (fire,) = await change_sets(settings.kafka_bootstrap, rule_id, 1)
        (action,) = fire.payload.actions
        assert (action.entity_id, action.from_cents, action.to_cents) == (entity, 10_000, 12_000)
        seen = len(await executions(len(below)))

        # Crossing again 2 h later (no outcome reported yet, then within the 12 h cooldown): skipped, not re-sent.
        clock.advance(2 * 3600)
        await publish(settings.kafka_bootstrap, *restated(41_000, 3))
        latest = (await executions(seen))[0]
        assert latest["result"] == "no_match" and set(latest["skip_counts"]) & {"cooldown", "pending_action"}, latest
        assert len(await change_sets(settings.kafka_bootstrap, rule_id, 1, timeout=3)) == 1

        # After the cooldown, the next report fires again.
        clock.advance(11 * 3600)
        await publish(settings.kafka_bootstrap, *restated(42_000, 4))
        fires = await change_sets(settings.kafka_bootstrap, rule_id, 2)
        assert len(fires) == 2 and fires[1].payload.actions[0].entity_id == entity
