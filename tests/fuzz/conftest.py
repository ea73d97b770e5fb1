"""Fixtures of the fuzz suite: one running service at a time (see fuzz_support.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from allot.runtime.settings import Settings
from tests.fuzz.fuzz_support import Runners


@pytest.fixture(scope="session")
def fuzz_runners(kafka_bootstrap: str, database_url: str) -> Iterator[Runners]:
    """Depends on the broker and Postgres so that the running service stops before they do."""
    runners = Runners()
    try:
        yield runners
    finally:
        runners.close()


@pytest.fixture(scope="session")
def fuzz_base_settings(kafka_bootstrap: str, database_url: str) -> Settings:
    """Settings for the fuzzed services (each runner gets a schema of its own)."""
    return Settings(service_name="test", kafka_bootstrap=kafka_bootstrap, database_url=database_url,
                    database_schema=f"fz_{uuid.uuid4().hex[:8]}", kafka_session_timeout_ms=3000,
                    kafka_heartbeat_interval_ms=500)
