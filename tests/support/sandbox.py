"""The sandbox ad platform served on loopback for tests, and an HTTP client that speaks to it with its token."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from allot.sandbox.app import create_app as create_sandbox
from allot.sandbox.state import SandboxState
from allot.sandbox.testing import serve_app


@contextmanager
def sandbox_server(token: str) -> Iterator[tuple[str, SandboxState]]:
    """A sandbox accepting ``token``, served on loopback: (its URL, its state)."""
    state = SandboxState(api_token=token)
    with serve_app(create_sandbox(state)) as url:
        yield url, state


def sandbox_client(url: str, token: str) -> httpx.Client:
    """An HTTP client for the sandbox at ``url``, authorised with ``token``."""
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
