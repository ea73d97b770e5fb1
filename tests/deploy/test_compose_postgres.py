"""docker-compose.yml's PostgreSQL keeps its data where the image's major version expects it.

The official images changed layout with PostgreSQL 18: PGDATA moved to /var/lib/postgresql/<major>/docker
and the volume belongs at /var/lib/postgresql; an 18+ container refuses to start with a mount at the old
/var/lib/postgresql/data. Older images keep PGDATA at /var/lib/postgresql/data. The compose file is
parsed (anchors and merge keys resolved) and its volumes normalised from the short and long syntax.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def postgres_major(image: str) -> int:
    """`postgres:18.1-bookworm` → 18 (a tag is required: an untagged image has no known layout)."""
    match = re.fullmatch(r"(?:[\w.\-/]+/)?postgres:(\d+)(?:\.\d+)*(?:-[\w.]+)?(?:@sha256:[0-9a-f]{64})?", image)
    if not match:
        raise ValueError(f"not a tagged postgres image: {image!r}")
    return int(match.group(1))


def expected_data_target(major: int) -> str:
    return "/var/lib/postgresql" if major >= 18 else "/var/lib/postgresql/data"


def volume_targets(service: dict[str, Any]) -> list[str]:
    """Container paths of a service's volumes, from `src:target[:mode]` strings or `{target: ...}` tables."""
    targets = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            parts = volume.split(":")
            targets.append(parts[1] if len(parts) >= 2 else parts[0])
        else:
            targets.append(volume["target"])
    return [t.rstrip("/") or "/" for t in targets]


def layout_problems(service: dict[str, Any]) -> list[str]:
    major = postgres_major(service["image"])
    targets = volume_targets(service)
    expected = expected_data_target(major)
    problems = []
    if expected not in targets:
        problems.append(f"PostgreSQL {major} keeps its data at {expected}; volumes mount {targets}")
    if major >= 18 and "/var/lib/postgresql/data" in targets:
        problems.append(f"PostgreSQL {major} images refuse a mount at /var/lib/postgresql/data")
    return problems


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_postgres_volume_matches_the_image_major_version_layout(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert postgres_major(postgres["image"]) >= 18
    assert layout_problems(postgres) == []
    # The named volume the data lives in is declared at the top level (so it survives `docker compose down`).
    sources = [v.split(":")[0] if isinstance(v, str) else v.get("source") for v in postgres["volumes"]]
    assert any(s in compose.get("volumes", {}) for s in sources)


def test_header_comment_names_the_image_major_version(compose: dict[str, Any]) -> None:
    major = postgres_major(compose["services"]["postgres"]["image"])
    header = COMPOSE.read_text().splitlines()[0]
    assert re.findall(r"PostgreSQL (\d+)", header) == [str(major)], header


@pytest.mark.parametrize(
    ("service", "ok"),
    [
        ({"image": "postgres:18.1-bookworm", "volumes": ["pg:/var/lib/postgresql"]}, True),
        ({"image": "postgres:18", "volumes": [{"type": "volume", "source": "pg", "target": "/var/lib/postgresql/"}]},
         True),
        ({"image": "postgres:18.1-bookworm", "volumes": ["pg:/var/lib/postgresql/data"]}, False),
        ({"image": "postgres:19.0", "volumes": ["pg:/var/lib/postgresql", "x:/var/lib/postgresql/data:rw"]}, False),
        ({"image": "docker.io/library/postgres:16.4-alpine", "volumes": ["pg:/var/lib/postgresql/data"]}, True),
        ({"image": "postgres:16.4", "volumes": ["pg:/var/lib/postgresql"]}, False),
        ({"image": "postgres:18.1", "volumes": []}, False),
    ],
)
def test_layout_check_itself(service: dict[str, Any], ok: bool) -> None:
    assert (layout_problems(service) == []) is ok


def test_untagged_image_is_refused() -> None:
    with pytest.raises(ValueError):
        postgres_major("postgres")
    with pytest.raises(ValueError):
        postgres_major("postgres:latest")
