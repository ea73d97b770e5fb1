"""Request bodies of the sandbox HTTP API. Unknown fields are refused so typos surface as 422s naming the field."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, StringConstraints, model_validator

from allot.sandbox.profiles import Profile

__all__ = [
    "AdvanceRequest",
    "CreateEntityRequest",
    "CurveParams",
    "FaultRequest",
    "OutOfBandRequest",
    "WriteRequest",
]

EntityId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
Cents = Annotated[StrictInt, Field(ge=0, le=10**12)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CurveParams(_Body):
    """Overrides of the hidden delivery curve (see ``delivery.EntityCurve``); unset fields keep the profile's values."""

    saturation_conversions_per_day: float | None = Field(default=None, gt=0)
    scale_cents: float | None = Field(default=None, gt=0)
    aov_cents: StrictInt | None = Field(default=None, gt=0)
    cpm_cents: StrictInt | None = Field(default=None, gt=0)
    ctr: float | None = Field(default=None, ge=0, le=1)
    base_frequency: float | None = Field(default=None, gt=0)
    frequency_growth_per_day: float | None = Field(default=None, ge=0)
    noise_sigma: float | None = Field(default=None, ge=0, le=3)
    aov_sigma: float | None = Field(default=None, ge=0, le=3)
    spend_sigma: float | None = Field(default=None, ge=0, le=3)
    fade_start_day: float | None = Field(default=None, ge=0)
    fade_per_day: float | None = Field(default=None, ge=0, lt=1)


class CreateEntityRequest(_Body):
    """Create a campaign, ad set or ad (test and demo setup)."""

    id: EntityId | None = None
    platform: Literal["sandbox", "meta", "google", "tiktok"] = "sandbox"
    ad_account_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    entity_type: Literal["campaign", "adset", "ad"]
    name: Annotated[str, StringConstraints(max_length=256)] = ""
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "USD"
    daily_budget_cents: Cents | None = None
    status: Literal["active", "paused"] = "active"
    parent_id: EntityId | None = None
    profile: Profile | None = None
    curve: CurveParams | None = None


class WriteRequest(_Body):
    """An absolute change to an entity: a new daily budget, a new status, or both."""

    daily_budget_cents: Cents | None = None
    status: Literal["active", "paused"] | None = None


class OutOfBandRequest(_Body):
    """A change made by a person in the platform's own UI, bypassing Allot."""

    entity_id: EntityId
    daily_budget_cents: Cents | None = None
    status: Literal["active", "paused"] | None = None
    actor: Annotated[str, StringConstraints(max_length=128)] = "human"


class FaultRequest(_Body):
    """Arm a fault on the /v1 API: for the next ``count`` matching calls, or on each with ``probability``."""

    kind: Literal["rate_limit", "server_error", "timeout", "slow"]
    count: StrictInt | None = Field(default=None, ge=1, le=1_000_000)
    probability: float | None = Field(default=None, ge=0, le=1)
    seed: StrictInt = 0
    entity_id: EntityId | None = None
    on: Literal["any", "read", "write"] = "any"
    delay_s: float | None = Field(default=None, ge=0, le=600)
    retry_after_s: float | None = Field(default=None, ge=0, le=86400)
    status_code: StrictInt = Field(default=503, ge=500, le=599)
    applied: bool = False

    @model_validator(mode="after")
    def _count_or_probability(self) -> FaultRequest:
        if self.count is not None and self.probability is not None:
            raise ValueError("give count or probability, not both")
        return self


class AdvanceRequest(_Body):
    """Advance the delivery simulator to ``to`` (demo and test use; the service runs it on a timer)."""

    to: AwareDatetime
