"""Replacing a pool's membership with the state pools announced (pool.members_changed), pure.

- Per pool, the version decides: a state at or below the version already applied is older (a replay, or a record
  overtaken on the way) and changes nothing.
- A newer state REPLACES the pool's membership: the listed entities belong to the pool, the pool's other entities
  no longer do.
- Across pools (an entity moved from one pool to another; pools' versions are per pool and not comparable), the
  state with the later ``(changed_at, pool_id)`` owns the entity, whatever order the two states arrive in. A row
  learned from an allocation (no ``changed_at``) always gives way to an announced state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from allot.contracts.payloads import PoolMembersChanged

__all__ = ["HeldMember", "MembershipReplacement", "replace_membership"]


@dataclass(frozen=True)
class HeldMember:
    """The pool an entity belongs to now, and when the state that gave it there was committed (None: learned)."""

    entity_id: str
    pool_id: str
    changed_at: datetime | None


@dataclass(frozen=True)
class MembershipReplacement:
    """What applying one state changes: ``applied`` False = older than the stored version, nothing to write."""

    applied: bool
    take: tuple[str, ...] = ()
    """Entities to set to this pool (new, already this pool's, or moved from a pool whose state is earlier)."""
    release: tuple[str, ...] = ()
    """Entities of this pool the state no longer lists: they belong to no pool any more."""


def replace_membership(state: PoolMembersChanged, *, stored_version: int | None,
                       held: Mapping[str, HeldMember]) -> MembershipReplacement:
    """The replacement of ``state.pool_id``'s membership by ``state``.

    ``held``: the current rows of the entities ``state`` lists and of every entity the pool holds now (by entity id).
    """
    if stored_version is not None and state.version <= stored_version:
        return MembershipReplacement(applied=False)
    listed = {m.entity_id for m in state.members}
    mine = (state.changed_at, state.pool_id)
    take = sorted(
        e for e in listed
        if (h := held.get(e)) is None or h.pool_id == state.pool_id or h.changed_at is None
        or (h.changed_at, h.pool_id) < mine
    )
    release = sorted(e for e, h in held.items() if h.pool_id == state.pool_id and e not in listed)
    return MembershipReplacement(applied=True, take=tuple(take), release=tuple(release))
