"""The one API-key authentication dependency: keys scoped to a workspace, roles viewer < operator < admin.

Only SHA-256 hashes of keys are configured (ALLOT_API_KEYS, a JSON list, normally from a Secret);
a raw key is shown once when generated (``allot keys create``) and never stored or logged.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import orjson
from fastapi import HTTPException, Request
from pydantic import BaseModel, TypeAdapter

from allot.runtime.http import check_inputs

Role = Literal["viewer", "operator", "admin"]
ROLE_RANK: dict[str, int] = {"viewer": 0, "operator": 1, "admin": 2}
#: The role each ``require`` dependency asks for (the OpenAPI document names it, ``allot.runtime.openapi``).
_REQUIRED: dict[Callable[..., Any], Role] = {}


class ApiKeyEntry(BaseModel):
    """One configured key: its id, the SHA-256 of the raw key, its workspace and role."""

    key_id: str
    sha256: str
    workspace_id: str
    role: Role


class Principal(BaseModel):
    """Who is calling: the key id, its workspace and role."""

    key_id: str
    workspace_id: str
    role: Role

    def can(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def generate_key(workspace_id: str, role: Role, key_id: str | None = None) -> tuple[str, ApiKeyEntry]:
    """A new random key and the entry (hash only) to configure for it."""
    raw = "allot_" + secrets.token_urlsafe(32)
    kid = key_id or "key_" + secrets.token_hex(6)
    return raw, ApiKeyEntry(key_id=kid, sha256=hash_key(raw), workspace_id=workspace_id, role=role)


class ApiKeyStore:
    """Looks a presented key up by its hash."""

    def __init__(self, entries: list[ApiKeyEntry]) -> None:
        self._by_hash = {e.sha256: e for e in entries}

    @classmethod
    def from_json(cls, text: str) -> ApiKeyStore:
        return cls(cls.entries_from_json(text))

    @staticmethod
    def entries_from_json(text: str) -> list[ApiKeyEntry]:
        """Parse ALLOT_API_KEYS (a JSON list of hashed entries)."""
        return TypeAdapter(list[ApiKeyEntry]).validate_python(orjson.loads(text or "[]"))

    def authenticate(self, raw: str) -> Principal | None:
        entry = self._by_hash.get(hash_key(raw))
        if entry is None:
            return None
        return Principal(key_id=entry.key_id, workspace_id=entry.workspace_id, role=entry.role)


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


def require(role: Role) -> Callable[[Request], Awaitable[Principal]]:
    """FastAPI dependency: 401 without a valid key, 403 when the key's role is below ``role``."""

    async def dependency(request: Request) -> Principal:
        raw = _presented_key(request)
        if not raw:
            raise HTTPException(401, "missing API key (Authorization: Bearer <key> or X-API-Key)",
                                headers={"WWW-Authenticate": "Bearer"})
        store: ApiKeyStore = request.app.state.api_keys
        principal = store.authenticate(raw)
        if principal is None:
            raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
        if not principal.can(role):
            raise HTTPException(403, f"role {principal.role!r} may not do this; {role!r} or higher is required")
        await check_inputs(request)  # 422 naming the field for what PostgreSQL cannot store
        return principal

    _REQUIRED[dependency] = role
    return dependency


def required_role(dependency: Callable[..., Any]) -> Role | None:
    """The role ``dependency`` requires when it is one of :func:`require`'s, else None."""
    try:
        return _REQUIRED.get(dependency)
    except TypeError:  # an unhashable callable is no require() dependency
        return None
