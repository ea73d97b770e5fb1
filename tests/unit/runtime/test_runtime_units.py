"""Clock, auth, slots and settings: the pure parts of the runtime."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from allot.runtime.auth import ApiKeyStore, Principal, generate_key, hash_key, require
from allot.runtime.clock import ManualClock, SimulatedClock, clock_from_settings
from allot.runtime.http import install_error_handlers
from allot.runtime.schedule import next_slot, slot_start
from allot.runtime.settings import Settings


def test_simulated_clock_runs_speed_times_faster_from_a_shared_anchor() -> None:
    anchor = datetime(2026, 11, 2, tzinfo=UTC)
    real0 = time.time() - 2.0
    a = SimulatedClock(anchor_real=real0, anchor_sim=anchor, speed=3600)
    b = SimulatedClock(anchor_real=real0, anchor_sim=anchor, speed=3600)
    elapsed = a.now() - anchor
    assert timedelta(hours=2) <= elapsed < timedelta(hours=2, minutes=30)
    assert abs((a.now() - b.now()).total_seconds()) < 60, "two processes with the same anchors agree"


def test_settings_choose_the_clock() -> None:
    assert type(clock_from_settings(Settings(clock="real"))).__name__ == "RealClock"
    sim = clock_from_settings(Settings(clock="simulated", clock_speed=60, clock_anchor_real=time.time(),
                                       clock_anchor_sim=datetime(2026, 1, 1, tzinfo=UTC)))
    assert isinstance(sim, SimulatedClock) and sim.now().year == 2026 and sim.now().month == 1


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    clock.advance(90)
    assert clock.now() == datetime(2026, 1, 1, 0, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "interval", "start"),
    [
        (datetime(2026, 1, 1, 0, 14, 59, tzinfo=UTC), 900, datetime(2026, 1, 1, 0, 0, tzinfo=UTC)),
        (datetime(2026, 1, 1, 0, 15, 0, tzinfo=UTC), 900, datetime(2026, 1, 1, 0, 15, tzinfo=UTC)),
        (datetime(2026, 1, 1, 7, 59, tzinfo=UTC), 4 * 3600, datetime(2026, 1, 1, 4, 0, tzinfo=UTC)),
    ],
)
def test_slots_are_aligned_and_half_open(now: datetime, interval: int, start: datetime) -> None:
    assert slot_start(now, interval) == start
    assert next_slot(now, interval) == start + timedelta(seconds=interval)


def _app(keys: list[object]) -> TestClient:
    app = FastAPI()
    app.state.api_keys = ApiKeyStore(keys)  # type: ignore[arg-type]
    install_error_handlers(app)

    @app.get("/read")
    async def read(p: Principal = Depends(require("viewer"))) -> dict[str, str]:
        return {"workspace": p.workspace_id}

    @app.post("/write")
    async def write(p: Principal = Depends(require("operator"))) -> dict[str, str]:
        return {"workspace": p.workspace_id}

    return TestClient(app)


def test_api_keys_are_stored_hashed_and_scoped_with_roles() -> None:
    viewer_raw, viewer = generate_key("ws1", "viewer")
    op_raw, op = generate_key("ws2", "operator")
    assert viewer.sha256 == hash_key(viewer_raw) and viewer_raw not in viewer.model_dump_json()
    client = _app([viewer, op])
    assert client.get("/read").status_code == 401
    assert client.get("/read", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/read", headers={"Authorization": f"Bearer {viewer_raw}"}).json() == {"workspace": "ws1"}
    assert client.get("/read", headers={"X-API-Key": op_raw}).json() == {"workspace": "ws2"}
    forbidden = client.post("/write", headers={"Authorization": f"Bearer {viewer_raw}"})
    assert forbidden.status_code == 403 and "operator" in forbidden.json()["message"]
    assert client.post("/write", headers={"Authorization": f"Bearer {op_raw}"}).status_code == 200


def test_keys_load_from_json_configuration() -> None:
    raw, entry = generate_key("ws", "admin", key_id="k1")
    store = ApiKeyStore.from_json("[" + entry.model_dump_json() + "]")
    principal = store.authenticate(raw)
    assert principal is not None and principal.role == "admin" and principal.can("operator")
    assert store.authenticate(raw + "x") is None
