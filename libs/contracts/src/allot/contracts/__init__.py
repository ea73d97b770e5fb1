"""Allot's event protocol: envelope, payload models, topic registry, codec and approval signing.

Depends only on pydantic and orjson, so any internal system can ``pip install ./libs/contracts``.
"""

from allot.contracts.codec import EncodedRecord, PoisonMessage, decode, encode, envelope_type
from allot.contracts.envelope import EVENT_NAMESPACE, Envelope, Payload, derive_event_id, new_envelope
from allot.contracts.payloads import (
    AccountProfiled,
    ActionExecuted,
    AllocationRequested,
    BudgetAction,
    ChannelPacing,
    ConnectionChanged,
    GuardrailApproved,
    GuardrailBlocked,
    MetricsIngested,
    PacingDeviationDetected,
    PacingReallocationRecommended,
    PacingSnapshotTaken,
    PoolMemberRef,
    PoolMembersChanged,
    RangeReach,
    SealedToken,
)
from allot.contracts.registry import TOPICS, TopicSpec, all_topic_names, topic
from allot.contracts.signing import ApprovalRejected, sign_approval, verify_approval

__all__ = [
    "EVENT_NAMESPACE", "AccountProfiled", "ActionExecuted", "AllocationRequested", "ApprovalRejected", "BudgetAction",
    "ChannelPacing", "ConnectionChanged", "EncodedRecord", "Envelope", "GuardrailApproved", "GuardrailBlocked",
    "MetricsIngested", "PacingDeviationDetected", "PacingReallocationRecommended", "PacingSnapshotTaken",
    "Payload", "PoisonMessage", "PoolMemberRef", "PoolMembersChanged",
    "RangeReach", "SealedToken", "TOPICS", "TopicSpec", "all_topic_names", "decode",
    "derive_event_id", "encode", "envelope_type", "new_envelope", "sign_approval", "topic", "verify_approval",
]
