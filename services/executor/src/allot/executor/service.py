"""The executor: the only component with platform credentials and the only caller of platform APIs."""

from __future__ import annotations

from allot.executor.adapters.base import PlatformClient
from allot.executor.api import router
from allot.executor.connections import EXTRA_KEY, TokenProjection, on_connection_changed
from allot.executor.handlers import on_guardrail_approved
from allot.executor.settings import ExecutorSettings
from allot.executor.worker import run_worker
from allot.runtime.service import ServiceContext, ServiceSpec


async def _open_platforms(ctx: ServiceContext) -> None:
    from allot.executor.adapters.meta import MetaGraphClient
    from allot.executor.adapters.sandbox import SandboxClient

    settings = ctx.settings
    assert isinstance(settings, ExecutorSettings)
    # per-workspace write tokens from connection.changed, sealed to this key (ALLOT_SEALING_PRIVATE_KEYS)
    keyring = settings.sealing_keyring("executor")
    ctx.extra["sealing_keyring"] = keyring
    ctx.extra[EXTRA_KEY] = TokenProjection(ctx.pool, keyring)
    clients: dict[str, PlatformClient] = {
        "sandbox": SandboxClient(settings.sandbox_url, settings.sandbox_token.get_secret_value(),
                                 timeout_s=settings.platform_timeout_s),
    }
    if settings.meta_access_token is not None:
        clients["meta"] = MetaGraphClient(settings.meta_base_url, settings.meta_api_version,
                                          settings.meta_access_token.get_secret_value(),
                                          timeout_s=settings.platform_timeout_s)
    ctx.extra["platforms"] = clients
    ctx.extra["executor_settings"] = settings


async def _close_platforms(ctx: ServiceContext) -> None:
    for client in ctx.extra.get("platforms", {}).values():
        await client.aclose()


SPEC = ServiceSpec(
    name="executor",
    uses_approval_secret=True,
    migrations_package="allot.executor.migrations",
    consumes={"guardrail.approved": on_guardrail_approved, "connection.changed": on_connection_changed},
    produces=["action.executed", "allocation.requested"],
    routers=[router],
    tasks=[run_worker],
    on_start=_open_platforms,
    on_stop=_close_platforms,
    settings_class=ExecutorSettings,
    title="Allot executor",
    description="Applies signed guardrail approvals on ad platforms exactly once (compare-and-set, action ledger).",
)
