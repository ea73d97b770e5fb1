"""libs/contracts installs on its own: it declares and imports only pydantic, orjson and the standard library."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

CONTRACTS = Path(__file__).resolve().parents[3] / "libs" / "contracts"


def test_contracts_declare_only_pydantic_and_orjson() -> None:
    project = tomllib.loads((CONTRACTS / "pyproject.toml").read_text())["project"]
    names = sorted(dep.split(">")[0].split("<")[0].split("=")[0].strip() for dep in project["dependencies"])
    assert names == ["orjson", "pydantic"]


def test_contracts_import_nothing_else() -> None:
    allowed = {"pydantic", "orjson", "allot", "__future__"} | set(sys.stdlib_module_names)
    offenders = []
    for path in (CONTRACTS / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = [node.module.split(".")[0]]
                if roots == ["allot"] and not node.module.startswith("allot.contracts"):
                    offenders.append(f"{path.name}: {node.module}")
            else:
                continue
            offenders += [f"{path.name}: {r}" for r in roots if r not in allowed]
    assert offenders == []
