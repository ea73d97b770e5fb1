"""A service process stops cleanly on SIGTERM: HTTP closes, the consumer finishes, the relay drains."""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path

import pytest

from allot.runtime.stack import start_stack

pytestmark = pytest.mark.e2e


def test_sigterm_shuts_a_service_down_gracefully(kafka_bootstrap: str, database_url: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="allot-e2e-sigterm-"))
    stack = start_stack(root, services=["guardrails"], bootstrap=kafka_bootstrap, database_url=database_url,
                        quiet=True, random_ports=True)
    try:
        proc = stack.processes["guardrails"]
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status says "terminated by SIGTERM"
        assert proc.wait(20) in (0, -signal.SIGTERM)
        log = (root / "logs" / "guardrails.log").read_text()
        assert log.index('"service_stopping"') < log.index('"service_stopped"')
    finally:
        stack.stop()
