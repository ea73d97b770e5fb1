"""Server-side sessions: the cookie holds only a random id; the API key, role and CSRF token stay on the server."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from allot.runtime.auth import ROLE_RANK

COOKIE = "allot_console"


@dataclass
class Session:
    sid: str
    csrf: str
    api_key: str | None = None
    key_id: str = ""
    workspace_id: str = ""
    role: str = ""
    last_seen: float = field(default_factory=time.monotonic)
    flash: list[tuple[str, str]] = field(default_factory=list)
    #: Work in progress kept between pages (the new-rule wizard's draft under ``"rule"``).
    drafts: dict[str, Any] = field(default_factory=dict)

    @property
    def signed_in(self) -> bool:
        return self.api_key is not None

    def can(self, role: str) -> bool:
        return self.signed_in and ROLE_RANK[self.role] >= ROLE_RANK[role]

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf, str(token))


class SessionStore:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._by_id: dict[str, Session] = {}

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        s = self._by_id.get(sid)
        now = time.monotonic()
        if s is None or now - s.last_seen > self.ttl_s:
            self._by_id.pop(sid, None)
            return None
        s.last_seen = now
        return s

    def new(self) -> Session:
        self._expire()
        s = Session(sid=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32))
        self._by_id[s.sid] = s
        return s

    def rotate(self, old: Session) -> Session:
        """A new id and CSRF token at sign-in (no session fixation)."""
        self._by_id.pop(old.sid, None)
        return self.new()

    def drop(self, s: Session) -> None:
        self._by_id.pop(s.sid, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for sid in [k for k, v in self._by_id.items() if now - v.last_seen > self.ttl_s]:
            self._by_id.pop(sid, None)
