"""The repository's domain types (domain/stored.py): each is its SELECT's columns in the same order (the API writes a
stored snapshot, transition, proposal and action field by field, so the JSON keys keep the column order), frozen
and slotted, and the module needs nothing beyond the standard library."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, fields

import pytest

from allot.pacing.adapters import postgres as db
from allot.pacing.domain import stored
from allot.pacing.domain.stored import StoredPlan, StoredProposal, StoredSnapshot
from tests.support.stored_types import assert_frozen_and_slotted, imports_beyond_stdlib


def _columns(columns: str) -> list[str]:
    return [c.strip() for c in columns.split(",")]


@pytest.mark.parametrize(("cls", "columns"), [(StoredPlan, db.PLAN_COLUMNS), (StoredSnapshot, db.SNAPSHOT_COLUMNS),
                                              (StoredProposal, db.PROPOSAL_COLUMNS)])
def test_a_stored_type_has_its_select_columns_in_order(cls: type, columns: str) -> None:
    assert [f.name for f in fields(cls)] == _columns(columns)


def test_every_stored_type_is_frozen_and_slotted() -> None:
    assert_frozen_and_slotted(stored)
    due = stored.StoredDuePlan("p-1", None)  # type: ignore[arg-type]
    with pytest.raises(FrozenInstanceError):
        due.plan_id = "p-2"  # type: ignore[misc]


def test_the_stored_module_imports_only_the_standard_library() -> None:
    assert imports_beyond_stdlib(stored) == set()
