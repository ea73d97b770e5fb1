"""The `make run` demo: a workspace on the sandbox platform, a budget pool, rules and a flight plan, watched live.

It talks to the services only through their public HTTP APIs and reads Kafka like any dashboard would,
so what it prints is what the system really did. Time is the stack's simulated clock (one simulated
hour per real second by default), so several days of budget behaviour pass in a few minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer

WORKSPACE = "demo"
POOL_ACCOUNT = "act_demo_pool"
RULE_ACCOUNT = "act_demo_rules"
POOL_MEMBERS = [  # (ad set id, name, hidden delivery profile)
    ("as_strong", "Lookalike 1% (strong)", "strong"),
    ("as_regular_a", "Broad US (regular)", "regular"),
    ("as_regular_b", "Interests (regular)", "regular"),
    ("as_weak", "Cold video (weak)", "weak"),
    ("as_fading", "Summer promo (fading)", "fading"),
    ("as_newcomer", "New creative (newcomer)", "newcomer"),
]
RULE_ADSETS = [
    ("as_rule_winner", "Retargeting 7d (strong)", "strong"), ("as_rule_loser", "Retargeting 30d (weak)", "weak"),
]
START_BUDGET = 5_000
#: A second flight on its own account (no pool or rule owns it), planned so that it goes off pace at once:
#: CTV planned at 100 EUR/day on an ad set that spends at most 50, DISPLAY at 20 EUR/day on one that spends up
#: to 50. Its proposals wait for a person; the demo approves the first one as a person would.
FLIGHT_ACCOUNT = "act_demo_flight"
FLIGHT_CHANNELS = [  # (channel, ad set id, name, hidden delivery profile, planned cents/day)
    ("CTV", "as_flight_ctv", "CTV reach (regular)", "regular", 10_000),
    ("DISPLAY", "as_flight_display", "Display retargeting (strong)", "strong", 2_000),
]
#: The local stand-in for Slack the notifier posts to (kept open for the whole demo).
_RECEIVERS: list[asyncio.AbstractServer] = []


def _sim_now(env: dict[str, str]) -> datetime:
    import time

    anchor_real = float(env.get("ALLOT_CLOCK_ANCHOR_REAL", time.time()))
    anchor_sim = datetime.fromisoformat(env.get("ALLOT_CLOCK_ANCHOR_SIM", datetime.now(UTC).isoformat()))
    speed = float(env.get("ALLOT_CLOCK_SPEED", "1"))
    return anchor_sim + timedelta(seconds=(time.time() - anchor_real) * speed)


async def _retry(call: Any, what: str, attempts: int = 120) -> httpx.Response:
    last: httpx.Response | None = None
    for _ in range(attempts):
        last = await call()
        if last.status_code < 300:
            return last
        await asyncio.sleep(0.5)
    assert last is not None
    raise RuntimeError(f"demo could not {what}: {last.status_code} {last.text[:300]}")


async def setup(stack: Any, http: httpx.AsyncClient, sandbox: httpx.AsyncClient) -> dict[str, str]:
    """Create the demo's entities, limits, pool, rules and flight plan; returns ids worth printing."""
    await sandbox.put(f"/sandbox/accounts/{POOL_ACCOUNT}/workspace", json={"workspace_id": WORKSPACE})
    await sandbox.put(f"/sandbox/accounts/{RULE_ACCOUNT}/workspace", json={"workspace_id": WORKSPACE})
    await sandbox.post("/sandbox/entities", json={"id": "c_demo", "ad_account_id": POOL_ACCOUNT,
                                                  "entity_type": "campaign", "name": "Demo campaign",
                                                  "currency": "EUR"})
    for eid, name, profile in POOL_MEMBERS:
        await sandbox.post("/sandbox/entities", json={"id": eid, "ad_account_id": POOL_ACCOUNT, "entity_type": "adset",
                                                      "name": name, "currency": "EUR", "parent_id": "c_demo",
                                                      "daily_budget_cents": START_BUDGET, "profile": profile})
    for eid, name, profile in RULE_ADSETS:
        await sandbox.post("/sandbox/entities", json={"id": eid, "ad_account_id": RULE_ACCOUNT, "entity_type": "adset",
                                                      "name": name, "currency": "EUR",
                                                      "daily_budget_cents": START_BUDGET, "profile": profile})
    ids: dict[str, str] = {}
    urls = stack.ports
    if "guardrails" in urls:
        await http.put(f"{stack.url('guardrails')}/api/v1/guardrails/limits", json={
            "daily_cap_eur_cents": 500_000, "monthly_cap_eur_cents": 10_000_000})
        print("  guardrails: daily cap 5,000 EUR, monthly 100,000 EUR, 20 % max change, kill switch off")
    if "pools" in urls:
        r = await _retry(lambda: http.post(f"{stack.url('pools')}/api/v1/budget-pools", json={
            "name": "Prospecting pool", "optimizationMetric": "roas",
            "dailyBudgetCents": START_BUDGET * len(POOL_MEMBERS),
            "currency": "EUR", "allocationFrequencyHours": 4, "minBudgetCents": 1_000, "maxBudgetCents": 15_000,
            "minBudgetChange": 200, "autonomy": "live",
            "members": [{"entityType": "adset", "entityId": eid, "adAccountId": POOL_ACCOUNT, "entityName": name}
                        for eid, name, _ in POOL_MEMBERS]}), "create the pool")
        ids["pool"] = r.json()["id"]
        print(f"  pool {ids['pool']}: 6 ad sets share 300 EUR/day, reallocated every 4 h toward marginal ROAS")
    if "rules" in urls:
        # scale_winners runs in trigger mode (on each metrics report, like Meta's trigger-based rules);
        # kill_losers on the 15-minute schedule.
        for template, name, mode in (("scale_winners", "Scale winners", "trigger"),
                                     ("kill_losers", "Kill losers", "schedule")):
            r = await _retry(lambda t=template, n=name, m=mode: http.post(
                f"{stack.url('rules')}/api/v1/rules/from-template", json={
                    "template": t, "name": n, "scope": {"ad_account_ids": [RULE_ACCOUNT], "entity_level": "adset"},
                    "targets": {"target_roas": 1.5, "target_cpa": 5_000}, "schedule": {"mode": m}}),
                f"create the {template} rule")
            rule_id = r.json()["id"]
            await http.post(f"{stack.url('rules')}/api/v1/rules/{rule_id}/activate")
            ids[f"rule_{template}"] = rule_id
        print(f"  rules: scale_winners on {RULE_ACCOUNT} in trigger mode (as each metrics report arrives), "
              "kill_losers every 15 simulated minutes")
    if "notify" in urls:
        await _notifications(stack, http, ids, with_rule="rules" in urls)
    if "pacing" in urls:
        now = _sim_now(stack.env)
        start = now.replace(minute=0, second=0, microsecond=0)
        r = await _retry(lambda: http.post(f"{stack.url('pacing')}/api/v1/pacing/plans", json={
            "campaign_id": "c_demo", "name": "Demo flight", "currency": "EUR",
            "total_budget_cents": 14 * (START_BUDGET * (len(POOL_MEMBERS) + len(RULE_ADSETS))),
            "flight_start": start.isoformat(), "flight_end": (start + timedelta(days=14)).isoformat(),
            "channels": [
                {"name": "PROSPECTING", "allocated_budget_cents": 14 * START_BUDGET * len(POOL_MEMBERS),
                 "entities": [{"platform": "sandbox", "ad_account_id": POOL_ACCOUNT, "entity_type": "adset",
                               "entity_id": eid} for eid, _, _ in POOL_MEMBERS]},
                {"name": "RETARGETING", "allocated_budget_cents": 14 * START_BUDGET * len(RULE_ADSETS),
                 "entities": [{"platform": "sandbox", "ad_account_id": RULE_ACCOUNT, "entity_type": "adset",
                               "entity_id": eid} for eid, _, _ in RULE_ADSETS]},
            ],
            "snapshot_interval_s": 6 * 3600}), "create the flight plan")
        ids["plan"] = r.json()["plan_id"]
        print(f"  flight plan {ids['plan']}: 14 days, snapshots every 6 simulated hours")
        await _approval_flight(stack, http, sandbox, ids, start)
    return ids


async def _approval_flight(stack: Any, http: httpx.AsyncClient, sandbox: httpx.AsyncClient, ids: dict[str, str],
                           start: datetime) -> None:
    """The second flight (FLIGHT_CHANNELS), whose reallocation proposals wait for a person's approval."""
    await sandbox.put(f"/sandbox/accounts/{FLIGHT_ACCOUNT}/workspace", json={"workspace_id": WORKSPACE})
    for _, eid, name, profile, _ in FLIGHT_CHANNELS:
        await sandbox.post("/sandbox/entities", json={"id": eid, "ad_account_id": FLIGHT_ACCOUNT,
                                                      "entity_type": "adset", "name": name, "currency": "EUR",
                                                      "daily_budget_cents": START_BUDGET, "profile": profile})

    def ent(eid: str) -> dict[str, str]:
        return {"platform": "sandbox", "ad_account_id": FLIGHT_ACCOUNT, "entity_type": "adset", "entity_id": eid}

    r = await _retry(lambda: http.post(f"{stack.url('pacing')}/api/v1/pacing/plans", json={
        "campaign_id": "c_demo_flight", "name": "Demo flight with approvals", "currency": "EUR",
        "total_budget_cents": 14 * sum(daily for *_, daily in FLIGHT_CHANNELS),
        "flight_start": start.isoformat(), "flight_end": (start + timedelta(days=14)).isoformat(),
        "channels": [{"name": channel, "allocated_budget_cents": 14 * daily, "entities": [ent(eid)],
                      "budget_entity": ent(eid)} for channel, eid, _, _, daily in FLIGHT_CHANNELS],
        "approval_config": {"PACING_ADJUSTMENT": True},
        "thresholds": {"min_reallocation_amount_cents": 1_000},
        "snapshot_interval_s": 6 * 3600}), "create the approval flight plan")
    ids["approval_plan"] = r.json()["plan_id"]
    print(f"  flight plan {ids['approval_plan']} on {FLIGHT_ACCOUNT}: CTV planned at 100 EUR/day, DISPLAY at "
          "20 EUR/day, both ad sets at 50; its proposals wait for approval, which the demo gives as a person would")


async def approve_first_proposal(stack: Any, http: httpx.AsyncClient, plan_id: str, stop: asyncio.Event, *,
                                 poll_s: float = 1) -> None:
    """Approve the approval flight's first pending proposal through the pacing API, as a person would, and print
    it; the budget changes it requests then show as action.executed lines (source pacing)."""
    base = f"{stack.url('pacing')}/api/v1/pacing/plans/{plan_id}/proposals"
    while not stop.is_set():
        await asyncio.sleep(poll_s)
        r = await http.get(base, params={"status": "pending_approval"})
        pending = r.json().get("proposals", []) if r.status_code == 200 else []
        if not pending:
            continue
        proposal = pending[0]
        r = await http.post(f"{base}/{proposal['proposal_id']}/approve")
        if r.status_code == 409:  # superseded or closed meanwhile: re-read what is pending now and approve that
            continue
        if r.status_code != 200:
            print(f"  pacing    could not approve proposal {proposal['proposal_id']}: {r.status_code} {r.text[:200]}",
                  flush=True)
            return
        got = r.json()
        moves = ", ".join(f"{a['entity_id']} {a['from_cents'] / 100:.2f} → {a['to_cents'] / 100:.2f}"
                          for a in got.get("actions", []))
        print(f"  pacing    proposal approved: move {got['amount_cents'] / 100:.2f} EUR of the flight's plan "
              f"{got['source_channel']} → {got['target_channel']} (daily budgets, EUR: {moves or 'none'})",
              flush=True)
        return


async def _notification_receiver() -> int:
    """A stand-in for Slack on loopback: prints the text of every message the notifier sends; returns its port."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            body = orjson.loads(await reader.readexactly(length)) if length else {}
            print(f"  [notify] {str(body.get('text', ''))[:300]}", flush=True)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (asyncio.IncompleteReadError, ValueError, ConnectionError):
            return  # the sender went away or sent no JSON: nothing to print or answer
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    _RECEIVERS.append(server)
    return int(server.sockets[0].getsockname()[1])


async def _notifications(stack: Any, http: httpx.AsyncClient, ids: dict[str, str], *, with_rule: bool) -> None:
    """A Slack-style channel to the local receiver, subscribed to every warning and critical notification, and a
    notify_only rule (daily spend protection) so the rules' notifications show too."""
    port = await _notification_receiver()
    base = f"{stack.url('notify')}/api/v1/notifications"
    r = await _retry(lambda: http.post(f"{base}/channels", json={
        "kind": "slack", "name": "demo receiver", "url": f"http://127.0.0.1:{port}/slack"}),
        "create the notification channel")
    channel_id = r.json()["channel_id"]
    await _retry(lambda: http.post(f"{base}/subscriptions", json={"channel_id": channel_id,
                                                                  "min_severity": "warning"}), "subscribe it")
    ids["notification_channel"] = channel_id
    if with_rule:
        r = await _retry(lambda: http.post(f"{stack.url('rules')}/api/v1/rules/from-template", json={
            "template": "daily_spend_protection", "name": "Daily spend protection",
            "scope": {"ad_account_ids": [RULE_ACCOUNT], "entity_level": "adset"}}), "create the notify_only rule")
        await http.post(f"{stack.url('rules')}/api/v1/rules/{r.json()['id']}/activate")
        ids["rule_daily_spend_protection"] = r.json()["id"]
    print("  notifications: a local receiver on 127.0.0.1 stands in for Slack; what it receives prints as [notify] "
          "(warnings and critical: rule notify_only fires, guardrail blocks, conflicts, critical pacing)")


def _line(topic: str, body: dict[str, Any]) -> str | None:
    p = body.get("payload", {})
    if topic == "action.executed":
        change = (f"{p.get('before_cents')} → {p.get('after_cents')} cents" if p.get("action_type") == "set_budget"
                  else p.get("action_type"))
        return (f"executed  {p.get('source')}:{str(p.get('source_id'))[:8]} {p.get('entity_id')}: {change} "
                f"[{p.get('outcome')}]")
    if topic == "guardrail.blocked":
        tag = "observed" if p.get("observe_only") else "blocked "
        return f"{tag}  {p.get('source')}:{str(p.get('source_id'))[:8]} by {p.get('check')}: {p.get('reason')}"
    if topic == "pacing.deviation_detected":
        return f"pacing    {p.get('message')} ({p.get('state_before')} → {p.get('state_after')})"
    if topic == "pacing.reallocation_recommended":
        return (f"pacing    proposal: move {p.get('amount_cents')} cents "
                f"{p.get('source_channel')} → {p.get('target_channel')}")
    return None


async def watch(stack: Any, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer("action.executed", "guardrail.blocked", "pacing.deviation_detected",
                                "pacing.reallocation_recommended", bootstrap_servers=stack.bootstrap,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for rec in records:
                    if rec.value is None:  # a tombstone, not an event
                        continue
                    body = orjson.loads(rec.value)
                    if body.get("workspace_id") != WORKSPACE:
                        continue
                    line = _line(rec.topic, body)
                    if line:
                        print(f"  [{body.get('occurred_at', '')[:16]}] {line}", flush=True)
    finally:
        await consumer.stop()


async def report(stack: Any, sandbox: httpx.AsyncClient, stop: asyncio.Event) -> None:
    last_day = None
    while not stop.is_set():
        now = _sim_now(stack.env)
        if now.date() != last_day:
            last_day = now.date()
            r = await sandbox.get("/v1/entities", params={"ad_account_id": POOL_ACCOUNT})
            body = r.json()
            entities = body.get("entities", body) if isinstance(body, dict) else body
            budgets = {e["id"]: e.get("daily_budget_cents") for e in entities if e.get("entity_type") == "adset"}
            row = "  ".join(f"{eid.removeprefix('as_')}={budgets.get(eid, 0) / 100:.0f}" for eid, _, _ in POOL_MEMBERS)
            print(f"== simulated {now:%a %Y-%m-%d %H:%M} · pool budgets (EUR/day): {row}", flush=True)
        await asyncio.sleep(1)


async def watch_until_stopped(stack: Any, reporter: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    """Print the watched topics and the demo's own daily report until interrupted (or ALLOT_DEMO_SECONDS)."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(watch(stack, stop)), asyncio.create_task(reporter(stop))]
    limit = float(os.environ.get("ALLOT_DEMO_SECONDS", "0") or 0)
    try:
        if limit:
            await asyncio.sleep(limit)
        else:
            await asyncio.Event().wait()
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


async def run_demo(stack: Any) -> None:
    """Set the demo up and print what happens until interrupted."""
    token = stack.env.get("ALLOT_SANDBOX_TOKEN", "sandbox-token")
    headers = {"Authorization": f"Bearer {stack.admin_key}"}
    print("Demo: setting up workspace 'demo' on the sandbox platform")
    async with httpx.AsyncClient(headers=headers, timeout=20) as http, \
            httpx.AsyncClient(base_url=stack.url("sandbox"), headers={"Authorization": f"Bearer {token}"},
                              timeout=20) as sandbox:
        ids = await setup(stack, http, sandbox)
        print("\nWatching (simulated time runs at "
              f"{float(stack.env.get('ALLOT_CLOCK_SPEED', '1')):.0f}x; budgets move once evidence holds "
              "over consecutive intervals):\n")

        async def reporter(stop: asyncio.Event) -> None:
            jobs = [report(stack, sandbox, stop)]
            if "approval_plan" in ids:
                jobs.append(approve_first_proposal(stack, http, ids["approval_plan"], stop))
            await asyncio.gather(*jobs)

        await watch_until_stopped(stack, reporter)
