"""The `make run` demo on the real Meta adapter path (``ALLOT_DEMO_PLATFORM=meta make run``).

Meta is played by the Graph fake (``python -m allot.fakes.meta --demo``, started by ``allot.runtime.stack``) with
one EUR ad account in Berlin whose ad sets deliver every hour from their current budgets. The demo does what a
new user does with a real account: connects it through the connections API (a read-only token for ingest, a
write token for the executor), waits until ingest has read it, sets guardrail limits, creates a pool of four ad
sets and a rule on the fifth, then prints what the executor writes and, once a simulated day, the budgets as
Graph reports them. Everything goes through the services' public HTTP APIs and Kafka, as a dashboard would.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Any

import httpx

from allot.fakes.meta.world import DEMO_ACCOUNT, DEMO_ADSETS, DEMO_ZONE
from allot.sandbox.demo import WORKSPACE, _retry, _sim_now, watch_until_stopped

POOL_ADSETS = list(DEMO_ADSETS)[:4]
RULE_ADSET = list(DEMO_ADSETS)[4]


async def setup(stack: Any, http: httpx.AsyncClient) -> dict[str, str]:
    """Connect the account, wait for ingest, then limits, a pool and a rule; returns ids worth printing."""
    ids: dict[str, str] = {}
    r = await _retry(lambda: http.post(f"{stack.url('connections')}/api/v1/connections", json={
        "platform": "meta", "ad_account_ids": [f"act_{DEMO_ACCOUNT}"],
        "read_token": stack.env["ALLOT_FAKE_META_READ_TOKEN"],
        "write_token": stack.env["ALLOT_FAKE_META_WRITE_TOKEN"]}), "connect the Meta account")
    ids["connection"] = r.json()["connection_id"]
    print(f"  connection {ids['connection']}: act_{DEMO_ACCOUNT}, read token → ingest, write token → executor "
          "(sealed; never shown again)")

    async def account_read() -> httpx.Response:
        r = await http.get(f"{stack.url('ingest')}/api/v1/ingest/accounts")
        rows = [a for a in r.json().get("accounts", []) if a["ad_account_id"] == DEMO_ACCOUNT] if r.is_success else []
        if rows and rows[0]["last_read_at"]:
            return r
        return httpx.Response(425, text=str(rows))

    r = await _retry(account_read, "see the account read by ingest")
    (row,) = [a for a in r.json()["accounts"] if a["ad_account_id"] == DEMO_ACCOUNT]
    print(f"  ingest: {row['state']}, {row['currency']}, day in {row['timezone_name']}, read {row['read_since']} "
          f"→ {row['read_until']}")
    await http.put(f"{stack.url('guardrails')}/api/v1/guardrails/limits", json={
        "daily_cap_eur_cents": 500_000, "monthly_cap_eur_cents": 10_000_000})
    print("  guardrails: daily cap 5,000 EUR, monthly 100,000 EUR, 20 % max change, kill switch off")
    r = await _retry(lambda: http.post(f"{stack.url('pools')}/api/v1/budget-pools", json={
        "name": "Meta prospecting pool", "optimizationMetric": "roas", "dailyBudgetCents": 20_000,
        "currency": "EUR", "allocationFrequencyHours": 4, "minBudgetCents": 1_000, "maxBudgetCents": 12_000,
        "minBudgetChange": 200, "autonomy": "live",
        "members": [{"entityType": "adset", "entityId": a, "adAccountId": DEMO_ACCOUNT, "platform": "meta",
                     "entityName": DEMO_ADSETS[a][0]} for a in POOL_ADSETS]}), "create the pool")
    ids["pool"] = r.json()["id"]
    print(f"  pool {ids['pool']}: 4 Meta ad sets share 200 EUR/day, reallocated every 4 h toward marginal ROAS")
    r = await _retry(lambda: http.post(f"{stack.url('rules')}/api/v1/rules/from-template", json={
        "template": "kill_losers", "name": "Kill losers (Meta)", "targets": {"target_cpa": 2_500},
        "scope": {"ad_account_ids": [DEMO_ACCOUNT], "entity_level": "adset",
                  "entity_filter": {"name_contains": "(rules)"}}}), "create the rule")
    ids["rule"] = r.json()["id"]
    await http.post(f"{stack.url('rules')}/api/v1/rules/{ids['rule']}/activate")
    print(f"  rule {ids['rule']}: kill_losers (CPA > 37.50 EUR over 7 days) on '{DEMO_ADSETS[RULE_ADSET][0]}'")
    return ids


def _proof(token: str, secret: str | None) -> dict[str, str]:
    params = {"access_token": token}
    if secret:
        params["appsecret_proof"] = hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()
    return params


async def report(stack: Any, graph: httpx.AsyncClient, stop: asyncio.Event) -> None:
    """Once a simulated day: the ad sets' budgets as Graph reports them (what Ads Manager would show)."""
    secret = stack.service_env.get("graph-fake", {}).get("ALLOT_META_APP_SECRET")
    params = _proof(stack.env["ALLOT_FAKE_META_READ_TOKEN"], secret)
    version = stack.env.get("ALLOT_META_API_VERSION", "v26.0")
    last_day = None
    while not stop.is_set():
        now = _sim_now(stack.env)
        if now.date() != last_day:
            last_day = now.date()
            cells = []
            for adset_id, (name, _, _) in DEMO_ADSETS.items():
                r = await graph.get(f"/{version}/{adset_id}", params={**params, "fields": "daily_budget,status"})
                body = r.json() if r.is_success else {}
                cells.append(f"{name.split(' (')[0]}={int(body.get('daily_budget', 0)) / 100:.0f}"
                             f"{'' if body.get('status', 'ACTIVE') == 'ACTIVE' else ' (paused)'}")
            print(f"== simulated {now:%a %Y-%m-%d %H:%M} UTC · Graph budgets (EUR/day): {'  '.join(cells)}", flush=True)
        await asyncio.sleep(1)


async def run_meta_demo(stack: Any) -> None:
    """Set the demo up on the Graph fake and print what happens until interrupted (or ALLOT_DEMO_SECONDS)."""
    headers = {"Authorization": f"Bearer {stack.admin_key}"}
    print(f"Demo: workspace '{WORKSPACE}' with a Meta ad account (Graph fake at {stack.url('graph-fake')}, "
          f"account day in {DEMO_ZONE})")
    async with httpx.AsyncClient(headers=headers, timeout=20) as http, \
            httpx.AsyncClient(base_url=stack.url("graph-fake"), timeout=20) as graph:
        await setup(stack, http)
        print("\nWatching (simulated time runs at "
              f"{float(stack.env.get('ALLOT_CLOCK_SPEED', '1')):.0f}x; ingest reads the account every simulated "
              "hour, the executor writes through the Graph fake):\n")
        await watch_until_stopped(stack, lambda stop: report(stack, graph, stop))
