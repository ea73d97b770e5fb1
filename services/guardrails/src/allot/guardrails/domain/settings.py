"""A workspace's guardrail settings ("Wavo Limits & Autonomy"), validated; also the HTTP body model.

Units: caps are EUR cents (integer); FX rates are EUR per one major unit of the currency, as a
Decimal string (``"0.9234"``) or an integer micro-rate (``923400`` = 0.9234), never a float;
percentages are percent points (``20`` = 20 %); durations end in ``_s`` / ``_h``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    field_validator,
)

from allot.contracts.payloads import Platform, Source

AutonomyMode = Literal["observe", "live"]

#: One FX rate is given in millionths when it is an integer: 1_085_000 = 1.085 EUR per unit.
MICRO: Final = Decimal(1_000_000)

#: Worst-case spend per unit of daily budget, so that a cap on exposure is a guarantee on spend.
#: Meta: "On some days, you may spend up to 75% more than your daily budget" (Meta Business Help Centre
#: "About daily budgets", https://www.facebook.com/business/help/190490051321426, read 2026-12-05);
#: the Marketing API's older pages still say 125 % (developers.facebook.com/docs/marketing-api/adset/
#: budget-limits and .../bidding/overview/budgets), so the larger, current figure is the default: 1.75.
#: Google documents up to 2× on a day. TikTok does not document a bound, so it gets the conservative
#: 1.25 like the sandbox (whose simulated delivery never overspends by more). All configurable per workspace.
DEFAULT_OVERDELIVERY_FACTORS: Final[dict[Platform, Decimal]] = {
    "meta": Decimal("1.75"),
    "google": Decimal("2.0"),
    "tiktok": Decimal("1.25"),
    "sandbox": Decimal("1.25"),
}

#: Every source is live unless a workspace says otherwise. Dry-run of an individual pool or rule lives
#: on that pool (its own autonomy) or rule (preview / paused); the workspace setting is the override
#: that forces a whole source into observation (seed 001: observe 14 days before going live).
DEFAULT_AUTONOMY: Final[dict[Source, AutonomyMode]] = {
    "pool": "live",
    "rule": "live",
    "pacing": "live",
    "manual": "live",
    "undo": "live",
}

DEFAULT_SOURCE_PRIORITY: Final[tuple[Source, ...]] = ("pool", "pacing", "rule")

NonEmptyStr = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


def _sorted_list(values: frozenset[str] | None) -> list[str] | None:
    return None if values is None else sorted(values)


def _parse_fx_rate(value: object) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("FX rate must be a decimal string such as '0.9234' or an integer micro-rate, not a boolean")
    if isinstance(value, float):
        raise ValueError(
            "FX rate must not be a float (money never uses floats): send a decimal string such as "
            "'0.9234' or an integer micro-rate such as 923400"
        )
    if isinstance(value, int):
        rate = Decimal(value) / MICRO
    elif isinstance(value, Decimal):
        rate = value
    elif isinstance(value, str):
        try:
            rate = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"FX rate {value!r} is not a decimal number") from None
    else:
        raise ValueError(f"FX rate must be a decimal string or an integer micro-rate, got {type(value).__name__}")
    if not rate.is_finite() or rate <= 0:
        raise ValueError(f"FX rate must be a positive finite number, got {value!r}")
    return rate


def _parse_decimal(value: object) -> object:
    # Percentages and factors are not money; a JSON number is accepted and read via its shortest repr,
    # so 20.01 means exactly Decimal("20.01"), never 20.0099999….
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


FxRate = Annotated[Decimal, BeforeValidator(_parse_fx_rate), PlainSerializer(str, return_type=str, when_used="json")]
Factor = Annotated[
    Decimal,
    BeforeValidator(_parse_decimal),
    Field(ge=1, le=10, allow_inf_nan=False),
    PlainSerializer(str, return_type=str, when_used="json"),
]
Pct = Annotated[
    Decimal,
    BeforeValidator(_parse_decimal),
    Field(gt=0, le=1000, allow_inf_nan=False),
    PlainSerializer(str, return_type=str, when_used="json"),
]
IdSet = Annotated[frozenset[NonEmptyStr], PlainSerializer(_sorted_list, return_type=list[str], when_used="json")]
OptionalIdSet = Annotated[
    frozenset[NonEmptyStr] | None, PlainSerializer(_sorted_list, return_type=list[str] | None, when_used="json")
]
PlatformSet = Annotated[
    frozenset[Platform] | None, PlainSerializer(_sorted_list, return_type=list[str] | None, when_used="json")
]


class ManualRateLimit(BaseModel):
    """At most ``count`` manual change sets per (source, source_id) within any ``window_s`` seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(default=1, ge=1, le=1000, description="Manual change sets allowed per window.")
    window_s: int = Field(default=300, ge=1, le=86_400, description="Length of the sliding window, seconds.")


class WorkspaceLimits(BaseModel):
    """One workspace's limits and autonomy; every field validated, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kill_switch: bool = Field(
        default=False, description="Workspace-wide stop: every change set is blocked, pauses included."
    )
    killed_ad_accounts: IdSet = Field(
        default=frozenset(), description="Ad account ids stopped individually (same effect as the kill switch)."
    )
    daily_cap_eur_cents: int | None = Field(
        default=None, ge=0, description="Worst-case spend exposure allowed per UTC day, EUR cents; None = no cap."
    )
    monthly_cap_eur_cents: int | None = Field(
        default=None, ge=0, description="Worst-case spend exposure allowed per UTC month, EUR cents; None = no cap."
    )
    fx_rates_to_eur: dict[CurrencyCode, FxRate] = Field(
        default_factory=lambda: {"EUR": Decimal(1)},
        description="EUR per one major unit of each currency: decimal string or integer micro-rate; EUR is 1.",
    )
    account_whitelist: OptionalIdSet = Field(
        default=None, description="Ad accounts Allot may touch; None = all."
    )
    platform_whitelist: PlatformSet = Field(default=None, description="Platforms Allot may touch; None = all.")
    protected_entities: IdSet = Field(
        default=frozenset(), description="Entity ids Allot never touches (any action type)."
    )
    max_change_pct: Pct = Field(
        default=Decimal(20), description="Largest single budget change, percent of the current budget (inclusive)."
    )
    net_change_pct_window: Pct = Field(
        default=Decimal(20),
        description="Largest net budget change per entity across all sources within the window, percent of "
        "the budget at window start (inclusive).",
    )
    net_change_window_h: int = Field(default=72, ge=1, le=744, description="Length of the net-change window, hours.")
    autonomy: dict[Source, AutonomyMode] = Field(
        default_factory=lambda: dict(DEFAULT_AUTONOMY),
        description="Per source: 'live' (approve) or 'observe' (decide and log, never approve). Missing = live.",
    )
    manual_rate_limit: ManualRateLimit = Field(
        default_factory=ManualRateLimit, description="Rate limit of manual (person-triggered) change sets."
    )
    overdelivery_factors: dict[Platform, Factor] = Field(
        default_factory=lambda: dict(DEFAULT_OVERDELIVERY_FACTORS),
        description="Worst-case spend per unit of daily budget, per platform; missing platforms keep the default.",
    )
    source_priority: list[Source] = Field(
        default_factory=lambda: list(DEFAULT_SOURCE_PRIORITY),
        min_length=1,
        description="Automated sources from highest to lowest priority for pool members.",
    )
    approval_ttl_s: int = Field(default=900, ge=1, le=86_400, description="Lifetime of a signed approval, seconds.")

    @field_validator("fx_rates_to_eur", mode="after")
    @classmethod
    def _eur_is_one(cls, rates: dict[str, Decimal]) -> dict[str, Decimal]:
        if "EUR" in rates and rates["EUR"] != 1:
            raise ValueError(f"the EUR rate must be 1, got {rates['EUR']}")
        return {"EUR": Decimal(1), **rates}

    @field_validator("autonomy", mode="after")
    @classmethod
    def _autonomy_defaults(cls, modes: dict[Source, AutonomyMode]) -> dict[Source, AutonomyMode]:
        return {**DEFAULT_AUTONOMY, **modes}

    @field_validator("overdelivery_factors", mode="after")
    @classmethod
    def _factor_defaults(cls, factors: dict[Platform, Decimal]) -> dict[Platform, Decimal]:
        return {**DEFAULT_OVERDELIVERY_FACTORS, **factors}

    @field_validator("source_priority", mode="after")
    @classmethod
    def _priority_unique(cls, sources: list[Source]) -> list[Source]:
        duplicates = sorted({s for s in sources if sources.count(s) > 1})
        if duplicates:
            raise ValueError(f"each source may appear once, repeated: {', '.join(duplicates)}")
        return sources

    def rate_to_eur(self, currency: str) -> Decimal | None:
        """EUR per major unit of ``currency``; None when the workspace has no rate for it."""
        if currency == "EUR":
            return Decimal(1)
        return self.fx_rates_to_eur.get(currency)

    def autonomy_of(self, source: Source) -> AutonomyMode:
        """The autonomy mode of ``source`` (live when not configured)."""
        return self.autonomy.get(source, "live")

    def overdelivery_factor(self, platform: Platform) -> Decimal:
        """Worst-case spend multiplier of ``platform`` (the highest default when none is configured)."""
        factor = self.overdelivery_factors.get(platform)
        return factor if factor is not None else max(DEFAULT_OVERDELIVERY_FACTORS.values())

    def priority_rank(self, source: Source) -> int | None:
        """0 = highest priority; None for sources outside ``source_priority`` (manual, undo by default)."""
        return self.source_priority.index(source) if source in self.source_priority else None


def diff_settings(before: WorkspaceLimits, after: WorkspaceLimits) -> dict[str, dict[str, Any]]:
    """The fields whose value differs, as ``{field: {"before": json_value, "after": json_value}}``.

    Values are JSON-ready (sets as sorted lists, Decimals as strings), so the audit log can store them
    beside who changed what and when; an unchanged settings object gives ``{}``.
    """
    old = before.model_dump(mode="json")
    new = after.model_dump(mode="json")
    return {name: {"before": old[name], "after": new[name]} for name in new if old.get(name) != new[name]}
