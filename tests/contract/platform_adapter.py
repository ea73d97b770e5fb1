"""The contract every platform adapter must pass (sandbox and Meta now; Google and TikTok later).

Recorder style: a subclass wires one adapter to its platform's fake and exposes the fake's write log; the
base class drives the adapter through the executor's port and asserts what the executor relies on:

* reads: budget (platform units of the account currency, None when the budget lives elsewhere), normalised
  status, currency, name;
* writes are absolute and visible on the next read, one platform write per call; re-applying the same
  value leaves the same state (the executor's compare-and-set then reports ``already_applied``);
* pause / activate;
* a person's edit on the platform is seen on the next read, so ``plan_write`` reports a conflict;
* errors map onto the port's types: unknown entity → Permanent, 5xx → Transient, bad credentials →
  PlatformAuthError; a negative budget is refused before any call; no message carries the credential.

A subclass implements the ``make_*``/``seed``/``edit``/``arm_*`` hooks below and sets ``currency``.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from typing import Any

import pytest

from allot.contracts.payloads import BudgetAction
from allot.executor.adapters.base import (
    EntityRef,
    PermanentPlatformError,
    PlatformAuthError,
    PlatformClient,
    TransientPlatformError,
)
from allot.executor.domain import EntityMemory, Observed, plan_write


class PlatformAdapterContract(ABC):
    """Subclass per adapter; every ``test_*`` here runs against that adapter and its fake."""

    platform: str = ""
    currency: str = "EUR"
    secret: str = ""
    """The credential the adapter uses: it must never appear in an error."""

    # ------------------------------------------------------------ hooks

    @abstractmethod
    def make_client(self, *, credential: str | None = None) -> PlatformClient:
        ...

    @abstractmethod
    def seed(self, *, budget: int | None = 10_000, status: str = "active") -> EntityRef:
        """Create an ad set on the fake, in ``currency``."""
        ...

    @abstractmethod
    def edit(self, ref: EntityRef, *, budget: int) -> None:
        """A person changes the budget on the platform (not through the adapter)."""
        ...

    @abstractmethod
    def arm_server_error(self, ref: EntityRef) -> None:
        """The next call about ``ref`` fails with a 5xx."""
        ...

    @abstractmethod
    def writes(self, ref: EntityRef) -> list[Any]:
        """The fake's log of the writes the adapter made to ``ref`` (people's edits excluded)."""
        ...

    def unknown(self, ref: EntityRef) -> EntityRef:
        return EntityRef(ref.platform, ref.ad_account_id, ref.entity_type, "9" + uuid.uuid4().hex[:12],
                         workspace_id=ref.workspace_id)

    def action(self, ref: EntityRef, frm: int, to: int) -> BudgetAction:
        return BudgetAction(action_id=uuid.uuid4(), platform=self.platform, ad_account_id=ref.ad_account_id,
                            entity_type=ref.entity_type, entity_id=ref.entity_id, action_type="set_budget",
                            currency=self.currency, from_cents=frm, to_cents=to, reason="contract")

    # ------------------------------------------------------------ the contract

    async def test_reads_budget_status_currency_and_name(self) -> None:
        ref = self.seed(budget=12_300, status="paused")
        async with self.make_client() as client:  # type: ignore[attr-defined]
            state = await client.get_entity(ref)
        assert (state.budget_cents, state.status, state.currency) == (12_300, "paused", self.currency)
        assert isinstance(state.name, str)

    async def test_set_budget_is_absolute_one_write_and_visible_on_read(self) -> None:
        ref = self.seed(budget=10_000)
        async with self.make_client() as client:  # type: ignore[attr-defined]
            result = await client.set_budget(ref, 11_000, idempotency_key=str(uuid.uuid4()))
            assert result.response_id
            assert (await client.get_entity(ref)).budget_cents == 11_000
        assert len(self.writes(ref)) == 1

    async def test_reapplying_the_same_value_changes_nothing_and_cas_says_already_applied(self) -> None:
        ref = self.seed(budget=10_000)
        act = self.action(ref, 10_000, 11_000)
        async with self.make_client() as client:  # type: ignore[attr-defined]
            await client.set_budget(ref, 11_000)
            seen = await client.get_entity(ref)
            # a replayed approval: the executor reads first and never sends the write again
            assert plan_write(act, Observed(seen.budget_cents, seen.status), EntityMemory(11_000, "active"),
                              min_budget_cents=1).kind == "already_applied"
            await client.set_budget(ref, 11_000)        # even sent twice, absolute: nothing compounds
            assert (await client.get_entity(ref)).budget_cents == 11_000

    async def test_pause_then_activate(self) -> None:
        ref = self.seed(status="active")
        async with self.make_client() as client:  # type: ignore[attr-defined]
            await client.set_status(ref, "paused")
            assert (await client.get_entity(ref)).status == "paused"
            await client.set_status(ref, "active")
            assert (await client.get_entity(ref)).status == "active"
        assert len(self.writes(ref)) == 2

    async def test_a_persons_edit_is_seen_and_compare_and_set_reports_a_conflict(self) -> None:
        ref = self.seed(budget=10_000)
        async with self.make_client() as client:  # type: ignore[attr-defined]
            await client.set_budget(ref, 11_000)
            self.edit(ref, budget=15_000)
            seen = await client.get_entity(ref)
        assert seen.budget_cents == 15_000
        plan = plan_write(self.action(ref, 11_000, 12_000), Observed(seen.budget_cents, seen.status),
                          EntityMemory(11_000, "active"), min_budget_cents=1)
        assert plan.kind == "conflict" and plan.out_of_band
        assert len(self.writes(ref)) == 1               # the person's edit is not ours

    async def test_unknown_entity_is_permanent(self) -> None:
        ref = self.unknown(self.seed())
        async with self.make_client() as client:  # type: ignore[attr-defined]
            with pytest.raises(PermanentPlatformError):
                await client.get_entity(ref)
            with pytest.raises(PermanentPlatformError):
                await client.set_budget(ref, 11_000)

    async def test_server_error_is_transient_and_nothing_is_written(self) -> None:
        ref = self.seed(budget=10_000)
        self.arm_server_error(ref)
        async with self.make_client() as client:  # type: ignore[attr-defined]
            with pytest.raises(TransientPlatformError):
                await client.set_budget(ref, 11_000)
            assert (await client.get_entity(ref)).budget_cents == 10_000
        assert self.writes(ref) == []

    async def test_bad_credentials_are_an_auth_error_without_the_credential(self) -> None:
        ref = self.seed()
        wrong = "wrong-" + uuid.uuid4().hex
        async with self.make_client(credential=wrong) as client:  # type: ignore[attr-defined]
            with pytest.raises(PlatformAuthError) as err:
                await client.get_entity(ref)
        assert wrong not in str(err.value) and wrong not in repr(client)
        assert self.secret not in str(err.value)

    async def test_a_negative_budget_is_refused_before_any_call(self) -> None:
        ref = self.seed()
        async with self.make_client() as client:  # type: ignore[attr-defined]
            with pytest.raises(PermanentPlatformError):
                await client.set_budget(ref, -1)
        assert self.writes(ref) == []

    async def test_the_adapter_is_a_platform_client(self) -> None:
        async with self.make_client() as client:  # type: ignore[attr-defined]
            assert isinstance(client, PlatformClient) and client.platform == self.platform
