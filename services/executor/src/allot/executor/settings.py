"""Executor settings: platform credentials live here and in no other service."""

from __future__ import annotations

from pydantic import SecretStr

from allot.runtime.settings import Settings


class ExecutorSettings(Settings):
    """ALLOT_* variables; the platform credentials come from a Secret in production."""

    sandbox_url: str = "http://127.0.0.1:8100"
    sandbox_token: SecretStr = SecretStr("sandbox-token")
    meta_base_url: str = "https://graph.facebook.com"
    meta_api_version: str = "v21.0"
    meta_access_token: SecretStr | None = None
    platform_timeout_s: float = 10.0
    max_attempts: int = 5
    retry_base_s: float = 2.0
    retry_cap_s: float = 120.0
    undo_window_h: int = 72
    worker_concurrency: int = 8
