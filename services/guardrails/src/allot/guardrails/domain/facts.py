"""What the service loads from its ledger (Postgres) before deciding; the domain only reads it."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from allot.contracts.payloads import Source
from allot.guardrails.domain.decision import ChangeRecord, Decision


class ManualRequest(BaseModel):
    """A manual change set that passed the rate-limit check earlier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Source
    source_id: str = Field(min_length=1)
    at: AwareDatetime


class PoolMember(BaseModel):
    """An entity whose budget belongs to a pool, as the arbiter sees it: the pool's latest announced membership
    (pool.members_changed); for a pool that never announced one, learned from its approved allocations."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entity_id: str = Field(min_length=1)
    pool_id: str = Field(min_length=1)
    seen_at: AwareDatetime = Field(description="When the pool's membership state that lists the entity was "
                                               "committed (or its latest approved allocation named it).")


class LedgerFacts(BaseModel):
    """The ledger state a decision depends on; supersets are fine (the domain filters by window and key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    today_exposure_eur_cents: int = Field(
        default=0, ge=0,
        description="Worst-case exposure already counted for the account's current local day, EUR cents.")
    month_exposure_eur_cents: int = Field(
        default=0, ge=0,
        description="Worst-case exposure counted for the account's current local month (today included).")
    pool_counted_today_eur_cents: int = Field(
        default=0,
        ge=0,
        description="For a pool request: exposure already counted today for this pool, so a pool's daily "
        "budget is counted once per local day however often it allocates.",
    )
    changes: tuple[ChangeRecord, ...] = Field(
        default=(), description="Approved budget changes of the requested entities (at least the window)."
    )
    pool_membership: dict[str, str] = Field(default_factory=dict, description="entity_id → pool_id.")
    recent_manual_requests: tuple[ManualRequest, ...] = Field(
        default=(), description="Manual change sets of this source_id (at least the rate-limit window)."
    )
    existing_decision: Decision | None = Field(
        default=None, description="Decision already stored for (source, idempotency_key, utc_day), if any."
    )
