"""Write tokens as the executor holds them: which connection delivered the token for an account. Pure."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from allot.contracts.payloads import SealedToken


def account_number(ad_account_id: str) -> str:
    """The ad account id as stored: without Meta's ``act_`` prefix."""
    return ad_account_id[4:] if ad_account_id.lower().startswith("act_") else ad_account_id


@dataclass(frozen=True)
class StoredToken:
    """The active connection holding an account in a workspace: its id, the change that delivered its token
    (the key of the opened-token cache) and the token, sealed (None when it carried none)."""

    connection_id: str
    event_id: uuid.UUID
    write_token: SealedToken | None
