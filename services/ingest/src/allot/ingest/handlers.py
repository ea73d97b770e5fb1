"""Thin subscriber: connection.changed → the ingest projection of connections and accounts."""

from __future__ import annotations

from typing import Any

from allot.contracts.envelope import Envelope
from allot.contracts.payloads import ConnectionChanged
from allot.ingest.adapters import postgres as db
from allot.runtime.consumer import BatchContext
from allot.runtime.logging import get_logger

log = get_logger(__name__)


async def on_connection_changed(bc: BatchContext, events: list[Envelope[Any]]) -> None:
    """Keep the latest record per connection; its accounts become due now (the token is checked first)."""
    for event in events:
        change: ConnectionChanged = event.payload
        applied = await db.apply_connection(bc.conn, event.workspace_id, event.event_id, change)
        log.info("connection_projected", connection_id=change.connection_id, state=change.state,
                 accounts=len(change.ad_account_ids), applied=applied, platform=change.platform)
