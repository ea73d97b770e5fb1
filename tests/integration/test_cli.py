"""The `allot` ops CLI against the real broker: tail, dlq list/show/redrive, replay (dry run and real), trace."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from allot.contracts import new_envelope
from allot.contracts.examples import EXAMPLES
from allot.runtime.kafka import ensure_topics
from tests.support.kafka import publish, publish_raw


async def allot(settings: Any, *args: str) -> Any:
    env = dict(os.environ, ALLOT_KAFKA_BOOTSTRAP=settings.kafka_bootstrap)
    proc = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "allot.runtime.cli", "--json", *args],
                                   env=env, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    text = proc.stdout.decode()
    try:
        return [orjson.loads(text)]
    except orjson.JSONDecodeError:
        return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def event(workspace: str, entity: str, correlation: Any = None) -> Any:
    payload = EXAMPLES["metrics.ingested"].model_copy(update={"entity_id": entity})
    return new_envelope(event_type="metrics.ingested", schema_version=1, payload=payload, producer="test",
                        workspace_id=workspace, occurred_at=datetime.now(UTC), correlation_id=correlation)


async def test_tail_filters_by_workspace_and_entity(settings: Any, unique: str) -> None:
    await ensure_topics(settings)
    await publish(settings.kafka_bootstrap, event(unique, "e1"), event(unique, "e2"), event("other", "e1"))
    rows = await allot(settings, "tail", "metrics.ingested", "--from-beginning", "--no-follow", "--workspace", unique)
    assert sorted(r["entity"] for r in rows) == ["e1", "e2"]
    rows = await allot(settings, "tail", "metrics.ingested", "--from-beginning", "--no-follow", "--workspace", unique,
                       "--entity", "e2")
    assert [r["entity"] for r in rows] == ["e2"]


async def test_dlq_list_show_and_redrive(settings: Any, unique: str) -> None:
    await ensure_topics(settings)
    good = event(unique, "fixed")
    headers = [("x-dlq-reason", b"validation_failed"), ("x-dlq-error", b"payload.x: bad"),
               ("x-dlq-source-topic", b"metrics.ingested"), ("x-dlq-partition", b"0"), ("x-dlq-offset", b"7"),
               ("x-dlq-consumer-group", unique.encode()), ("event_id", str(good.event_id).encode())]
    from allot.contracts import encode

    record = encode(good)
    original = [h for h in record.headers if h[0] != "event_id"]
    await publish_raw(settings.kafka_bootstrap, "metrics.ingested.dlq", record.value, key=b"fixed",
                      headers=original + headers)
    listed = await allot(settings, "dlq", "list", "metrics.ingested")
    mine = [r for r in listed[0] if r["group"] == unique]
    assert len(mine) == 1 and mine[0]["reason"] == "validation_failed" and "payload.x" in mine[0]["error"]
    shown = await allot(settings, "dlq", "show", "metrics.ingested", "--offset", str(mine[0]["offset"]))
    assert shown[0][0]["headers"]["x-dlq-consumer-group"] == unique
    await allot(settings, "dlq", "redrive", "metrics.ingested", "--offset", str(mine[0]["offset"]))
    rows = await allot(settings, "tail", "metrics.ingested", "--from-beginning", "--no-follow", "--workspace", unique)
    assert [r["event_id"] for r in rows] == [str(good.event_id)], "the record is back on its source topic"


async def test_replay_moves_a_stopped_group_back(settings: Any, unique: str) -> None:
    await ensure_topics(settings)
    group = f"replay-{unique}"
    await publish(settings.kafka_bootstrap, *(event(unique, f"r{i}") for i in range(5)))
    consumer = AIOKafkaConsumer("metrics.ingested", bootstrap_servers=settings.kafka_bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False, session_timeout_ms=3000,
                                heartbeat_interval_ms=500)
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while asyncio.get_running_loop().time() < deadline:
            if not await consumer.getmany(timeout_ms=500):
                break
        await consumer.commit()
    finally:
        await consumer.stop()
    dry = (await allot(settings, "replay", "metrics.ingested", "--group", group, "--any-group", "--from", "beginning",
                          "--dry-run"))[0]
    assert sum(r["to_reprocess"] for r in dry) >= 5 and all(r["committed"] == r["end"] for r in dry)
    moved = (await allot(settings, "replay", "metrics.ingested", "--group", group, "--any-group", "--from",
                          "beginning"))[0]
    assert all(r["new_offset"] == 0 for r in moved)
    check = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await check.start()
    try:
        for r in moved:
            assert await check.committed(TopicPartition("metrics.ingested", r["partition"])) == 0
    finally:
        await check.stop()


async def test_trace_follows_one_correlation_id_across_topics(settings: Any, unique: str) -> None:
    await ensure_topics(settings)
    metric = event(unique, "traced")
    request = new_envelope(event_type="allocation.requested", schema_version=1,
                           payload=EXAMPLES["allocation.requested"], producer="pools", workspace_id=unique,
                           occurred_at=datetime.now(UTC), cause=metric, step="s")
    await publish(settings.kafka_bootstrap, metric, request)
    rows = (await allot(settings, "trace", str(metric.correlation_id)))[0]
    assert [r["topic"] for r in rows] == ["metrics.ingested", "allocation.requested"]


def test_the_lag_table_names_every_consumer_group_the_services_declare() -> None:
    """`allot topics` reports lag per consumer group from CONSUMES: it must match what the services consume."""
    import importlib

    from allot.runtime.cli import CONSUMES

    declared: dict[str, set[str]] = {}
    for name in ("guardrails", "executor", "pools", "rules", "pacing", "connections", "ingest", "notify"):
        spec = importlib.import_module(f"allot.{name}.service").SPEC
        for topic in spec.consumes:
            declared.setdefault(topic, set()).add(spec.name)
    assert {t: set(groups) for t, groups in CONSUMES.items()} == declared


# ------------------------------------------------------------------ typer + rich CLI (#17)


def run_cli(settings: Any, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """`allot ARGS` as a process (no --json added), whatever its exit code."""
    env = dict(os.environ, ALLOT_KAFKA_BOOTSTRAP=settings.kafka_bootstrap)
    return subprocess.run([sys.executable, "-m", "allot.runtime.cli", *args], env=env, capture_output=True,
                          timeout=timeout, check=False)


async def cli(settings: Any, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return await asyncio.to_thread(run_cli, settings, *args, timeout=timeout)


def table_rows(text: str) -> list[list[str]]:
    """The body rows of rich tables in ``text`` (cells stripped; header rows use ┃, body rows │)."""
    return [[c.strip() for c in line.strip().strip("│").split("│")] for line in text.splitlines()
            if line.strip().startswith("│")]


def spawn(settings: Any, *args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, ALLOT_KAFKA_BOOTSTRAP=settings.kafka_bootstrap, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "allot.runtime.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


async def read_until(stream: Any, needle: str, timeout: float = 60) -> str:
    """Lines of a process's stream until one contains ``needle`` (fails after ``timeout``)."""
    seen = ""

    async def go() -> str:
        nonlocal seen
        while True:
            line = await asyncio.to_thread(stream.readline)
            if not line:
                raise AssertionError(f"stream ended before {needle!r}: {seen[-2000:]}")
            seen += line.decode()
            if needle in " ".join(seen.split()):
                return seen

    return await asyncio.wait_for(go(), timeout)


def _new(topic: str, workspace: str, **kw: Any) -> Any:
    return new_envelope(event_type=topic, schema_version=1, payload=EXAMPLES[topic], producer="test",
                        workspace_id=workspace, occurred_at=datetime.now(UTC), **kw)


async def test_topics_reads_partitions_and_end_offsets_of_every_topic_json_before_or_after(
        settings: Any, unique: str) -> None:
    """The old CLI read partitions from the consumer's metadata cache: 0 partitions, offset 0 and lag 0 for topics
    it had not assigned yet (allocation.requested, guardrail.blocked, pacing.*)."""
    from allot.contracts.registry import TOPICS, all_topic_names

    await ensure_topics(settings)
    checked = ["allocation.requested", "guardrail.blocked", "pacing.snapshot_taken", "pacing.deviation_detected"]
    before = {r["topic"]: r["end_offset"] for r in (await allot(settings, "topics"))[0]}
    await publish(settings.kafka_bootstrap, *(_new(t, unique) for t in checked for _ in range(3)))
    after_rows = (await allot(settings, "topics"))[0]  # --json before the command
    proc = await cli(settings, "topics", "--json")  # and after it
    assert proc.returncode == 0, proc.stderr.decode()
    assert [r["topic"] for r in orjson.loads(proc.stdout)] == [r["topic"] for r in after_rows]
    for row in after_rows:
        assert list(row) == ["topic", "partitions", "end_offset", "group", "committed", "lag"], row
    by_topic = {r["topic"]: r for r in after_rows}
    assert set(by_topic) == set(all_topic_names())
    for name, spec in TOPICS.items():
        assert by_topic[name]["partitions"] == spec.partitions, (name, by_topic[name])
    for name in checked:
        assert by_topic[name]["end_offset"] - before[name] == 3, (name, before[name], by_topic[name])
        for r in after_rows:
            if r["topic"] == name and r["group"] is not None:
                assert r["lag"] >= 3, r  # nobody consumes with the services' own group names in tests
    table = await cli(settings, "topics")
    assert table.returncode == 0, table.stderr.decode()
    cells = {(r[0], r[3]): r for r in table_rows(table.stdout.decode())}
    for name in checked:
        row = next(r for (t, _), r in cells.items() if t == name)
        assert row[1] == str(TOPICS[name].partitions) and int(row[2]) == by_topic[name]["end_offset"], row


def test_help_for_every_command_and_option() -> None:
    import typer.main

    from allot.runtime.cli import app

    root = typer.main.get_command(app)  # typer's own click: compare by shape, not by click's classes
    seen = []

    def walk(cmd: Any, path: str) -> None:
        seen.append(path)
        assert (cmd.help or "").strip(), f"{path} has no help"
        for param in cmd.params:
            assert (getattr(param, "help", "") or "").strip(), f"{path} {param.opts} has no help"
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, f"{path} {name}")

    walk(root, "allot")
    assert {"allot topics", "allot topics create", "allot tail", "allot replay", "allot dlq list", "allot dlq show",
            "allot dlq redrive", "allot trace", "allot keys create", "allot keys generate"} <= set(seen)
    proc = subprocess.run([sys.executable, "-m", "allot.runtime.cli", "replay", "--help"], capture_output=True,
                          check=False, env=dict(os.environ, COLUMNS="200"))
    assert proc.returncode == 0 and "--to-latest" in proc.stdout.decode() and "--group" in proc.stdout.decode()


async def test_replay_refuses_a_group_no_service_has_and_moves_nothing(settings: Any, unique: str) -> None:
    await ensure_topics(settings)
    for typo in ("rulez", "executor"):  # a typo, and a service that does not consume metrics.ingested
        proc = await cli(settings, "replay", "metrics.ingested", "--group", typo, "--from", "beginning")
        message = " ".join(proc.stderr.decode().split())
        assert proc.returncode == 2, message
        assert f"unknown group '{typo}' for metrics.ingested" in message and "pools, rules, pacing" in message
    check = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id="rulez", enable_auto_commit=False)
    await check.start()
    try:
        for p in range(6):
            assert await check.committed(TopicPartition("metrics.ingested", p)) is None
    finally:
        await check.stop()


async def test_dlq_show_and_list_say_when_there_is_nothing(settings: Any, unique: str) -> None:
    await ensure_topics(settings)
    table = await cli(settings, "dlq", "show", "guardrail.approved", "--offset", "999999")
    assert table.returncode == 0, table.stderr.decode()
    assert table.stdout.decode().strip() == "no records in guardrail.approved.dlq at offset 999999"
    for args in (["dlq", "show", "guardrail.approved", "--offset", "999999", "--json"],  # --json at every level
                 ["dlq", "--json", "show", "guardrail.approved", "--offset", "999999"],
                 ["--json", "dlq", "show", "guardrail.approved", "--offset", "999999"]):
        js = await cli(settings, *args)
        assert orjson.loads(js.stdout) == [] and "no records in guardrail.approved.dlq" in js.stderr.decode(), args
    for args in (["topics", "--json", "create"], ["topics", "create", "--json"]):
        js = await cli(settings, *args)
        assert orjson.loads(js.stdout) == [] and "all topics exist" in js.stderr.decode(), args
    listed = await cli(settings, "dlq", "list", "guardrail.approved", "--reason", f"nothing-{unique}")
    said = " ".join(listed.stdout.decode().split())
    assert f"no records in guardrail.approved.dlq with reason nothing-{unique}" in said
    unknown = await cli(settings, "dlq", "show", "no.such.topic")
    assert unknown.returncode == 2 and "unknown topic 'no.such.topic'" in unknown.stderr.decode()


async def test_tail_on_an_unknown_entity_says_what_it_waits_for_then_shows_it(settings: Any, unique: str) -> None:
    await ensure_topics(settings)
    proc = spawn(settings, "tail", "metrics.ingested", "--workspace", unique, "--entity", "ghost", "--limit", "1",
                 "--json")
    try:
        said = await read_until(proc.stderr, "waiting for new records on metrics.ingested matching "
                                             f"workspace {unique}, entity ghost")
        assert "Ctrl-C" in said
        await publish(settings.kafka_bootstrap, event(unique, "other"), event(unique, "ghost"))
        out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = [orjson.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert [(r["workspace"], r["entity"], r["topic"]) for r in rows] == [(unique, "ghost", "metrics.ingested")]
    assert rows[0]["body"]["payload"]["entity_id"] == "ghost" and rows[0]["event_id"] == rows[0]["body"]["event_id"]
    assert proc.returncode == 0


async def test_replay_to_latest_watches_the_lag_until_the_group_has_caught_up(settings: Any, unique: str) -> None:
    await ensure_topics(settings)
    group = f"watch-{unique}"
    await publish(settings.kafka_bootstrap, *(event(unique, f"w{i}") for i in range(4)))
    proc = spawn(settings, "replay", "metrics.ingested", "--group", group, "--any-group", "--from", "beginning",
                 "--to-latest", "--watch-timeout", "90", "--json")
    try:
        await read_until(proc.stderr, f"watching {group}'s lag on metrics.ingested", timeout=90)
        assert proc.poll() is None, "it waits while the group lags"
        consumer = AIOKafkaConsumer("metrics.ingested", bootstrap_servers=settings.kafka_bootstrap, group_id=group,
                                    auto_offset_reset="earliest", enable_auto_commit=False, session_timeout_ms=3000,
                                    heartbeat_interval_ms=500)
        await consumer.start()
        try:  # the "service" starts and reprocesses everything
            deadline = asyncio.get_running_loop().time() + 60
            while asyncio.get_running_loop().time() < deadline and proc.poll() is None:
                await consumer.getmany(timeout_ms=500)
                if consumer.assignment():
                    await consumer.commit()
        finally:
            await consumer.stop()
        out, err_ = await asyncio.to_thread(proc.communicate, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err_.decode()[-2000:]
    assert f"{group} caught up with metrics.ingested: lag 0" in " ".join(err_.decode().split())
    rows = orjson.loads(out)
    assert [list(r) for r in rows] == [["partition", "committed", "new_offset", "end", "to_reprocess"]] * 6
    assert sum(r["to_reprocess"] for r in rows) >= 4


async def test_trace_starts_at_the_metric_behind_the_decision(settings: Any, unique: str) -> None:
    """A decision with its own correlation id whose causation id is the metric: trace goes back to the metric."""
    import uuid

    await ensure_topics(settings)
    metric = event(unique, "cause")
    decision = uuid.uuid4()
    request = _new("allocation.requested", unique, correlation_id=decision, causation_id=metric.event_id)
    approval = _new("guardrail.approved", unique, cause=request, step="approve")
    await publish(settings.kafka_bootstrap, metric, request, approval)
    rows = (await allot(settings, "trace", str(decision)))[0]
    assert [(r["topic"], r["event_id"]) for r in rows] == [
        ("metrics.ingested", str(metric.event_id)), ("allocation.requested", str(request.event_id)),
        ("guardrail.approved", str(approval.event_id))]
    assert rows[0]["link"] == "cause" and list(rows[0]) == ["time", "topic", "event_id", "causation_id", "entity",
                                                            "link", "summary"]
    table = await cli(settings, "trace", str(decision))
    assert table.returncode == 0, table.stderr.decode()
    assert [r[1] for r in table_rows(table.stdout.decode())] == ["metrics.ingested", "allocation.requested",
                                                                "guardrail.approved"]
    missing = await cli(settings, "trace", str(uuid.uuid4()))
    assert missing.returncode == 1 and "no records with correlation or event id" in missing.stdout.decode()


async def test_trace_of_a_scheduled_decision_starts_at_the_last_metric_of_its_entities(
        settings: Any, unique: str) -> None:
    """A pool slot or rule run has no single record as its cause: trace shows the metric the decision saw."""
    await ensure_topics(settings)
    entity = f"sched-{unique}"
    older, latest = event(unique, entity), event(unique, entity)
    later = event(unique, entity)  # reported after the decision: not what it saw
    actions = [a.model_copy(update={"entity_id": entity}) for a in EXAMPLES["allocation.requested"].actions]
    payload = EXAMPLES["allocation.requested"].model_copy(update={"actions": actions})
    request = new_envelope(event_type="allocation.requested", schema_version=1, payload=payload, producer="pools",
                           workspace_id=unique, occurred_at=datetime.now(UTC))
    await publish(settings.kafka_bootstrap, older, latest, request)
    later = later.model_copy(update={"occurred_at": datetime.now(UTC)})
    await publish(settings.kafka_bootstrap, later)
    rows = (await allot(settings, "trace", str(request.correlation_id)))[0]
    assert [(r["topic"], r["event_id"], r["link"]) for r in rows] == [
        ("metrics.ingested", str(latest.event_id), "last metric before"),
        ("allocation.requested", str(request.event_id), "correlation")]


README_CHECKED = {"topics", "topics create", "tail", "replay", "dlq list", "dlq show", "dlq redrive", "trace",
                  "--help", "replay --help"}


def readme_cli_commands() -> list[str]:
    """The commands of the README's CLI section, one per entry (`a ; b` is two), comments dropped."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[2] / "README.md").read_text()
    section = text.split("## Operating it: the `allot` CLI", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    commands = []
    for line in block.group(1).splitlines():
        for part in line.split(" ; "):
            part = part.split("  #", 1)[0].strip()
            if part:
                assert part.startswith("allot "), part
                commands.append(part)
    return commands


def _kind(argv: list[str]) -> str:
    words = [a for a in argv if not a.startswith("-") or a == "--help"]
    if words[:2] in (["topics", "create"], ["dlq", "list"], ["dlq", "show"], ["dlq", "redrive"], ["replay", "--help"]):
        return " ".join(words[:2])
    return words[0]


async def test_every_readme_cli_command_works_as_written_table_and_json(settings: Any, unique: str) -> None:
    import shlex

    from allot.contracts import encode
    from allot.contracts.registry import all_topic_names

    await ensure_topics(settings)
    metric = event(unique, "readme")
    request = _new("allocation.requested", unique, cause=metric, step="readme")
    await publish(settings.kafka_bootstrap, metric, request)
    for i in range(4):  # so that allocation.requested.dlq has an offset 3 to show and redrive
        rec = encode(_new("allocation.requested", unique))
        await publish_raw(settings.kafka_bootstrap, "allocation.requested.dlq", rec.value, key=rec.key,
                          headers=[*rec.headers, ("x-dlq-reason", b"readme_test"), ("x-dlq-error", f"#{i}".encode()),
                                   ("x-dlq-source-topic", b"allocation.requested"), ("x-dlq-partition", b"0"),
                                   ("x-dlq-offset", str(i).encode()), ("x-dlq-consumer-group", unique.encode())])
    commands = readme_cli_commands()
    assert {_kind(shlex.split(c)[1:]) for c in commands} == README_CHECKED, commands
    for command in commands:
        argv = shlex.split(command.replace("<correlation_id>", str(metric.correlation_id)))[1:]
        kind = _kind(argv)
        for as_json in ((False,) if "--help" in argv else (False, True)):
            args = [*argv, "--json"] if as_json else argv
            if kind == "tail" and "--no-follow" not in argv:  # follows: it must say what it waits for
                proc = spawn(settings, *args)
                try:
                    said = await read_until(proc.stderr, "waiting for new records on metrics.ingested matching "
                                                         "workspace demo, entity as_1")
                finally:
                    proc.kill()
                    out, _ = await asyncio.to_thread(proc.communicate, timeout=30)
                assert "Ctrl-C" in said
                for line in out.decode().splitlines():  # whatever arrived meanwhile is demo's as_1
                    row = orjson.loads(line) if as_json else None
                    assert row is None or (row["workspace"], row["entity"]) == ("demo", "as_1")
                continue
            proc = await cli(settings, *args)
            out, err_ = proc.stdout.decode(), " ".join(proc.stderr.decode().split())
            assert proc.returncode == 0, (command, as_json, err_[-2000:])
            if kind == "tail":
                rows = [orjson.loads(line) for line in out.splitlines()] if as_json else None
                assert rows is None or (len(rows) <= 20 and all(r["workspace"] == "demo" for r in rows))
                if not out.strip():
                    assert "no records in action.executed matching workspace demo" in err_
                continue
            if kind in ("--help", "replay --help"):
                assert "Usage: allot" in out and ("--to-latest" in out if kind == "replay --help" else "trace" in out)
                continue
            data = orjson.loads(out) if as_json else None
            cells = table_rows(out)
            if not as_json:  # a table for people: not JSON unless asked
                with pytest.raises(orjson.JSONDecodeError):
                    orjson.loads(out)
            if kind == "topics":
                if as_json:
                    assert {r["topic"] for r in data} == set(all_topic_names())
                else:
                    assert {r[0] for r in cells} == set(all_topic_names())
            elif kind == "topics create":
                assert data == [] if as_json else "all topics exist; nothing created" in out
            elif kind == "replay":
                group_rows = data if as_json else [dict(zip(["partition", "committed", "new_offset", "end",
                                                             "to_reprocess"], r, strict=True)) for r in cells]
                assert sorted(int(r["partition"]) for r in group_rows) == list(range(6)), out
                if "--dry-run" in argv:
                    assert "dry run: nothing changed" in err_
                else:
                    assert "group rules moved" in err_
                    check = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id="rules",
                                             enable_auto_commit=False)
                    await check.start()
                    try:
                        for r in group_rows:
                            tp = TopicPartition("metrics.ingested", int(r["partition"]))
                            assert await check.committed(tp) == int(r["new_offset"])
                    finally:
                        await check.stop()
            elif kind == "dlq list":
                mine = [r for r in data if r["group"] == unique] if as_json else [r for r in cells if unique in r]
                assert len(mine) == 4, out
                assert all(r["reason"] == "readme_test" for r in mine) if as_json else all(
                    "readme_test" in r for r in mine)
                sources = {r["source"] for r in mine} if as_json else {r[4] for r in mine}  # brackets kept
                assert sources == {f"allocation.requested[0]@{i}" for i in range(4)}, sources
            elif kind == "dlq show":
                if as_json:
                    assert [r["offset"] for r in data] == [3] and "x-dlq-reason" in data[0]["headers"]
                else:
                    assert "allocation.requested.dlq@3" in out and "x-dlq-reason" in out
            elif kind == "dlq redrive":
                assert data == [{"redriven": 1, "dlq": "allocation.requested.dlq"}] if as_json else (
                    cells == [["1", "allocation.requested.dlq"]])
            elif kind == "trace":
                topics = [r["topic"] for r in data] if as_json else [r[1] for r in cells]
                assert topics == ["metrics.ingested", "allocation.requested"], out
            else:
                raise AssertionError(f"no check for {command}")


def test_an_unreachable_broker_is_one_line_not_a_traceback() -> None:
    env = dict(os.environ, ALLOT_KAFKA_BOOTSTRAP="127.0.0.1:1")
    proc = subprocess.run([sys.executable, "-m", "allot.runtime.cli", "topics", "--json"], env=env,
                          capture_output=True, timeout=60, check=False)
    said = " ".join(proc.stderr.decode().split())
    assert proc.returncode == 1 and proc.stdout == b"", said
    assert "error: cannot use the broker at 127.0.0.1:1" in said and "Traceback" not in said


async def test_tables_print_record_text_literally_not_as_markup(settings: Any, unique: str) -> None:
    await ensure_topics(settings)
    await publish_raw(settings.kafka_bootstrap, "guardrail.blocked.dlq", b"{not json", key=b"k",
                      headers=[("x-dlq-reason", b"invalid_json"), ("x-dlq-error", b"bad [bold]value[/bold]"),
                               ("x-dlq-consumer-group", unique.encode()), ("x-dlq-source-topic", b"guardrail.blocked"),
                               ("x-dlq-partition", b"1"), ("x-dlq-offset", b"9")])
    proc = await cli(settings, "dlq", "list", "guardrail.blocked", "--reason", "invalid_json")
    assert proc.returncode == 0, proc.stderr.decode()
    mine = [r for r in table_rows(proc.stdout.decode()) if r[2] == unique]
    assert [(r[4], r[5]) for r in mine] == [("guardrail.blocked[1]@9", "bad [bold]value[/bold]")], proc.stdout.decode()


async def test_the_readmes_inline_allot_commands_work_as_written(settings: Any, unique: str) -> None:
    """The `allot ...` commands quoted in the README's prose (keys, a following tail), table and --json."""
    import re
    import shlex
    from pathlib import Path

    await ensure_topics(settings)
    text = (Path(__file__).parents[2] / "README.md").read_text()
    quoted = sorted({c for c in re.findall(r"`(allot [^`]*)`", text)
                     if not re.search(r"[A-Z]{4,}|\|", c) and c not in ("allot tail", "allot trace")})
    assert {"allot keys create --workspace acme --role operator", "allot keys generate --recipient ingest",
            "allot tail action.executed --workspace demo"} <= set(quoted), quoted
    for command in quoted:
        argv = shlex.split(command)[1:]
        if argv[0] == "tail":
            proc = spawn(settings, *argv)
            try:
                await read_until(proc.stderr, "waiting for new records on action.executed matching workspace demo")
            finally:
                proc.kill()
                await asyncio.to_thread(proc.communicate, timeout=30)
            continue
        table, js = await cli(settings, *argv), await cli(settings, *argv, "--json")
        assert table.returncode == 0 and js.returncode == 0, (command, table.stderr, js.stderr)
        data = orjson.loads(js.stdout)
        if argv[:2] == ["keys", "create"]:
            assert list(data) == ["key", "entry"] and data["entry"]["workspace_id"] == "acme", data
            assert data["entry"]["role"] == "operator" and "API key (shown once" in table.stdout.decode()
        elif argv[:2] == ["keys", "generate"]:
            assert data["recipient"] == "ingest" and data["public_entry"].startswith("ingest=")
            assert "ALLOT_SEALING_PRIVATE_KEYS=" in table.stdout.decode()
        else:
            raise AssertionError(f"no check for {command}")
