"""Connecting an ad account to a workspace in service tests: publish ``account.profiled`` and wait until the
running service's directory lists it (tenancy checks, issue #14)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.payloads import AccountProfiled
from allot.runtime.accounts import directory_of
from allot.runtime.service import ServiceContext
from tests.support.kafka import eventually, publish

OBSERVED_AT = datetime(2026, 1, 1, tzinfo=UTC)


def account_profiled(workspace_id: str, ad_account_id: str, *, platform: str = "sandbox", currency: str = "EUR",
                     state: str = "connected", observed_at: datetime = OBSERVED_AT) -> Envelope[Any]:
    payload = AccountProfiled(platform=platform, ad_account_id=ad_account_id, currency=currency,  # type: ignore[arg-type]
                              timezone_name="UTC", state=state, observed_at=observed_at)  # type: ignore[arg-type]
    return new_envelope(event_type="account.profiled", schema_version=1, payload=payload, producer="test",
                        workspace_id=workspace_id, occurred_at=observed_at)


async def connect_account(bootstrap: str, ctx: ServiceContext, workspace_id: str, ad_account_id: str, *,
                          platform: str = "sandbox", currency: str = "EUR") -> None:
    """The account is connected to ``workspace_id`` as far as the service in ``ctx`` knows."""
    await publish(bootstrap, account_profiled(workspace_id, ad_account_id, platform=platform, currency=currency))
    directory = directory_of(ctx.extra)

    async def listed() -> bool:
        return workspace_id in directory.owners_of(platform, ad_account_id)

    await eventually(listed, what=f"{ad_account_id} connected to {workspace_id}")
