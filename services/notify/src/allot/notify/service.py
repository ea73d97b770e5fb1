"""The notify service: consumes notification.requested, delivers to subscribed channels (Slack, email, webhooks)."""

from __future__ import annotations

import logging

from allot.notify.adapters.senders import HttpSender, SmtpSender
from allot.notify.api import router
from allot.notify.handlers import on_notification_requested
from allot.notify.scheduler import delivery_worker
from allot.notify.settings import NotifySettings, SealingNotConfigured
from allot.notify.workflow import Deps
from allot.runtime.deps import maybe, provide, settings_of
from allot.runtime.logging import get_logger
from allot.runtime.service import ServiceContext, ServiceSpec

__all__ = ["SPEC", "SealingNotConfigured"]
log = get_logger(__name__)


def _settings(ctx: ServiceContext) -> NotifySettings:
    return settings_of(ctx, NotifySettings)


async def _start(ctx: ServiceContext) -> None:
    s = _settings(ctx)
    # httpx logs every request line at INFO (and headers at DEBUG): a Slack webhook URL's path is its secret
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    keyring = s.keyring()
    provide(ctx, Deps(
        settings=s, keyring=keyring,
        http=HttpSender(timeout_s=s.notify_timeout_s, development=s.development, allow_loopback=s.loopback_allowed),
        smtp=SmtpSender(timeout_s=s.notify_timeout_s, allow_loopback=s.loopback_allowed)))
    log.info("notify_keys_loaded", key_ids=keyring.key_ids, loopback_allowed=s.loopback_allowed)


async def _stop(ctx: ServiceContext) -> None:
    deps = maybe(ctx, Deps)
    if deps is not None:
        await deps.http.aclose()


SPEC = ServiceSpec(
    name="notify",
    migrations_package="allot.notify.migrations",
    consumes={"notification.requested": on_notification_requested},
    produces=["notification.requested"],
    routers=[router],
    tasks=[delivery_worker],
    on_start=_start,
    on_stop=_stop,
    settings_class=NotifySettings,
    title="Allot notify",
    description=(
        "Delivers notification.requested (published by rules, pools, guardrails, pacing and the executor) to each "
        "workspace's subscribed channels: Slack (Block Kit), email (SMTP, STARTTLS) and signed webhooks; at least "
        "once with the notification id as idempotency key, "
        "retries with backoff (Retry-After on 429), digests, rate limits, quiet hours and deduplication; disables a "
        "failing channel and tells the workspace's admins."
    ),
)
