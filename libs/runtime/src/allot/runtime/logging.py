"""The one logging setup: JSON lines with service, workspace_id, correlation_id and event_id when known.

structlog's own loggers render JSON directly; every stdlib logger (uvicorn, aiokafka, asyncio, faststream, asyncpg,
warnings, ...) goes through the root handler, whose structlog ProcessorFormatter renders the same JSON (same
timestamp, level, service and redaction; ``logger`` names the library's logger). Libraries get no handlers of their
own: records propagate to the root.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_SECRET_KEYS = ("password", "secret", "token", "api_key", "authorization", "access_token", "private_key")


def _redact(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key in list(event_dict):
        if any(s in key.lower() for s in _SECRET_KEYS):
            event_dict[key] = "***"
    return event_dict


#: Loggers of libraries that install handlers of their own (uvicorn's default dictConfig does): cleared and made to
#: propagate, so their records reach the root's JSON formatter once.
_LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "aiokafka", "asyncio", "faststream",
                    "asyncpg", "httpx", "py.warnings")


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler on whatever ``sys.stdout`` is at each record (test capture replaces it; a bound stream
    would outlive the capture and fail on a closed file)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _: Any) -> None:
        """Ignored: the handler always writes to the current ``sys.stdout`` (logging's setStream would bind one)."""


def _service_default(service: str) -> Any:
    def add(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event_dict.setdefault("service", service)  # records from threads/tasks that never saw the binding
        return event_dict

    return add


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route structlog and stdlib logging to JSON lines on stdout, with the service name bound."""
    lvl = getattr(logging, level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _service_default(service),
        _redact,
    ]
    handler = _StdoutHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(lvl)
    for name in _LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        for old in library.handlers[:]:
            library.removeHandler(old)
        library.propagate = True
        library.disabled = False
        library.setLevel(logging.NOTSET)  # the service's level, not one a library or an earlier setup left
    for noisy in ("aiokafka", "faststream", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(lvl, logging.WARNING))
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        # No file given: each logger writes to sys.stdout as it is when the logger is made (test capture swaps it).
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; log events are snake_case names with fields."""
    return structlog.get_logger(name)


bind = structlog.contextvars.bind_contextvars
bound = structlog.contextvars.bound_contextvars
