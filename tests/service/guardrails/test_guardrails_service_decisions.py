"""allocation.requested → guardrail.approved / guardrail.blocked against the real broker and Postgres."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from allot.contracts.envelope import Envelope
from allot.contracts.payloads import GuardrailApproved
from allot.contracts.signing import ApprovalRejected, verify_approval
from allot.guardrails.service import SPEC
from tests.service.guardrails.guardrails_support import action, decision_of, envelope, events_of, request
from tests.support.kafka import publish, read_topic
from tests.support.service import api_keys, auth, running_service

LIMITS = "/api/v1/guardrails/limits"


async def test_within_limits_approved_and_signed_over_cap_blocked_retry_counted_once(
        settings: Any, unique: str, kafka_bootstrap: str) -> None:
    ws = f"ws-{unique}"
    (admin, viewer), keys_json = api_keys((ws, "admin"), (ws, "viewer"))
    secret = settings.approval_secret.get_secret_value().encode()
    async with running_service(SPEC, settings.model_copy(update={"api_keys": keys_json})) as (client, _ctx):
        r = await client.put(LIMITS, json={"daily_cap_eur_cents": 2_000, "fx_rates_to_eur": {"USD": "0.9"}},
                             headers=auth(admin))
        assert r.status_code == 200, r.text

        # Two change sets of one rule in ONE publish (same partition, same batch or in order): the first fits
        # (+1000 × 1.75 = 1750), the second sees the first's ledger write and exceeds the daily cap.
        first = request(action(f"a-{unique}", 10_000, 11_000), key="k-1")
        second = request(action(f"b-{unique}", 10_000, 11_000, currency="USD"), key="k-2")
        await publish(kafka_bootstrap, envelope(ws, first), envelope(ws, second))

        ok = await decision_of(client, viewer, first.request_id)
        assert ok["status"] == "approved" and ok["http_status"] == 200 and ok["exposure_eur_cents"] == 1_750
        blocked = await decision_of(client, viewer, second.request_id)
        assert blocked["status"] == "blocked" and blocked["check"] == "daily_cap" and blocked["http_status"] == 423
        # +1000 USD cents × 1.75 × 0.9 = 1575 EUR cents; 1750 + 1575 = 3325 > 2000 by 1325.
        assert blocked["details"] == {"counted_eur_cents": 1_750, "new_exposure_eur_cents": 1_575,
                                      "after_eur_cents": 3_325, "cap_eur_cents": 2_000, "over_by_eur_cents": 1_325}
        assert "3325" in blocked["reason"] and "2000" in blocked["reason"]

        # The approval on the bus is signed over the workspace and verifies; tampering breaks it.
        approved = await events_of(kafka_bootstrap, "guardrail.approved", ws, 1)
        assert len(approved) == 1
        env = Envelope[GuardrailApproved].model_validate(approved[0])
        assert env.payload.request_id == first.request_id and env.producer == "guardrails"
        assert env.causation_id is not None and str(env.event_id) == ok["event_id"]
        verify_approval(env.payload, ws, secret, now=datetime.now(UTC))
        with pytest.raises(ApprovalRejected):  # an approval never verifies for another workspace
            verify_approval(env.payload, f"other-{unique}", secret, now=datetime.now(UTC))
        blocks = await events_of(kafka_bootstrap, "guardrail.blocked", ws, 1)
        assert [b["payload"]["check"] for b in blocks] == ["daily_cap"]
        assert blocks[0]["payload"]["details"]["over_by_eur_cents"] == 1_325

        # A retried request (new event, new request id, same idempotency key): same decision, counted once.
        retry = first.model_copy(update={"request_id": uuid.uuid4()})
        await publish(kafka_bootstrap, envelope(ws, retry))
        again = await decision_of(client, viewer, retry.request_id)
        assert again["decision_id"] == ok["decision_id"] and again["status"] == "approved"
        assert again["request_id"] == str(first.request_id)
        approved = await events_of(kafka_bootstrap, "guardrail.approved", ws, 2)
        assert len(approved) == 2
        a1, a2 = (Envelope[GuardrailApproved].model_validate(a) for a in approved)
        assert a1.event_id != a2.event_id
        assert a2.payload.signature == a1.payload.signature and a2.payload.decision_id == a1.payload.decision_id

        r = await client.get("/api/v1/guardrails/ledger", headers=auth(viewer))
        ledger = r.json()
        assert ledger["exposure_eur_cents"] == 1_750 and ledger["month_exposure_eur_cents"] == 1_750
        assert ledger["approvals_counted"] == 1 and ledger["daily_remaining_eur_cents"] == 250
        assert ledger["decisions"] == {"approved": 1, "blocked": 1, "observed": 0}

        r = await client.get("/api/v1/guardrails/decisions", params={"source_id": "r-1"}, headers=auth(viewer))
        assert {d["check"] for d in r.json()["decisions"]} == {None, "daily_cap"}
        metrics = (await client.get("/metrics")).text
        assert 'allot_guardrail_decisions_total{check="daily_cap",status="blocked"}' in metrics
        assert 'allot_guardrail_decisions_total{check="none",status="approved"}' in metrics


async def test_kill_switch_observe_mode_and_pool_membership(settings: Any, unique: str, kafka_bootstrap: str) -> None:
    ws = f"ws-{unique}"
    (admin, operator, viewer), keys_json = api_keys((ws, "admin"), (ws, "operator"), (ws, "viewer"))
    async with running_service(SPEC, settings.model_copy(update={"api_keys": keys_json})) as (client, _ctx):
        # Kill switch flipped through the API blocks everything, pauses included.
        r = await client.post("/api/v1/guardrails/kill-switch", json={"enabled": True}, headers=auth(operator))
        assert r.status_code == 200 and r.json()["kill_switch"] is True
        killed = [request(action(f"k1-{unique}")),
                  request(action(f"k2-{unique}", None, None, kind="pause"), source="manual", source_id="u-1",
                          manual=True),
                  request(action(f"k3-{unique}"), source="pool", source_id=f"pool-{unique}")]
        await publish(kafka_bootstrap, *(envelope(ws, q) for q in killed))
        for q in killed:
            d = await decision_of(client, viewer, q.request_id)
            assert d["status"] == "blocked" and d["check"] == "kill_switch" and d["details"]["scope"] == "workspace"

        # Per ad account: only that account's change sets are blocked.
        await client.post("/api/v1/guardrails/kill-switch", json={"enabled": False}, headers=auth(operator))
        await client.post("/api/v1/guardrails/kill-switch", json={"enabled": True, "ad_account_id": "act-2"},
                          headers=auth(operator))
        on_killed = request(action(f"x-{unique}", account="act-2"))
        # A pool allocation approved → its entities become pool members.
        pool = request(action(f"m1-{unique}", 10_000, 11_000), action(f"m2-{unique}", 10_000, 9_000),
                       source="pool", source_id=f"pool-{unique}", pool_daily_budget_cents=20_000, currency="EUR")
        await publish(kafka_bootstrap, envelope(ws, on_killed), envelope(ws, pool))
        d = await decision_of(client, viewer, on_killed.request_id)
        assert d["check"] == "kill_switch" and d["details"]["ad_account_id"] == "act-2"
        d = await decision_of(client, viewer, pool.request_id)
        assert d["status"] == "approved", d
        assert d["exposure_eur_cents"] == 35_000  # the pool's daily budget × 1.75, counted once per day

        # A rule touching a pool member is dropped by arbitration: the pool owns the member's budget. A rule that
        # opted in still loses to the pool (higher priority) that just changed it.
        late = request(action(f"m1-{unique}", 11_000, 12_000), source="rule", source_id=f"rule-{unique}")
        opted = request(action(f"m1-{unique}", 11_000, 12_000), source="rule", source_id=f"rule3-{unique}",
                        change_pool_member_budgets=True)
        await publish(kafka_bootstrap, envelope(ws, late), envelope(ws, opted))
        d = await decision_of(client, viewer, late.request_id)
        assert d["status"] == "blocked" and d["check"] == "arbitration"
        assert d["details"]["pool_id"] == f"pool-{unique}" and d["details"]["owner"] == "pool"
        d = await decision_of(client, viewer, opted.request_id)
        assert d["status"] == "blocked" and d["check"] == "arbitration"
        assert d["details"]["pool_id"] == f"pool-{unique}" and d["details"]["winner_source"] == "pool"

        # Manual change sets are rate-limited (default 1 per 300 s per person): the second gets 429 + retry-after.
        m1 = request(action(f"u1-{unique}"), source="manual", source_id=f"user-{unique}", manual=True)
        m2 = request(action(f"u2-{unique}"), source="manual", source_id=f"user-{unique}", manual=True)
        # The same idempotency key reused by ANOTHER rule on the same day cannot be decided: DLQ, not a replay.
        reused = request(action(f"r-{unique}"), key=late.idempotency_key, source="rule", source_id=f"rule2-{unique}")
        await publish(kafka_bootstrap, envelope(ws, m1), envelope(ws, m2), envelope(ws, reused))
        assert (await decision_of(client, viewer, m1.request_id))["status"] == "approved"
        d = await decision_of(client, viewer, m2.request_id)
        assert d["check"] == "rate_limited" and d["http_status"] == 429 and 0 < d["retry_after_s"] <= 300
        dead = await read_topic(kafka_bootstrap, "allocation.requested.dlq", min_count=1, timeout=15.0,
                                predicate=lambda rec: str(reused.request_id).encode() in (rec.value or b""))
        assert dict(dead[0].headers)["x-dlq-reason"] == b"rejected_by_handler"
        assert b"already used today" in dict(dead[0].headers)["x-dlq-error"]
        r = await client.get(f"/api/v1/guardrails/decisions/{reused.request_id}", headers=auth(viewer))
        assert r.status_code == 404

        # Observe mode: decided and logged, never approved; nothing counted.
        r = await client.patch(LIMITS, json={"autonomy": {"rule": "observe"}}, headers=auth(admin))
        assert r.status_code == 200
        observed = request(action(f"o-{unique}", 10_000, 11_000), source="rule", source_id=f"rule-{unique}")
        await publish(kafka_bootstrap, envelope(ws, observed))
        d = await decision_of(client, viewer, observed.request_id)
        assert d["status"] == "blocked" and d["check"] == "observe_mode" and d["observe_only"] is True
        assert d["http_status"] == 202 and d["details"]["would_have"] == "approved"
        blocks = await events_of(kafka_bootstrap, "guardrail.blocked", ws, 7)
        obs = [b for b in blocks if b["payload"]["request_id"] == str(observed.request_id)]
        assert len(obs) == 1 and obs[0]["payload"]["observe_only"] is True
        approved = await events_of(kafka_bootstrap, "guardrail.approved", ws, 2)
        # (different source ids = different partitions: no order across them)
        assert sorted(a["payload"]["request_id"] for a in approved) == sorted([str(pool.request_id),
                                                                               str(m1.request_id)])

        ledger = (await client.get("/api/v1/guardrails/ledger", headers=auth(viewer))).json()
        assert ledger["exposure_eur_cents"] == 35_000 + 1_750
        assert ledger["pools"] == [{"pool_id": f"pool-{unique}", "exposure_eur_cents": 35_000}]
        assert ledger["decisions"] == {"approved": 2, "blocked": 7, "observed": 1}
