"""In-memory state of the sandbox ad platform: accounts, entities, the append-only call log and armed faults.

All mutations go through :class:`SandboxState` methods, which are synchronous
and therefore atomic within the single event loop that serves the HTTP API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from allot.sandbox.delivery import EntityCurve
from allot.sandbox.faults import FaultBook
from allot.sandbox.profiles import profile_curve

__all__ = [
    "Account",
    "CallRecord",
    "CallSource",
    "Entity",
    "SandboxError",
    "SandboxState",
]

CallSource = Literal["api", "human"]


class SandboxError(Exception):
    """A request the sandbox refuses: HTTP ``status_code``, and the offending ``field`` for 422s."""

    def __init__(self, status_code: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.field = field


@dataclass(slots=True)
class Account:
    """An ad account: every entity in it shares its currency."""

    id: str
    currency: str
    name: str = ""


@dataclass(slots=True)
class Entity:
    """A campaign, ad set or ad. ``daily_budget_cents`` is None when the budget lives at another level."""

    id: str
    platform: str
    ad_account_id: str
    entity_type: str
    name: str
    currency: str
    daily_budget_cents: int | None
    status: str
    parent_id: str | None
    curve: EntityCurve | None
    created_at: datetime
    updated_at: datetime
    relaunched_from: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Public JSON view (the hidden curve is never exposed)."""
        return {
            "id": self.id,
            "platform": self.platform,
            "ad_account_id": self.ad_account_id,
            "entity_type": self.entity_type,
            "name": self.name,
            "currency": self.currency,
            "daily_budget_cents": self.daily_budget_cents,
            "status": self.status,
            "parent_id": self.parent_id,
            "relaunched_from": self.relaunched_from,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One field changed by one write. A write touching two fields yields two records with the same ``write_id``."""

    seq: int
    at: datetime
    entity_id: str
    field: str
    old: int | str | None
    new: int | str | None
    write_id: str
    idempotency_key: str | None
    source: CallSource
    actor: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON view for the admin API."""
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "entity_id": self.entity_id,
            "field": self.field,
            "old": self.old,
            "new": self.new,
            "write_id": self.write_id,
            "idempotency_key": self.idempotency_key,
            "source": self.source,
            "actor": self.actor,
        }


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SandboxState:
    """Everything the sandbox platform knows. The call log only grows; it is the witness of every applied change."""

    api_token: str = "sandbox-token"
    clock: Callable[[], datetime] = _utc_now
    seed: int = 0
    min_budget_cents: int = 200
    """Writes below this daily budget are refused like a real platform's minimum ("others $2")."""
    accounts: dict[str, Account] = field(default_factory=dict)
    entities: dict[str, Entity] = field(default_factory=dict)
    calls: list[CallRecord] = field(default_factory=list)
    faults: FaultBook = field(default_factory=FaultBook)
    _id_seq: int = 0
    _write_seq: int = 0

    # ------------------------------------------------------------------ entities

    def create_entity(
        self,
        *,
        ad_account_id: str,
        entity_type: str,
        entity_id: str | None = None,
        platform: str = "sandbox",
        name: str = "",
        currency: str = "USD",
        daily_budget_cents: int | None = None,
        status: str = "active",
        parent_id: str | None = None,
        profile: str | None = None,
        curve_overrides: Mapping[str, Any] | None = None,
    ) -> Entity:
        """Create an entity (and its account on first use); raises SandboxError 409/422 on conflicts."""
        account = self.accounts.get(ad_account_id)
        if account is None:
            account = self.accounts[ad_account_id] = Account(id=ad_account_id, currency=currency)
        elif account.currency != currency:
            raise SandboxError(422, f"account {ad_account_id} uses {account.currency}", "currency")
        if entity_id is None:
            self._id_seq += 1
            entity_id = f"{entity_type}_{self._id_seq:06d}"
            while entity_id in self.entities:
                self._id_seq += 1
                entity_id = f"{entity_type}_{self._id_seq:06d}"
        elif entity_id in self.entities:
            raise SandboxError(409, f"entity {entity_id} already exists", "id")
        if parent_id is not None:
            parent = self.entities.get(parent_id)
            if parent is None:
                raise SandboxError(422, f"parent {parent_id} does not exist", "parent_id")
            if parent.ad_account_id != ad_account_id:
                raise SandboxError(422, "parent belongs to another ad account", "parent_id")
        if entity_type == "ad" and daily_budget_cents is not None:
            raise SandboxError(422, "ads have no daily budget", "daily_budget_cents")
        now = self.clock()
        curve: EntityCurve | None = None
        if entity_type != "ad":
            curve = profile_curve(profile or "regular", seed=self.seed, entity_id=entity_id, origin_at=now)
            if curve_overrides:
                curve = replace(curve, **dict(curve_overrides))
        entity = Entity(
            id=entity_id,
            platform=platform,
            ad_account_id=ad_account_id,
            entity_type=entity_type,
            name=name or entity_id,
            currency=account.currency,
            daily_budget_cents=daily_budget_cents,
            status=status,
            parent_id=parent_id,
            curve=curve,
            created_at=now,
            updated_at=now,
        )
        self.entities[entity_id] = entity
        return entity

    def get(self, entity_id: str) -> Entity:
        """The entity; SandboxError 404 when unknown."""
        entity = self.entities.get(entity_id)
        if entity is None:
            raise SandboxError(404, f"entity {entity_id} not found")
        return entity

    def list_entities(self, ad_account_id: str | None = None) -> list[Entity]:
        """Entities in creation order, optionally of one account."""
        return [e for e in self.entities.values() if ad_account_id is None or e.ad_account_id == ad_account_id]

    def delivery_entities(self) -> Iterable[Entity]:
        """Every entity, for the delivery simulator."""
        return self.entities.values()

    # ------------------------------------------------------------------ writes

    def write(
        self,
        entity_id: str,
        *,
        daily_budget_cents: int | None = None,
        status: str | None = None,
        source: CallSource = "api",
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> tuple[str, Entity]:
        """Apply one write and log one record per field; returns (write_id, entity). Validates before changing anything.

        The sandbox deliberately does not deduplicate by idempotency key: like a
        real ad platform it applies every write it receives, so the call log
        shows exactly how many times a change reached the platform.
        """
        entity = self.get(entity_id)
        if daily_budget_cents is None and status is None:
            raise SandboxError(422, "give daily_budget_cents and/or status", "daily_budget_cents")
        if daily_budget_cents is not None:
            if entity.daily_budget_cents is None:
                raise SandboxError(
                    422, f"{entity.entity_type} {entity_id} has no daily budget of its own", "daily_budget_cents"
                )
            if source == "api" and daily_budget_cents < self.min_budget_cents:
                raise SandboxError(
                    422,
                    f"daily budget {daily_budget_cents} is below the platform minimum {self.min_budget_cents}",
                    "daily_budget_cents",
                )
        if entity.status == "deleted":
            raise SandboxError(422, f"entity {entity_id} is deleted", "status")
        write_id = self._new_write_id()
        now = self.clock()
        if daily_budget_cents is not None:
            self._log(
                now,
                entity_id,
                "daily_budget_cents",
                entity.daily_budget_cents,
                daily_budget_cents,
                write_id,
                idempotency_key,
                source,
                actor,
            )
            entity.daily_budget_cents = daily_budget_cents
        if status is not None:
            self._log(now, entity_id, "status", entity.status, status, write_id, idempotency_key, source, actor)
            entity.status = status
        entity.updated_at = now
        return write_id, entity

    def relaunch(self, entity_id: str, *, idempotency_key: str | None = None) -> tuple[str, Entity]:
        """Copy an entity (same parent, budget and curve, status active); logs one 'relaunch' record on the original."""
        original = self.get(entity_id)
        if original.status == "deleted":
            raise SandboxError(422, f"entity {entity_id} is deleted", "status")
        write_id = self._new_write_id()
        now = self.clock()
        self._id_seq += 1
        new_id = f"{original.entity_type}_{self._id_seq:06d}"
        while new_id in self.entities:
            self._id_seq += 1
            new_id = f"{original.entity_type}_{self._id_seq:06d}"
        copy = replace(
            original,
            id=new_id,
            name=f"{original.name} (relaunch)",
            status="active",
            curve=replace(original.curve, entity_id=new_id, origin_at=now) if original.curve else None,
            created_at=now,
            updated_at=now,
            relaunched_from=original.id,
        )
        self.entities[new_id] = copy
        self._log(now, entity_id, "relaunch", None, new_id, write_id, idempotency_key, "api", None)
        return write_id, copy

    # ------------------------------------------------------------------ call log

    def call_log(
        self, *, entity_id: str | None = None, source: str | None = None, since_seq: int = 0
    ) -> list[CallRecord]:
        """Logged writes in order, filtered by entity, source and sequence number (exclusive)."""
        return [
            c
            for c in self.calls
            if c.seq > since_seq
            and (entity_id is None or c.entity_id == entity_id)
            and (source is None or c.source == source)
        ]

    def _new_write_id(self) -> str:
        self._write_seq += 1
        return f"w{self._write_seq:010d}"

    def _log(
        self,
        at: datetime,
        entity_id: str,
        field_name: str,
        old: int | str | None,
        new: int | str | None,
        write_id: str,
        idempotency_key: str | None,
        source: CallSource,
        actor: str | None,
    ) -> None:
        self.calls.append(
            CallRecord(
                seq=len(self.calls) + 1,
                at=at,
                entity_id=entity_id,
                field=field_name,
                old=old,
                new=new,
                write_id=write_id,
                idempotency_key=idempotency_key,
                source=source,
                actor=actor,
            )
        )
