"""Open-source hygiene of every package: license, readme, authors and URLs in its metadata, and the
repository's LICENSE, CHANGELOG, CONTRIBUTING and SECURITY files.

Every `pyproject.toml` under libs/ and services/ is found by glob, so a new package without the metadata
fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECTS = sorted([*ROOT.glob("libs/*/pyproject.toml"), *ROOT.glob("services/*/pyproject.toml")])
URL_KEYS = {"Homepage", "Repository", "Changelog", "Issues"}


def _project(pyproject: Path) -> dict[str, Any]:
    return tomllib.loads(pyproject.read_text())["project"]


def test_every_package_is_found() -> None:
    names = {p.parent.name for p in PYPROJECTS}
    assert {"contracts", "runtime", "fakes", "pools", "rules", "pacing", "guardrails", "executor", "connections",
            "ingest", "sandbox"} <= names


@pytest.mark.parametrize("pyproject", PYPROJECTS, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_package_metadata_has_license_readme_authors_and_urls(pyproject: Path) -> None:
    project = _project(pyproject)
    # The SPDX form (PEP 639) that hatchling accepts; not the legacy {text = ...} table.
    assert project.get("license") == "Apache-2.0"
    readme = project.get("readme")
    assert isinstance(readme, str), "readme must name a file"
    readme_path = pyproject.parent / readme
    assert readme_path.is_file(), f"{readme_path} missing"
    assert project["name"] in readme_path.read_text(), "the package readme names the package"
    for field in ("authors", "maintainers"):
        people = project.get(field)
        assert isinstance(people, list) and people, f"{field} missing"
        assert all(isinstance(p, dict) and p.get("name") for p in people), f"{field}: tables with a name"
    urls = project.get("urls") or {}
    assert set(urls) >= URL_KEYS, f"project.urls lacks {sorted(URL_KEYS - set(urls))}"
    assert all(re.fullmatch(r"https://\S+", u) for u in urls.values())


def test_authors_urls_and_version_are_the_same_in_every_package() -> None:
    projects = [_project(p) for p in PYPROJECTS]
    for field in ("authors", "maintainers", "urls", "version", "license"):
        values = {repr(p.get(field)) for p in projects}
        assert len(values) == 1, f"{field} differs between packages: {values}"


def test_license_is_the_full_apache_2_text() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "APPENDIX: How to apply the Apache License to your work." in text
    assert len(text) > 11000


def test_changelog_follows_keep_a_changelog() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog")
    assert "keepachangelog.com" in text
    assert "## [Unreleased]" in text
    sections = set(re.findall(r"^### (\w+)$", text, re.M))
    assert sections and sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def test_contributing_names_only_make_targets_that_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    text = (ROOT / "CONTRIBUTING.md").read_text()
    named = set(re.findall(r"\bmake ([a-z][a-z-]*)", text))
    assert {"venv", "run", "test", "bench", "lint"} <= named
    assert named <= targets, f"CONTRIBUTING.md names missing make targets: {sorted(named - targets)}"
    for script in re.findall(r"\bbench/\w+\.py", text):
        assert (ROOT / script).is_file(), script


def test_security_says_how_to_report_and_what_is_supported() -> None:
    text = (ROOT / "SECURITY.md").read_text()
    assert "## Reporting a vulnerability" in text
    assert "## Supported versions" in text
    assert "## Secrets" in text


#: Every importable package of every distribution (allot is a namespace package shared by all of them).
PACKAGE_DIRS = sorted(d for d in [*ROOT.glob("libs/*/src/allot/*"), *ROOT.glob("services/*/src/allot/*")]
                      if d.is_dir() and (d / "__init__.py").is_file())


def test_every_package_dir_is_found() -> None:
    """Each distribution's package (allot.<dir name>) is among the globbed ones."""
    assert {p.parent / "src" / "allot" / p.parent.name for p in PYPROJECTS} <= set(PACKAGE_DIRS)
    assert len(PACKAGE_DIRS) >= 11


@pytest.mark.parametrize("package", PACKAGE_DIRS, ids=lambda d: f"allot.{d.name}")
def test_every_package_ships_py_typed(package: Path) -> None:
    """PEP 561: without py.typed a consumer's mypy ignores the package's annotations."""
    marker = package / "py.typed"
    assert marker.is_file(), f"{marker.relative_to(ROOT)} missing"
    assert marker.read_bytes() == b"", "py.typed is an empty marker (a non-empty one means partial stubs)"
    # hatchling puts every file under the listed package directory into the wheel, py.typed included,
    # unless the wheel target excludes it or lists only some files.
    wheel = tomllib.loads((package.parents[2] / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]
    wheel = wheel["wheel"]
    assert wheel.get("packages") == ["src/allot"]
    assert not any("py.typed" in str(v) or "*.typed" in str(v) for v in wheel.get("exclude", []))
    assert "only-include" not in wheel and "include" not in wheel


def test_a_consumers_mypy_reads_the_installed_packages_types(tmp_path: Path) -> None:
    """What py.typed is for: mypy, run outside the repository on code importing the installed packages, sees their
    types (without the marker it reports a missing library stub and the names are Any)."""
    consumer = tmp_path / "consumer.py"
    consumer.write_text("from allot.contracts import TOPICS\nfrom allot.runtime.db import Migration\n"
                        "reveal_type(TOPICS)\nreveal_type(Migration)\n")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(consumer)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'Revealed type is "dict[str, allot.contracts.registry.TopicSpec]"' in result.stdout
    assert "allot.runtime.db.Migration" in result.stdout
