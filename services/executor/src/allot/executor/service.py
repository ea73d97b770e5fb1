"""The executor: the only component with platform credentials and the only caller of platform APIs."""

from __future__ import annotations

from datetime import date

from allot.contracts.platforms import check_meta_api_version
from allot.executor.adapters.base import PlatformClients
from allot.executor.adapters.meta import MetaGraphClient
from allot.executor.adapters.meta_usage import ThrottlePolicy
from allot.executor.api import router
from allot.executor.handlers import on_connection_changed, on_guardrail_approved
from allot.executor.settings import ExecutorSettings
from allot.executor.workflow import ActionsRecorded, TokenProjection, run_worker
from allot.runtime.accounts import ACCOUNT_TOPIC, load_directory, on_account_profiled, refresh_directory
from allot.runtime.deps import ReadyDetails, maybe, provide, settings_of
from allot.runtime.logging import get_logger
from allot.runtime.service import ServiceContext, ServiceSpec

log = get_logger(__name__)


async def _open_platforms(ctx: ServiceContext) -> None:
    from allot.executor.adapters.sandbox import SandboxClient

    await load_directory(ctx)  # which workspace each ad account is connected to: the last tenancy check
    settings = settings_of(ctx, ExecutorSettings)
    # per-workspace write tokens from connection.changed, sealed to this key (ALLOT_SEALING_PRIVATE_KEYS)
    keyring = provide(ctx, settings.sealing_keyring("executor"))
    tokens = provide(ctx, TokenProjection(ctx.pool, keyring))
    provide(ctx, ActionsRecorded())  # before the consumer starts: the approval handler wakes the worker with it
    clients = PlatformClients({
        "sandbox": SandboxClient(settings.sandbox_url, settings.sandbox_token.get_secret_value(),
                                 timeout_s=settings.platform_timeout_s),
    })
    # Meta: the workspace's own write token (connections), else the global one; appsecret_proof on every call.
    meta = MetaGraphClient(
        settings.meta_base_url, settings.meta_api_version,
        settings.meta_access_token.get_secret_value() if settings.meta_access_token is not None else None,
        token_for=tokens.token_for,
        app_secret=settings.meta_app_secret.get_secret_value() if settings.meta_app_secret is not None else None,
        timeout_s=settings.platform_timeout_s,
        throttle=ThrottlePolicy(slow_at_pct=settings.meta_slow_down_at_pct, max_spacing_s=settings.meta_max_spacing_s),
        max_inline_wait_s=settings.meta_max_inline_wait_s, config_retry_s=settings.meta_config_retry_s,
    )
    clients["meta"] = meta
    provide(ctx, clients)
    version = check_meta_api_version(settings.meta_api_version, ctx.clock.now().date())
    if version.needs_attention:
        log.warning("meta_api_version_attention", version=version.version, state=version.state,
                    expires_on=version.expires_on.isoformat() if version.expires_on else None, detail=version.message)
    provide(ctx, ReadyDetails(lambda: meta_ready_detail(meta, ctx.clock.now().date()) or None))


def meta_ready_detail(meta: MetaGraphClient, today: date) -> dict[str, str]:
    """What /readyz says about Meta: a version near or past its published expiry, a configuration error seen."""
    detail: dict[str, str] = {}
    version = check_meta_api_version(meta.api_version, today)
    if version.needs_attention:
        detail["meta_api_version"] = version.message
    if meta.config_problem:
        detail["meta_config_problem"] = meta.config_problem
    return detail


async def _close_platforms(ctx: ServiceContext) -> None:
    for client in (maybe(ctx, PlatformClients) or {}).values():
        await client.aclose()


SPEC = ServiceSpec(
    name="executor",
    uses_approval_secret=True,
    migrations_package="allot.executor.migrations",
    consumes={"guardrail.approved": on_guardrail_approved, "connection.changed": on_connection_changed,
              ACCOUNT_TOPIC: on_account_profiled},
    produces=["action.executed", "allocation.requested", "notification.requested"],
    routers=[router],
    tasks=[run_worker, refresh_directory],
    on_start=_open_platforms,
    on_stop=_close_platforms,
    settings_class=ExecutorSettings,
    title="Allot executor",
    description=("Applies signed guardrail approvals on ad platforms exactly once (compare-and-set, action ledger); "
                 "a conflict (a budget changed outside Allot) or a failure is published with a "
                 "notification.requested."),
)
