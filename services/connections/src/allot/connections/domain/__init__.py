"""Connections domain: pure validation and the connection model (no I/O, no clock)."""

from allot.connections.domain.model import (
    CONNECTABLE_PLATFORMS,
    Connection,
    ConnectionProblem,
    changed_payload,
    normalise_ad_account_ids,
    token_hint,
    validate_api_version,
    validate_token,
    validate_token_pair,
)

__all__ = [
    "CONNECTABLE_PLATFORMS",
    "Connection",
    "ConnectionProblem",
    "changed_payload",
    "normalise_ad_account_ids",
    "token_hint",
    "validate_api_version",
    "validate_token",
    "validate_token_pair",
]
