"""A platform connection and the rules its input must follow. Pure: callers pass ``now`` and do the I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from allot.contracts.payloads import ConnectionChanged, SealedToken
from allot.runtime.problems import Problem

#: Platforms a workspace can connect today (ingest and the executor's adapter exist for these only).
CONNECTABLE_PLATFORMS: tuple[str, ...] = ("meta",)
#: Most ad accounts one connection may hold (the contract's limit).
MAX_AD_ACCOUNTS = 200
#: Token length bounds: far below any real token is a paste error, far above is not a token.
MIN_TOKEN_LEN = 20
MAX_TOKEN_LEN = 4096
#: Meta ad account ids are numbers; the Graph API addresses them as ``act_<id>``.
_META_ACCOUNT = re.compile(r"^[0-9]{1,30}$")
#: Printable ASCII without spaces: what access tokens are made of (a quote, space or newline is a paste error).
_TOKEN_CHARS = re.compile(r"^[\x21-\x7e]+$")
_API_VERSION = re.compile(r"^v\d{1,3}\.\d{1,2}$")


class ConnectionProblem(Problem):
    """Input that cannot become a connection; ``field`` names the request field, the message says why."""


def normalise_ad_account_ids(platform: str, ids: list[str], *, field: str = "ad_account_ids") -> list[str]:
    """Ad account ids without the ``act_`` prefix, de-duplicated in order; ConnectionProblem naming the item."""
    if platform not in CONNECTABLE_PLATFORMS:
        raise ConnectionProblem("platform", f"{platform!r} cannot be connected; supported: "
                                            f"{', '.join(CONNECTABLE_PLATFORMS)}")
    if not ids:
        raise ConnectionProblem(field, "at least one ad account id is required")
    out: list[str] = []
    for i, raw in enumerate(ids):
        value = raw.strip()
        if value.lower().startswith("act_"):
            value = value[4:]
        if not _META_ACCOUNT.match(value):
            raise ConnectionProblem(f"{field}.{i}", "a Meta ad account id is its number, optionally written "
                                                    "'act_<number>'")
        if value not in out:
            out.append(value)
    if len(out) > MAX_AD_ACCOUNTS:
        raise ConnectionProblem(field, f"at most {MAX_AD_ACCOUNTS} ad accounts per connection")
    return out


def validate_token(field: str, token: str) -> str:
    """The token as given, when it can be one; ConnectionProblem naming ``field`` (never echoing the token)."""
    if not token:
        raise ConnectionProblem(field, "is required")
    if not _TOKEN_CHARS.match(token):
        raise ConnectionProblem(field, "must be printable ASCII without spaces or line breaks: paste the "
                                       "access token alone")
    if len(token) < MIN_TOKEN_LEN:
        raise ConnectionProblem(field, f"is {len(token)} characters long; an access token has at least "
                                       f"{MIN_TOKEN_LEN}")
    if len(token) > MAX_TOKEN_LEN:
        raise ConnectionProblem(field, f"is longer than {MAX_TOKEN_LEN} characters; not an access token")
    if token.lower().startswith("bearer"):
        raise ConnectionProblem(field, "starts with 'Bearer': paste the access token alone")
    return token


def validate_api_version(version: str | None) -> str | None:
    """A Graph API version like ``v23.0`` or None (use the service's default)."""
    if version is None:
        return None
    if not _API_VERSION.match(version):
        raise ConnectionProblem("graph_api_version", "must look like 'v23.0'")
    return version


def validate_token_pair(read_token: str, write_token: str) -> None:
    """Ingest refuses a read token that can write, so one token cannot serve both roles."""
    if read_token == write_token:
        raise ConnectionProblem("read_token", "must differ from write_token: the read token is for ingest and "
                                              "must not have ads_management; the write token is the executor's")


def token_hint(token: str) -> str:
    """What an API response may show of a token: its last 4 characters, nothing more."""
    return token[-4:]


@dataclass(frozen=True)
class Connection:
    """One workspace's connection to a platform: its accounts and sealed tokens (never the tokens themselves)."""

    connection_id: str
    workspace_id: str
    platform: str
    ad_account_ids: list[str]
    state: Literal["active", "removed"]
    read_token: SealedToken | None
    write_token: SealedToken | None
    read_token_hint: str
    write_token_hint: str
    graph_api_version: str | None
    version: int
    created_at: datetime
    updated_at: datetime

    def view(self) -> dict[str, object]:
        """The API view: token presence, a 4-character hint and the key id they are sealed to; no token."""
        return {
            "connection_id": self.connection_id,
            "workspace_id": self.workspace_id,
            "platform": self.platform,
            "ad_account_ids": list(self.ad_account_ids),
            "state": self.state,
            "graph_api_version": self.graph_api_version,
            "read_token_set": self.read_token is not None,
            "read_token_last4": self.read_token_hint if self.read_token is not None else None,
            "read_token_key_id": self.read_token.key_id if self.read_token is not None else None,
            "write_token_set": self.write_token is not None,
            "write_token_last4": self.write_token_hint if self.write_token is not None else None,
            "write_token_key_id": self.write_token.key_id if self.write_token is not None else None,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def changed_payload(connection: Connection, *, now: datetime) -> ConnectionChanged:
    """The ``connection.changed`` fact for this state of the connection (removed: no tokens travel)."""
    active = connection.state == "active"
    return ConnectionChanged(
        connection_id=connection.connection_id,
        platform=connection.platform,  # type: ignore[arg-type]
        ad_account_ids=list(connection.ad_account_ids),
        state=connection.state,
        read_token=connection.read_token if active else None,
        write_token=connection.write_token if active else None,
        graph_api_version=connection.graph_api_version,
        changed_at=now,
    )
