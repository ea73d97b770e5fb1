"""HTTP API of the sandbox ad platform: a stand-in for a real ad platform with a witness log and failure injection.

Routes:

* ``GET /healthz`` — liveness, no token.
* ``/v1/...`` — the platform API the executor's ``SandboxClient`` speaks; faults apply here only.
* ``/sandbox/...`` — setup and inspection for tests and demos (create entities, call log, faults,
  out-of-band edits, delivery).

Every route but ``/healthz`` requires ``Authorization: Bearer <state.api_token>``.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from allot.sandbox.faults import Fault, Operation
from allot.sandbox.schemas import (
    AdvanceRequest,
    CreateEntityRequest,
    FaultRequest,
    OutOfBandRequest,
    WriteRequest,
)
from allot.sandbox.simulator import DeliverySimulator
from allot.sandbox.state import SandboxError, SandboxState

__all__ = ["create_app"]

_DEFAULT_TIMEOUT_DELAY_S = 30.0


def create_app(state: SandboxState | None = None, simulator: DeliverySimulator | None = None) -> FastAPI:
    """The sandbox platform over ``state`` (a fresh one if None); the same state object stays inspectable by the caller.

    ``simulator`` backs ``POST /sandbox/delivery/advance``; by default one over
    the state's entities with the state's seed, starting at the first advance.
    """
    st = state if state is not None else SandboxState()
    sim = simulator if simulator is not None else DeliverySimulator(st.delivery_entities, seed=st.seed)

    app = FastAPI(title="Allot sandbox ad platform", version="1")
    app.state.sandbox = st
    app.state.simulator = sim

    def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise SandboxError(401, "missing bearer token")
        if not secrets.compare_digest(token.strip().encode(), st.api_token.encode()):
            raise SandboxError(401, "invalid bearer token")

    @app.exception_handler(SandboxError)
    async def _sandbox_error(_: Request, exc: SandboxError) -> JSONResponse:
        if exc.status_code == 422:
            detail: Any = [{"loc": ["body", exc.field or ""], "msg": exc.message, "type": "value_error"}]
        else:
            detail = exc.message
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Default FastAPI shape, minus the echoed input (which could be large or sensitive).
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # ------------------------------------------------------------------ platform API

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_token)])

    async def injected(entity_id: str | None, operation: Operation) -> tuple[Fault | None, Response | None]:
        """Draw a fault; returns a response to send instead of serving, or the fault to finish after serving."""
        fault = st.faults.draw(entity_id, operation)
        if fault is None:
            return None, None
        if fault.kind == "rate_limit":
            retry_after = fault.retry_after_s if fault.retry_after_s is not None else 1.0
            return None, JSONResponse(
                {"detail": "rate limit exceeded", "retry_after_s": retry_after},
                status_code=429,
                headers={"Retry-After": _retry_after_header(retry_after)},
            )
        if fault.kind == "server_error":
            headers = {"Retry-After": _retry_after_header(fault.retry_after_s)} if fault.retry_after_s else None
            return None, JSONResponse(
                {"detail": "injected server error"}, status_code=fault.status_code, headers=headers
            )
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay_s)
            return None, None
        # timeout: stall; an "applied" timeout on a write lets the write land first (ambiguous outcome).
        if fault.applied and operation == "write":
            return fault, None
        await asyncio.sleep(fault.delay_s or _DEFAULT_TIMEOUT_DELAY_S)
        return None, JSONResponse({"detail": "upstream timeout"}, status_code=504)

    async def finish(fault: Fault | None) -> None:
        if fault is not None:
            await asyncio.sleep(fault.delay_s or _DEFAULT_TIMEOUT_DELAY_S)

    @v1.get("/entities", response_model=None)
    async def list_entities(ad_account_id: str | None = None) -> Response | dict[str, Any]:
        _, early = await injected(None, "read")
        if early is not None:
            return early
        return {"entities": [e.to_json() for e in st.list_entities(ad_account_id)]}

    @v1.get("/entities/{entity_id}", response_model=None)
    async def get_entity(entity_id: str) -> Response | dict[str, Any]:
        _, early = await injected(entity_id, "read")
        if early is not None:
            return early
        return st.get(entity_id).to_json()

    @v1.post("/entities/{entity_id}", response_model=None)
    async def write_entity(
        entity_id: str,
        body: WriteRequest,
        idempotency_key: Annotated[str | None, Header(max_length=256)] = None,
    ) -> Response | dict[str, Any]:
        late, early = await injected(entity_id, "write")
        if early is not None:
            return early
        write_id, entity = st.write(
            entity_id,
            daily_budget_cents=body.daily_budget_cents,
            status=body.status,
            source="api",
            idempotency_key=idempotency_key,
        )
        await finish(late)
        return {"write_id": write_id, "entity": entity.to_json()}

    @v1.post("/entities/{entity_id}/relaunch", response_model=None)
    async def relaunch_entity(
        entity_id: str,
        idempotency_key: Annotated[str | None, Header(max_length=256)] = None,
    ) -> Response | dict[str, Any]:
        late, early = await injected(entity_id, "write")
        if early is not None:
            return early
        write_id, copy = st.relaunch(entity_id, idempotency_key=idempotency_key)
        await finish(late)
        return {"write_id": write_id, "new_entity_id": copy.id, "entity": copy.to_json()}

    app.include_router(v1)

    # ------------------------------------------------------------------ admin API

    admin = APIRouter(prefix="/sandbox", dependencies=[Depends(require_token)])

    @admin.post("/entities", status_code=201)
    async def create_entity(body: CreateEntityRequest) -> dict[str, Any]:
        overrides = body.curve.model_dump(exclude_none=True) if body.curve is not None else None
        entity = st.create_entity(
            entity_id=body.id,
            platform=body.platform,
            ad_account_id=body.ad_account_id,
            entity_type=body.entity_type,
            name=body.name,
            currency=body.currency,
            daily_budget_cents=body.daily_budget_cents,
            status=body.status,
            parent_id=body.parent_id,
            profile=body.profile,
            curve_overrides=overrides,
        )
        return entity.to_json()

    @admin.get("/calls")
    async def calls(
        entity_id: str | None = None,
        source: str | None = None,
        since_seq: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        return {"calls": [c.to_json() for c in st.call_log(entity_id=entity_id, source=source, since_seq=since_seq)]}

    @admin.post("/faults", status_code=201)
    async def add_fault(body: FaultRequest) -> dict[str, Any]:
        fault = st.faults.add(
            body.kind,
            count=body.count,
            probability=body.probability,
            seed=body.seed,
            entity_id=body.entity_id,
            on=body.on,
            delay_s=body.delay_s
            if body.delay_s is not None
            else (_DEFAULT_TIMEOUT_DELAY_S if body.kind == "timeout" else 0.0),
            retry_after_s=body.retry_after_s,
            status_code=body.status_code,
            applied=body.applied,
        )
        return fault.to_json()

    @admin.get("/faults")
    async def list_faults() -> dict[str, Any]:
        return {"faults": [f.to_json() for f in st.faults.armed()]}

    @admin.delete("/faults")
    async def clear_faults() -> dict[str, int]:
        return {"cleared": st.faults.clear()}

    @admin.post("/out-of-band")
    async def out_of_band(body: OutOfBandRequest) -> dict[str, Any]:
        write_id, entity = st.write(
            body.entity_id,
            daily_budget_cents=body.daily_budget_cents,
            status=body.status,
            source="human",
            actor=body.actor,
        )
        return {"write_id": write_id, "entity": entity.to_json()}

    @admin.post("/delivery/advance")
    async def advance(body: AdvanceRequest) -> dict[str, Any]:
        reports = sim.advance_to(body.to)
        return {"metrics": [r.model_dump(mode="json") for r in reports]}

    app.include_router(admin)
    return app


def _retry_after_header(seconds: float | None) -> str:
    # Retry-After carries whole seconds (RFC 9110); round up so clients never retry early.
    return str(max(0, int(-(-(seconds or 0) // 1))))
