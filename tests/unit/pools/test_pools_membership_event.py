"""The pool.members_changed builder (pure): the pool's full active membership, versioned, none once deleted."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from allot.contracts.codec import decode, encode
from allot.pools.domain.stored import StoredMember
from allot.pools.membership import TOPIC, members_changed_envelope

NOW = datetime(2026, 9, 10, 12, tzinfo=UTC)
POOL = uuid.UUID("00000000-0000-4000-8000-0000000000aa")


def _member(entity: str, *, active: bool = True, account: str | None = "act-1") -> StoredMember:
    return StoredMember(member_id=uuid.uuid5(POOL, entity), pool_id=POOL, workspace_id="ws-1", entity_type="campaign",
                        entity_id=entity, ad_account_id=account, entity_name=f"Campaign {entity}", platform="meta",
                        currency="USD", min_budget_cents=None, max_budget_cents=None, weight=1.0, is_active=active,
                        created_at=NOW, updated_at=NOW)


def test_lists_every_active_member_sorted_with_the_version_and_time() -> None:
    env = members_changed_envelope(POOL, "ws-1", [_member("c2"), _member("c1", account=None),
                                                  _member("c3", active=False)], version=4, deleted=False, now=NOW)
    p = env.payload
    assert env.event_type == TOPIC and env.workspace_id == "ws-1" and env.producer == "pools"
    assert (p.pool_id, p.workspace_id, p.version, p.changed_at, p.deleted) == (str(POOL), "ws-1", 4, NOW, False)
    assert [(m.entity_id, m.entity_type, m.platform, m.ad_account_id) for m in p.members] == [
        ("c1", "campaign", "meta", None), ("c2", "campaign", "meta", "act-1")], "an inactive member is no member"
    record = encode(env)
    assert record.key == str(POOL).encode(), "keyed by pool: one pool's states stay in order"
    assert decode(TOPIC, record.value).payload == p


def test_a_deleted_pool_owns_nothing() -> None:
    p = members_changed_envelope(POOL, "ws-1", [_member("c1")], version=5, deleted=True, now=NOW).payload
    assert p.deleted and p.members == [] and p.version == 5


def test_the_same_state_gives_the_same_event_id_and_another_version_another() -> None:
    a = members_changed_envelope(POOL, "ws-1", [_member("c1")], version=2, deleted=False, now=NOW)
    b = members_changed_envelope(POOL, "ws-1", [_member("c1")], version=2, deleted=False, now=NOW)
    c = members_changed_envelope(POOL, "ws-1", [_member("c1")], version=3, deleted=False, now=NOW)
    assert a.event_id == b.event_id != c.event_id
