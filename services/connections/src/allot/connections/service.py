"""The connections service: per-workspace platform connections; tokens sealed to the services that use them."""

from __future__ import annotations

from allot.connections.api import router
from allot.runtime.logging import get_logger
from allot.runtime.sealing import RECIPIENTS, SealingError, parse_public_keys
from allot.runtime.service import ServiceContext, ServiceSpec

log = get_logger(__name__)


class SealingNotConfigured(RuntimeError):
    """The connections service cannot seal tokens: a recipient's public key is missing or malformed."""


async def _load_public_keys(ctx: ServiceContext) -> None:
    try:
        keys = parse_public_keys(ctx.settings.sealing_public_keys)
    except SealingError as exc:
        log.error("refusing_to_start", reason=f"ALLOT_SEALING_PUBLIC_KEYS: {exc}")
        raise SealingNotConfigured(f"ALLOT_SEALING_PUBLIC_KEYS: {exc}") from None
    missing = [r for r in RECIPIENTS if r not in keys]
    if missing:
        reason = (f"ALLOT_SEALING_PUBLIC_KEYS has no key for {', '.join(missing)}; generate pairs with "
                  "`allot keys generate --recipient ingest|executor`")
        log.error("refusing_to_start", reason=reason)
        raise SealingNotConfigured(reason)
    ctx.extra["sealing_public_keys"] = keys
    log.info("sealing_keys_loaded", key_ids={r: k.key_id for r, k in keys.items()})


SPEC = ServiceSpec(
    name="connections",
    migrations_package="allot.connections.migrations",
    produces=["connection.changed"],
    routers=[router],
    on_start=_load_public_keys,
    title="Allot connections",
    description=(
        "Per-workspace platform connections: ad accounts plus a read token for ingest and a write token for the "
        "executor, sealed to each service's public key (this service cannot read them back); publishes "
        "connection.changed."
    ),
)
