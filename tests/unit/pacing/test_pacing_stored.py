"""The repository's domain types (domain/stored.py): each is its SELECT's columns in the same order (the API writes a
stored snapshot, transition, proposal and action field by field, so the JSON keys keep the column order), frozen
and slotted, and the module needs nothing beyond the standard library."""

from __future__ import annotations

import ast
import sys
from dataclasses import FrozenInstanceError, fields
from pathlib import Path

import pytest

from allot.pacing.adapters import postgres as db
from allot.pacing.domain import stored
from allot.pacing.domain.stored import StoredPlan, StoredProposal, StoredSnapshot


def _columns(columns: str) -> list[str]:
    return [c.strip() for c in columns.split(",")]


@pytest.mark.parametrize(("cls", "columns"), [(StoredPlan, db.PLAN_COLUMNS), (StoredSnapshot, db.SNAPSHOT_COLUMNS),
                                              (StoredProposal, db.PROPOSAL_COLUMNS)])
def test_a_stored_type_has_its_select_columns_in_order(cls: type, columns: str) -> None:
    assert [f.name for f in fields(cls)] == _columns(columns)


def test_every_stored_type_is_frozen_and_slotted() -> None:
    types = [v for v in vars(stored).values() if isinstance(v, type) and v.__module__ == stored.__name__]
    assert types
    for cls in types:
        assert cls.__dataclass_params__.frozen, cls  # type: ignore[attr-defined]
        assert "__slots__" in vars(cls), cls
    due = stored.StoredDuePlan("p-1", None)  # type: ignore[arg-type]
    with pytest.raises(FrozenInstanceError):
        due.plan_id = "p-2"  # type: ignore[misc]


def test_the_stored_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(stored.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
