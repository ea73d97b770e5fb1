"""Typed dependencies of a running service, and its settings, reached one way.

A service's ``on_start`` builds what its routes, handlers and tasks share (platform clients, a token
projection, polling state) and provides each object under its class; users ask for it by class and get
that type back, or an error that names what is missing:

    provide(ctx, TokenProjection(ctx.pool, keyring))     # on_start
    tokens = need(ctx, TokenProjection)                  # a route, handler or task

Settings are reached the same way whatever the caller is: ``settings_of(ctx, PoolsSettings)`` returns
the service's own settings class (the ServiceSpec's ``settings_class``, which ``create_app`` builds).
Both work on a :class:`~allot.runtime.service.ServiceContext` and on a handler's
:class:`~allot.runtime.consumer.BatchContext`: they share one ``extra`` mapping.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from allot.runtime.settings import Settings

__all__ = ["ReadyDetails", "maybe", "need", "provide", "settings_of"]

T = TypeVar("T")
S = TypeVar("S", bound=Settings)


class HasExtra(Protocol):
    extra: dict[Any, Any]


class ReadyDetails:
    """What ``/readyz`` adds about the service's own dependencies (a platform's API version, a loop's last run)."""

    def __init__(self, report: Any) -> None:
        self.report = report

    def __call__(self) -> dict[str, Any] | None:
        out = self.report()
        return out if isinstance(out, dict) else None


def provide(ctx: HasExtra, value: T, *, as_type: type[T] | None = None) -> T:
    """Make ``value`` available to the service under its class (or ``as_type``); returns it."""
    ctx.extra[as_type or type(value)] = value
    return value


def need(ctx: HasExtra, cls: type[T]) -> T:
    """The object provided under ``cls``; LookupError naming it when the service did not provide one."""
    value = ctx.extra.get(cls)
    if value is None:
        raise LookupError(f"no {cls.__name__} provided: the service's on_start must provide it")
    if not isinstance(value, cls):
        raise TypeError(f"{cls.__name__} expected, {type(value).__name__} provided")
    return value


def maybe(ctx: HasExtra, cls: type[T]) -> T | None:
    """The object provided under ``cls``, or None (before on_start ran, or in a service that does not provide it)."""
    value = ctx.extra.get(cls)
    return value if isinstance(value, cls) else None


def settings_of(ctx: HasExtra, cls: type[S]) -> S:
    """The running service's settings as its own settings class."""
    return need(ctx, Settings) if cls is Settings else _as(need(ctx, Settings), cls)  # type: ignore[return-value]


def _as(settings: Settings, cls: type[S]) -> S:
    if not isinstance(settings, cls):
        raise TypeError(f"the service runs with {type(settings).__name__}, not {cls.__name__} "
                        "(see its ServiceSpec.settings_class)")
    return settings
