"""`allot`: the ops command line. Works against the embedded stack and a real cluster alike (ALLOT_KAFKA_* env).

  allot topics [create]                      topics, partitions, end offsets, each service group's lag
  allot tail TOPIC [--workspace W] [--entity E] [--correlation C] [--from-beginning] [--limit N]
  allot replay TOPIC --group SERVICE --from beginning|OFFSET|TIMESTAMP [--to OFFSET|TIMESTAMP] [--dry-run]
  allot dlq list|show|redrive TOPIC [--offset N] [--reason R] [--all]
  allot trace CORRELATION_ID
  allot keys create --workspace W --role viewer|operator|admin
  allot keys generate --recipient ingest|executor [--key-id K]   a token-sealing keypair (see runtime/sealing.py)

Every command prints a table for people and JSON with --json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from allot.contracts.registry import TOPICS, all_topic_names
from allot.runtime.auth import generate_key
from allot.runtime.kafka import client_kwargs, ensure_topics
from allot.runtime.settings import Settings

SERVICE_GROUPS = ["pools", "rules", "pacing", "guardrails", "executor"]
CONSUMES = {  # which service groups read which topic (tests/integration/test_cli.py checks it against the specs)
    "metrics.ingested": ["pools", "rules", "pacing"],
    "pacing.reallocation_recommended": ["pools"],
    "pacing.deviation_detected": ["notify"],
    "allocation.requested": ["guardrails"],
    "guardrail.approved": ["executor"],
    "guardrail.blocked": ["pools", "rules", "pacing", "notify"],
    "action.executed": ["guardrails", "pools", "rules", "pacing", "notify"],
    "connection.changed": ["executor", "ingest"],
    "account.profiled": ["pools", "rules", "pacing", "guardrails", "executor"],
    "notification.requested": ["notify"],
}


# ------------------------------------------------------------------ helpers


def _out(args: argparse.Namespace, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    if args.json:
        sys.stdout.write(orjson.dumps(rows, default=str).decode() + "\n")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) if rows else len(c) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns))


def _progress(args: argparse.Namespace, message: str) -> None:
    if not args.json:
        print(message, file=sys.stderr, flush=True)


def _consumer(settings: Settings, group: str | None = None, **kw: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(**client_kwargs(settings), group_id=group, enable_auto_commit=False,
                            auto_offset_reset="earliest", **kw)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    parts = consumer.partitions_for_topic(topic)
    if parts is None:
        await consumer.topics()  # refresh metadata
        parts = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(parts)]


async def true_end_offsets(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """End offsets verified by reading past the broker's answer (the embedded broker under-reports them)."""
    reported = await consumer.end_offsets(tps)
    consumer.assign(tps)
    ends: dict[TopicPartition, int] = {}
    for tp in tps:
        ends[tp] = reported[tp]
        consumer.seek(tp, max(0, reported[tp] - 1))
    pending = set(tps)
    deadline = time.monotonic() + 5
    while pending and time.monotonic() < deadline:
        batch = await consumer.getmany(*pending, timeout_ms=300)
        if not batch:
            break
        for tp, records in batch.items():
            if records:
                ends[tp] = max(ends[tp], records[-1].offset + 1)
    return ends


async def _scan(settings: Settings, topic: str, *, from_beginning: bool = True,
                follow: bool = False, idle_s: float = 1.5) -> Any:
    """Yield records of a topic from the beginning; with follow, keep waiting for new ones."""
    consumer = _consumer(settings)
    await consumer.start()
    try:
        tps = await _partitions(consumer, topic)
        if not tps:
            return
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            ends = await true_end_offsets(consumer, tps)
            for tp, end in ends.items():
                consumer.seek(tp, end)
        last = time.monotonic()
        while True:
            batch = await consumer.getmany(timeout_ms=300, max_records=2000)
            got = False
            for records in batch.values():
                for rec in records:
                    got = True
                    yield rec
            if got:
                last = time.monotonic()
            elif not follow and time.monotonic() - last > idle_s:
                return
    finally:
        await consumer.stop()


def _headers(rec: ConsumerRecord[Any, Any]) -> dict[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in (rec.headers or [])}


def _summary(rec: ConsumerRecord[Any, Any]) -> dict[str, Any]:
    h = _headers(rec)
    try:
        body = orjson.loads(rec.value)
        payload = body.get("payload", {}) if isinstance(body, dict) else {}
    except orjson.JSONDecodeError:
        body, payload = None, {}
    return {
        "topic": rec.topic, "partition": rec.partition, "offset": rec.offset,
        "time": datetime.fromtimestamp(rec.timestamp / 1000, UTC).isoformat(timespec="seconds"),
        "key": (rec.key or b"").decode("utf-8", "replace"), "event_id": h.get("event_id", ""),
        "workspace": h.get("workspace_id", ""), "correlation_id": h.get("correlation_id", ""),
        "entity": payload.get("entity_id", "") if isinstance(payload, dict) else "",
        "summary": _describe(rec.topic, payload) if isinstance(payload, dict) else "",
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


def _parse_point(value: str) -> tuple[str, int | datetime]:
    if value == "beginning":
        return "beginning", 0
    if value.isdigit():
        return "offset", int(value)
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SystemExit(f"--from/--to must be 'beginning', an offset or an ISO timestamp, not {value!r}") from None
    return "time", ts if ts.tzinfo else ts.replace(tzinfo=UTC)


# ------------------------------------------------------------------ commands


async def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "create":
        created = await ensure_topics(settings)
        _out(args, [{"topic": t, "status": "created"} for t in created] or [{"topic": "-", "status": "all exist"}],
             ["topic", "status"])
        return 0
    consumer = _consumer(settings)
    await consumer.start()
    rows: list[dict[str, Any]] = []
    try:
        existing = await consumer.topics()
        for name in all_topic_names():
            if name not in existing:
                rows.append({"topic": name, "partitions": 0, "end_offset": "-", "group": "-", "lag": "missing"})
                continue
            tps = await _partitions(consumer, name)
            ends = await true_end_offsets(consumer, tps)
            total = sum(ends.values())
            groups = CONSUMES.get(name, [])
            if not groups:
                rows.append({"topic": name, "partitions": len(tps), "end_offset": total, "group": "-", "lag": "-"})
            for group in groups:
                gc = _consumer(settings, group=group)
                await gc.start()
                try:
                    lag = 0
                    for tp in tps:
                        committed = await gc.committed(tp)
                        lag += ends[tp] - (committed or 0)
                finally:
                    await gc.stop()
                rows.append({"topic": name, "partitions": len(tps), "end_offset": total, "group": group, "lag": lag})
    finally:
        await consumer.stop()
    _out(args, rows, ["topic", "partitions", "end_offset", "group", "lag"])
    return 0


async def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    shown = 0
    async for rec in _scan(settings, args.topic, from_beginning=args.from_beginning, follow=not args.no_follow):
        row = _summary(rec)
        if args.workspace and row["workspace"] != args.workspace:
            continue
        if args.entity and row["entity"] != args.entity and row["key"] != args.entity:
            continue
        if args.correlation and row["correlation_id"] != args.correlation:
            continue
        if args.json:
            sys.stdout.write(orjson.dumps({k: v for k, v in row.items()}, default=str).decode() + "\n")
        else:
            print(f"{row['time']} {row['topic']}[{row['partition']}]@{row['offset']} ws={row['workspace']} "
                  f"key={row['key']} {row['summary']}", flush=True)
        shown += 1
        if args.limit and shown >= args.limit:
            break
    return 0


async def _offset_for_time(settings: Settings, tp: TopicPartition, ts: datetime) -> int:
    """First offset at or after ``ts``: ask the broker, and scan timestamps when it has no answer."""
    consumer = _consumer(settings)
    await consumer.start()
    try:
        ms = int(ts.timestamp() * 1000)
        answer = (await consumer.offsets_for_times({tp: ms})).get(tp)
        if answer is not None and answer.timestamp >= 0 and answer.offset > 0:
            return int(answer.offset)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await true_end_offsets(consumer, [tp]))[tp]
        consumer.seek(tp, 0)
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


async def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    if args.topic not in TOPICS:
        raise SystemExit(f"unknown topic {args.topic!r}; known: {', '.join(TOPICS)}")
    kind, point = _parse_point(args.from_)
    consumer = _consumer(settings, group=args.group)
    await consumer.start()
    try:
        tps = await _partitions(consumer, args.topic)
        ends = await true_end_offsets(consumer, tps)
        rows = []
        for tp in tps:
            committed = await consumer.committed(tp)
            if kind == "beginning":
                target = 0
            elif kind == "offset":
                target = min(int(point), ends[tp])  # type: ignore[arg-type]
            else:
                _progress(args, f"  scanning {tp.topic}[{tp.partition}] for the first record at {point}")
                target = await _offset_for_time(settings, tp, point)  # type: ignore[arg-type]
            upto = ends[tp]
            if args.to:
                tkind, tpoint = _parse_point(args.to)
                upto = (int(tpoint) if tkind == "offset" else  # type: ignore[arg-type]
                        await _offset_for_time(settings, tp, tpoint) if tkind == "time" else ends[tp])  # type: ignore[arg-type]
            rows.append({"partition": tp.partition, "committed": committed, "new_offset": target,
                         "end": ends[tp], "to_reprocess": max(0, min(upto, ends[tp]) - target)})
        if not args.dry_run:
            await _commit_as_sole_member(settings, args, tps, {tp: r["new_offset"] for tp, r in zip(tps, rows, strict=True)})
    finally:
        await consumer.stop()
    _out(args, rows, ["partition", "committed", "new_offset", "end", "to_reprocess"])
    _progress(args, ("dry run: nothing changed" if args.dry_run else
                     f"group {args.group} moved; start it and it reprocesses (consumers are idempotent)"))
    return 0


async def _commit_as_sole_member(settings: Settings, args: argparse.Namespace, tps: list[TopicPartition],
                                 offsets: dict[TopicPartition, int]) -> None:
    """Join the (stopped) group, get every partition of the topic, commit the new offsets, leave.

    Joining as a member works on Apache Kafka and on the embedded broker alike (the embedded one refuses
    commits from non-members of a group that has had members). If the service is still running it
    keeps some partitions, and the reset is refused rather than half-applied.
    """
    member = AIOKafkaConsumer(args.topic, **client_kwargs(settings), group_id=args.group, enable_auto_commit=False,
                              auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=1000)
    await member.start()
    try:
        deadline = time.monotonic() + args.wait
        _progress(args, f"  joining group {args.group} to move its offsets")
        while set(member.assignment()) != set(tps):
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"group {args.group!r} did not hand over all partitions of {args.topic} within {args.wait}s: "
                    "is the service still running? Stop it, replay, then start it (as on Apache Kafka).")
            await member.getmany(timeout_ms=200, max_records=1)
        await member.commit(offsets)
    finally:
        await member.stop()


async def cmd_dlq(args: argparse.Namespace, settings: Settings) -> int:
    dlq = args.topic if args.topic.endswith(".dlq") else f"{args.topic}.dlq"
    rows = []
    async for rec in _scan(settings, dlq):
        h = _headers(rec)
        if args.reason and h.get("x-dlq-reason") != args.reason:
            continue
        if args.offset is not None and rec.offset != args.offset:
            continue
        rows.append((rec, h))
    if args.action == "list":
        _out(args, [{"offset": r.offset, "failed_at": h.get("x-dlq-failed-at", ""), "group": h.get("x-dlq-consumer-group"),
                     "reason": h.get("x-dlq-reason"), "source": f"{h.get('x-dlq-source-topic')}[{h.get('x-dlq-partition')}]"
                     f"@{h.get('x-dlq-offset')}", "error": h.get("x-dlq-error", "")[:80]} for r, h in rows],
             ["offset", "failed_at", "group", "reason", "source", "error"])
        return 0
    if args.action == "show":
        out = [{"offset": r.offset, "headers": h, "key": (r.key or b"").decode("utf-8", "replace"),
                "value": r.value.decode("utf-8", "replace")[:10_000]} for r, h in rows]
        sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if args.offset is None and not args.all and not args.reason:
        raise SystemExit("redrive needs --offset N, --reason R or --all")
    producer = AIOKafkaProducer(**client_kwargs(settings), acks="all", max_request_size=2_000_000)
    await producer.start()
    sent = 0
    try:
        for rec, h in rows:
            source = h.get("x-dlq-source-topic") or args.topic.removesuffix(".dlq")
            headers = [(k, v) for k, v in (rec.headers or []) if not k.startswith("x-dlq-")]
            headers.append(("x-redriven-from", f"{dlq}@{rec.offset}".encode()))
            await producer.send_and_wait(source, rec.value, key=rec.key, headers=headers)
            sent += 1
            _progress(args, f"  redriven {dlq}@{rec.offset} → {source}")
    finally:
        await producer.stop()
    _out(args, [{"redriven": sent, "dlq": dlq}], ["redriven", "dlq"])
    return 0


async def cmd_trace(args: argparse.Namespace, settings: Settings) -> int:
    found: list[dict[str, Any]] = []
    for name in TOPICS:
        _progress(args, f"  scanning {name}")
        async for rec in _scan(settings, name, idle_s=0.8):
            if _headers(rec).get("correlation_id") == args.correlation_id:
                row = _summary(rec)
                found.append(row)
    found.sort(key=lambda r: (r["body"] or {}).get("occurred_at", r["time"]) if isinstance(r["body"], dict) else r["time"])
    _out(args, [{k: v for k, v in r.items() if k != "body"} for r in found],
         ["time", "topic", "event_id", "entity", "summary"])
    return 0 if found else 1


def cmd_keys(args: argparse.Namespace) -> int:
    if args.action == "generate":
        return cmd_keys_generate(args)
    if not args.workspace or not args.role:
        print("allot keys create needs --workspace and --role", file=sys.stderr)
        return 2
    raw, entry = generate_key(args.workspace, args.role)
    if args.json:
        sys.stdout.write(orjson.dumps({"key": raw, "entry": entry.model_dump()}).decode() + "\n")
    else:
        print(f"API key (shown once, store it safely): {raw}")
        print(f"Add this entry to ALLOT_API_KEYS: {entry.model_dump_json()}")
    return 0


def cmd_keys_generate(args: argparse.Namespace) -> int:
    import secrets

    from allot.runtime.sealing import generate_keypair

    if not args.recipient:
        print("allot keys generate needs --recipient ingest|executor", file=sys.stderr)
        return 2
    pair = generate_keypair(args.key_id or f"{args.recipient}-{secrets.token_hex(4)}")
    private_entry = f"{pair.key_id}:{pair.private_key}"
    public_entry = f"{args.recipient}={pair.key_id}:{pair.public_key}"
    if args.json:
        sys.stdout.write(orjson.dumps({"recipient": args.recipient, "key_id": pair.key_id,
                                       "private_entry": private_entry, "public_entry": public_entry}).decode() + "\n")
    else:
        print(f"# {args.recipient} service only (a secret; current key first, previous keys after it):")
        print(f"ALLOT_SEALING_PRIVATE_KEYS={private_entry}")
        print("# connections service (public; comma-join with the other recipient's entry):")
        print(f"ALLOT_SEALING_PUBLIC_KEYS={public_entry}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="allot", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("topics")
    t.add_argument("action", nargs="?", choices=["list", "create"], default="list")
    tail = sub.add_parser("tail")
    tail.add_argument("topic")
    tail.add_argument("--workspace")
    tail.add_argument("--entity")
    tail.add_argument("--correlation")
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--no-follow", action="store_true", help="stop when the topic is drained")
    tail.add_argument("--limit", type=int, default=0)
    r = sub.add_parser("replay")
    r.add_argument("topic")
    r.add_argument("--group", required=True, help="the service whose consumer group is moved")
    r.add_argument("--from", dest="from_", required=True)
    r.add_argument("--to")
    r.add_argument("--dry-run", action="store_true")
    r.add_argument("--wait", type=float, default=30.0, help="seconds to wait for a just-stopped group to empty")
    d = sub.add_parser("dlq")
    d.add_argument("action", choices=["list", "show", "redrive"])
    d.add_argument("topic")
    d.add_argument("--offset", type=int)
    d.add_argument("--reason")
    d.add_argument("--all", action="store_true")
    tr = sub.add_parser("trace")
    tr.add_argument("correlation_id")
    k = sub.add_parser("keys")
    k.add_argument("action", choices=["create", "generate"])
    k.add_argument("--workspace", help="create: the key's workspace")
    k.add_argument("--role", choices=["viewer", "operator", "admin"], help="create: the key's role")
    k.add_argument("--recipient", choices=["ingest", "executor"], help="generate: the service that opens tokens")
    k.add_argument("--key-id", default="", help="generate: id of the new key (default: random)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "keys":
        return cmd_keys(args)
    settings = Settings()
    handler = {"topics": cmd_topics, "tail": cmd_tail, "replay": cmd_replay, "dlq": cmd_dlq, "trace": cmd_trace}
    try:
        return asyncio.run(handler[args.command](args, settings))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
