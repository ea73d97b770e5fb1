"""Replacing a pool's membership with an announced pool.members_changed state (pure): later versions replace,
older ones change nothing, an entity moves to the pool whose state is later, learned rows give way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from allot.contracts.payloads import PoolMemberRef, PoolMembersChanged
from allot.guardrails.domain.membership import HeldMember, replace_membership

T = datetime(2026, 9, 10, 12, tzinfo=UTC)


def state(pool: str, *entities: str, version: int = 1, at: datetime = T, deleted: bool = False) -> PoolMembersChanged:
    return PoolMembersChanged(pool_id=pool, workspace_id="ws", version=version, changed_at=at, deleted=deleted,
                              members=[PoolMemberRef(entity_id=e, entity_type="adset", platform="meta")
                                       for e in entities])


def held(*rows: tuple[str, str, datetime | None]) -> dict[str, HeldMember]:
    return {e: HeldMember(e, p, at) for e, p, at in rows}


def test_a_first_state_takes_its_members() -> None:
    change = replace_membership(state("A", "m2", "m1"), stored_version=None, held={})
    assert change.applied and change.take == ("m1", "m2") and change.release == ()


def test_a_later_state_replaces_the_pools_membership() -> None:
    rows = held(("m1", "A", T), ("m2", "A", T))
    change = replace_membership(state("A", "m1", "m3", version=2, at=T + timedelta(minutes=1)), stored_version=1,
                                held=rows)
    assert change.take == ("m1", "m3") and change.release == ("m2",)


def test_a_deleted_pool_releases_everything() -> None:
    change = replace_membership(state("A", version=3, deleted=True), stored_version=2,
                                held=held(("m1", "A", T), ("m3", "A", T)))
    assert change.applied and change.take == () and change.release == ("m1", "m3")


def test_an_older_or_repeated_version_changes_nothing() -> None:
    rows = held(("m1", "A", T))
    for version in (1, 2):
        change = replace_membership(state("A", "m1", "m2", version=version), stored_version=2, held=rows)
        assert not change.applied and change.take == () and change.release == (), version


def test_an_entity_moves_to_the_pool_whose_state_is_later_whatever_the_arrival_order() -> None:
    # A had m1 (state at T), then released it; B took it at T+1 min. B's state may arrive before A's release.
    b_first = replace_membership(state("B", "m1", at=T + timedelta(minutes=1)), stored_version=None,
                                 held=held(("m1", "A", T)))
    assert b_first.take == ("m1",), "B's later state moves m1 from A"
    a_release = replace_membership(state("A", version=2, at=T + timedelta(seconds=30)), stored_version=1,
                                   held=held(("m1", "B", T + timedelta(minutes=1))))
    assert a_release.release == (), "A's release cannot take m1 from B"
    # an earlier state of A that still lists m1 (arriving late) does not take it back from B
    a_late = replace_membership(state("A", "m1", version=1, at=T), stored_version=None,
                                held=held(("m1", "B", T + timedelta(minutes=1))))
    assert a_late.applied and a_late.take == () and a_late.release == ()


def test_an_announced_state_replaces_a_membership_learned_from_an_allocation() -> None:
    change = replace_membership(state("B", "m1", at=T - timedelta(days=1)), stored_version=None,
                                held=held(("m1", "A", None)))
    assert change.take == ("m1",)
