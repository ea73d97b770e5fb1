"""Failure injection for the sandbox ad platform: scripted rate limits, 5xx, timeouts and slow calls."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Fault", "FaultBook", "FaultKind", "Operation"]

FaultKind = Literal["rate_limit", "server_error", "timeout", "slow"]
Operation = Literal["read", "write"]


@dataclass(slots=True)
class Fault:
    """One armed failure. Fires on matching platform calls either for the next ``remaining`` calls or with
    ``probability``."""

    id: str
    kind: FaultKind
    remaining: int | None
    probability: float | None
    seed: int
    entity_id: str | None
    on: Literal["any", "read", "write"]
    delay_s: float
    retry_after_s: float | None
    status_code: int
    applied: bool
    """For ``timeout`` on a write: apply the write before stalling (the caller cannot know it landed)."""
    fired: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def matches(self, entity_id: str | None, operation: Operation) -> bool:
        """True when this fault targets the call (entity and operation filters)."""
        if self.entity_id is not None and self.entity_id != entity_id:
            return False
        return self.on == "any" or self.on == operation

    def to_json(self) -> dict[str, object]:
        """JSON view for the admin API."""
        return {
            "id": self.id,
            "kind": self.kind,
            "remaining": self.remaining,
            "probability": self.probability,
            "seed": self.seed,
            "entity_id": self.entity_id,
            "on": self.on,
            "delay_s": self.delay_s,
            "retry_after_s": self.retry_after_s,
            "status_code": self.status_code,
            "applied": self.applied,
            "fired": self.fired,
        }


class FaultBook:
    """Armed faults in the order they were added; the first one that fires on a call decides it.

    Count faults are consumed only when they fire, and removed when exhausted.
    Probability faults draw from their own seeded RNG on every matching call, so
    the same call sequence fails the same way on every run.
    """

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._next = 0

    def add(
        self,
        kind: FaultKind,
        *,
        count: int | None = None,
        probability: float | None = None,
        seed: int = 0,
        entity_id: str | None = None,
        on: Literal["any", "read", "write"] = "any",
        delay_s: float = 0.0,
        retry_after_s: float | None = None,
        status_code: int = 503,
        applied: bool = False,
    ) -> Fault:
        """Arm a fault; with neither ``count`` nor ``probability`` it fires once."""
        if count is not None and probability is not None:
            raise ValueError("give count or probability, not both")
        if count is None and probability is None:
            count = 1
        self._next += 1
        fault = Fault(
            id=f"f{self._next}",
            kind=kind,
            remaining=count,
            probability=probability,
            seed=seed,
            entity_id=entity_id,
            on=on,
            delay_s=delay_s,
            retry_after_s=retry_after_s,
            status_code=status_code,
            applied=applied,
        )
        self._faults.append(fault)
        return fault

    def clear(self) -> int:
        """Disarm everything; returns how many faults were armed."""
        n = len(self._faults)
        self._faults.clear()
        return n

    def armed(self) -> list[Fault]:
        """The faults still armed, in firing priority."""
        return list(self._faults)

    def draw(self, entity_id: str | None, operation: Operation) -> Fault | None:
        """The fault that fires on this call, if any (consuming one use of a count fault)."""
        for fault in self._faults:
            if not fault.matches(entity_id, operation):
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
                fault.fired += 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
            if fault.probability is not None and fault._rng.random() < fault.probability:
                fault.fired += 1
                return fault
        return None
