"""Honest OpenAPI documents: the real error shape, the API-key security schemes, the package version, stable ids.

Every service app (``allot.runtime.service.create_app``) gets:

- ``info.version``: the version of the service's distribution (``allot-<service>``);
- operation ids ``<service>_<route function>`` (unique per service: a duplicate fails the document's generation);
- security schemes ``bearerAuth`` (``Authorization: Bearer <key>``) and ``apiKey`` (``X-API-Key``), required by
  every route behind ``allot.runtime.auth.require`` (with ``x-allot-role``, the least role it needs);
- the error responses every authenticated route can give (401, 403 when it needs more than a viewer, 422 when it
  takes any input, 400 when it takes a body, 503), each with :class:`Problem`, the body ``allot.runtime.http``
  really sends; FastAPI's ``HTTPValidationError`` (``{"detail": ...}``, never sent) is gone. A route adds the
  statuses it raises itself (404, 409, 423, 429, ...) with :func:`documented` or :func:`errors`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from importlib import metadata
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from allot.runtime.auth import required_role

if TYPE_CHECKING:
    from allot.runtime.service import ServiceSpec

SCHEMA_REF = "#/components/schemas/{model}"


class Body(BaseModel):
    """A response body: the keys the route returns that the model names are typed; any other key still passes
    (a response model never drops what a route returns)."""

    model_config = ConfigDict(extra="allow")


#: A moment in a response model, written as the route wrote it without one (``datetime.isoformat()``:
#: ``2026-01-01T00:00:00+00:00``, not pydantic's ``...Z``).
Instant = Annotated[datetime, PlainSerializer(datetime.isoformat, return_type=str, when_used="json"),
                    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization")]

#: Any JSON value, written as the route wrote it without a response model (``jsonable_encoder``: a moment nested in
#: it keeps its ``isoformat()``).
Json = Annotated[Any, PlainSerializer(jsonable_encoder, when_used="json")]


class FieldProblem(BaseModel):
    """One failing input of a 422 ``validation_failed``."""

    field: str = Field(description="The input, dotted (``scope.ad_account_ids.0``); ``body`` for the body itself.")
    message: str = Field(description="What is wrong with it.")
    type: str | None = Field(None, description="A machine code of the failure (pydantic's, or ``unstorable_value``).")


class Problem(BaseModel):
    """Every error body of the API (``allot.runtime.http``): a machine code and a message, sometimes the field.

    A 422 ``validation_failed`` lists every failing input in ``errors``; a refusal may add context of its own
    (e.g. a guardrail block names the limit)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"error": "not_found", "message": "pool pool_1 not found", "field": "pool_id"},
        {"error": "validation_failed", "message": "limit: Input should be less than or equal to 200",
         "errors": [{"field": "limit", "message": "Input should be less than or equal to 200",
                     "type": "less_than_equal"}]}]})

    error: str = Field(description="A machine code: http_error, validation_failed, not_found, unavailable, ...")
    message: str = Field(description="What went wrong, for a person.")
    field: str | None = Field(None, description="The input at fault, when there is one.")
    errors: list[FieldProblem] | None = Field(None, description="422 validation_failed: every failing input.")


#: What each error status means across the API (a route's own ``responses`` may say more).
ERROR_STATUSES: dict[int, str] = {
    400: "The body could not be parsed.",
    401: "No API key, or not a valid one (``Authorization: Bearer <key>`` or ``X-API-Key``); "
         "``WWW-Authenticate: Bearer``.",
    403: "The key's role is below what this operation needs (or the object is not the key's to change).",
    404: "No such object in the key's workspace.",
    409: "Conflicts with the object's current state.",
    422: "The input is invalid: ``errors`` names every failing field (``validation_failed``), or a value cannot be "
         "stored (``invalid_value``).",
    423: "Blocked by a guardrail (locked): the body names the limit.",
    429: "Too many requests: wait ``Retry-After`` seconds.",
    502: "The ad platform refused or failed.",
    503: "A dependency (PostgreSQL, a peer service) is unavailable; retry after ``Retry-After`` seconds.",
    504: "A peer did not answer in time.",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for the error statuses a route raises itself, each with :class:`Problem`."""
    return {status: {"model": Problem, "description": ERROR_STATUSES[status]} for status in statuses}


def documented(model: Any, *statuses: int) -> dict[str, Any]:
    """Route decorator keywords: ``model`` as the response model and the error statuses the route raises.

    The body keeps exactly the keys the route returns (``response_model_exclude_unset``): an optional field the
    route leaves out stays out, one it sets to None is null."""
    return {"response_model": model, "response_model_exclude_unset": True, "responses": errors(*statuses)}


def service_version(service: str) -> str:
    """The version of ``allot-<service>`` (the runtime's when the service is not an installed distribution)."""
    for name in (f"allot-{service}", "allot-runtime"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "0.0.0"


def operation_ids(service: str) -> Callable[[APIRoute], str]:
    """``generate_unique_id_function``: ``<service>_<route name>`` (the route function's name)."""

    def generate(route: APIRoute) -> str:
        return f"{service}_{route.name}"

    return generate


def _role(dependant: Dependant) -> str | None:
    """The least role a route needs (its ``require(role)`` dependency), None when it needs no key."""
    for dep in dependant.dependencies:
        role: str | None = required_role(dep.call) if dep.call is not None else None
        if role is None:
            role = _role(dep)
        if role is not None:
            return role
    return None


def _problem(status: int) -> dict[str, Any]:
    return {"description": ERROR_STATUSES[status],
            "content": {"application/json": {"schema": {"$ref": SCHEMA_REF.format(model="Problem")}}}}


def openapi_document(app: FastAPI, service: str) -> dict[str, Any]:
    """The app's document, made honest (see the module's docstring)."""
    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                           tags=app.openapi_tags, servers=app.servers)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template=SCHEMA_REF)
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    components["securitySchemes"] = {
        "bearerAuth": {"type": "http", "scheme": "bearer",
                       "description": "An Allot API key (``allot keys create``) as ``Authorization: Bearer <key>``."},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                   "description": "The same API key in the ``X-API-Key`` header."},
    }
    seen: dict[str, str] = {}
    for route in iter_route_contexts(app.routes):  # included routers are flattened lazily (FastAPI ≥ 0.16x)
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        role = _role(route.dependant)
        for method in route.methods or ():
            operation = document["paths"][route.path_format][method.lower()]
            op_id = operation.get("operationId", "")
            if op_id in seen:
                raise ValueError(f"{service}: operation id {op_id!r} of {method} {route.path_format} is also "
                                 f"{seen[op_id]}'s: rename one route function")
            seen[op_id] = f"{method} {route.path_format}"
            responses = operation.setdefault("responses", {})
            takes_input = bool(operation.get("parameters") or operation.get("requestBody"))
            if "422" in responses or takes_input:  # FastAPI's HTTPValidationError, or check_inputs' 422
                responses["422"] = _problem(422)
            if operation.get("requestBody"):
                responses.setdefault("400", _problem(400))
            if role is None:
                continue
            operation["security"] = [{"bearerAuth": []}, {"apiKey": []}]
            operation["x-allot-role"] = role
            responses.setdefault("401", _problem(401))
            if role != "viewer":
                responses.setdefault("403", _problem(403))
            responses.setdefault("503", _problem(503))
            operation["responses"] = dict(sorted(responses.items()))
    return document


def install_openapi(app: FastAPI, service: str) -> None:
    """Serve :func:`openapi_document` as the app's ``/openapi.json`` (generated once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = openapi_document(app, service)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def service_openapi(spec: ServiceSpec) -> dict[str, Any]:
    """The service's OpenAPI document as its ``/openapi.json`` serves it (``make schemas`` commits it)."""
    from allot.runtime.service import create_app  # the app factory installs this module's document

    # built without validating settings: the document does not depend on them (a service may refuse its defaults)
    return create_app(spec, spec.settings_class.model_construct(env="development")).openapi()
