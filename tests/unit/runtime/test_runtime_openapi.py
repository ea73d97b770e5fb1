"""The services' OpenAPI documents are honest: the real error shape, the key schemes, the version, stable ids."""

from __future__ import annotations

from importlib import metadata
from typing import Any

import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient
from pydantic import BaseModel

from allot.runtime.auth import Principal, require
from allot.runtime.docs import service_specs
from allot.runtime.http import ApiError
from allot.runtime.openapi import Problem, documented, service_openapi
from allot.runtime.service import ServiceSpec, create_app
from allot.runtime.settings import Settings
from tests.support.service import api_keys, auth


class Thing(BaseModel):
    id: str
    note: str | None = None


router = APIRouter(prefix="/api/v1/things")


@router.get("/{thing_id}", **documented(Thing, 404))
async def get_thing(thing_id: str, _: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    if thing_id == "missing":
        raise ApiError(404, "not_found", "no such thing", field="thing_id")
    return {"id": thing_id} if thing_id == "bare" else {"id": thing_id, "note": None}


@router.post("", status_code=201, **documented(Thing))
async def create_thing(body: Thing, _: Principal = Depends(require("admin"))) -> dict[str, Any]:
    return body.model_dump()


(KEY,), KEYS = api_keys(("ws", "viewer"))
SPEC = ServiceSpec(name="things", routers=[router])


def _app() -> Any:
    return create_app(SPEC, Settings(api_keys=KEYS, env="development"))


def test_the_document_names_the_version_the_schemes_and_stable_ids() -> None:
    doc = _app().openapi()
    assert doc["info"]["version"] == metadata.version("allot-runtime")  # "things" is no distribution
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"]["bearerAuth"][
            "description"]}
    assert doc["components"]["securitySchemes"]["apiKey"]["name"] == "X-API-Key"
    get = doc["paths"]["/api/v1/things/{thing_id}"]["get"]
    post = doc["paths"]["/api/v1/things"]["post"]
    assert (get["operationId"], post["operationId"]) == ("things_get_thing", "things_create_thing")
    assert get["security"] == [{"bearerAuth": []}, {"apiKey": []}] and get["x-allot-role"] == "viewer"
    assert sorted(get["responses"]) == ["200", "401", "404", "422", "503"]  # a viewer route cannot be a 403
    assert sorted(post["responses"]) == ["201", "400", "401", "403", "422", "503"]
    assert get["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Thing"}
    for status in ("401", "404", "422"):
        assert get["responses"][status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert "/healthz" not in doc["paths"] and "/metrics" not in doc["paths"]


def test_the_error_bodies_the_api_sends_are_problems() -> None:
    client = TestClient(_app())
    for response in (client.get("/api/v1/things/x"),  # 401
                     client.get("/api/v1/things/missing", headers=auth(KEY)),  # 404 with a field
                     client.post("/api/v1/things", json={}, headers=auth(KEY)),  # 403 (viewer)
                     ):
        assert response.status_code in (401, 403, 404), response.text
        Problem.model_validate(response.json())
    (admin,), keys = api_keys(("ws", "admin"))
    invalid = TestClient(create_app(SPEC, Settings(api_keys=keys, env="development")))
    response = invalid.post("/api/v1/things", json={"note": 1}, headers=auth(admin))
    assert response.status_code == 422
    problem = Problem.model_validate(response.json())
    assert problem.error == "validation_failed" and problem.errors and problem.errors[0].field


def test_documented_keeps_the_keys_the_route_returns() -> None:
    client = TestClient(_app())
    assert client.get("/api/v1/things/bare", headers=auth(KEY)).json() == {"id": "bare"}
    assert client.get("/api/v1/things/x", headers=auth(KEY)).json() == {"id": "x", "note": None}


def test_operation_ids_are_unique_per_service() -> None:
    twice = APIRouter()

    @twice.get("/a")
    async def same() -> dict[str, str]:
        return {}

    @twice.get("/b", name="same")
    async def other() -> dict[str, str]:
        return {}

    with pytest.raises(ValueError, match="things_same"):
        create_app(ServiceSpec(name="things", routers=[twice]), Settings(env="development")).openapi()


@pytest.mark.parametrize("spec", service_specs(), ids=lambda s: s.name)
def test_every_service_route_documents_its_answers(spec: ServiceSpec) -> None:
    """Every operation: a response model (not a free-form dict), the Problem errors, the package's version."""
    doc = service_openapi(spec)
    assert doc["info"]["version"] == metadata.version(f"allot-{spec.name}")
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            where = f"{spec.name} {method.upper()} {path}"
            assert operation["operationId"].startswith(f"{spec.name}_"), where
            ok = [status for status in operation["responses"] if status.startswith("2")]
            assert ok, where
            for status in ok:
                content = operation["responses"][status].get("content", {}).get("application/json")
                if content is None:  # e.g. 204: no body
                    continue
                schema = content["schema"]
                assert "$ref" in schema or schema.get("type") == "array", f"{where}: {status} has no model"
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/Problem"}, f"{where}: {status}"
            assert {"401", "503"} <= set(operation["responses"]), where
