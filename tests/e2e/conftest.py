"""End-to-end fixtures: services as real processes against the session's broker and Postgres."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from allot.runtime.auth import generate_key
from allot.runtime.stack import RunningStack, start_stack

SECRET = "e2e-approval-secret"
SANDBOX_TOKEN = "e2e-sandbox-token"


@dataclass
class E2E:
    stack: RunningStack
    workspaces: list[str]
    keys: dict[str, str]  # workspace -> raw admin key

    def api(self, service: str, workspace: str) -> httpx.Client:
        return httpx.Client(base_url=self.stack.url(service), timeout=20,
                            headers={"Authorization": f"Bearer {self.keys[workspace]}"})

    def sandbox(self) -> httpx.Client:
        return httpx.Client(base_url=self.stack.url("sandbox"), timeout=20,
                            headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"})


def make_stack(kafka_bootstrap: str, database_url: str, services: list[str], n_workspaces: int = 8,
               extra_env: dict[str, str] | None = None) -> tuple[RunningStack, list[str], dict[str, str]]:
    prefix = uuid.uuid4().hex[:6]
    workspaces = [f"e2e-{prefix}-{i}" for i in range(n_workspaces)]
    keys, entries = {}, []
    for ws in workspaces:
        raw, entry = generate_key(ws, "admin")
        keys[ws] = raw
        entries.append(entry.model_dump())
    env = {"ALLOT_APPROVAL_SECRET": SECRET, "ALLOT_SANDBOX_TOKEN": SANDBOX_TOKEN,
           "ALLOT_KAFKA_SESSION_TIMEOUT_MS": "4000", "ALLOT_KAFKA_HEARTBEAT_INTERVAL_MS": "800",
           "ALLOT_RETRY_BASE_S": "0.2", "ALLOT_RETRY_CAP_S": "1",
           **(extra_env or {})}
    stack = start_stack(Path(tempfile.mkdtemp(prefix="allot-e2e-")), services=services, bootstrap=kafka_bootstrap,
                        database_url=database_url, api_keys=entries, extra_env=env, quiet=True,
                        random_ports=True)
    return stack, workspaces, keys


@pytest.fixture(scope="module")
def write_path(kafka_bootstrap: str, database_url: str) -> Iterator[E2E]:
    stack, workspaces, keys = make_stack(kafka_bootstrap, database_url, ["sandbox", "guardrails", "executor"])
    try:
        yield E2E(stack, workspaces, keys)
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def full_stack(kafka_bootstrap: str, database_url: str) -> Iterator[E2E]:
    """Sandbox, guardrails, executor, pools and rules as processes (real clock)."""
    stack, workspaces, keys = make_stack(
        kafka_bootstrap, database_url, ["sandbox", "guardrails", "executor", "pools", "rules"],
        extra_env={"ALLOT_POOLS_MANUAL_RATE_LIMIT_S": "2", "ALLOT_MAX_ATTEMPTS": "1"})
    try:
        yield E2E(stack, workspaces, keys)
    finally:
        stack.stop()
