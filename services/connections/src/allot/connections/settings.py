"""Connections settings: the PUBLIC sealing keys of ingest and the executor (this service opens no token)."""

from __future__ import annotations

from pydantic import model_validator

from allot.runtime.sealing import RECIPIENTS, Recipient, RecipientKey, SealingError, parse_public_keys
from allot.runtime.settings import InsecureConfiguration, Settings


class RecipientKeys(dict[Recipient, RecipientKey]):
    """The public key per recipient service that tokens are sealed to (provided at start, see allot.runtime.deps)."""


class SealingNotConfigured(InsecureConfiguration):
    """The connections service cannot seal tokens: a recipient's public key is missing or malformed."""


class ConnectionsSettings(Settings):
    """ALLOT_* variables; ALLOT_SEALING_PUBLIC_KEYS must name a key for ingest and for the executor."""

    @model_validator(mode="after")
    def _sealing_keys_usable(self) -> ConnectionsSettings:
        self.recipient_keys()
        return self

    def recipient_keys(self) -> RecipientKeys:
        """Public key per recipient; SealingNotConfigured (refuse to start) when one is missing or malformed."""
        try:
            keys = parse_public_keys(self.sealing_public_keys)
        except SealingError as exc:
            raise SealingNotConfigured(f"connections refuses to start: ALLOT_SEALING_PUBLIC_KEYS: {exc}") from None
        missing = [r for r in RECIPIENTS if r not in keys]
        if missing:
            raise SealingNotConfigured(
                f"connections refuses to start: ALLOT_SEALING_PUBLIC_KEYS has no key for {', '.join(missing)}; "
                "generate pairs with `allot keys generate --recipient ingest|executor`")
        return RecipientKeys(keys)
