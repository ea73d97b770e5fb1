"""GET /api/v1/change-sets (the console's Activity page): the workspace's recent change sets, newest first, with
before/after, outcome, the account's time zone and the undo issued; another workspace sees none of them."""

from __future__ import annotations

from typing import Any

from allot.executor.service import SPEC
from allot.sandbox.state import SandboxState
from tests.service.executor.executor_support import (
    approval,
    create_entity,
    executed,
    executor_settings,
    sandbox_fixture,  # noqa: F401  (the sandbox fixture)
)
from tests.support.kafka import eventually, publish
from tests.support.service import api_keys, auth, running_service


async def test_recent_change_sets_are_listed_for_their_workspace_only(
    settings: Any, unique: str, sandbox: tuple[str, SandboxState]
) -> None:
    url, _ = sandbox
    first, second = f"as-{unique}-1", f"as-{unique}-2"
    create_entity(url, first, 10_000)
    create_entity(url, second, 20_000)
    (viewer, op, other), keys = api_keys((unique, "viewer"), (unique, "operator"), ("someone-else", "admin"))
    one, two = approval(unique, first, 10_000, 11_000), approval(unique, second, 20_000, 18_000)
    async with running_service(SPEC, settings, **executor_settings(settings, url), api_keys=keys) as (client, _ctx):
        await publish(settings.kafka_bootstrap, one)
        await executed(settings, first)
        await publish(settings.kafka_bootstrap, two)
        await executed(settings, second)

        async def both_done() -> Any:
            r = await client.get("/api/v1/change-sets", headers=auth(viewer))
            sets = r.json()["change_sets"] if r.status_code == 200 else []
            return sets if len(sets) == 2 and all(cs["finished_at"] for cs in sets) else None

        sets = await eventually(both_done, what="both change sets listed")
        assert [cs["request_id"] for cs in sets] == [str(two.payload.request_id), str(one.payload.request_id)]
        newest = sets[0]
        assert newest["source"] == "pool" and newest["timezone_name"] == "UTC" and newest["undo_request_id"] is None
        action = newest["actions"][0]
        assert (action["status"], action["before_cents"], action["after_cents"]) == ("succeeded", 20_000, 18_000)
        assert action["action"]["entity_id"] == second

        r = await client.post(f"/api/v1/change-sets/{one.payload.request_id}/undo", headers=auth(op))
        assert r.status_code == 202
        listed = (await client.get("/api/v1/change-sets?limit=1", headers=auth(viewer))).json()["change_sets"]
        assert len(listed) == 1 and listed[0]["request_id"] == str(two.payload.request_id)
        undone = {cs["request_id"]: cs for cs in
                  (await client.get("/api/v1/change-sets", headers=auth(viewer))).json()["change_sets"]}
        assert undone[str(one.payload.request_id)]["undo_request_id"] == r.json()["undo_request_id"]

        assert (await client.get("/api/v1/change-sets", headers=auth(other))).json() == {"change_sets": []}
        assert (await client.get("/api/v1/change-sets?limit=0", headers=auth(viewer))).status_code == 422
