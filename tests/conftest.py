"""Fixtures: a real Kafka-protocol broker and a real PostgreSQL for the whole session.

Order of preference (the same tests run in all three modes):
1. ALLOT_TEST_KAFKA_BOOTSTRAP / ALLOT_TEST_DATABASE_URL from the environment;
2. testcontainers (Apache Kafka, PostgreSQL) when a Docker engine answers;
3. the embedded broker (Tansu) and embedded PostgreSQL on free ports.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from allot.runtime.settings import Settings

# Tests are a development environment: services they start (in process or as processes, which inherit the
# environment) accept the short approval secrets tests use. tests/security/test_hardening.py checks that
# outside development they refuse to start.
os.environ.setdefault("ALLOT_ENV", "development")
# Most tests reference sandbox accounts nobody registered: only an account another workspace has connected is
# refused. Tests of tenancy turn strict mode on (require_connected_accounts=True).
os.environ.setdefault("ALLOT_REQUIRE_CONNECTED_ACCOUNTS", "false")


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    env = os.environ.get("ALLOT_TEST_KAFKA_BOOTSTRAP")
    if env:
        yield env
        return
    if _docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    from allot.runtime.embedded import start_broker

    broker = start_broker(log_path=Path(tempfile.gettempdir()) / f"allot-test-broker-{os.getpid()}.log")
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    env = os.environ.get("ALLOT_TEST_DATABASE_URL")
    if env:
        yield env
        return
    if _docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:18-alpine", driver=None) as pg:
            yield pg.get_connection_url()
        return
    from allot.runtime.embedded import start_postgres

    pg = start_postgres(Path(tempfile.mkdtemp(prefix="allot-test-pg-")) / "data")
    try:
        yield pg.dsn
    finally:
        pg.stop()


@pytest.fixture
def unique() -> str:
    """A short unique suffix so tests never collide (schemas, topics, groups, ids)."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def settings(kafka_bootstrap: str, database_url: str, unique: str) -> Settings:
    """Settings pointing at the session's broker and Postgres, with a schema of the test's own."""
    return Settings(
        service_name="test",
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url,
        database_schema=f"t_{unique}",
        kafka_session_timeout_ms=3000,
        kafka_heartbeat_interval_ms=500,
    )
