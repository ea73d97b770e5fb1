"""The demo approves its approval flight's first pending proposal as a person would (pacing API faked in process)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from allot.sandbox.demo import approve_first_proposal

PLAN = "plan-1"


def _proposal(pid: str, amount: int, **extra: Any) -> dict[str, Any]:
    return {"proposal_id": pid, "source_channel": "CTV", "target_channel": "DISPLAY", "amount_cents": amount,
            "status": "pending_approval", "actions": [], **extra}


async def test_a_superseded_approval_re_reads_and_approves_the_current_proposal(
        capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[tuple[str, str]] = []
    pending = [[], [_proposal("p1", 1407)], [_proposal("p2", 2059)]]

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path))
        base = f"/api/v1/pacing/plans/{PLAN}/proposals"
        if request.method == "GET" and request.url.path == base:
            assert request.url.params["status"] == "pending_approval"
            assert request.headers["authorization"] == "Bearer admin-key"
            return httpx.Response(200, json={"proposals": pending.pop(0)})
        if request.url.path == f"{base}/p1/approve":
            return httpx.Response(409, json={"code": "proposal_superseded", "current": None})
        if request.url.path == f"{base}/p2/approve":
            return httpx.Response(200, json=_proposal("p2", 2059, status="requested", actions=[
                {"entity_id": "as_flight_display", "from_cents": 5000, "to_cents": 5100},
                {"entity_id": "as_flight_ctv", "from_cents": 5000, "to_cents": 4900}]))
        return httpx.Response(404)

    stack = SimpleNamespace(url=lambda service: "http://pacing.test")
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler),
                                 headers={"Authorization": "Bearer admin-key"}) as http:
        await asyncio.wait_for(approve_first_proposal(stack, http, PLAN, asyncio.Event(), poll_s=0), 5)

    assert [c for c in calls if c[0] == "POST"] == [
        ("POST", f"/api/v1/pacing/plans/{PLAN}/proposals/p1/approve"),
        ("POST", f"/api/v1/pacing/plans/{PLAN}/proposals/p2/approve")]
    out = capsys.readouterr().out
    assert ("pacing    proposal approved: move 20.59 EUR of the flight's plan CTV → DISPLAY "
            "(daily budgets, EUR: as_flight_display 50.00 → 51.00, as_flight_ctv 50.00 → 49.00)") in out
