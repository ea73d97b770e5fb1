"""The envelope every Allot record travels in, and deterministic event ids."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

#: Namespace for derived event ids: uuid5(EVENT_NAMESPACE, f"{cause}/{step}").
EVENT_NAMESPACE = uuid.UUID("6f1c3c5e-4a8e-4f55-9a53-2b8f0c0e7a11")

P = TypeVar("P", bound=BaseModel)


class Payload(BaseModel):
    """Base of every topic payload: tolerant of unknown extra fields (they are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Envelope(BaseModel, Generic[P]):
    """One record on any Allot topic: identity, tenancy, causality and a typed payload."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: uuid.UUID = Field(description="Unique id of this event; derived events use derive_event_id().")
    event_type: str = Field(description="The topic name this event belongs to, e.g. 'metrics.ingested'.")
    schema_version: int = Field(
        ge=1,
        strict=True,
        description="Major version of the payload schema. Additive changes keep it; a consumer "
        "rejects (DLQ) a version newer than the one it knows.",
    )
    occurred_at: AwareDatetime = Field(description="When the fact happened (UTC, from the producer's clock).")
    producer: str = Field(description="Name of the producing service or system.")
    workspace_id: str = Field(min_length=1, description="Tenant that owns the event.")
    correlation_id: uuid.UUID = Field(
        description="One id that follows a decision from metric to executed action."
    )
    causation_id: uuid.UUID | None = Field(default=None, description="event_id of the event that caused this one.")
    payload: P


def envelope_model(payload_type: type[P]) -> type[Envelope[P]]:
    """``Envelope[payload_type]`` for a payload class known only at run time (pydantic builds that model once and
    caches it; a type checker cannot read a run-time value as a type argument, hence the cast)."""
    return cast("type[Envelope[P]]", Envelope.__class_getitem__(payload_type))


def derive_event_id(cause: uuid.UUID | str, step: str) -> uuid.UUID:
    """Same cause and step always give the same id, so re-processing an event re-derives identical events."""
    return uuid.uuid5(EVENT_NAMESPACE, f"{cause}/{step}")


def new_envelope(
    *,
    event_type: str,
    schema_version: int,
    payload: P,
    producer: str,
    workspace_id: str,
    occurred_at: datetime,
    cause: Envelope[Any] | None = None,
    step: str | None = None,
    event_id: uuid.UUID | None = None,
    correlation_id: uuid.UUID | None = None,
    causation_id: uuid.UUID | None = None,
) -> Envelope[P]:
    """Build an envelope; with a cause and a step the id is deterministic and the correlation id inherited."""
    if event_id is None:
        if cause is not None and step is not None:
            event_id = derive_event_id(cause.event_id, step)
        elif step is not None:
            event_id = uuid.uuid5(EVENT_NAMESPACE, f"{producer}/{workspace_id}/{step}")
        else:
            event_id = uuid.uuid4()
    if correlation_id is None:
        correlation_id = cause.correlation_id if cause is not None else event_id
    return envelope_model(type(payload))(
        event_id=event_id,
        event_type=event_type,
        schema_version=schema_version,
        occurred_at=occurred_at,
        producer=producer,
        workspace_id=workspace_id,
        correlation_id=correlation_id,
        causation_id=cause.event_id if cause is not None else causation_id,
        payload=payload,
    )
