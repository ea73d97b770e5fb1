"""Checks every service's ``domain/stored.py`` (the repository's domain types) must pass: each type is a frozen,
slotted dataclass, and the module imports nothing beyond the standard library (and, where said, the domain's own
modules)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import ModuleType


def stored_types(module: ModuleType) -> list[type]:
    """The classes the module defines (not those it imports)."""
    return [v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__]


def assert_frozen_and_slotted(module: ModuleType, *, at_least: int = 1) -> None:
    types = stored_types(module)
    assert len(types) >= at_least, types
    for cls in types:
        assert cls.__dataclass_params__.frozen, cls  # type: ignore[attr-defined]
        assert "__slots__" in vars(cls), cls


def imports_beyond_stdlib(module: ModuleType) -> set[str]:
    """Modules ``module`` imports that are not in the standard library (``__future__`` counts as standard)."""
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text())
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return {m for m in modules if m.split(".")[0] not in sys.stdlib_module_names | {"__future__"}}
