"""One pydantic model per topic payload. Money is integer minor units (``*_cents``) plus an ISO 4217 currency."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from allot.contracts.envelope import Payload

#: ISO 4217 currency code of every ``*_cents`` field beside it.
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
EntityType = Literal["campaign", "adset", "ad"]
Platform = Literal["meta", "google", "tiktok", "sandbox"]
EntityStatus = Literal["active", "paused", "deleted"]
Source = Literal["pool", "rule", "pacing", "manual", "undo"]


# ---------------------------------------------------------------- metrics.ingested


class RangeReach(Payload):
    """The platform's own deduplicated reach of one entity over complete local days of its ad account.

    Reach is not additive: a person reached on two days is one person here but two in the sum of two daily
    reaches, so multi-day reach (and frequency) must come from these numbers, never from summing ``reach``
    across intervals. Every range ends with the local day ``through`` and covers the N complete local days
    up to it (``last_7d`` = ``through`` − 6 days … ``through``), which is Meta's ``date_preset=last_7d`` when
    read on the day after ``through``. A range left out (None) was not reported.
    """

    through: date = Field(description="Last complete local day of the ad account the ranges include: the day "
                                      "before the account's today when the platform was read.")
    yesterday: int | None = Field(default=None, ge=0, description="People reached on the local day `through`.")
    last_3d: int | None = Field(default=None, ge=0, description="Deduplicated people reached over the 3 local days "
                                                                "ending with `through`.")
    last_7d: int | None = Field(default=None, ge=0, description="Deduplicated people reached over the 7 local days "
                                                                "ending with `through`.")
    last_14d: int | None = Field(default=None, ge=0, description="Deduplicated people reached over the 14 local days "
                                                                 "ending with `through`.")
    last_30d: int | None = Field(default=None, ge=0, description="Deduplicated people reached over the 30 local days "
                                                                 "ending with `through`.")


class MetricsIngested(Payload):
    """Delivery counters of one entity for one interval, as the platform reports them at ``reported_at``.

    An interval may be re-reported as conversions mature (attribution windows): each report carries
    the full counters of the interval, never a delta, so consumers keep the latest report per
    (entity_id, interval_start) and replaying a report changes nothing. ``reach`` is the interval's own
    and is not additive across intervals; a report may carry the platform's deduplicated reach of the
    entity over whole days in ``range_reach`` (the latest report that carries one is current).
    """

    platform: Platform = Field(description="Ad platform the entity lives on.")
    ad_account_id: str = Field(min_length=1, description="Platform ad account id.")
    entity_type: EntityType = Field(description="Level of the entity.")
    entity_id: str = Field(min_length=1, description="Platform id of the campaign / ad set / ad.")
    entity_name: str = Field(default="", description="Human-readable name at report time.")
    parent_id: str | None = Field(default=None, description="Campaign id of an ad set, ad set id of an ad.")
    status: EntityStatus = Field(default="active", description="Delivery status at report time.")
    currency: Currency = Field(description="ISO 4217 currency of the *_cents fields.")
    daily_budget_cents: int | None = Field(default=None, ge=0, description="Daily budget at report time, minor units.")
    interval_start: AwareDatetime = Field(description="Start of the delivery interval (UTC, inclusive).")
    interval_end: AwareDatetime = Field(description="End of the delivery interval (UTC, exclusive).")
    reported_at: AwareDatetime = Field(description="When the platform produced these numbers; later reports win.")
    spend_cents: int = Field(ge=0, description="Spend in the interval, minor units.")
    impressions: int = Field(ge=0, description="Impressions in the interval.")
    clicks: int = Field(ge=0, default=0, description="Clicks in the interval.")
    conversions: int = Field(ge=0, default=0, description="Attributed conversions so far for the interval.")
    revenue_cents: int = Field(ge=0, default=0, description="Attributed conversion value so far, minor units.")
    reach: int = Field(ge=0, default=0, description="Unique people reached in the interval (not additive across "
                                                    "intervals: never sum it).")
    extra: dict[str, int] = Field(
        default_factory=dict,
        description="Platform-specific counters (e.g. Meta link_clicks, add_to_cart, leads, video_thruplay).",
    )
    range_reach: RangeReach | None = Field(
        default=None,
        description="The platform's deduplicated reach of the entity over the complete local days ending with "
                    "range_reach.through; absent when this report does not carry it (it does not say it is gone).",
    )

    @model_validator(mode="after")
    def _interval_ordered(self) -> MetricsIngested:
        if self.interval_end <= self.interval_start:
            raise ValueError("interval_end must be after interval_start")
        return self


# ---------------------------------------------------------------- pacing.*


class ChannelPacing(Payload):
    """Pacing of one channel of a flight plan."""

    channel: str = Field(description="Channel name (CTV, DISPLAY, ...).")
    allocated_budget_cents: int = Field(ge=0, description="Budget allocated to the channel, minor units.")
    spend_cents: int = Field(ge=0, description="Actual spend to date, minor units.")
    expected_spend_cents: int = Field(ge=0, description="Expected spend to date under the plan's curve.")
    pacing_pct: float = Field(description="spend / expected × 100, 2 decimals.")
    deviation_pct: float = Field(description="pacing_pct − 100, 2 decimals; negative = underpacing.")
    impressions: int = Field(ge=0, description="Impressions delivered to date.")


class PacingSnapshotTaken(Payload):
    """A point-in-time pacing capture of one flight plan."""

    plan_id: str = Field(description="Flight plan id.")
    campaign_id: str = Field(description="Campaign the plan paces.")
    snapshot_id: uuid.UUID = Field(description="Id of the persisted snapshot.")
    taken_at: AwareDatetime = Field(description="Evaluation time of the snapshot (UTC).")
    currency: Currency = Field(description="ISO 4217 currency of the *_cents fields.")
    total_budget_cents: int = Field(ge=0, description="Flight budget, minor units.")
    total_spend_cents: int = Field(ge=0, description="Spend to date, minor units.")
    expected_spend_cents: int = Field(ge=0, description="Expected spend to date, minor units.")
    pacing_pct: float = Field(description="Campaign pacing percent, 2 decimals.")
    deviation_pct: float = Field(description="Campaign deviation percent, 2 decimals.")
    channel_count: int = Field(ge=0, description="Number of channels in the snapshot.")
    deal_count: int = Field(ge=0, description="Number of deals in the snapshot.")
    channels: list[ChannelPacing] = Field(default_factory=list, description="Per-channel pacing.")
    state: Literal["ACTIVE", "PACING_HOLD", "PAUSED"] = Field(default="ACTIVE", description="Campaign pacing state.")


class PacingDeviationDetected(Payload):
    """Campaign-level deviation beyond a warning or critical threshold."""

    plan_id: str
    campaign_id: str
    snapshot_id: uuid.UUID
    alert_level: Literal["warning", "critical"] = Field(description="Severity.")
    direction: Literal["underpacing", "overpacing"] = Field(description="Which way the campaign is off.")
    deviation_pct: float = Field(description="Deviation in percent, 2 decimals.")
    threshold_pct: float = Field(description="The threshold that was exceeded (signed).")
    message: str = Field(description="Human-readable message, e.g. 'Critical underpacing: -32.2% deviation ...'.")
    state_before: Literal["ACTIVE", "PACING_HOLD", "PAUSED"] = "ACTIVE"
    state_after: Literal["ACTIVE", "PACING_HOLD", "PAUSED"] = "ACTIVE"


class PacingReallocationRecommended(Payload):
    """A proposal to move budget from an underpacing channel to an overpacing one."""

    plan_id: str
    campaign_id: str
    proposal_id: uuid.UUID = Field(description="Id of the proposal (approve/reject over HTTP).")
    snapshot_id: uuid.UUID
    source_channel: str = Field(description="Channel giving budget (underpacing).")
    target_channel: str = Field(description="Channel receiving budget (overpacing).")
    amount_cents: int = Field(gt=0, description="Amount to move, minor units.")
    currency: Currency = Field(description="ISO 4217 currency of the *_cents fields.")
    reason: str = Field(description="Human-readable justification with the numbers.")
    requires_approval: bool = Field(description="True when the PACING_ADJUSTMENT approval stage is on.")


# ---------------------------------------------------------------- allocation.requested


ActionType = Literal["set_budget", "pause", "activate", "relaunch"]


class BudgetAction(Payload):
    """One change to one entity. Budget changes are absolute (from → to), so applying twice cannot compound."""

    action_id: uuid.UUID = Field(description="Unique, deterministic id of this action; the executor's ledger key.")
    platform: Platform
    ad_account_id: str = Field(min_length=1)
    entity_type: EntityType
    entity_id: str = Field(min_length=1)
    action_type: ActionType = Field(description="set_budget, pause, activate or relaunch (Meta only).")
    currency: Currency = Field(description="ISO 4217 currency of the *_cents fields.")
    from_cents: int | None = Field(default=None, ge=0, description="Daily budget the requester saw, minor units.")
    to_cents: int | None = Field(default=None, ge=0, description="Daily budget to set, minor units.")
    reason: str = Field(default="", description="Why the requester wants this change.")

    @model_validator(mode="after")
    def _budget_fields(self) -> BudgetAction:
        if self.action_type == "set_budget" and (self.from_cents is None or self.to_cents is None):
            raise ValueError("set_budget needs from_cents and to_cents")
        return self


class AllocationRequested(Payload):
    """A change set that a pool, rule, pacing plan or person wants applied; guardrails decide on it whole."""

    request_id: uuid.UUID = Field(description="Id of this change set (look the decision up by it).")
    source: Source = Field(description="Who asks: pool, rule, pacing, manual or undo.")
    source_id: str = Field(min_length=1, description="Pool id, rule id, plan id, or user/key id.")
    idempotency_key: str = Field(
        min_length=1,
        description="Same key from the same source on the same UTC day = same decision, counted once.",
    )
    manual: bool = Field(default=False, description="Triggered by a person (rate-limited) rather than a schedule.")
    actions: list[BudgetAction] = Field(min_length=1, max_length=500)
    pool_daily_budget_cents: int | None = Field(
        default=None, ge=0, description="For pool allocations: the pool's daily budget, counted as the spend event."
    )
    currency: Currency | None = Field(default=None, description="Currency of pool_daily_budget_cents.")
    requested_by: str = Field(default="", description="Key id or service that asked.")
    undo_of: uuid.UUID | None = Field(default=None, description="For undo change sets: the request being reverted.")
    change_pool_member_budgets: bool = Field(
        default=False, description="A rule's explicit opt-in to change budgets of entities that belong to a budget "
                                   "pool (by default the pool owns them and such changes are dropped).")


# ---------------------------------------------------------------- guardrail.*


class GuardrailApproved(Payload):
    """The guardrails' approval of a change set: only an approval with a valid signature may be executed."""

    decision_id: uuid.UUID = Field(description="Id of the decision.")
    request_id: uuid.UUID
    source: Source
    source_id: str
    actions: list[BudgetAction] = Field(min_length=1, description="The approved (possibly trimmed) actions.")
    trimmed: list[str] = Field(default_factory=list, description="Notes on actions trimmed by arbitration or limits.")
    approved_at: AwareDatetime
    expires_at: AwareDatetime = Field(description="The executor refuses the approval after this instant.")
    signature: str = Field(description="HMAC-SHA256 (hex) over the signed fields, see allot.contracts.signing.")
    key_id: str | None = Field(
        default=None, max_length=64,
        description="Id of the key that signed (signed too): verifiers accept the current and, during a rotation "
                    "window, the previous key. Absent on approvals signed before key ids existed (current key).")


class GuardrailBlocked(Payload):
    """The guardrails refused a change set (or, in observe mode, logged it without approving)."""

    decision_id: uuid.UUID
    request_id: uuid.UUID
    source: Source
    source_id: str
    check: str = Field(description="The check that blocked: kill_switch, daily_cap, monthly_cap, whitelist, ...")
    reason: str = Field(description="Human-readable reason.")
    details: dict[str, int | float | str | None] = Field(default_factory=dict, description="The numbers behind it.")
    observe_only: bool = Field(default=False, description="True when autonomy is 'observe': decided, not approved.")
    retry_after_s: int | None = Field(default=None, description="For rate limits: seconds until a retry may pass.")


# ---------------------------------------------------------------- action.executed

Outcome = Literal["succeeded", "failed", "already_applied", "conflict", "rejected", "expired", "pending"]
#: Outcomes after which the action will never be applied by this approval: its source should plan again.
FINAL_OUTCOMES = frozenset({"succeeded", "failed", "already_applied", "conflict", "rejected", "expired"})


class ActionExecuted(Payload):
    """The outcome of one action on the ad platform; one per action of an approved change set."""

    action_id: uuid.UUID
    request_id: uuid.UUID
    decision_id: uuid.UUID
    source: Source
    source_id: str
    platform: Platform
    ad_account_id: str
    entity_type: EntityType
    entity_id: str
    action_type: ActionType
    outcome: Outcome = Field(description=(
        "succeeded, failed, already_applied, conflict, rejected; expired (the approval's lifetime ended before the "
        "executor received it: nothing was sent, the source should plan again); pending (a duplicate approval "
        "arrived while the original action is still being applied: its real outcome follows)."))
    currency: Currency = Field(description="ISO 4217 currency of the *_cents fields.")
    before_cents: int | None = Field(default=None, description="Budget before, minor units.")
    after_cents: int | None = Field(default=None, description="Budget after, minor units.")
    observed_cents: int | None = Field(default=None, description="For conflicts: what the platform actually had.")
    before_status: str | None = None
    after_status: str | None = None
    observed_status: str | None = None
    platform_response_id: str | None = Field(default=None, description="The platform's id of the write, if any.")
    error: str | None = Field(default=None, description="Why it failed, conflicted or was rejected.")
    attempts: int = Field(default=1, ge=0, description="Platform calls made.")
    executed_at: AwareDatetime


# ---------------------------------------------------------------- connection.changed / account.profiled


class SealedToken(Payload):
    """A platform token sealed to one recipient service: only the holder of that service's private key opens it."""

    recipient: Literal["ingest", "executor"] = Field(description="The only service that can open this token.")
    key_id: str = Field(min_length=1, max_length=64, description="Id of the recipient key it was sealed to.")
    ciphertext: str = Field(min_length=1, max_length=8192, description="Sealed box, URL-safe base64.")


class ConnectionChanged(Payload):
    """A workspace connected, changed or removed a platform connection (ad accounts plus sealed tokens).

    Keyed by ``connection_id``; consumers keep the latest record per connection. Tokens never travel in the clear:
    the read token is sealed to ingest, the write token to the executor.
    """

    connection_id: str = Field(min_length=1, max_length=64)
    platform: Platform
    ad_account_ids: list[str] = Field(min_length=1, max_length=200, description="Platform ad account ids, no 'act_'.")
    state: Literal["active", "removed"] = Field(description="removed: stop reading and writing these accounts.")
    read_token: SealedToken | None = Field(default=None, description="For ingest (read-only permissions).")
    write_token: SealedToken | None = Field(default=None, description="For the executor (ads_management).")
    graph_api_version: str | None = Field(default=None, pattern=r"^v\d+\.\d+$",
                                          description="Meta: Graph API version override for this connection.")
    changed_at: AwareDatetime


class AccountProfiled(Payload):
    """What the platform says about one ad account: its currency, time zone and status (read by ingest).

    Keyed by ``ad_account_id``; consumers keep the latest record per account. Services use it for the
    account's local day and to know which workspace an account belongs to.
    """

    platform: Platform
    ad_account_id: str = Field(min_length=1, description="Platform ad account id, no 'act_'.")
    connection_id: str | None = Field(default=None, description="Connection it was read through.")
    name: str = Field(default="")
    currency: Currency = Field(description="ISO 4217 code of the account's currency.")
    timezone_name: str = Field(min_length=1, max_length=64, description="IANA time zone of the account's day.")
    account_status: Literal["active", "disabled", "unsettled", "closed", "pending", "unknown"] = "active"
    state: Literal["connected", "disconnected", "error"] = Field(
        default="connected", description="error: Allot cannot read the account (see detail).")
    detail: str = Field(default="", max_length=500, description="Why the account is in error, in plain words.")
    observed_at: AwareDatetime


# ---------------------------------------------------------------- pool.members_changed


class PoolMemberRef(Payload):
    """One active member of a budget pool: the entity whose budget the pool owns."""

    entity_id: str = Field(min_length=1, max_length=256)
    entity_type: EntityType
    platform: Platform
    ad_account_id: str | None = Field(default=None, max_length=64, description="Platform ad account id, if known.")


class PoolMembersChanged(Payload):
    """A budget pool's FULL current membership, published by pools whenever it changes (created with members,
    member added or removed, pool deleted: ``deleted`` and no members).

    Keyed by ``pool_id``; consumers replace the pool's membership with ``members``. ``version`` counts the pool's
    membership changes (per pool, strictly increasing): a state with a version at or below the one a consumer
    holds is older and changes nothing. Across pools (an entity moved from one pool to another), the state with
    the later ``changed_at`` owns the entity.
    """

    pool_id: str = Field(min_length=1, max_length=64)
    workspace_id: str = Field(min_length=1, max_length=64, description="Equals the envelope's workspace_id.")
    members: list[PoolMemberRef] = Field(default_factory=list, max_length=1000,
                                         description="Every active member now; empty when the pool is deleted.")
    deleted: bool = Field(default=False, description="The pool was deleted: it owns nothing any more.")
    version: int = Field(ge=1, description="The pool's membership version (per-pool counter; later wins).")
    changed_at: AwareDatetime = Field(description="When this membership state was committed (pools' clock).")

    @model_validator(mode="after")
    def _deleted_owns_nothing(self) -> PoolMembersChanged:
        if self.deleted and self.members:
            raise ValueError("a deleted pool has no members")
        return self


# ---------------------------------------------------------------- notification.requested

NotificationKind = Literal[
    "rule_notify_only", "guardrail_blocked", "pacing_critical", "executor_conflict", "executor_failed",
    "rule_auto_paused", "pool_frozen", "channel_disabled", "test",
]
Severity = Literal["info", "warning", "critical"]
#: Severities from least to most urgent (a subscription's ``min_severity`` admits this one and those after it).
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")


class NotifiedEntity(Payload):
    """One thing a notification is about, named as people know it, with its amount when it has one."""

    entity_type: Literal["campaign", "adset", "ad", "ad_account", "pool", "rule", "plan", "channel"]
    entity_id: str = Field(min_length=1, max_length=128)
    name: str = Field(default="", max_length=200)
    amount_cents: int | None = Field(default=None, description="An amount of this entity (e.g. its budget), minor "
                                                               "units of ``currency``.")
    currency: Currency | None = Field(default=None, description="ISO 4217 currency of amount_cents.")
    detail: str = Field(default="", max_length=300, description="What applies to this entity, in plain words.")

    @model_validator(mode="after")
    def _amount_has_currency(self) -> NotifiedEntity:
        if self.amount_cents is not None and self.currency is None:
            raise ValueError("amount_cents needs a currency")
        return self


class NotificationRequested(Payload):
    """Something a person should hear about: the notifier delivers it to the workspace's subscribed channels.

    ``notification_id`` is the idempotency key receivers see (one notification, one id, however often it is
    delivered). ``facts`` are the numbers behind it (``*_cents`` values are minor units of ``currency``);
    ``condition`` is the rule's condition or the check that fired, in plain words.
    """

    notification_id: uuid.UUID
    workspace_id: str = Field(min_length=1, max_length=64, description="Equals the envelope's workspace_id.")
    kind: NotificationKind
    severity: Severity
    title: str = Field(min_length=1, max_length=200)
    summary: str = Field(default="", max_length=2000, description="What happened and why, in a sentence or two.")
    condition: str = Field(default="", max_length=500, description="The condition or check, with its thresholds.")
    facts: dict[str, int | float | str | None] = Field(default_factory=dict, max_length=50,
                                                       description="The numbers behind it.")
    currency: Currency | None = Field(default=None, description="ISO 4217 currency of the *_cents facts.")
    entities: list[NotifiedEntity] = Field(default_factory=list, max_length=200)
    source: str = Field(default="", max_length=32, description="Who raised it: rules, guardrails, pacing, ...")
    source_id: str = Field(default="", max_length=128, description="The rule, pool, plan or channel it concerns.")
    dedupe_key: str = Field(default="", max_length=200, description="Same condition, same key: repeats within the "
                                                                   "dedupe window are delivered once. Empty = the "
                                                                   "kind and source_id.")
    console_path: str | None = Field(default=None, max_length=300, pattern=r"^/[A-Za-z0-9/_.~%?=&-]*$",
                                     description="Path of the console page (joined to the configured console URL).")
    occurred_at: AwareDatetime
