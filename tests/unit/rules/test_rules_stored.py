"""The repository's stored types (domain.stored) match the columns the adapter selects for them."""

from __future__ import annotations

from dataclasses import fields
from datetime import date

from allot.rules.adapters import postgres as db
from allot.rules.domain.stored import RANGE_REACH_RANGES, StoredExecution, StoredRangeReach, StoredRule


def _names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def test_the_selected_columns_are_the_fields_in_order() -> None:
    assert [c.strip() for c in db.RULE_COLUMNS.split(",")] == _names(StoredRule)
    assert [c.strip() for c in db.EXECUTION_COLUMNS.split(",")] == _names(StoredExecution)
    assert _names(StoredRangeReach) == ["entity_id", "through", *RANGE_REACH_RANGES]


def test_a_range_reach_gives_only_the_ranges_reported() -> None:
    stored = StoredRangeReach(entity_id="e", through=date(2026, 5, 16), yesterday=700, last_3d=None, last_7d=2_100,
                              last_14d=None, last_30d=0)
    assert stored.by_range() == {"yesterday": 700, "last_7d": 2_100, "last_30d": 0}
    assert list(stored.by_range()) == ["yesterday", "last_7d", "last_30d"]
