"""Rules HTTP API and protections against the real broker and Postgres: circuit breaker from action.executed,
guardrail blocks as outcomes, validation naming the field, roles, workspaces, templates, bulk edit, audit log."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from allot.contracts import TOPICS, decode, new_envelope
from allot.contracts.payloads import ActionExecuted, GuardrailBlocked
from allot.rules.service import SPEC
from allot.runtime.clock import ManualClock
from tests.service.rules.rules_support import NOW, change_sets, days_before, report, rule_body, wait_for_entities
from tests.support.kafka import eventually, publish, read_topic
from tests.support.service import api_keys, auth, running_service


def executed(ws: str, rule_id: str, entity: str, outcome: str, at: Any, request_id: uuid.UUID) -> Any:
    payload = ActionExecuted(action_id=uuid.uuid4(), request_id=request_id, decision_id=uuid.uuid4(), source="rule",
                             source_id=rule_id, platform="meta", ad_account_id="x", entity_type="adset",
                             entity_id=entity, action_type="pause", outcome=outcome, currency="EUR",
                             error=None if outcome == "succeeded" else "platform refused (500): boom", executed_at=at)
    return new_envelope(event_type="action.executed", schema_version=TOPICS["action.executed"].schema_version,
                        payload=payload, producer="executor", workspace_id=ws, occurred_at=at)


async def test_failures_trip_the_circuit_breaker_and_a_guardrail_block_is_an_outcome(settings: Any,
                                                                                     unique: str) -> None:
    ws, account, loser = f"ws-{unique}", f"act-{unique}", f"lose-{unique}"
    clock = ManualClock(NOW)
    (op,), keys = api_keys((ws, "operator"))
    events = [report(ws, account, loser, d, spend=10_000, revenue=1_000, conversions=2) for d in days_before(NOW, 7)]
    async with running_service(SPEC, settings, clock=clock, api_keys=keys, rules_scan_interval_s=0.05) as (client, _):
        await publish(settings.kafka_bootstrap, *events)
        await wait_for_entities(client, op, account, "adset", 1)
        r = await client.post("/api/v1/rules", json=rule_body(account), headers=auth(op))
        assert r.status_code == 201, r.text
        rule_id = r.json()["id"]
        await client.post(f"/api/v1/rules/{rule_id}/activate", headers=auth(op))
        r = await client.post(f"/api/v1/rules/{rule_id}/evaluate-now", headers=auth(op))
        [fire] = await change_sets(settings.kafka_bootstrap, rule_id, 1)
        request_id = fire.payload.request_id

        # the guardrails refuse the change set: the entity's outcome on the execution is "blocked"
        blocked = GuardrailBlocked(decision_id=uuid.uuid4(), request_id=request_id, source="rule", source_id=rule_id,
                                   check="daily_cap", reason="daily cap reached")
        await publish(settings.kafka_bootstrap, new_envelope(
            event_type="guardrail.blocked", schema_version=TOPICS["guardrail.blocked"].schema_version,
            payload=blocked, producer="guardrails", workspace_id=ws, occurred_at=clock.now()))

        async def outcome() -> Any:
            r = await client.get(f"/api/v1/rules/{rule_id}/executions", headers=auth(op))
            entity = r.json()["executions"][0]["entities"][0]
            return entity if entity["outcome"] == "blocked" else None

        entity = await eventually(outcome, timeout=15, what="blocked outcome recorded")
        assert entity["actions"][0]["error"] == "daily_cap: daily cap reached"

        # 20 failures and 4 successes in 24 h (83 % errors): the rule goes back to paused
        at = clock.now()
        outcomes = [executed(ws, rule_id, loser, "failed", at, request_id) for _ in range(20)]
        outcomes += [executed(ws, rule_id, loser, "succeeded", at, request_id) for _ in range(4)]
        other = executed(ws, rule_id, loser, "failed", at, request_id)
        other = other.model_copy(update={"payload": other.payload.model_copy(update={"source": "pool"})})
        await publish(settings.kafka_bootstrap, *outcomes[:19], other, *outcomes[19:])

        async def paused() -> Any:
            r = await client.get(f"/api/v1/rules/{rule_id}", headers=auth(op))
            return r.json() if r.json()["status"] == "paused" else None

        rule = await eventually(paused, timeout=15, what="rule auto-paused")
        assert "circuit breaker" in rule["auto_pause_reason"] and "20 errors" in rule["auto_pause_reason"]
        assert rule["last_error"] == "platform refused (500): boom"
        r = await client.get("/api/v1/audit-log", params={"rule_id": rule_id}, headers=auth(op))
        entries = r.json()["entries"]
        assert [e["action"] for e in entries] == ["auto_pause", "activate", "create"]
        assert entries[0]["actor"] == "system" and entries[0]["before"]["status"] == "active"
        assert entries[0]["after"]["status"] == "paused"
        # ...and the workspace is told (notification.requested, critical, naming the rule and the reason)
        [note] = [decode("notification.requested", r.value) for r in await read_topic(
            settings.kafka_bootstrap, "notification.requested", min_count=1,
            predicate=lambda r: decode("notification.requested", r.value).payload.kind == "rule_auto_paused"
            and decode("notification.requested", r.value).payload.source_id == rule_id)]
        assert (note.workspace_id, note.payload.severity) == (ws, "critical")
        assert "circuit breaker" in note.payload.condition and "20 errors" in note.payload.condition
        assert note.payload.entities[0].entity_id == rule_id and "boom" in note.payload.summary

        # a paused rule is not evaluated; re-activation resets the breaker window
        r = await client.post(f"/api/v1/rules/{rule_id}/evaluate-now", headers=auth(op))
        assert r.status_code == 409
        clock.advance(3600)
        r = await client.post(f"/api/v1/rules/{rule_id}/activate", headers=auth(op))
        assert r.json()["status"] == "active" and r.json()["auto_pause_reason"] is None
        r = await client.post(f"/api/v1/rules/{rule_id}/evaluate-now", headers=auth(op))
        assert r.status_code == 200 and r.json()["execution"]["result"] != "auto_paused", r.text


async def test_rules_api_validation_roles_workspaces_templates_bulk_and_audit(settings: Any, unique: str) -> None:
    ws, other_ws = f"ws-{unique}", f"other-{unique}"
    meta, google = f"meta-{unique}", f"goog-{unique}"
    clock = ManualClock(NOW)
    (op, viewer, stranger), keys = api_keys((ws, "operator"), (ws, "viewer"), (other_ws, "admin"))
    day = days_before(NOW, 1)[0]
    events = [report(ws, meta, f"m-{unique}", day, spend=10_000, revenue=20_000),
              report(ws, google, f"g-{unique}", day, spend=10_000, revenue=20_000, platform="google")]
    async with running_service(SPEC, settings, clock=clock, api_keys=keys, rules_scan_interval_s=0.05) as (client, _):
        await publish(settings.kafka_bootstrap, *events)
        await wait_for_entities(client, op, google, "adset", 1)
        await wait_for_entities(client, op, meta, "adset", 1)

        # validation names the field
        meta_only = rule_body(google, conditions=[
            {"metric": "link_ctr", "operator": "lt", "value": 0.5, "time_range": "last_7d"}])
        r = await client.post("/api/v1/rules", json=meta_only, headers=auth(op))
        assert r.status_code == 422 and "link_ctr" in r.json()["message"] and "Meta-only" in r.json()["message"]
        assert r.json()["field"] == "conditions"
        r = await client.post("/api/v1/rules", json=rule_body(meta, actions=[{"type": "increase_budget_pct",
                                                                              "pct": 5000}]), headers=auth(op))
        assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("actions")
        assert "pct" in r.json()["message"]
        r = await client.post("/api/v1/rules", json=rule_body(f"nope-{unique}"), headers=auth(op))
        assert r.status_code == 422 and r.json()["field"] == "scope.ad_account_ids"
        r = await client.post("/api/v1/rules/from-template", headers=auth(op), json={
            "template": "scale_winners", "name": "x", "scope": {"ad_account_ids": [meta], "entity_level": "adset"}})
        assert r.status_code == 422 and "target_roas" in r.json()["message"]
        r = await client.post("/api/v1/rules/from-template", headers=auth(op), json={
            "template": "scale_everything", "name": "x", "scope": {"ad_account_ids": [meta], "entity_level": "adset"}})
        assert r.status_code == 422 and r.json()["field"] == "template"

        # roles: a viewer reads and previews but cannot write
        assert (await client.post("/api/v1/rules", json=rule_body(meta), headers=auth(viewer))).status_code == 403
        r = await client.post("/api/v1/rules/preview", json={"definition": rule_body(meta)}, headers=auth(viewer))
        assert r.status_code == 200 and r.json()["entities_evaluated"] == 1

        # templates
        r = await client.get("/api/v1/rules/templates", headers=auth(viewer))
        assert {t["name"] for t in r.json()["templates"]} == {"kill_losers", "scale_winners", "frequency_cap",
                                                               "daily_spend_protection"}
        ids = []
        for template in ("frequency_cap", "kill_losers"):
            r = await client.post("/api/v1/rules/from-template", headers=auth(op), json={
                "template": template, "name": template, "targets": {"target_cpa": 1500},
                "scope": {"ad_account_ids": [meta, google], "entity_level": "adset"}})
            assert r.status_code == 201, r.text
            assert r.json()["template"] == template and r.json()["status"] == "paused"
            ids.append(r.json()["id"])
        freq = r.json()
        assert freq["conditions"]["conditions"][0]["metric"] == "cpa"

        # update (PATCH merges protections) and the other workspace sees nothing
        r = await client.patch(f"/api/v1/rules/{ids[0]}", json={"protections": {"cooldown_minutes": 90}},
                               headers=auth(op))
        assert r.status_code == 200 and r.json()["protections"]["cooldown_minutes"] == 90 and r.json()["version"] == 2
        r = await client.patch(f"/api/v1/rules/{ids[0]}", json={"schedule": {"interval_minutes": 1}},
                               headers=auth(op))
        assert r.status_code == 422 and r.json()["field"] == "schedule.interval_minutes"
        for method, path, body in (("GET", f"/api/v1/rules/{ids[0]}", None),
                                   ("PATCH", f"/api/v1/rules/{ids[0]}", {"name": "mine"}),
                                   ("POST", f"/api/v1/rules/{ids[0]}/activate", None),
                                   ("GET", f"/api/v1/rules/{ids[0]}/executions", None),
                                   ("DELETE", f"/api/v1/rules/{ids[0]}", None),
                                   ("POST", "/api/v1/rules/preview", {"rule_id": ids[0]}),
                                   ("POST", "/api/v1/rules/bulk", {"rule_ids": ids, "op": "pause"})):
            r = await client.request(method, path, json=body, headers=auth(stranger))
            assert r.status_code == 404, (method, path, r.text)
        r = await client.get("/api/v1/rules", headers=auth(stranger))
        assert r.json()["rules"] == []

        # bulk edit
        r = await client.post("/api/v1/rules/bulk", json={"rule_ids": ids, "op": "activate"}, headers=auth(op))
        assert r.status_code == 200 and sorted(r.json()["changed"]) == sorted(ids)
        r = await client.post("/api/v1/rules/bulk", json={"rule_ids": ids, "op": "set_cooldown"}, headers=auth(op))
        assert r.status_code == 422 and r.json()["field"] == "cooldown_minutes"
        r = await client.post("/api/v1/rules/bulk", json={"rule_ids": ids, "op": "set_cooldown",
                                                           "cooldown_minutes": 30}, headers=auth(op))
        assert r.status_code == 200
        r = await client.post("/api/v1/rules/bulk", json={"rule_ids": ids, "op": "pause"}, headers=auth(op))
        assert r.status_code == 200 and len(r.json()["changed"]) == 2
        r = await client.get("/api/v1/rules", params={"status": "paused"}, headers=auth(viewer))
        rules = {x["id"]: x for x in r.json()["rules"]}
        assert set(rules) == set(ids) and all(x["protections"]["cooldown_minutes"] == 30 for x in rules.values())

        # delete, then the audit log tells the whole story
        assert (await client.delete(f"/api/v1/rules/{ids[1]}", headers=auth(op))).status_code == 204
        assert (await client.get(f"/api/v1/rules/{ids[1]}", headers=auth(op))).status_code == 404
        r = await client.get("/api/v1/audit-log", headers=auth(viewer))
        log = r.json()["entries"]
        assert [(e["action"], e.get("detail", {}).get("op")) for e in log if e["rule_id"] == ids[0]] == [
            ("bulk", "pause"), ("bulk", "set_cooldown"), ("bulk", "activate"), ("update", None), ("create", None)]
        assert next(e["action"] for e in log if e["rule_id"] == ids[1]) == "delete"
        assert log[0]["before"]["id"] == ids[1] and log[0]["after"] is None
        assert all(e["actor"] != "system" for e in log)
        assert (await client.get("/api/v1/audit-log", headers=auth(stranger))).json()["entries"] == []
        assert clock.now() - NOW < timedelta(minutes=1)
