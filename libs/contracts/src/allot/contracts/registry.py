"""The topic registry: every topic, its payload model, partition key, sizing, retention and DLQ."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from allot.contracts.payloads import (
    AccountProfiled,
    ActionExecuted,
    AllocationRequested,
    ConnectionChanged,
    GuardrailApproved,
    GuardrailBlocked,
    MetricsIngested,
    NotificationRequested,
    PacingDeviationDetected,
    PacingReallocationRecommended,
    PacingSnapshotTaken,
    PoolMembersChanged,
)

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """How one topic is shaped: what it carries, how it is keyed and kept."""

    name: str
    payload: type[BaseModel]
    key_field: str
    partitions: int
    retention_ms: int
    schema_version: int = 1
    description: str = ""

    @property
    def dlq(self) -> str:
        """Name of the dead-letter topic of this topic."""
        return f"{self.name}.dlq"


TOPICS: dict[str, TopicSpec] = {
    spec.name: spec
    for spec in (
        TopicSpec("metrics.ingested", MetricsIngested, "entity_id", 6, 7 * DAY_MS,
                  description="Delivery counters per entity and interval, as reported by the platform."),
        TopicSpec("pacing.snapshot_taken", PacingSnapshotTaken, "plan_id", 3, 30 * DAY_MS,
                  description="Every pacing snapshot of a flight plan."),
        TopicSpec("pacing.deviation_detected", PacingDeviationDetected, "plan_id", 3, 30 * DAY_MS,
                  description="Campaign deviation past a warning or critical threshold."),
        TopicSpec("pacing.reallocation_recommended", PacingReallocationRecommended, "plan_id", 3, 30 * DAY_MS,
                  description="A proposal to move budget between channels of a plan."),
        TopicSpec("allocation.requested", AllocationRequested, "source_id", 6, 30 * DAY_MS,
                  description="A change set a pool, rule, plan or person wants applied."),
        TopicSpec("guardrail.approved", GuardrailApproved, "source_id", 6, 30 * DAY_MS,
                  description="A signed, expiring approval of a change set."),
        TopicSpec("guardrail.blocked", GuardrailBlocked, "source_id", 3, 30 * DAY_MS,
                  description="A refused change set with the check and the numbers."),
        TopicSpec("action.executed", ActionExecuted, "entity_id", 6, 30 * DAY_MS,
                  description="The outcome of one action on the ad platform."),
        TopicSpec("connection.changed", ConnectionChanged, "connection_id", 3, 3650 * DAY_MS,
                  description="A workspace's platform connection: ad accounts and sealed tokens (latest wins)."),
        TopicSpec("account.profiled", AccountProfiled, "ad_account_id", 3, 3650 * DAY_MS,
                  description="An ad account's currency, time zone and status as the platform reports them."),
        TopicSpec("notification.requested", NotificationRequested, "notification_id", 3, 30 * DAY_MS,
                  description="Something a person should hear about; the notifier delivers it to subscribed channels."),
        TopicSpec("pool.members_changed", PoolMembersChanged, "pool_id", 3, 3650 * DAY_MS,
                  description="A budget pool's full current membership, on every change (latest version wins)."),
    )
}

DLQ_RETENTION_MS = 30 * DAY_MS
DLQ_PARTITIONS = 1


def topic(name: str) -> TopicSpec:
    """The spec of a registered topic; KeyError names the unknown topic."""
    try:
        return TOPICS[name]
    except KeyError:
        raise KeyError(f"unknown topic {name!r}; known: {sorted(TOPICS)}") from None


def all_topic_names(*, with_dlq: bool = True) -> list[str]:
    """Every topic Allot uses, DLQs included by default."""
    names = list(TOPICS)
    return names + [TOPICS[n].dlq for n in names] if with_dlq else names
