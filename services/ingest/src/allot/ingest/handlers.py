"""Thin subscriber: connection.changed → the ingest projection of connections and accounts."""

from __future__ import annotations

from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.payloads import AccountProfiled, ConnectionChanged
from allot.contracts.registry import TOPICS
from allot.ingest.adapters import postgres as db
from allot.runtime.consumer import BatchContext
from allot.runtime.logging import get_logger

log = get_logger(__name__)


async def on_connection_changed(bc: BatchContext, events: list[Envelope[ConnectionChanged]]) -> None:
    """Keep the latest record per connection (its accounts become due now: the token is checked first); an
    account no longer read is announced ``disconnected`` on account.profiled."""
    for event in events:
        change: ConnectionChanged = event.payload
        stopped = await db.apply_connection(bc.conn, event.workspace_id, event.event_id, change)
        log.info("connection_projected", connection_id=change.connection_id, state=change.state,
                 accounts=len(change.ad_account_ids), applied=stopped is not None, platform=change.platform)
        for acc in stopped or []:
            profile = AccountProfiled(
                platform=change.platform, ad_account_id=acc.ad_account_id, connection_id=change.connection_id,
                currency=acc.currency or "XXX", timezone_name=acc.timezone_name or "UTC", state="disconnected",
                detail=f"connection {change.connection_id} "
                       + ("was removed" if change.state == "removed" else "no longer lists this account"),
                observed_at=change.changed_at)
            bc.emit(new_envelope(
                event_type="account.profiled", schema_version=TOPICS["account.profiled"].schema_version,
                payload=profile, producer="ingest", workspace_id=event.workspace_id, occurred_at=change.changed_at,
                cause=event, step=f"disconnected/{acc.ad_account_id}"))
