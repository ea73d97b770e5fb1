"""ALLOT_CONSOLE_* and the service URLs the console calls (ALLOT_<SERVICE>_URL, as `make run` exports them)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from allot.runtime.settings import Settings


class ConsoleSettings(Settings):
    pools_url: str | None = None
    executor_url: str | None = None
    rules_url: str | None = None
    pacing_url: str | None = None
    console_session_ttl_s: int = Field(default=8 * 3600, ge=60, description="Idle seconds before a session ends.")
    console_secure_cookie: Literal["auto", "always", "never"] = Field(
        default="auto", description="Secure cookie flag: auto = when the request came over TLS (https).")
    console_request_timeout_s: float = Field(default=25.0, gt=0, description="Seconds to wait for a service.")
    console_htmx_path: str | None = Field(
        default=None, description="htmx.min.js installed at set-up (default: <venv>/share/allot-console/).")
