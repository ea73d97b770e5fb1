"""`allot`: the ops command line (typer + rich). Works against the embedded stack and a real cluster alike
(ALLOT_KAFKA_* env).

  allot topics [list|create]                 topics, partitions, end offsets, each service group's lag
  allot tail TOPIC [--workspace W] [--entity E] [--correlation C] [--from-beginning] [--no-follow] [--limit N]
  allot replay TOPIC --group SERVICE --from beginning|OFFSET|TIMESTAMP [--to OFFSET|TIMESTAMP|latest]
               [--dry-run] [--to-latest] [--any-group]   SERVICE: one that consumes TOPIC (checked)
  allot dlq list|show|redrive TOPIC [--offset N] [--reason R] [--all]
  allot trace ID                             metric -> decision -> approval -> executed action
  allot keys create --workspace W --role viewer|operator|admin
  allot keys generate --recipient ingest|executor [--key-id K]   a token-sealing keypair (see runtime/sealing.py)

Every command prints a table for people and JSON with --json (before or after the command), with stable keys.
Messages (waiting, progress, nothing found) go to stderr, so stdout stays parseable.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import orjson
import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from allot.contracts.registry import TOPICS, all_topic_names
from allot.runtime.auth import generate_key
from allot.runtime.kafka import client_kwargs, ensure_topics
from allot.runtime.settings import Settings

SERVICE_GROUPS = ["pools", "rules", "pacing", "guardrails", "executor", "connections", "ingest", "notify"]
CONSUMES = {  # which service groups read which topic (tests/integration/test_cli.py checks it against the specs)
    "metrics.ingested": ["pools", "rules", "pacing"],
    "pacing.reallocation_recommended": ["pools"],
    "allocation.requested": ["guardrails"],
    "guardrail.approved": ["executor", "rules"],
    "guardrail.blocked": ["pools", "rules", "pacing"],
    "action.executed": ["guardrails", "pools", "rules", "pacing"],
    "connection.changed": ["executor", "ingest"],
    "account.profiled": ["pools", "rules", "pacing", "guardrails", "executor"],
    "notification.requested": ["notify"],
    "pool.members_changed": ["guardrails"],
}

# Stable JSON keys of each command's rows (the table shows the same columns).
TOPIC_COLUMNS = ["topic", "partitions", "end_offset", "group", "committed", "lag"]
TAIL_COLUMNS = ["time", "topic", "partition", "offset", "key", "event_id", "workspace", "correlation_id",
                "causation_id", "entity", "summary", "body"]  # body: the whole envelope (JSON lines only)
REPLAY_COLUMNS = ["partition", "committed", "new_offset", "end", "to_reprocess"]
DLQ_LIST_COLUMNS = ["offset", "failed_at", "group", "reason", "source", "error"]
TRACE_COLUMNS = ["time", "topic", "event_id", "causation_id", "entity", "link", "summary"]

app = typer.Typer(
    name="allot", no_args_is_help=True, add_completion=False, rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,  # locals may hold SASL passwords
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Operate Allot's topics: lag, tail, replay, dead letters, traces, keys. "
         "Reads ALLOT_KAFKA_* like the services. Add --json anywhere for scripts.",
)
topics_app = typer.Typer(help="Topics of the registry: partitions, end offsets and each service group's lag.",
                         no_args_is_help=False, invoke_without_command=True)
dlq_app = typer.Typer(help="Dead-letter topics (TOPIC.dlq): list, show and send records back to their topic.",
                      no_args_is_help=True)
keys_app = typer.Typer(help="API keys and token-sealing keypairs.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(dlq_app, name="dlq")
app.add_typer(keys_app, name="keys")

Json = Annotated[bool, typer.Option("--json", help="JSON on stdout (stable keys) instead of a table.")]


def _console() -> Console:
    # Not a terminal (pipes, tests): wide enough that tables are never cut.
    return Console(width=None if sys.stdout.isatty() else 240, highlight=False)


err = Console(stderr=True, highlight=False, soft_wrap=True)  # messages are never cut into lines


def _as_json(ctx: typer.Context, flag: bool) -> bool:
    """--json given to this command or to any command above it (`allot --json dlq list T`, `allot dlq list T --json`,
    `allot topics --json create`)."""
    node: Any = ctx
    while node is not None:
        if node.params.get("json_"):
            return True
        node = node.parent
    return flag


@app.callback()
def _root(json_: Json = False) -> None:
    """--json here applies to the command that follows (read by _as_json)."""


@dlq_app.callback()
def _dlq(json_: Json = False) -> None:
    """Dead-letter topics (TOPIC.dlq): list, show and send records back to their topic."""


@keys_app.callback()
def _keys(json_: Json = False) -> None:
    """API keys and token-sealing keypairs."""


# ------------------------------------------------------------------ helpers


def _emit(as_json: bool, rows: list[dict[str, Any]], columns: Sequence[str], *, title: str = "",
          empty: str = "") -> None:
    """JSON (a list of objects with exactly ``columns`` as keys) or a rich table; ``empty`` said when no rows."""
    if as_json:
        sys.stdout.write(orjson.dumps([{c: r.get(c) for c in columns} for r in rows], default=str).decode() + "\n")
        if not rows and empty:
            err.print(empty, markup=False)
        return
    if not rows and empty:
        _console().print(empty, markup=False)
        return
    table = Table(title=title or None, show_lines=False)
    for c in columns:
        table.add_column(c.upper(), overflow="fold",
                         justify="right" if c in ("partitions", "end_offset", "lag", "offset", "partition",
                                                  "committed", "new_offset", "end", "to_reprocess") else "left")
    for r in rows:
        table.add_row(*(Text("-" if r.get(c) is None else str(r.get(c))) for c in columns))  # literal, no markup
    _console().print(table)


def _say(as_json: bool, message: str) -> None:
    """A message for people on stderr (stdout stays parseable)."""
    err.print(message, markup=False)


def _run(coro: Coroutine[Any, Any, int]) -> None:
    try:
        code = asyncio.run(coro)
    except KeyboardInterrupt:
        code = 130
    except KafkaError as exc:  # unreachable broker, refused credentials, ...: one line, not a traceback
        err.print(f"[bold red]error:[/] cannot use the broker at {escape(Settings().kafka_bootstrap)} "
                  f"(ALLOT_KAFKA_*): {escape(str(exc))}")
        code = 1
    raise typer.Exit(code)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code)


def _check_topic(topic: str, *, dlq_ok: bool = False) -> None:
    known = set(all_topic_names()) if dlq_ok else set(TOPICS)
    if topic not in known:
        raise _fail(f"unknown topic {topic!r}; known: {', '.join(sorted(known))}")


def _consumer(settings: Settings, group: str | None = None, **kw: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(**client_kwargs(settings), group_id=group, enable_auto_commit=False,
                            auto_offset_reset="earliest", **kw)


async def describe_partitions(settings: Settings,
                              topics: Sequence[str] | None = None) -> dict[str, list[TopicPartition]]:
    """Partitions of every existing topic (or of ``topics``), from a fresh metadata request (admin API).

    Not from a consumer's metadata cache: a consumer only keeps metadata of the topics it has assigned or
    subscribed, so asking it about any other topic answers "no partitions" (the old `allot topics` bug).
    """
    admin = AIOKafkaAdminClient(**client_kwargs(settings), client_id="allot-cli")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in (topics if topics is not None else sorted(existing)) if t in existing]
        if not wanted:
            return {}
        described = await admin.describe_topics(wanted)
    finally:
        await admin.close()
    out: dict[str, list[TopicPartition]] = {}
    for topic in described:
        if topic.get("error_code", 0) != 0:
            continue
        out[topic["topic"]] = [TopicPartition(topic["topic"], p["partition"])
                               for p in sorted(topic["partitions"], key=lambda p: p["partition"])]
    return out


async def true_end_offsets(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """End offsets of all ``tps`` in one ListOffsets round, verified by reading past the broker's answer
    (the embedded broker may under-report the end of a partition being written)."""
    if not tps:
        return {}
    reported = await consumer.end_offsets(tps)
    consumer.assign(tps)
    ends: dict[TopicPartition, int] = {}
    for tp in tps:
        ends[tp] = reported[tp]
        consumer.seek(tp, max(0, reported[tp] - 1))
    pending = {tp for tp in tps if reported[tp] > 0}
    deadline = time.monotonic() + 5
    while pending and time.monotonic() < deadline:
        batch = await consumer.getmany(*pending, timeout_ms=300)
        if not batch:
            break
        for tp, records in batch.items():
            if records:
                ends[tp] = max(ends[tp], records[-1].offset + 1)
            pending.discard(tp)
    return ends


async def _read(settings: Settings, topics: Sequence[str], *, from_beginning: bool = True, follow: bool = False,
                idle_s: float = 1.0,
                on_idle: Callable[[], None] | None = None) -> AsyncIterator[ConsumerRecord[Any, Any]]:
    """Records of ``topics`` (every partition at once). Without ``follow`` it stops once every partition has
    reached the end it had when reading started (or nothing came for ``idle_s``); with ``follow`` it keeps
    waiting and calls ``on_idle`` once, the first time it has caught up."""
    parts = await describe_partitions(settings, topics)
    tps = [tp for t in topics for tp in parts.get(t, [])]
    if not tps:
        return
    consumer = _consumer(settings)
    await consumer.start()
    try:
        ends = await true_end_offsets(consumer, tps)
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            for tp, end in ends.items():
                consumer.seek(tp, end)
        remaining = {tp for tp in tps if ends[tp] > (0 if from_beginning else ends[tp])}
        if from_beginning:
            starts = await consumer.beginning_offsets(tps)
            remaining = {tp for tp in remaining if starts[tp] < ends[tp]}
        last = time.monotonic()
        idle_called = False
        while True:
            if not remaining and not follow:
                return
            if not remaining and follow and not idle_called and on_idle is not None:
                on_idle()
                idle_called = True
            batch = await consumer.getmany(timeout_ms=300, max_records=2000)
            got = False
            for tp, records in batch.items():
                for rec in records:
                    got = True
                    yield rec
                if records and records[-1].offset + 1 >= ends.get(tp, 0):
                    remaining.discard(tp)
            if got:
                last = time.monotonic()
            elif time.monotonic() - last > idle_s:
                if not follow:
                    return
                remaining.clear()
    finally:
        await consumer.stop()


def _headers(rec: ConsumerRecord[Any, Any]) -> dict[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in (rec.headers or [])}


def _summary(rec: ConsumerRecord[Any, Any]) -> dict[str, Any]:
    h = _headers(rec)
    try:
        decoded = orjson.loads(rec.value) if rec.value is not None else None  # None: a tombstone
    except orjson.JSONDecodeError:
        decoded = None
    body: dict[str, Any] = decoded if isinstance(decoded, dict) else {}
    raw_payload = body.get("payload")
    payload: dict[str, Any] = raw_payload if isinstance(raw_payload, dict) else {}
    recorded = datetime.fromtimestamp(rec.timestamp / 1000, UTC)
    try:
        at = datetime.fromisoformat(str(body.get("occurred_at")).replace("Z", "+00:00"))
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
    except ValueError:
        at = recorded
    return {
        "at": at,  # when it happened (occurred_at, else the record's timestamp): trace orders by it
        "topic": rec.topic, "partition": rec.partition, "offset": rec.offset,
        "time": recorded.isoformat(timespec="seconds"),
        "key": (rec.key or b"").decode("utf-8", "replace"),
        "event_id": h.get("event_id") or str(body.get("event_id") or ""),
        "workspace": h.get("workspace_id") or str(body.get("workspace_id") or ""),
        "correlation_id": h.get("correlation_id") or str(body.get("correlation_id") or ""),
        "causation_id": str(body.get("causation_id") or ""),
        "occurred_at": str(body.get("occurred_at") or ""),
        "entity": str(payload.get("entity_id") or ""),
        "entities": sorted({str(a.get("entity_id")) for a in payload.get("actions", []) if isinstance(a, dict)}
                           | ({str(payload["entity_id"])} if payload.get("entity_id") else set())),
        "summary": _describe(rec.topic, payload),
        "body": body,
    }


def _describe(topic: str, p: dict[str, Any]) -> str:
    if topic == "metrics.ingested":
        return f"spend {p.get('spend_cents')} conv {p.get('conversions')} rev {p.get('revenue_cents')}"
    if topic == "allocation.requested":
        return f"{p.get('source')}:{p.get('source_id')} {len(p.get('actions', []))} actions"
    if topic == "guardrail.approved":
        return f"approved {len(p.get('actions', []))} actions for {p.get('source')}:{p.get('source_id')}"
    if topic == "guardrail.blocked":
        return f"blocked by {p.get('check')}: {p.get('reason')}"
    if topic == "action.executed":
        return f"{p.get('action_type')} {p.get('outcome')} {p.get('before_cents')}→{p.get('after_cents')}"
    if topic.startswith("pacing."):
        return str(p.get("message") or p.get("reason") or f"pacing {p.get('pacing_pct')}%")
    return ""


def _parse_point(value: str, option: str) -> tuple[str, int | datetime]:
    if value in ("beginning", "latest"):
        return value, 0
    if value.isdigit():
        return "offset", int(value)
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _fail(f"{option} must be 'beginning', 'latest', an offset or an ISO timestamp, not {value!r}") from None
    return "time", ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _settings() -> Settings:
    return Settings()


# ------------------------------------------------------------------ topics


async def _topics(settings: Settings) -> list[dict[str, Any]]:
    parts = await describe_partitions(settings)
    tps = [tp for name in all_topic_names() for tp in parts.get(name, [])]
    ends: dict[TopicPartition, int] = {}
    starts: dict[TopicPartition, int] = {}
    if tps:  # (an aiokafka consumer stopped right after its start raises CancelledError)
        consumer = _consumer(settings)
        await consumer.start()
        try:
            ends = await true_end_offsets(consumer, tps)
            starts = await consumer.beginning_offsets(tps)
        finally:
            await consumer.stop()
    committed: dict[str, dict[TopicPartition, int | None]] = {}
    for group in sorted({g for groups in CONSUMES.values() for g in groups}):
        read = [tp for name, groups in CONSUMES.items() if group in groups for tp in parts.get(name, [])]
        committed[group] = await _group_positions(settings, group, read) if read else {}
    rows: list[dict[str, Any]] = []
    for name in all_topic_names():
        if name not in parts:
            rows.append({"topic": name, "partitions": 0, "end_offset": None, "group": None, "committed": None,
                         "lag": None, "missing": True})
            continue
        tp_list = parts[name]
        total = sum(ends[tp] for tp in tp_list)
        groups = CONSUMES.get(name, [])
        if not groups:
            rows.append({"topic": name, "partitions": len(tp_list), "end_offset": total, "group": None,
                         "committed": None, "lag": None})
        for group in groups:
            marks = committed[group]
            # A group without a committed offset starts at the log start (auto_offset_reset=earliest).
            positions = {tp: marks.get(tp) if marks.get(tp) is not None else starts.get(tp, 0) for tp in tp_list}
            lag = sum(max(0, ends[tp] - int(positions[tp] or 0)) for tp in tp_list)
            done = [marks.get(tp) for tp in tp_list if marks.get(tp) is not None]
            rows.append({"topic": name, "partitions": len(tp_list), "end_offset": total, "group": group,
                         "committed": sum(int(c or 0) for c in done) if done else None, "lag": lag})
    return rows


@topics_app.callback(invoke_without_command=True)
def topics(ctx: typer.Context, json_: Json = False) -> None:
    """Partitions, end offsets and each service group's lag, for every topic.

    Every registry topic and DLQ: partitions, end offset (sum over partitions), and per service group that
    consumes it its committed offset and lag. `allot topics create` creates missing topics.
    """
    if ctx.invoked_subcommand is not None:
        return
    as_json = _as_json(ctx, json_)

    async def go() -> int:
        rows = await _topics(_settings())
        _emit(as_json, rows, TOPIC_COLUMNS, title="topics")
        missing = [r["topic"] for r in rows if r.get("missing")]
        if missing:
            _say(as_json, f"missing topics: {', '.join(missing)} (allot topics create)")
        return 0

    _run(go())


@topics_app.command("list")
def topics_list(ctx: typer.Context, json_: Json = False) -> None:
    """The same as `allot topics`."""
    topics(ctx, json_)


@topics_app.command("create")
def topics_create(ctx: typer.Context, json_: Json = False) -> None:
    """Create the registry's topics and DLQs that are missing (partitions and retention from the registry)."""
    as_json = _as_json(ctx, json_)

    async def go() -> int:
        created = await ensure_topics(_settings())
        _emit(as_json, [{"topic": t, "status": "created"} for t in created], ["topic", "status"],
              empty="all topics exist; nothing created")
        return 0

    _run(go())


# ------------------------------------------------------------------ tail


@app.command()
def tail(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="Topic to read (a registry topic or its .dlq).")],
    workspace: Annotated[str | None, typer.Option(help="Only records of this workspace.")] = None,
    entity: Annotated[str | None, typer.Option(help="Only records of this entity (payload entity_id or key).")] = None,
    correlation: Annotated[str | None, typer.Option(help="Only records with this correlation id.")] = None,
    from_beginning: Annotated[bool, typer.Option("--from-beginning",
                                                 help="Read the history too, not only new records.")] = False,
    no_follow: Annotated[bool, typer.Option("--no-follow",
                                            help="Stop when the topic is drained instead of waiting.")] = False,
    limit: Annotated[int, typer.Option(help="Stop after N matching records (0: no limit).", min=0)] = 0,
    json_: Json = False,
) -> None:
    """Print a topic's records as they come, filtered by workspace, entity or correlation id.

    One line per record (JSON lines with --json). Follows new records until Ctrl-C unless --no-follow, and says
    on stderr what it is waiting for while nothing matches.
    """
    as_json = _as_json(ctx, json_)
    _check_topic(topic, dlq_ok=True)
    wanted = ", ".join(f"{k} {v}" for k, v in (("workspace", workspace), ("entity", entity),
                                                ("correlation id", correlation)) if v) or "any record"
    console = _console()

    async def go() -> int:
        if not await describe_partitions(_settings(), [topic]):
            raise _fail(f"topic {topic} does not exist on the broker (allot topics create)", 1)
        shown = 0

        def waiting() -> None:
            if shown == 0:
                _say(as_json, f"waiting for new records on {topic} matching {wanted}"
                              f"{'' if from_beginning else ' (none yet; --from-beginning reads the history)'}"
                              " — Ctrl-C stops")

        async for rec in _read(_settings(), [topic], from_beginning=from_beginning, follow=not no_follow,
                               on_idle=waiting):
            row = _summary(rec)
            if workspace and row["workspace"] != workspace:
                continue
            if entity and row["entity"] != entity and row["key"] != entity and entity not in row["entities"]:
                continue
            if correlation and row["correlation_id"] != correlation:
                continue
            if as_json:
                sys.stdout.write(orjson.dumps({c: row.get(c) for c in TAIL_COLUMNS}, default=str).decode() + "\n")
                sys.stdout.flush()
            else:
                console.print(f"[dim]{row['time']}[/] [bold]{row['topic']}[/]" + escape(
                              f"[{row['partition']}]@{row['offset']} ws={row['workspace']} key={row['key']} "
                              f"{row['summary']}"), soft_wrap=True)
            shown += 1
            if limit and shown >= limit:
                break
        if shown == 0:
            _say(as_json, f"no records in {topic} matching {wanted}")
        return 0

    _run(go())


# ------------------------------------------------------------------ replay


async def _offset_for_time(settings: Settings, tp: TopicPartition, ts: datetime) -> int:
    """First offset at or after ``ts``: ask the broker, and scan timestamps when it has no answer."""
    consumer = _consumer(settings)
    await consumer.start()
    try:
        ms = int(ts.timestamp() * 1000)
        answer = (await consumer.offsets_for_times({tp: ms})).get(tp)
        if answer is not None and answer.timestamp >= 0 and answer.offset > 0:
            return int(answer.offset)
        end = (await true_end_offsets(consumer, [tp]))[tp]
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        while True:
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=5000)
            records = batch.get(tp, [])
            if not records:
                return end
            for rec in records:
                if rec.timestamp >= ms:
                    return int(rec.offset)
    finally:
        await consumer.stop()


def valid_groups(topic: str) -> list[str]:
    """The service consumer groups that read ``topic`` (a service's group is its name, see service.py)."""
    return list(CONSUMES.get(topic, []))


def _progress(as_json: bool) -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, disable=as_json, transient=False)


async def _group_positions(settings: Settings, group: str,
                           tps: list[TopicPartition]) -> dict[TopicPartition, int | None]:
    gc = _consumer(settings, group=group)
    await gc.start()
    try:
        return {tp: await gc.committed(tp) for tp in tps}
    finally:
        await gc.stop()


async def _replay(topic: str, group: str, from_: str, to: str | None, dry_run: bool, wait: float,
                  to_latest: bool, watch_timeout: float, as_json: bool) -> int:
    settings = _settings()
    kind, point = _parse_point(from_, "--from")
    if kind == "latest":
        raise _fail("--from must be 'beginning', an offset or an ISO timestamp")
    parts = (await describe_partitions(settings, [topic])).get(topic, [])
    if not parts:
        raise _fail(f"topic {topic} does not exist (allot topics create)")
    consumer = _consumer(settings)
    await consumer.start()
    try:
        ends = await true_end_offsets(consumer, parts)
    finally:
        await consumer.stop()
    committed = await _group_positions(settings, group, parts)
    rows: list[dict[str, Any]] = []
    with _progress(as_json) as progress:
        task = progress.add_task(f"finding offsets of {topic}", total=len(parts))
        for tp in parts:
            if kind == "beginning":
                target = 0
            elif kind == "offset":
                target = min(int(point), ends[tp])  # type: ignore[arg-type]
            else:
                progress.update(task, description=f"scanning {tp.topic}[{tp.partition}] for {point}")
                target = await _offset_for_time(settings, tp, point)  # type: ignore[arg-type]
            upto = ends[tp]
            if to and not to_latest:
                tkind, tpoint = _parse_point(to, "--to")
                if tkind == "offset":
                    upto = int(tpoint)  # type: ignore[arg-type]
                elif tkind == "time":
                    upto = await _offset_for_time(settings, tp, tpoint)  # type: ignore[arg-type]
            rows.append({"partition": tp.partition, "committed": committed[tp], "new_offset": target,
                         "end": ends[tp], "to_reprocess": max(0, min(upto, ends[tp]) - target)})
            progress.advance(task)
    if dry_run:
        _emit(as_json, rows, REPLAY_COLUMNS, title=f"replay {topic} for {group} (dry run)")
        _say(as_json, "dry run: nothing changed")
        return 0
    await _commit_as_sole_member(settings, topic, group, wait, parts,
                                 {tp: r["new_offset"] for tp, r in zip(parts, rows, strict=True)}, as_json)
    _emit(as_json, rows, REPLAY_COLUMNS, title=f"replay {topic} for {group}")
    _say(as_json, f"group {group} moved; start it and it reprocesses (consumers are idempotent)")
    if to_latest:
        return await _watch_lag(settings, topic, group, parts, ends, rows, watch_timeout, as_json)
    return 0


async def _watch_lag(settings: Settings, topic: str, group: str, parts: list[TopicPartition],
                     ends: dict[TopicPartition, int], rows: list[dict[str, Any]], timeout: float, as_json: bool) -> int:
    """Follow the group's committed offsets until it has reprocessed up to the end the replay saw."""
    total = sum(r["to_reprocess"] for r in rows)
    _say(as_json, f"watching {group}'s lag on {topic} until it reaches the latest offsets ({total} records); "
                  "start the service now — Ctrl-C stops watching, not the replay")
    deadline = time.monotonic() + timeout
    lag = total
    with _progress(as_json) as progress:
        task = progress.add_task(f"{group} reprocessing {topic}", total=total or 1)
        while True:
            marks = await _group_positions(settings, group, parts)
            lag = sum(max(0, ends[tp] - int(marks[tp] or 0)) for tp in parts)
            progress.update(task, completed=(total - lag) if total else 1)
            if lag == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
    if lag:
        _say(as_json, f"{group} still lags {lag} records on {topic} after {timeout:.0f}s")
        return 3
    _say(as_json, f"{group} caught up with {topic}: lag 0")
    return 0


async def _commit_as_sole_member(settings: Settings, topic: str, group: str, wait: float,
                                 tps: list[TopicPartition], offsets: dict[TopicPartition, int], as_json: bool) -> None:
    """Join the (stopped) group, get every partition of the topic, commit the new offsets, leave.

    Joining as a member works on Apache Kafka and on the embedded broker alike (the embedded one refuses
    commits from non-members of a group that has had members). If the service is still running it
    keeps some partitions, and the reset is refused rather than half-applied.
    """
    member = AIOKafkaConsumer(topic, **client_kwargs(settings), group_id=group, enable_auto_commit=False,
                              auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=1000)
    await member.start()
    try:
        deadline = time.monotonic() + wait
        with _progress(as_json) as progress:
            task = progress.add_task(f"joining group {group} to move its offsets", total=len(tps))
            while set(member.assignment()) != set(tps):
                progress.update(task, completed=len(set(member.assignment()) & set(tps)))
                if time.monotonic() > deadline:
                    raise _fail(
                        f"group {group!r} did not hand over all partitions of {topic} within {wait}s: "
                        "is the service still running? Stop it, replay, then start it (as on Apache Kafka).", 1)
                await member.getmany(timeout_ms=200, max_records=1)
            progress.update(task, completed=len(tps))
        await member.commit(offsets)
    finally:
        await member.stop()


@app.command()
def replay(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="The topic to reprocess.")],
    group: Annotated[str, typer.Option(help="The service whose consumer group is moved (stop it first).")],
    from_: Annotated[str, typer.Option("--from", help="'beginning', an offset (per partition) or an ISO timestamp.")],
    to: Annotated[str | None, typer.Option(
        help="Bound what --dry-run reports: an offset, an ISO timestamp or 'latest'.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be reprocessed; move nothing.")] = False,
    to_latest: Annotated[bool, typer.Option("--to-latest", help=(
        "After moving, watch the group's lag (progress bar) until it has reprocessed up to the latest offsets; "
        "exit 3 if it has not within --watch-timeout."))] = False,
    wait: Annotated[float, typer.Option(
        help="Seconds to wait for a just-stopped group to hand over its partitions.")] = 30.0,
    watch_timeout: Annotated[float, typer.Option(
        help="With --to-latest: give up watching after this many seconds.")] = 600.0,
    any_group: Annotated[bool, typer.Option("--any-group", help=(
        "Allow a group that is not a service's (e.g. a dashboard's own)."))] = False,
    json_: Json = False,
) -> None:
    """Move a stopped service's consumer group back so it reprocesses TOPIC.

    Consumers are idempotent, so reprocessing is safe. The group is checked against the services that consume
    TOPIC before anything moves; --to-latest then watches its lag until it has caught up.
    """
    as_json = _as_json(ctx, json_)
    _check_topic(topic)
    groups = valid_groups(topic)
    if group not in groups and not any_group:
        raise _fail(f"unknown group {group!r} for {topic}; the services consuming it are: "
                    f"{', '.join(groups) or 'none'} (--any-group for a group of your own)")
    if to_latest and dry_run:
        raise _fail("--to-latest watches a real replay; drop --dry-run")
    _run(_replay(topic, group, from_, to, dry_run, wait, to_latest, watch_timeout, as_json))


# ------------------------------------------------------------------ dlq


async def _dlq_records(topic: str, offset: int | None, reason: str | None) -> tuple[str, list[Any]]:
    dlq = topic if topic.endswith(".dlq") else f"{topic}.dlq"
    if not await describe_partitions(_settings(), [dlq]):
        raise _fail(f"topic {dlq} does not exist on the broker (allot topics create)", 1)
    rows = []
    async for rec in _read(_settings(), [dlq]):
        h = _headers(rec)
        if reason and h.get("x-dlq-reason") != reason:
            continue
        if offset is not None and rec.offset != offset:
            continue
        rows.append((rec, h))
    return dlq, rows


def _dlq_filter(offset: int | None, reason: str | None) -> str:
    parts = [f"at offset {offset}" if offset is not None else "", f"with reason {reason}" if reason else ""]
    return " ".join(p for p in parts if p)


Offset = Annotated[int | None, typer.Option(help="Only the record at this offset of the DLQ.", min=0)]
Reason = Annotated[str | None, typer.Option(help="Only records with this x-dlq-reason (e.g. validation_failed).")]
DlqTopic = Annotated[str, typer.Argument(help="The source topic (or its .dlq).")]


@dlq_app.command("list")
def dlq_list(ctx: typer.Context, topic: DlqTopic, offset: Offset = None, reason: Reason = None,
             json_: Json = False) -> None:
    """One line per dead letter: when, which group, why, where it came from."""
    as_json = _as_json(ctx, json_)
    _check_topic(topic, dlq_ok=True)

    async def go() -> int:
        dlq, rows = await _dlq_records(topic, offset, reason)
        out = [{"offset": r.offset, "failed_at": h.get("x-dlq-failed-at", ""), "group": h.get("x-dlq-consumer-group"),
                "reason": h.get("x-dlq-reason"), "source": f"{h.get('x-dlq-source-topic')}[{h.get('x-dlq-partition')}]"
                f"@{h.get('x-dlq-offset')}", "error": h.get("x-dlq-error", "")[:80]} for r, h in rows]
        _emit(as_json, out, DLQ_LIST_COLUMNS, title=dlq,
              empty=f"no records in {dlq}{' ' + _dlq_filter(offset, reason) if _dlq_filter(offset, reason) else ''}")
        return 0

    _run(go())


@dlq_app.command("show")
def dlq_show(ctx: typer.Context, topic: DlqTopic, offset: Offset = None, reason: Reason = None,
             json_: Json = False) -> None:
    """Whole dead letters: headers (reason, error, source) and the record's value."""
    as_json = _as_json(ctx, json_)
    _check_topic(topic, dlq_ok=True)

    async def go() -> int:
        dlq, rows = await _dlq_records(topic, offset, reason)
        out = [{"offset": r.offset, "headers": h, "key": (r.key or b"").decode("utf-8", "replace"),
                "value": r.value.decode("utf-8", "replace")[:10_000]} for r, h in rows]
        where = _dlq_filter(offset, reason)
        if as_json:
            _emit(True, out, ["offset", "headers", "key", "value"],
                  empty=f"no records in {dlq}{' ' + where if where else ''}")
            return 0
        console = _console()
        if not out:
            console.print(f"no records in {dlq}{' ' + where if where else ''}", markup=False)
            return 0
        for row in out:
            table = Table(title=f"{dlq}@{row['offset']}", show_header=False)
            table.add_column("field", style="bold")
            table.add_column("value", overflow="fold")
            for k, v in row["headers"].items():
                table.add_row(Text(k), Text(v))
            table.add_row("key", Text(row["key"]))
            table.add_row("value", Text(row["value"]))
            console.print(table)
        return 0

    _run(go())


@dlq_app.command("redrive")
def dlq_redrive(ctx: typer.Context, topic: DlqTopic, offset: Offset = None, reason: Reason = None,
                all_: Annotated[bool, typer.Option("--all", help="Redrive every dead letter of the topic.")] = False,
                json_: Json = False) -> None:
    """Send dead letters back to their source topic (without the x-dlq-* headers, marked x-redriven-from)."""
    as_json = _as_json(ctx, json_)
    _check_topic(topic, dlq_ok=True)
    if offset is None and not all_ and not reason:
        raise _fail("redrive needs --offset N, --reason R or --all")

    async def go() -> int:
        dlq, rows = await _dlq_records(topic, offset, reason)
        if not rows:
            where = _dlq_filter(offset, reason)
            _emit(as_json, [{"redriven": 0, "dlq": dlq}], ["redriven", "dlq"])
            _say(as_json, f"no records in {dlq}{' ' + where if where else ''}; nothing redriven")
            return 0
        settings = _settings()
        producer = AIOKafkaProducer(**client_kwargs(settings), acks="all", max_request_size=2_000_000)
        await producer.start()
        sent = 0
        try:
            with _progress(as_json) as progress:
                task = progress.add_task(f"redriving {dlq}", total=len(rows))
                for rec, h in rows:
                    source = h.get("x-dlq-source-topic") or topic.removesuffix(".dlq")
                    headers = [(k, v) for k, v in (rec.headers or []) if not k.startswith("x-dlq-")]
                    headers.append(("x-redriven-from", f"{dlq}@{rec.offset}".encode()))
                    await producer.send_and_wait(source, rec.value, key=rec.key, headers=headers)
                    sent += 1
                    progress.advance(task)
        finally:
            await producer.stop()
        _emit(as_json, [{"redriven": sent, "dlq": dlq}], ["redriven", "dlq"])
        return 0

    _run(go())


# ------------------------------------------------------------------ trace


async def _trace(wanted: str, as_json: bool) -> list[dict[str, Any]]:
    """Every record of the decision: those with the correlation id (or the event id) ``wanted``, then back
    along causation ids (and the correlation ids of the causes) until the metric that started it."""
    settings = _settings()
    topics = list(TOPICS)
    index: dict[str, dict[str, Any]] = {}  # event_id -> row; one pass over every topic, all partitions at once
    by_correlation: dict[str, list[str]] = {}
    with _progress(as_json) as progress:
        task = progress.add_task("reading every topic", total=None)
        async for rec in _read(settings, topics, idle_s=1.0):
            row = _summary(rec)
            if row["event_id"]:
                index[row["event_id"]] = row
                by_correlation.setdefault(row["correlation_id"], []).append(row["event_id"])
            progress.advance(task)
    found: dict[str, dict[str, Any]] = {}

    def add(event_id: str, link: str) -> None:
        if event_id in index and event_id not in found:
            found[event_id] = dict(index[event_id], link=link)

    for eid in by_correlation.get(wanted, []):
        add(eid, "correlation")
    add(wanted, "event")
    frontier = list(found)
    while frontier:  # follow causes back (and the records correlated with each cause)
        nxt = []
        for eid in frontier:
            cause = found[eid]["causation_id"]
            if cause and cause in index and cause not in found:
                add(cause, "cause")
                nxt.append(cause)
                for other in by_correlation.get(index[cause]["correlation_id"], []):
                    if other not in found:
                        add(other, "correlation of cause")
                        nxt.append(other)
        frontier = nxt
    rows = sorted(found.values(), key=lambda r: (r["at"], r["topic"] != "metrics.ingested"))
    if rows and not any(r["topic"] == "metrics.ingested" for r in rows):
        # The decision was scheduled rather than caused by one record: show, per entity it changes, the last
        # metric reported before it (what the decision saw).
        first = rows[0]
        entities = {e for r in rows for e in r["entities"]}
        for entity in sorted(entities):
            latest = max((r for r in index.values() if r["topic"] == "metrics.ingested" and r["entity"] == entity
                          and r["workspace"] == first["workspace"]
                          and r["at"] <= first["at"]),
                         key=lambda r: r["at"], default=None)
            if latest is not None:
                rows.insert(0, dict(latest, link="last metric before"))
    return rows


@app.command()
def trace(
    ctx: typer.Context,
    id_: Annotated[str, typer.Argument(metavar="ID", help="A correlation id (or any event id of the decision).")],
    json_: Json = False,
) -> None:
    """One decision end to end, from the metric that caused it to the executed action.

    metrics.ingested → allocation.requested → guardrail.approved|blocked → action.executed: the records with
    the id, and causation ids followed back to the metric (for a scheduled decision: the last metric of each
    entity it changes).
    """
    as_json = _as_json(ctx, json_)
    try:
        uuid.UUID(id_)
    except ValueError:
        raise _fail(f"{id_!r} is not an id (a UUID such as a correlation_id from `allot tail`)") from None

    async def go() -> int:
        rows = await _trace(id_, as_json)
        _emit(as_json, rows, TRACE_COLUMNS, title=f"trace {id_}",
              empty=f"no records with correlation or event id {id_} on any topic")
        return 0 if rows else 1

    _run(go())


# ------------------------------------------------------------------ keys


class Role(StrEnum):
    viewer = "viewer"
    operator = "operator"
    admin = "admin"


class Recipient(StrEnum):
    ingest = "ingest"
    executor = "executor"


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    workspace: Annotated[str, typer.Option(help="The key's workspace.")],
    role: Annotated[Role, typer.Option(help="The key's role.")],
    json_: Json = False,
) -> None:
    """A new API key (shown once) and the hashed entry to add to ALLOT_API_KEYS."""
    raw, entry = generate_key(workspace, role.value)
    if _as_json(ctx, json_):
        sys.stdout.write(orjson.dumps({"key": raw, "entry": entry.model_dump()}).decode() + "\n")
        return
    print(f"API key (shown once, store it safely): {raw}")
    print(f"Add this entry to ALLOT_API_KEYS: {entry.model_dump_json()}")


@keys_app.command("generate")
def keys_generate(
    ctx: typer.Context,
    recipient: Annotated[Recipient, typer.Option(help="The service that opens the sealed tokens.")],
    key_id: Annotated[str, typer.Option(help="Id of the new key (default: random).")] = "",
    json_: Json = False,
) -> None:
    """A token-sealing keypair: the private half for the recipient, the public half for connections."""
    import secrets

    from allot.runtime.sealing import generate_keypair

    pair = generate_keypair(key_id or f"{recipient.value}-{secrets.token_hex(4)}")
    private_entry = f"{pair.key_id}:{pair.private_key}"
    public_entry = f"{recipient.value}={pair.key_id}:{pair.public_key}"
    if _as_json(ctx, json_):
        sys.stdout.write(orjson.dumps({"recipient": recipient.value, "key_id": pair.key_id,
                                       "private_entry": private_entry, "public_entry": public_entry}).decode() + "\n")
        return
    print(f"# {recipient.value} service only (a secret; current key first, previous keys after it):")
    print(f"ALLOT_SEALING_PRIVATE_KEYS={private_entry}")
    print("# connections service (public; comma-join with the other recipient's entry):")
    print(f"ALLOT_SEALING_PUBLIC_KEYS={public_entry}")


# ------------------------------------------------------------------ entry point


def main(argv: list[str] | None = None) -> int:
    """`allot`; returns the exit code (used by the console script and tests)."""
    try:
        app(args=argv, prog_name="allot", standalone_mode=True)
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
