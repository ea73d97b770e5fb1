"""The services' HTTP APIs, called with the signed-in user's own API key (never their tables)."""

from __future__ import annotations

from typing import Any

import httpx

SERVICE_LABELS = {"pools": "Budget pools", "guardrails": "Guardrails", "executor": "Executor", "rules": "Rules",
                  "pacing": "Pacing"}


class ServiceDown(Exception):
    """A service did not answer (or answered 5xx): the page says which and shows the rest."""

    def __init__(self, service: str, detail: str = "") -> None:
        super().__init__(f"{service} unavailable: {detail}")
        self.service = service
        self.label = SERVICE_LABELS.get(service, service)
        self.detail = detail


class Problem(Exception):
    """A 4xx answer: its message and the fields it names (``field`` and ``errors[].field``)."""

    def __init__(self, service: str, status: int, body: dict[str, Any]) -> None:
        self.service = service
        self.status = status
        self.code = str(body.get("error") or "error")
        self.message = str(body.get("message") or f"{service} answered {status}")
        self.body = body
        self.fields: dict[str, str] = {}
        for e in body.get("errors") or []:
            if isinstance(e, dict) and e.get("field"):
                self.fields.setdefault(str(e["field"]), str(e.get("message") or "invalid"))
        if body.get("field"):
            self.fields.setdefault(str(body["field"]), self.message)
        super().__init__(self.message)


class Services:
    def __init__(self, urls: dict[str, str | None], timeout_s: float) -> None:
        self.urls = {k: v.rstrip("/") for k, v in urls.items() if v}
        self.http = httpx.AsyncClient(timeout=timeout_s)

    async def call(self, service: str, method: str, path: str, key: str, *, json: Any = None,
                   params: dict[str, Any] | None = None) -> Any:
        base = self.urls.get(service)
        if base is None:
            raise ServiceDown(service, "not configured")
        try:
            r = await self.http.request(method, base + path, json=json, params=params,
                                        headers={"Authorization": f"Bearer {key}"})
        except httpx.HTTPError as exc:
            raise ServiceDown(service, type(exc).__name__) from None
        body: Any = None
        if r.content:
            try:
                body = r.json()
            except ValueError:
                body = {"message": r.text[:300]}
        if r.status_code >= 500:
            raise ServiceDown(service, (body or {}).get("message", "") if isinstance(body, dict) else "")
        if r.status_code >= 400:
            raise Problem(service, r.status_code, body if isinstance(body, dict) else {})
        return body

    async def aclose(self) -> None:
        await self.http.aclose()
