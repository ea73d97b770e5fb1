"""An action the guardrails leave out of an approved change set (pool ownership, arbitration) is never executed: the
rules service reads guardrail.approved and records it as blocked with the guardrails' note, instead of leaving it
pending for ever; the approved action stays pending until its action.executed."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from allot.contracts import TOPICS, new_envelope
from allot.contracts.payloads import GuardrailApproved
from allot.rules.service import SPEC
from allot.runtime.clock import ManualClock
from tests.service.rules.rules_support import NOW, change_sets, days_before, report, wait_for_entities
from tests.support.kafka import eventually, publish
from tests.support.service import api_keys, auth, running_service


async def test_an_action_left_out_of_an_approval_is_blocked_with_the_guardrails_note(settings: Any,
                                                                                   unique: str) -> None:
    ws, account = f"ws-{unique}", f"act-{unique}"
    kept, dropped = f"kept-{unique}", f"owned-{unique}"
    clock = ManualClock(NOW)
    (op,), keys = api_keys((ws, "operator"))
    events = [report(ws, account, e, d, spend=10_000, revenue=1_000, conversions=2)
              for e in (kept, dropped) for d in days_before(NOW, 7)]
    async with running_service(SPEC, settings, clock=clock, api_keys=keys) as (client, _):
        await publish(settings.kafka_bootstrap, *events)
        await wait_for_entities(client, op, account, "adset", 2)
        rule = {"name": "CPA guard", "scope": {"ad_account_ids": [account], "entity_level": "adset"},
                "targets": {"target_cpa": 2000},
                "conditions": {"logic": "and", "conditions": [
                    {"metric": "cpa", "operator": "gt", "value": "target * 1.5", "time_range": "last_7d"}]},
                "actions": [{"type": "pause"}], "schedule": {"interval_minutes": 15}}
        r = await client.post("/api/v1/rules", json=rule, headers=auth(op))
        rule_id = r.json()["id"]
        await client.post(f"/api/v1/rules/{rule_id}/activate", headers=auth(op))
        await client.post(f"/api/v1/rules/{rule_id}/evaluate-now", headers=auth(op))
        [fire] = await change_sets(settings.kafka_bootstrap, rule_id, 1)
        by_entity = {a.entity_id: a for a in fire.payload.actions}
        assert set(by_entity) == {kept, dropped}

        note = f"adset {dropped}: member of budget pool pool-{unique}; rule budget changes on it are skipped"
        approval = GuardrailApproved(
            decision_id=uuid.uuid4(), request_id=fire.payload.request_id, source="rule", source_id=rule_id,
            actions=[by_entity[kept]], trimmed=[note, "exposure: 0 EUR counted"], approved_at=clock.now(),
            expires_at=clock.now() + timedelta(minutes=10), signature="0" * 64)
        await publish(settings.kafka_bootstrap, new_envelope(
            event_type="guardrail.approved", schema_version=TOPICS["guardrail.approved"].schema_version,
            payload=approval, producer="guardrails", workspace_id=ws, occurred_at=clock.now()))

        async def outcomes() -> Any:
            r = await client.get(f"/api/v1/rules/{rule_id}/executions", headers=auth(op))
            entities = {e["entity_id"]: e for e in r.json()["executions"][0]["entities"]}
            return entities if entities[dropped]["outcome"] == "blocked" else None

        entities = await eventually(outcomes, timeout=15, what="the left-out action recorded as blocked")
        assert entities[dropped]["actions"][0]["error"] == f"dropped by the guardrails: {note}"
        assert entities[kept]["outcome"] == "pending" and entities[kept]["actions"][0]["error"] is None
