"""HTTP conventions shared by every service API: errors that name the field, never a 500 for bad input."""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from allot.runtime.inputs import unstorable, unstorable_params
from allot.runtime.logging import get_logger
from allot.runtime.problems import Problem

log = get_logger(__name__)


class ApiError(Exception):
    """A domain refusal with an HTTP status, a machine code, a message and optional field and headers."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}
        self.extra = extra or {}


def problem_error(exc: Problem) -> ApiError:
    """The answer to a domain's refusal of input: its status and code, the message, and the field named twice
    (``field`` and ``errors``, the shape of a 422 from request validation)."""
    return ApiError(exc.status, exc.code, str(exc), field=exc.field,
                    extra={"errors": [{"field": exc.field, "message": exc.message}]})


async def check_inputs(request: Request) -> None:
    """422 naming the field for input PostgreSQL cannot store (allot.runtime.inputs), before any model or query.

    Runs inside the auth dependency (after the key is checked), so every authenticated route gets it.
    """
    problems = [("query", *p) for p in unstorable_params(request.query_params.multi_items())]
    problems += [("path", *p) for p in unstorable_params(request.path_params.items())]
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and "json" in request.headers.get("content-type", ""):
        body = await request.body()
        if body:
            try:
                data = await request.json()
            except ValueError:
                data = None  # not JSON: the route's own validation answers with json_invalid
            problems += [("body", *p) for p in unstorable(data)]
    if problems:
        raise RequestValidationError([{"loc": (where, name), "msg": message, "type": "unstorable_value"}
                                      for where, name, message in problems])


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    """422 with every failing field named; ApiError as its status; database outages as 503."""

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _loc(e.get("loc", ())), "message": e.get("msg", "invalid"), "type": e.get("type")}
                  for e in exc.errors()]
        message = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        return JSONResponse({"error": "validation_failed", "message": message, "errors": errors}, status_code=422)

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        body: dict[str, Any] = {"error": exc.code, "message": exc.message, **exc.extra}
        if exc.field:
            body["field"] = exc.field
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": "http_error", "message": str(exc.detail)}, status_code=exc.status_code,
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(asyncpg.DataError)
    async def _data(_: Request, exc: asyncpg.DataError) -> JSONResponse:
        # A value the request model let through but PostgreSQL cannot store (NUL in text, an integer
        # beyond bigint): the client's input is at fault, so 422 rather than 500. Models should refuse
        # these first with a field name; this is the safety net shared by every service.
        return JSONResponse({"error": "invalid_value",
                             "message": f"a value cannot be stored (out of range or contains NUL): {exc}"},
                            status_code=422)

    @app.exception_handler(asyncpg.PostgresConnectionError)
    @app.exception_handler(ConnectionError)
    @app.exception_handler(OSError)
    async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("http_dependency_unavailable", error=repr(exc))
        return JSONResponse({"error": "unavailable", "message": "a dependency is unavailable; retry shortly"},
                              status_code=503, headers={"Retry-After": "5"})
