"""The repository's stored types (domain/stored.py): the columns the adapter selects for them, in order; frozen and
slotted; and the module needs only the standard library and the domain's own modules (no asyncpg)."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, fields
from datetime import date

import pytest

from allot.rules.adapters import postgres as db
from allot.rules.domain import stored
from allot.rules.domain.stored import RANGE_REACH_RANGES, StoredExecution, StoredRangeReach, StoredRule
from tests.support.stored_types import assert_frozen_and_slotted, imports_beyond_stdlib


def _names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def test_the_selected_columns_are_the_fields_in_order() -> None:
    assert [c.strip() for c in db.RULE_COLUMNS.split(",")] == _names(StoredRule)
    assert [c.strip() for c in db.EXECUTION_COLUMNS.split(",")] == _names(StoredExecution)
    assert _names(StoredRangeReach) == ["entity_id", "through", *RANGE_REACH_RANGES]


def test_every_stored_type_is_frozen_and_slotted() -> None:
    assert_frozen_and_slotted(stored, at_least=14)
    reach = StoredRangeReach("e", date(2026, 5, 16), None, None, None, None, None)
    with pytest.raises(FrozenInstanceError):
        reach.yesterday = 1  # type: ignore[misc]


def test_the_stored_module_imports_only_the_standard_library_and_the_domain() -> None:
    outside = imports_beyond_stdlib(stored)
    assert all(m.startswith("allot.rules.domain.") for m in outside), outside


def test_a_range_reach_gives_only_the_ranges_reported() -> None:
    reach = StoredRangeReach(entity_id="e", through=date(2026, 5, 16), yesterday=700, last_3d=None, last_7d=2_100,
                             last_14d=None, last_30d=0)
    assert reach.by_range() == {"yesterday": 700, "last_7d": 2_100, "last_30d": 0}
    assert list(reach.by_range()) == ["yesterday", "last_7d", "last_30d"]
