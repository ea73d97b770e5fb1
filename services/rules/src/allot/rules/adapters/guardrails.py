"""The guardrails' dry run over HTTP: what they would decide on the actions a rule preview proposes.

The caller's own credentials are forwarded, so the guardrails answer for the caller's workspace exactly
as they would for the caller; nothing is recorded there. A guardrails service that is down, slow or
answers with an error never fails a preview: the preview says the verdict is unavailable and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from allot.contracts.payloads import BudgetAction

DRY_RUN_PATH = "/api/v1/guardrails/dry-run"


class GuardrailsClient:
    """One pooled HTTP client to the guardrails service (provided at start when ALLOT_GUARDRAILS_URL is set)."""

    def __init__(self, base_url: str, *, timeout_s: float = 3.0, transport: httpx.AsyncBaseTransport | None = None):
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout_s, transport=transport)

    async def dry_run(self, credentials: dict[str, str], *, source_id: str,
                      actions: Sequence[BudgetAction]) -> dict[str, Any]:
        """The guardrails' verdict (``available: true`` and their answer) or ``available: false`` with the reason."""
        body = {"source": "rule", "source_id": source_id,
                "actions": [a.model_dump(mode="json") for a in actions]}
        try:
            r = await self._http.post(DRY_RUN_PATH, json=body, headers=credentials)
        except httpx.HTTPError as exc:
            return {"available": False, "error": f"guardrails unreachable: {type(exc).__name__}"}
        if r.status_code != 200:
            return {"available": False, "error": f"guardrails answered {r.status_code}: {r.text[:300]}"}
        return {"available": True, **r.json()}

    async def aclose(self) -> None:
        await self._http.aclose()
