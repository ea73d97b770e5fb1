"""The guardrails' dry run over HTTP: what they would decide on a change set a preview proposes.

Rule previews and pool simulations ask it for each proposed action's verdict (approved / trimmed /
dropped / blocked, with the check and its numbers). ``create_app`` provides one client per service when
``ALLOT_GUARDRAILS_URL`` is set (``make run`` sets it). The caller's own credentials are forwarded, so
the guardrails answer for the caller's workspace exactly as they would for the caller; nothing is
recorded there. A guardrails service that is down, slow or answers with an error never fails a preview:
the answer says the verdict is unavailable and why.

The same client asks which entities belong to a budget pool (``pool_membership``: the arbiter's own view),
so a rule's preview and activation can say which of its entities a pool owns, with the same credentials
and the same ``available: false`` answer when the guardrails cannot say.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from allot.contracts.payloads import BudgetAction
from allot.runtime.deps import HasExtra, maybe

DRY_RUN_PATH = "/api/v1/guardrails/dry-run"
POOL_MEMBERSHIP_PATH = "/api/v1/guardrails/pool-membership"
#: Entity ids per membership request (the guardrails take up to 5000).
POOL_MEMBERSHIP_BATCH = 5000


class GuardrailsClient:
    """One pooled HTTP client to the guardrails service."""

    def __init__(self, base_url: str, *, timeout_s: float = 3.0, transport: httpx.AsyncBaseTransport | None = None):
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout_s, transport=transport)

    async def dry_run(self, credentials: dict[str, str], *, source: str, source_id: str,
                      actions: Sequence[BudgetAction], pool_daily_budget_cents: int | None = None,
                      currency: str | None = None, change_pool_member_budgets: bool = False) -> dict[str, Any]:
        """The guardrails' verdict (``available: true`` and their answer) or ``available: false`` with the reason."""
        body: dict[str, Any] = {"source": source, "source_id": source_id,
                                "actions": [a.model_dump(mode="json") for a in actions]}
        if pool_daily_budget_cents is not None:
            body.update(pool_daily_budget_cents=pool_daily_budget_cents, currency=currency)
        if change_pool_member_budgets:
            body["change_pool_member_budgets"] = True
        try:
            r = await self._http.post(DRY_RUN_PATH, json=body, headers=credentials)
        except httpx.HTTPError as exc:
            return {"available": False, "error": f"guardrails unreachable: {type(exc).__name__}"}
        if r.status_code != 200:
            return {"available": False, "error": f"guardrails answered {r.status_code}: {r.text[:300]}"}
        return {"available": True, **r.json()}

    async def pool_membership(self, credentials: dict[str, str], entity_ids: Sequence[str]) -> dict[str, Any]:
        """``available: true`` and ``members`` (entity_id, pool_id, seen_at) of the ids a pool owns, or
        ``available: false`` with the reason (the first failing batch decides)."""
        ids = sorted(set(entity_ids))
        members: list[dict[str, Any]] = []
        for start in range(0, len(ids), POOL_MEMBERSHIP_BATCH):
            batch = ids[start:start + POOL_MEMBERSHIP_BATCH]
            try:
                r = await self._http.post(POOL_MEMBERSHIP_PATH, json={"entity_ids": batch}, headers=credentials)
            except httpx.HTTPError as exc:
                return {"available": False, "error": f"guardrails unreachable: {type(exc).__name__}"}
            if r.status_code != 200:
                return {"available": False, "error": f"guardrails answered {r.status_code}: {r.text[:300]}"}
            members.extend(r.json()["members"])
        return {"available": True, "members": members}

    async def aclose(self) -> None:
        await self._http.aclose()


def caller_credentials(headers: Mapping[str, str]) -> dict[str, str]:
    """The caller's API-key headers, to ask another service on the caller's behalf."""
    return {k: v for k, v in headers.items() if k.lower() in ("authorization", "x-api-key")}


async def dry_run(ctx: HasExtra, headers: Mapping[str, str], *, source: str, source_id: str,
                  actions: Sequence[BudgetAction], pool_daily_budget_cents: int | None = None,
                  currency: str | None = None, change_pool_member_budgets: bool = False) -> dict[str, Any]:
    """The guardrails' verdict on ``actions`` for the caller (see the module docstring); nothing to ask: no lines."""
    if not actions:
        return {"available": True, "actions": []}
    client = maybe(ctx, GuardrailsClient)
    if client is None:
        return {"available": False, "error": "no guardrails URL configured (ALLOT_GUARDRAILS_URL)"}
    return await client.dry_run(caller_credentials(headers), source=source, source_id=source_id, actions=actions,
                                pool_daily_budget_cents=pool_daily_budget_cents, currency=currency,
                                change_pool_member_budgets=change_pool_member_budgets)


async def pool_membership(ctx: HasExtra, headers: Mapping[str, str], entity_ids: Sequence[str]) -> dict[str, Any]:
    """Which of ``entity_ids`` a budget pool owns, asked with the caller's credentials (see the module docstring)."""
    if not entity_ids:
        return {"available": True, "members": []}
    client = maybe(ctx, GuardrailsClient)
    if client is None:
        return {"available": False, "error": "no guardrails URL configured (ALLOT_GUARDRAILS_URL)"}
    return await client.pool_membership(caller_credentials(headers), entity_ids)
