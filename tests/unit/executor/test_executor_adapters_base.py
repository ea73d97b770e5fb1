"""The platform port: budget minimums, error types, Retry-After parsing and protocol conformance."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from allot.executor.adapters import (
    PermanentPlatformError,
    PlatformAuthError,
    PlatformClient,
    TransientPlatformError,
    min_budget_cents,
)
from allot.executor.adapters._http import parse_retry_after
from allot.executor.adapters.base import redact
from allot.executor.adapters.meta import MetaGraphClient, is_transient_graph_code
from allot.executor.adapters.sandbox import SandboxClient


@pytest.mark.parametrize(
    ("platform", "entity_type", "cents"),
    [
        ("google", "campaign", 100),
        ("tiktok", "adset", 2000),
        ("tiktok", "campaign", 5000),
        ("meta", "adset", 200),
        ("meta", "campaign", 200),
        ("sandbox", "campaign", 200),
        ("snapchat", "campaign", 200),
        ("google", "unknown_level", 200),
    ],
)
def test_min_budget_follows_platform_minimums(platform: str, entity_type: str, cents: int) -> None:
    assert min_budget_cents(platform, entity_type) == cents


def test_error_types_carry_retry_after_and_code() -> None:
    transient = TransientPlatformError("slow down", 2.5)
    permanent = PlatformAuthError("bad token", 190)
    assert transient.retry_after_s == 2.5 and str(transient) == "slow down"
    assert isinstance(permanent, PermanentPlatformError) and permanent.code == 190
    assert TransientPlatformError("x").retry_after_s is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("3", 3.0),
        ("1.5", 1.5),
        ("-4", 0.0),
        ("soon", None),
        ("Wed, 01 May 2024 00:00:10 GMT", 10.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=datetime(2024, 5, 1, tzinfo=UTC)) == expected


@pytest.mark.parametrize(
    ("code", "transient"),
    [
        (4, True),
        (17, True),
        (32, True),
        (613, True),
        (80000, True),
        (80004, True),
        (80014, True),
        (80015, False),
        (100, False),
        (190, False),
        (None, False),
    ],
)
def test_graph_transient_codes(code: int | None, transient: bool) -> None:
    assert is_transient_graph_code(code) is transient


def test_redact_hides_every_secret() -> None:
    assert redact("token abc and abc", "abc", None, "") == "token *** and ***"


async def test_adapters_satisfy_the_protocol_and_hide_tokens_in_repr() -> None:
    sandbox = SandboxClient("http://127.0.0.1:9", "sekrit-sandbox-token")
    meta = MetaGraphClient("http://127.0.0.1:9", "v21.0", "sekrit-meta-token")
    try:
        assert isinstance(sandbox, PlatformClient) and isinstance(meta, PlatformClient)
        assert "sekrit" not in repr(sandbox) and "sekrit" not in repr(meta)
        assert sandbox.platform == "sandbox" and meta.platform == "meta"
    finally:
        await sandbox.aclose()
        await meta.aclose()


def test_clients_require_a_token() -> None:
    with pytest.raises(ValueError):
        SandboxClient("http://x", "")
    with pytest.raises(ValueError):
        MetaGraphClient("http://x", "v21.0", "")


def _typed_conformance(sandbox: SandboxClient, meta: MetaGraphClient) -> list[PlatformClient]:
    """Checked by mypy, not run: both adapters are assignable to the port, idempotency_key included."""
    return [sandbox, meta]
