"""The connections service: per-workspace platform connections; tokens sealed to the services that use them."""

from __future__ import annotations

from allot.connections.api import router
from allot.connections.settings import ConnectionsSettings, SealingNotConfigured
from allot.runtime.deps import provide, settings_of
from allot.runtime.logging import get_logger
from allot.runtime.service import ServiceContext, ServiceSpec

__all__ = ["SPEC", "SealingNotConfigured"]
log = get_logger(__name__)


async def _load_public_keys(ctx: ServiceContext) -> None:
    keys = provide(ctx, settings_of(ctx, ConnectionsSettings).recipient_keys())
    log.info("sealing_keys_loaded", key_ids={r: k.key_id for r, k in keys.items()})


SPEC = ServiceSpec(
    name="connections",
    migrations_package="allot.connections.migrations",
    produces=["connection.changed"],
    routers=[router],
    on_start=_load_public_keys,
    settings_class=ConnectionsSettings,
    title="Allot connections",
    description=(
        "Per-workspace platform connections: ad accounts plus a read token for ingest and a write token for the "
        "executor, sealed to each service's public key (this service cannot read them back); publishes "
        "connection.changed."
    ),
)
