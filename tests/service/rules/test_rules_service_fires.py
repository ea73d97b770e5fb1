"""The rule list and the rule view say when a rule last fired and how often today (real broker and Postgres): a
fire is an execution that requested changes, notified or auto-paused; a no-match evaluation and yesterday's fire
do not count towards today."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from allot.rules.adapters import postgres as db
from allot.rules.service import SPEC
from allot.runtime.clock import ManualClock
from tests.service.rules.rules_support import NOW, days_before, report, wait_for_entities
from tests.support.kafka import publish
from tests.support.service import api_keys, auth, running_service


def _rule(account: str, min_spend: int) -> dict[str, Any]:
    return {"name": "Spend watch", "scope": {"ad_account_ids": [account], "entity_level": "adset"},
            "conditions": [{"metric": "spend", "operator": "gte", "value": min_spend, "time_range": "last_30d"}],
            "actions": [{"type": "notify_only"}], "schedule": {"mode": "schedule", "interval_minutes": 15}}


async def _evaluate(client: Any, key: str, rule_id: str) -> str:
    r = await client.post(f"/api/v1/rules/{rule_id}/evaluate-now", headers=auth(key))
    assert r.status_code == 200, r.text
    execution = r.json()["execution"]
    assert execution is not None, r.text
    return str(execution["result"])


async def test_last_fire_and_fires_today_count_fires_since_midnight_only(settings: Any, unique: str) -> None:
    ws, account, entity = f"ws-{unique}", f"act-{unique}", f"ent-{unique}"
    yesterday = NOW - timedelta(hours=12)  # 2026-05-16 12:05 UTC
    clock = ManualClock(yesterday)
    (op,), keys = api_keys((ws, "operator"))
    events = [report(ws, account, entity, day, spend=10_000, revenue=20_000) for day in days_before(yesterday, 3)]
    async with running_service(SPEC, settings, clock=clock, api_keys=keys, rules_scan_interval_s=0.05) as (client, ctx):
        await publish(settings.kafka_bootstrap, *events)
        await wait_for_entities(client, op, account, "adset", 1)
        r = await client.post("/api/v1/rules", json=_rule(account, 0), headers=auth(op))
        assert r.status_code == 201, r.text
        rule_id = r.json()["id"]
        assert "last_fired_at" not in r.json()  # only the list and the rule view carry the fire stats

        r = await client.get(f"/api/v1/rules/{rule_id}", headers=auth(op))
        assert (r.json()["last_fired_at"], r.json()["fires_today"]) == (None, 0)

        assert (await client.post(f"/api/v1/rules/{rule_id}/activate", headers=auth(op))).status_code == 200
        assert await _evaluate(client, op, rule_id) == "notified"  # yesterday's fire

        clock.advance(12 * 3600)  # 00:05 today
        assert await _evaluate(client, op, rule_id) == "notified"
        clock.advance(15 * 60)
        assert await _evaluate(client, op, rule_id) == "notified"
        last_fire = clock.now()

        # a no-match evaluation later today is no fire
        r = await client.patch(f"/api/v1/rules/{rule_id}", headers=auth(op),
                               json={"conditions": _rule(account, 10**9)["conditions"]})
        assert r.status_code == 200, r.text
        clock.advance(15 * 60)
        assert await _evaluate(client, op, rule_id) == "no_match"

        r = await client.get("/api/v1/rules", headers=auth(op))
        assert r.status_code == 200, r.text
        [listed] = r.json()["rules"]
        assert listed["id"] == rule_id
        assert datetime.fromisoformat(listed["last_fired_at"]) == last_fire
        assert listed["fires_today"] == 2
        assert datetime.fromisoformat(listed["last_evaluated_at"]) == clock.now()

        r = await client.get(f"/api/v1/rules/{rule_id}", headers=auth(op))
        assert (r.json()["last_fired_at"], r.json()["fires_today"]) == (listed["last_fired_at"], 2)

        # ...read through the fires-only partial index: a rule's no-match executions are never walked
        async with ctx.pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL enable_seqscan = off")
            plan = "\n".join(r[0] for r in await conn.fetch(
                "EXPLAIN " + db.FIRE_STATS_SQL, [uuid.UUID(rule_id)], [clock.now()]))
        assert plan.count("executions_rule_fires") == 2 and "executions_rule " not in plan, plan
