"""Executor settings: platform credentials live here and in no other service."""

from __future__ import annotations

from pydantic import Field, SecretStr

from allot.contracts.platforms import META_DEFAULT_API_VERSION
from allot.runtime.settings import Settings


class ExecutorSettings(Settings):
    """ALLOT_* variables; the platform credentials come from a Secret in production."""

    sandbox_url: str = "http://127.0.0.1:8100"
    sandbox_token: SecretStr = SecretStr("sandbox-token")
    meta_base_url: str = "https://graph.facebook.com"
    meta_api_version: str = Field(default=META_DEFAULT_API_VERSION, pattern=r"^v\d+\.\d+$")
    """ALLOT_META_API_VERSION: the Graph / Marketing API version; /readyz warns 60 days before its expiry."""
    meta_access_token: SecretStr | None = None
    """A global write token (single-tenant setups); per-workspace connection tokens take precedence."""
    meta_app_secret: SecretStr | None = None
    """ALLOT_META_APP_SECRET: every Graph call then carries appsecret_proof = HMAC-SHA256(secret, token)."""
    meta_slow_down_at_pct: float = Field(default=75.0, gt=0, lt=100)
    """Rate-limit usage (percent) from which calls to an ad account are spaced out."""
    meta_max_spacing_s: float = Field(default=20.0, ge=0)
    meta_max_inline_wait_s: float = Field(default=2.0, ge=0)
    """Longer waits release the action (retried later, not counted as an attempt) instead of holding its lock."""
    meta_config_retry_s: float = Field(default=300.0, gt=0)
    """How often actions are retried while Graph reports a configuration problem (deprecated version)."""
    meta_config_give_up_h: float = Field(default=24.0, gt=0)
    """After this long pending on a configuration problem an action fails with that problem as its error."""
    platform_timeout_s: float = 10.0
    max_attempts: int = 5
    retry_base_s: float = 2.0
    retry_cap_s: float = 120.0
    undo_window_h: int = 72
    worker_concurrency: int = 8
