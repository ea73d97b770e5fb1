"""The ingest service: reads delivery from Meta with read-only tokens and publishes metrics.ingested and
account.profiled. I/O-free at import (``make schemas`` imports SPEC)."""

from __future__ import annotations

from typing import Any

import httpx

from allot.contracts.payloads import SealedToken
from allot.contracts.platforms import check_meta_api_version
from allot.ingest.adapters.graph import graph_client
from allot.ingest.api import router
from allot.ingest.handlers import on_connection_changed
from allot.ingest.scheduler import ingest_scheduler
from allot.ingest.settings import IngestSettings
from allot.ingest.workflow import IngestState, TokenOpener
from allot.runtime.deps import ReadyDetails, maybe, provide, settings_of
from allot.runtime.logging import get_logger
from allot.runtime.service import ServiceContext, ServiceSpec

log = get_logger(__name__)


def keyring_opener(settings: IngestSettings) -> TokenOpener:
    """Open read tokens with ingest's private keys (ALLOT_SEALING_PRIVATE_KEYS); errors name the reason only."""
    keyring = settings.sealing_keyring("ingest")

    def open_token(sealed: SealedToken) -> str:
        return keyring.open(sealed)

    return open_token


def make_spec(*, graph_transport: httpx.AsyncBaseTransport | None = None,
              open_token: TokenOpener | None = None) -> ServiceSpec:
    """The service; tests pass the Graph fake's transport (and may pass a token opener)."""

    async def on_start(ctx: ServiceContext) -> None:
        s = settings_of(ctx, IngestSettings)
        st = IngestState(settings=s, http=graph_client(s.ingest_graph_url, transport=graph_transport),
                         open_token=open_token or keyring_opener(s))
        provide(ctx, st)
        version = check_meta_api_version(s.ingest_graph_api_version, ctx.clock.now().date())
        if version.needs_attention:
            log.warning("meta_api_version_attention", version=version.version, state=version.state,
                        detail=version.message)

        def details() -> dict[str, Any]:
            detail: dict[str, Any] = {"accounts_in_error": dict(st.problems)} if st.problems else {}
            current = check_meta_api_version(s.ingest_graph_api_version, ctx.clock.now().date())
            if current.needs_attention:
                detail["meta_api_version"] = current.message
            return detail

        provide(ctx, ReadyDetails(details))

    async def on_stop(ctx: ServiceContext) -> None:
        st = maybe(ctx, IngestState)
        if st is not None:
            for task in st.running.values():
                task.cancel()
            await st.http.aclose()

    return ServiceSpec(
        name="ingest",
        migrations_package="allot.ingest.migrations",
        consumes={"connection.changed": on_connection_changed},
        produces=["metrics.ingested", "account.profiled"],
        routers=[router],
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


SPEC = make_spec()
