"""The kill-switch gauge (allot_guardrail_kill_switches_on, scraped at /metrics and alerted on by AllotKillSwitchOn)
follows the switches in the database: a workspace switch and an ad account's switch each count while they are on."""

from __future__ import annotations

import re
from typing import Any

from allot.guardrails.service import SPEC
from tests.support.kafka import eventually
from tests.support.service import api_keys, auth, running_service

GAUGE = "allot_guardrail_kill_switches_on"


async def _read(client: Any, scope: str) -> float | None:
    text = (await client.get("/metrics")).text
    found = re.search(rf'^{GAUGE}\{{[^}}]*scope="{scope}"[^}}]*\}} (\S+)$', text, re.M)
    return None if found is None else float(found.group(1))


async def _gauge(client: Any, scope: str) -> float:
    value = await _read(client, scope)
    assert value is not None, f"{GAUGE}{{scope={scope!r}}} is not exported"
    return value


async def test_the_gauge_counts_the_switches_that_are_on(settings: Any, unique: str) -> None:
    ws = f"ws-{unique}"
    (operator,), keys_json = api_keys((ws, "operator"))
    async with running_service(SPEC, settings.model_copy(update={"api_keys": keys_json})) as (client, _):
        # the first read of the database happens as the service starts
        async def exported() -> bool:
            return await _read(client, "ad_account") is not None

        await eventually(exported, what="the gauge's first reading")
        workspaces, accounts = await _gauge(client, "workspace"), await _gauge(client, "ad_account")

        async def switch(body: dict[str, Any]) -> None:
            r = await client.post("/api/v1/guardrails/kill-switch", json=body, headers=auth(operator))
            assert r.status_code == 200, r.text

        await switch({"enabled": True})
        assert await _gauge(client, "workspace") == workspaces + 1
        await switch({"enabled": True, "ad_account_id": f"act-{unique}"})
        assert await _gauge(client, "ad_account") == accounts + 1
        assert await _gauge(client, "workspace") == workspaces + 1

        await switch({"enabled": False})
        assert await _gauge(client, "workspace") == workspaces
        await switch({"enabled": False, "ad_account_id": f"act-{unique}"})
        assert await _gauge(client, "ad_account") == accounts
