"""The guardrails' decision on one change set, and the ledger facts it records."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Literal

from pydantic import AliasChoices, AwareDatetime, BaseModel, ConfigDict, Field

from allot.contracts.payloads import BudgetAction, Source

Status = Literal["approved", "blocked"]
Detail = int | float | str | None

#: Namespace of decision ids: uuid5(DECISION_NAMESPACE, "<request_id>/<source>/<idempotency_key>/<utc_day>").
DECISION_NAMESPACE = uuid.UUID("2d6f0f7e-2b3f-5a43-9a0e-6b7c3f1d9e55")


class ChangeRecord(BaseModel):
    """One approved budget change of one entity, kept for the rolling net-change window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entity_id: str = Field(min_length=1)
    source: Source
    source_id: str = Field(min_length=1)
    from_cents: int = Field(ge=0, description="Budget before the change, minor units.")
    to_cents: int = Field(ge=0, description="Budget after the change, minor units.")
    at: AwareDatetime = Field(description="When the change was approved (UTC).")
    decision_id: uuid.UUID | None = Field(default=None, description="Decision that approved it, if known.")

    @property
    def delta_cents(self) -> int:
        """Signed change, minor units."""
        return self.to_cents - self.from_cents


class LedgerIncrement(BaseModel):
    """Worst-case exposure the service adds to the day's and month's ledger rows (both by the same amount).

    The day and month are the ad account's local ones (its time zone; UTC when unknown), the days on which
    the platform resets daily budgets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: decisions stored before local days named it ``utc_day`` (then the UTC day was the only day)
    day: date = Field(validation_alias=AliasChoices("day", "utc_day"),
                      description="The account-local day whose ledger row this counts on.")
    month: str = Field(pattern=r"^\d{4}-\d{2}$", description="The account-local month, 'YYYY-MM'.")
    eur_cents: int = Field(ge=0, description="EUR cents to add to today's and this month's exposure.")
    pool_id: str | None = Field(
        default=None, description="For pool allocations: the pool whose daily budget this counts (once per day)."
    )


class Decision(BaseModel):
    """Exactly one outcome for one change set: approved (possibly trimmed) or blocked, with what to record.

    The service persists the decision (idempotency key = source, idempotency_key, utc_day), adds
    ``ledger`` to the spend ledger, inserts ``change_records`` and, when ``counts_toward_rate_limit``,
    a manual-request row — all in one transaction — then publishes the approval or the block.
    A replayed decision (``replayed``) carries a zero ledger increment and no records.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision_id: uuid.UUID
    request_id: uuid.UUID
    source: Source
    source_id: str
    idempotency_key: str
    utc_day: date
    status: Status
    check: str | None = Field(default=None, description="The check that blocked; None when approved.")
    reason: str = Field(default="", description="Human-readable reason of a block (or summary of an approval).")
    details: dict[str, Detail] = Field(default_factory=dict, description="The numbers behind the outcome.")
    observe_only: bool = Field(default=False, description="Autonomy 'observe': decided and logged, never approved.")
    retry_after_s: int | None = Field(default=None, description="For rate limits: seconds until a retry may pass.")
    actions: tuple[BudgetAction, ...] = Field(
        default=(), description="Approved actions (possibly trimmed); in observe mode the ones that would be."
    )
    notes: tuple[str, ...] = Field(default=(), description="Why actions were trimmed or dropped.")
    decided_at: AwareDatetime
    expires_at: AwareDatetime | None = Field(default=None, description="Approval expiry; None when blocked.")
    exposure_eur_cents: int = Field(default=0, ge=0, description="Worst-case exposure this decision counts.")
    ledger: LedgerIncrement
    change_records: tuple[ChangeRecord, ...] = ()
    counts_toward_rate_limit: bool = False
    replayed: bool = Field(default=False, description="True when returned from the idempotency store.")

    @property
    def approved(self) -> bool:
        """True when the change set may be executed."""
        return self.status == "approved"

    def as_replay(self) -> Decision:
        """The same decision for a repeated request: identical outcome, nothing recorded a second time."""
        return self.model_copy(
            update={
                "replayed": True,
                "ledger": self.ledger.model_copy(update={"eur_cents": 0}),
                "change_records": (),
                "counts_toward_rate_limit": False,
            }
        )
