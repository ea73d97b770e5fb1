"""The platform-adapter contract (tests/contract/platform_adapter.py), once for the sandbox and once for Meta."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from allot.contracts.platforms import META_DEFAULT_API_VERSION
from allot.executor.adapters.base import EntityRef, PlatformClient
from allot.executor.adapters.meta import MetaGraphClient
from allot.executor.adapters.sandbox import SandboxClient
from allot.fakes.meta import MetaFakeState, create_meta_fake
from allot.sandbox.app import create_app as create_sandbox
from allot.sandbox.state import SandboxState
from allot.sandbox.testing import serve_app
from tests.contract.platform_adapter import PlatformAdapterContract

SANDBOX_TOKEN = "sandbox-" + uuid.uuid4().hex
META_TOKEN = "EAAcontract" + uuid.uuid4().hex
META_SECRET = "secret-" + uuid.uuid4().hex


class TestSandboxAdapterContract(PlatformAdapterContract):
    platform = "sandbox"
    currency = "EUR"
    secret = SANDBOX_TOKEN

    @pytest.fixture(autouse=True)
    def _sandbox(self) -> Iterator[None]:
        self.state = SandboxState(api_token=SANDBOX_TOKEN)
        with serve_app(create_sandbox(self.state)) as url:
            self.url = url
            self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}, timeout=10)
            yield
            self.http.close()

    def make_client(self, *, credential: str | None = None) -> PlatformClient:
        return SandboxClient(self.url, credential or SANDBOX_TOKEN, timeout_s=5)

    def seed(self, *, budget: int | None = 10_000, status: str = "active") -> EntityRef:
        entity_id = "as-" + uuid.uuid4().hex[:10]
        r = self.http.post("/sandbox/entities", json={"id": entity_id, "platform": "sandbox", "ad_account_id": "act_1",
                                                      "entity_type": "adset", "currency": self.currency,
                                                      "daily_budget_cents": budget, "status": status})
        assert r.status_code in (200, 201), r.text
        return EntityRef("sandbox", "act_1", "adset", entity_id, workspace_id="ws-contract")

    def edit(self, ref: EntityRef, *, budget: int) -> None:
        self.http.post("/sandbox/out-of-band", json={"entity_id": ref.entity_id, "daily_budget_cents": budget,
                                                     "actor": "media-buyer"}).raise_for_status()

    def arm_server_error(self, ref: EntityRef) -> None:
        r = self.http.post("/sandbox/faults", json={"kind": "server_error", "entity_id": ref.entity_id, "count": 1,
                                                    "status_code": 503})
        assert r.status_code == 201, r.text

    def writes(self, ref: EntityRef) -> list[Any]:
        return [c for c in self.state.calls if c.entity_id == ref.entity_id and c.source != "human"]


class TestMetaAdapterContract(PlatformAdapterContract):
    platform = "meta"
    currency = "HUF"          # an offset-1 currency: amounts pass through unchanged, in forint
    secret = META_TOKEN

    @pytest.fixture(autouse=True)
    def _graph(self) -> Iterator[None]:
        self.state = MetaFakeState(access_tokens={META_TOKEN}, app_secret=META_SECRET)
        self.state.add_account("3003", currency=self.currency, name="Budapest")
        with serve_app(create_meta_fake(self.state)) as url:
            self.url = url
            yield

    def make_client(self, *, credential: str | None = None) -> PlatformClient:
        async def token_for(workspace: str, account: str) -> str | None:
            return (credential or META_TOKEN) if workspace == "ws-contract" else None

        return MetaGraphClient(self.url, META_DEFAULT_API_VERSION, token_for=token_for, app_secret=META_SECRET,
                               timeout_s=5)

    def seed(self, *, budget: int | None = 10_000, status: str = "active") -> EntityRef:
        object_id = str(uuid.uuid4().int % 10**15)
        self.state.add_object(object_id, "adset", "3003", daily_budget=budget, status=status.upper())
        return EntityRef("meta", "act_3003", "adset", object_id, workspace_id="ws-contract")

    def edit(self, ref: EntityRef, *, budget: int) -> None:
        self.state.objects[ref.entity_id].daily_budget = budget   # Ads Manager: not in the API write log

    def arm_server_error(self, ref: EntityRef) -> None:
        self.state.add_fault("server_error", object_id=ref.entity_id, on="write")

    def writes(self, ref: EntityRef) -> list[Any]:
        return [w for w in self.state.writes if w.object_id == ref.entity_id]
