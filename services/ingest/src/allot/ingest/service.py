"""The ingest service: reads delivery from Meta with read-only tokens and publishes metrics.ingested and
account.profiled. I/O-free at import (``make schemas`` imports SPEC)."""

from __future__ import annotations

from typing import Any

from allot.contracts.payloads import SealedToken
from allot.ingest.adapters.graph import graph_client
from allot.ingest.handlers import on_connection_changed
from allot.ingest.reading import IngestState, TokenOpener
from allot.ingest.scheduler import ingest_scheduler
from allot.ingest.settings import IngestSettings, ingest_settings
from allot.runtime.service import ServiceContext, ServiceSpec


def keyring_opener(settings: IngestSettings) -> TokenOpener:
    """Open read tokens with ingest's private keys (ALLOT_SEALING_PRIVATE_KEYS); errors name the reason only."""
    keyring = settings.sealing_keyring("ingest")

    def open_token(sealed: SealedToken) -> str:
        return keyring.open(sealed)

    return open_token


async def on_start(ctx: ServiceContext) -> None:
    s = ingest_settings(ctx.settings)
    opener: TokenOpener = ctx.extra.get("open_token") or keyring_opener(s)
    http = ctx.extra.get("graph_http") or graph_client(s.ingest_graph_url)
    st = IngestState(settings=s, http=http, open_token=opener)
    ctx.extra["ingest"] = st

    def details() -> dict[str, Any]:
        return {"accounts_in_error": dict(st.problems)} if st.problems else {}

    ctx.extra["ready_details"] = details


async def on_stop(ctx: ServiceContext) -> None:
    st: IngestState | None = ctx.extra.get("ingest")
    if st is not None:
        for task in st.running.values():
            task.cancel()
        if "graph_http" not in ctx.extra:
            await st.http.aclose()


SPEC = ServiceSpec(
    name="ingest",
    migrations_package="allot.ingest.migrations",
    consumes={"connection.changed": on_connection_changed},
    produces=["metrics.ingested", "account.profiled"],
    tasks=[ingest_scheduler],
    on_start=on_start,
    on_stop=on_stop,
    settings_class=IngestSettings,
    title="Allot ingest",
    description=(
        "Reads delivery (hourly insights), entity budgets and account currency / time zone / status from Meta "
        "with read-only tokens and publishes metrics.ingested and account.profiled. Never writes to a platform."
    ),
)
