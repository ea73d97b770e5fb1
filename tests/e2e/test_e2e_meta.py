"""A Meta ad account end to end, every service a real process on the real broker and Postgres, Meta played by the
Graph fake (allot.fakes.meta) on a loopback socket:

connect (connections API) → ingest reads delivery with the read-only token and publishes metrics.ingested →
a rule and a pool act on it → guardrails approve → the executor writes each budget on the fake once, with the
workspace's own write token and appsecret_proof → the next ingest cycle reports the new budget. A person's edit in
"Ads Manager" (the fake's state) becomes the current budget in pools and rules; throttling slows ingest without
losing data; a read token that can write is refused by ingest.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson
import pytest

from allot.fakes.meta import MetaFakeState, create_meta_fake
from allot.sandbox.testing import serve_app
from tests.e2e.conftest import E2E, make_stack
from tests.support.kafka import eventually, read_topic

pytestmark = pytest.mark.e2e

ZONE = "America/New_York"
APP_SECRET = "e2e-app-secret"
READ, WRITE, ADMIN = "EAAB-e2e-read-token-0001", "EAAB-e2e-write-token-0002", "EAAB-e2e-admin-token-0003"


@dataclass
class MetaWorld:
    e2e: E2E
    graph: MetaFakeState
    ws: str


@pytest.fixture(scope="module")
def meta(kafka_bootstrap: str, database_url: str) -> Iterator[MetaWorld]:
    graph = MetaFakeState(app_secret=APP_SECRET)
    graph.access_tokens |= {READ, WRITE, ADMIN}
    graph.reads.grant(READ, "ads_read", "read_insights")
    graph.reads.grant(WRITE, "ads_read", "ads_management")
    graph.reads.grant(ADMIN, "ads_read", "read_insights", "ads_management")
    with serve_app(create_meta_fake(graph)) as graph_url:
        stack, workspaces, keys = make_stack(
            kafka_bootstrap, database_url, ["connections", "ingest", "guardrails", "executor", "pools", "rules"],
            n_workspaces=2,
            extra_env={"ALLOT_INGEST_GRAPH_URL": graph_url, "ALLOT_META_BASE_URL": graph_url,
                       "ALLOT_INGEST_META_APP_SECRET": APP_SECRET, "ALLOT_META_APP_SECRET": APP_SECRET,
                       "ALLOT_INGEST_SCAN_INTERVAL_S": "0.3", "ALLOT_INGEST_MAX_DELAY_S": "0.5",
                       "ALLOT_INGEST_THROTTLED_WAIT_S": "1",
                       "ALLOT_POOLS_MANUAL_RATE_LIMIT_S": "2", "ALLOT_MAX_ATTEMPTS": "1",
                       # tenancy as in production: only accounts this workspace connected may be named
                       "ALLOT_REQUIRE_CONNECTED_ACCOUNTS": "true"})
        try:
            yield MetaWorld(E2E(stack, workspaces, keys), graph, workspaces[0])
        finally:
            stack.stop()


def account_with_delivery(graph: MetaFakeState, now: datetime) -> tuple[str, dict[str, str]]:
    """An EUR account in New York: a winner (ROAS 4.5) and two pool members (ROAS 2.1 and 1.5), each with a
    5 000-cent or 10 000-cent daily budget, delivering every local hour of the last four days and of today."""
    acct = str(random.randint(10**11, 10**12 - 1))
    ids = {"winner": f"{acct}01", "p1": f"{acct}02", "p2": f"{acct}03"}
    graph.add_account(acct, "EUR", name="E2E shop")
    graph.reads.set_account(acct, timezone_name=ZONE)
    graph.add_object(f"{acct}00", "campaign", acct, name="Always on")
    shape = {"winner": (10_000, 400, 1_800), "p1": (5_000, 200, 420), "p2": (5_000, 200, 300)}
    local_now = now.astimezone(ZoneInfo(ZONE))
    for key, (budget, spend, revenue) in shape.items():
        graph.add_object(ids[key], "adset", acct, name=f"Ad set {key}", daily_budget=budget, parent_id=f"{acct}00")
        for back in range(4, -1, -1):
            day = local_now.date() - timedelta(days=back)
            for hour in range(24 if back else local_now.hour):
                graph.reads.deliver(ids[key], day, hour, spend=spend, impressions=800, clicks=12,
                                    actions={"purchase": 1}, action_values={"purchase": revenue})
    return acct, ids


def budget(graph: MetaFakeState, object_id: str) -> int:
    value = graph.objects[object_id].daily_budget
    assert value is not None
    return value


def budget_writes(graph: MetaFakeState, object_id: str) -> list[tuple[str | None, str | None]]:
    return [(w.old, w.new) for w in graph.writes if w.object_id == object_id and w.field == "daily_budget"]


def metric_of(entity_id: str, daily_budget: int | None = None) -> Any:
    def match(record: Any) -> bool:
        p = orjson.loads(record.value)["payload"]
        return p["entity_id"] == entity_id and (daily_budget is None or p["daily_budget_cents"] == daily_budget)
    return match


async def projected_budget(m: MetaWorld, schema: str, entity_id: str) -> int | None:
    conn = await asyncpg.connect(m.e2e.stack.database_url)
    try:  # the test reads the service's own projection: the budget it will plan from
        return await conn.fetchval(f"SELECT daily_budget_cents FROM {schema}.entities "  # noqa: S608 - fixed names
                                   "WHERE workspace_id = $1 AND entity_id = $2", m.ws, entity_id)
    finally:
        await conn.close()


def sync(m: MetaWorld, acct: str) -> None:
    with m.e2e.api("ingest", m.ws) as api:
        r = api.post(f"/api/v1/ingest/accounts/{acct}/sync")
        assert r.status_code == 202, r.text


async def test_a_meta_account_end_to_end(meta: MetaWorld) -> None:
    m, graph, boot = meta, meta.graph, meta.e2e.stack.bootstrap
    acct, ids = account_with_delivery(graph, datetime.now(UTC))

    # Connect: tokens go in once and never come back.
    with m.e2e.api("connections", m.ws) as api:
        r = api.post("/api/v1/connections", json={"platform": "meta", "ad_account_ids": [f"act_{acct}"],
                                                  "read_token": READ, "write_token": WRITE})
        assert r.status_code == 201, r.text
        assert READ not in r.text and WRITE not in r.text

    # Ingest reads the account by itself (currency, time zone, hourly delivery) and publishes it.
    profile = await read_topic(boot, "account.profiled", min_count=1, timeout=60,
                               predicate=lambda r: orjson.loads(r.value)["payload"]["ad_account_id"] == acct)
    p = orjson.loads(profile[0].value)["payload"]
    assert (p["currency"], p["timezone_name"], p["state"]) == ("EUR", ZONE, "connected")
    delivered = await read_topic(boot, "metrics.ingested", min_count=96, timeout=60, predicate=metric_of(ids["p2"]))
    first = orjson.loads(delivered[0].value)["payload"]
    assert (first["platform"], first["currency"], first["spend_cents"], first["daily_budget_cents"]) == \
        ("meta", "EUR", 200, 5_000)

    # A rule raises the winner once: rules → guardrails → executor → the fake, with the workspace's token.
    with m.e2e.api("rules", m.ws) as api:
        async def created() -> Any:
            r = api.post("/api/v1/rules/from-template", json={
                "template": "scale_winners", "name": "scale", "targets": {"target_roas": 2.0},
                "scope": {"ad_account_ids": [acct], "entity_level": "adset"}})
            return r if r.status_code in (200, 201) else None

        rule_id = (await eventually(created, timeout=60, what="the account known to rules")).json()["id"]
        assert api.post(f"/api/v1/rules/{rule_id}/activate").status_code == 200

        async def fired() -> bool:
            api.post(f"/api/v1/rules/{rule_id}/evaluate-now")
            return budget(graph, ids["winner"]) == 12_000

        await eventually(fired, timeout=60, interval=1.0, what="the winner raised by 20 % on the Graph fake")
    assert budget_writes(graph, ids["winner"]) == [("10000", "12000")]
    assert budget(graph, ids["p1"]) == budget(graph, ids["p2"]) == 5_000, "the rule left ROAS < 2.4 alone"

    # The next ingest cycle reports the budget the executor wrote.
    sync(m, acct)
    await read_topic(boot, "metrics.ingested", min_count=1, timeout=30, predicate=metric_of(ids["winner"], 12_000))

    # A pool of the two others: 12 000 a day instead of 10 000 (each step at most +20 %), written once per change.
    with m.e2e.api("pools", m.ws) as api:
        r = api.post("/api/v1/budget-pools", json={
            "name": "meta pool", "optimizationMetric": "roas", "dailyBudgetCents": 12_000, "currency": "EUR",
            "allocationFrequencyHours": 24, "autonomy": "live", "minBudgetChange": 100,
            "members": [{"entityType": "adset", "entityId": ids[k], "adAccountId": acct, "platform": "meta"}
                        for k in ("p1", "p2")]})
        assert r.status_code == 201, r.text
        pool_id = r.json()["id"]

        async def allocated() -> Any:
            r = api.post(f"/api/v1/budget-pools/{pool_id}/allocate", json={"async": False})
            return r if r.status_code == 200 and r.json()["status"] == "executed" else None

        await eventually(allocated, timeout=60, interval=2.5, what="a pool allocation applied on the Graph fake")
    after = {k: budget(graph, ids[k]) for k in ("p1", "p2")}
    assert sum(after.values()) == 12_000 and after["p1"] >= after["p2"], after
    for k in ("p1", "p2"):
        assert len(budget_writes(graph, ids[k])) == (after[k] != 5_000), "each changed budget written once"

    # A person edits p1 in Ads Manager: the next report carries it and pools and rules plan from it.
    graph.objects[ids["p1"]].daily_budget = 7_000
    sync(m, acct)
    await read_topic(boot, "metrics.ingested", min_count=1, timeout=30, predicate=metric_of(ids["p1"], 7_000))

    async def edit_seen() -> bool:
        return (await projected_budget(m, "pools", ids["p1"]), await projected_budget(m, "rules", ids["p1"])) == \
            (7_000, 7_000)

    await eventually(edit_seen, timeout=30, what="the person's budget as current in pools and rules")
    assert len(budget_writes(graph, ids["p1"])) <= 1, "nothing wrote over the person's edit"

    # Throttling: the account is at 95 % of its limit and one insights call is refused (#17); ingest slows down,
    # waits and still publishes the late conversions of yesterday's 10:00.
    yesterday = datetime.now(UTC).astimezone(ZoneInfo(ZONE)).date() - timedelta(days=1)
    graph.reads.usage_pct[acct] = 95
    graph.add_fault("rate_limit", count=1, on="read", regain_access_minutes=0)
    graph.reads.add_conversions(ids["p2"], yesterday, 10, "purchase", 3, 900)
    sync(m, acct)
    ten = datetime(yesterday.year, yesterday.month, yesterday.day, 10, tzinfo=ZoneInfo(ZONE)).astimezone(UTC)

    def restated(record: Any) -> bool:
        p = orjson.loads(record.value)["payload"]
        return p["entity_id"] == ids["p2"] and p["conversions"] == 4 and \
            datetime.fromisoformat(p["interval_start"].replace("Z", "+00:00")) == ten

    await read_topic(boot, "metrics.ingested", min_count=1, timeout=60, predicate=restated)
    assert not graph.faults, "the throttled call happened"
    p2_events = [orjson.loads(r.value) for r in await read_topic(boot, "metrics.ingested", predicate=metric_of(
        ids["p2"]), timeout=3)]
    by_interval: dict[str, set[str]] = {}
    for e in p2_events:
        by_interval.setdefault(e["payload"]["interval_start"], set()).add(e["event_id"])
    assert len(by_interval) >= 96 and all(len(v) <= 2 for v in by_interval.values())


async def test_another_workspace_cannot_name_a_connected_account(meta: MetaWorld) -> None:
    m, graph = meta, meta.graph
    acct, ids = account_with_delivery(graph, datetime.now(UTC))
    with m.e2e.api("connections", m.ws) as api:
        assert api.post("/api/v1/connections", json={"platform": "meta", "ad_account_ids": [acct],
                                                      "read_token": READ, "write_token": WRITE}).status_code == 201
    await read_topic(m.e2e.stack.bootstrap, "account.profiled", min_count=1, timeout=60,
                     predicate=lambda r: orjson.loads(r.value)["payload"]["ad_account_id"] == acct)
    other = m.e2e.workspaces[1]
    with m.e2e.api("pools", other) as api:
        r = api.post("/api/v1/budget-pools", json={
            "name": "not mine", "dailyBudgetCents": 10_000, "currency": "EUR", "autonomy": "live",
            "members": [{"entityType": "adset", "entityId": ids["p1"], "adAccountId": acct, "platform": "meta"}]})
    assert r.status_code == 422 and "adAccountId" in r.text, r.text
    with m.e2e.api("rules", other) as api:
        r = api.post("/api/v1/rules/from-template", json={
            "template": "scale_winners", "name": "not mine", "targets": {"target_roas": 2.0},
            "scope": {"ad_account_ids": [acct], "entity_level": "adset"}})
    assert r.status_code == 422 and "ad_account_ids" in r.text, r.text
    assert budget_writes(graph, ids["p1"]) == []


async def test_a_read_token_that_can_write_is_refused_by_ingest(meta: MetaWorld) -> None:
    m, graph = meta, meta.graph
    acct = str(random.randint(10**11, 10**12 - 1))
    graph.add_account(acct, "USD", name="Careless")
    graph.reads.set_account(acct, timezone_name="Europe/Berlin")
    with m.e2e.api("connections", m.ws) as api:
        r = api.post("/api/v1/connections", json={"platform": "meta", "ad_account_ids": [acct],
                                                  "read_token": ADMIN, "write_token": WRITE})
        assert r.status_code == 201, r.text
    with m.e2e.api("ingest", m.ws) as api:
        async def refused() -> Any:
            rows = [a for a in api.get("/api/v1/ingest/accounts").json()["accounts"] if a["ad_account_id"] == acct]
            return rows[0] if rows and rows[0]["state"] == "error" else None

        status = await eventually(refused, timeout=60, what="ingest refusing the write-capable read token")
    assert "ads_management" in status["detail"]
    assert acct not in graph.reads.calls, "nothing of the account was read with it"
    assert await read_topic(m.e2e.stack.bootstrap, "metrics.ingested", timeout=3,
                            predicate=lambda r: orjson.loads(r.value)["payload"]["ad_account_id"] == acct) == []

