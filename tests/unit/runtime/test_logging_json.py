"""One log format: after configure_logging, stdlib loggers (uvicorn, aiokafka, asyncio, warnings) and structlog's
all write JSON lines with the same keys; uvicorn as the services start it installs no plain-text handlers."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from allot.runtime import service as runtime_service
from allot.runtime.logging import configure_logging, get_logger
from allot.runtime.settings import Settings

KEYS = {"event", "level", "timestamp", "service"}


def _lines(out: str) -> list[dict[str, Any]]:
    """Every line of the output as JSON (fails on any non-JSON line, a plain-text one included)."""
    lines = out.splitlines()
    assert lines, "nothing was logged"
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    return parsed


def _one(records: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [r for r in records if all(r.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, records)
    return found[0]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    uv = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate, logging.getLogger(n).level)
          for n in ("uvicorn", "uvicorn.error", "uvicorn.access", "aiokafka", "asyncio", "faststream")}
    yield
    logging.captureWarnings(False)
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (h, propagate, lvl) in uv.items():
        logger = logging.getLogger(name)
        logger.handlers[:], logger.propagate = h, propagate
        logger.setLevel(lvl)


def test_stdlib_libraries_and_structlog_log_the_same_json(capsys: pytest.CaptureFixture[str]) -> None:
    # captureWarnings(True) is a no-op while an earlier call's capture is on (an earlier test's services): reset it,
    # so the setup below routes this test's warnings (pytest swaps showwarning per test) to logging.
    logging.captureWarnings(False)
    configure_logging("pools", "INFO")
    logging.getLogger("aiokafka").warning("Heartbeat failed for group %s because it is rebalancing", "pools")
    logging.getLogger("aiokafka").info("below the library's WARNING floor")
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 4242)
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        logging.getLogger("asyncio").error("Task exception was never retrieved", exc_info=True)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a deprecated thing", UserWarning, stacklevel=1)
    get_logger("allot.pools").info("pool_allocated", pool_id="p1", api_token="s3cret")

    records = _lines(capsys.readouterr().out)
    assert len(records) == 5, records
    for record in records:
        assert set(record) >= KEYS, record
        assert record["service"] == "pools"
        assert record["timestamp"].endswith("Z")

    kafka = _one(records, logger="aiokafka")
    assert kafka["event"] == "Heartbeat failed for group pools because it is rebalancing"
    assert kafka["level"] == "warning"
    assert _one(records, logger="uvicorn.error")["event"] == "Started server process [4242]"
    crash = _one(records, logger="asyncio")
    assert crash["level"] == "error" and "RuntimeError: boom\nsecond line" in crash["exception"]
    assert "a deprecated thing" in _one(records, logger="py.warnings")["event"]
    ours = _one(records, event="pool_allocated")
    assert ours["pool_id"] == "p1" and ours["api_token"] == "***"


def test_a_library_handler_installed_earlier_is_replaced(capsys: pytest.CaptureFixture[str]) -> None:
    """uvicorn's default dictConfig gives its loggers plain-text handlers (propagate off); the setup undoes that."""
    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)
    assert logging.getLogger("uvicorn").handlers
    configure_logging("rules", "INFO")
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    logging.getLogger("uvicorn.access").warning('127.0.0.1 - "GET / HTTP/1.1" 500')
    records = _lines(capsys.readouterr().out)
    assert [r["logger"] for r in records] == ["uvicorn.error", "uvicorn.access"]
    assert all(set(r) >= KEYS and r["service"] == "rules" for r in records)


def test_a_real_uvicorn_server_started_like_the_services_logs_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("guardrails", "INFO")
    app = FastAPI()
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    server.should_exit = True
    thread.join(10)
    records = _lines(capsys.readouterr().out)
    events = [r["event"] for r in records]
    assert any(e.startswith("Started server process") for e in events), events
    assert any(e.startswith("Uvicorn running on http://127.0.0.1:") for e in events), events
    assert any(e == "Shutting down" for e in events), events
    assert all(r["logger"].startswith("uvicorn") and r["service"] == "guardrails" for r in records)


def test_asyncio_unhandled_task_error_is_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("pacing", "INFO")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_exception_handler({"message": "Task exception was never retrieved",
                                     "exception": ValueError("lost"), "future": None})

    asyncio.run(main())
    record = _one(_lines(capsys.readouterr().out), logger="asyncio")
    assert record["event"].startswith("Task exception was never retrieved")
    assert "ValueError: lost" in record["exception"]


def test_service_run_sets_up_json_logging_before_uvicorn_and_no_uvicorn_log_config(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from allot.rules.service import SPEC

    seen: dict[str, Any] = {}

    def fake_uvicorn_run(app: Any, **kwargs: Any) -> None:
        seen.update(kwargs)
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 7)

    monkeypatch.setattr(runtime_service.uvicorn, "run", fake_uvicorn_run)
    settings = Settings(service_name="rules", kafka_bootstrap="127.0.0.1:1", database_url="postgresql://x@127.0.0.1:1/x",
                        database_schema="t_logging")
    runtime_service.run(SPEC, settings)
    assert seen["log_config"] is None
    assert seen["access_log"] is False
    record = _one(_lines(capsys.readouterr().out), logger="uvicorn.error")
    assert record["event"] == "Started server process [7]" and record["service"] == "rules"


def test_sandbox_main_sets_up_json_logging_before_uvicorn(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from allot.sandbox import service as sandbox_service

    seen: dict[str, Any] = {}

    def fake_uvicorn_run(app: Any, **kwargs: Any) -> None:
        seen.update(kwargs)
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 8)

    monkeypatch.setattr(sandbox_service.uvicorn, "run", fake_uvicorn_run)
    monkeypatch.setenv("ALLOT_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    sandbox_service.main()
    assert seen["log_config"] is None
    record = _one(_lines(capsys.readouterr().out), logger="uvicorn.error")
    assert record["service"] == "sandbox"


def test_faststream_logger_loses_its_own_stderr_handler(capsys: pytest.CaptureFixture[str]) -> None:
    """faststream gives its logger a plain-text stderr handler with propagate off at import."""
    import faststream  # noqa: F401

    configure_logging("executor", "INFO")
    logging.getLogger("faststream").warning("Consumer %s stopped", "g")
    captured = capsys.readouterr()
    assert captured.err == ""
    record = _one(_lines(captured.out), logger="faststream")
    assert record["event"] == "Consumer g stopped" and record["service"] == "executor"
