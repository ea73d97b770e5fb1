"""deploy/k8s/console: the console in namespace allot-console (admitted by the base's NetworkPolicies), one
replica (sessions are per process), no data and no secrets but the API-key hashes, valid Kubernetes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support.kustomize import render

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "deploy" / "k8s" / "console"
BASE = ROOT / "deploy" / "k8s" / "base"


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render(CONSOLE)


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (obj,) = [o for o in objects if o["kind"] == kind]
    return obj


def test_the_console_renders_valid_objects_in_its_own_namespace(objects: list[dict[str, Any]]) -> None:
    assert sorted(o["kind"] for o in objects) == ["Deployment", "Namespace", "NetworkPolicy", "Service"]
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {"allot-console"}
    for obj in objects:
        kubernetes_validate.validate(obj, "1.31", strict=True)
    # the base's NetworkPolicies admit the console's namespace on every service's HTTP port
    base_policies = (BASE / "networkpolicies.yaml").read_text()
    assert base_policies.count("- allot-console") >= 8


def test_one_replica_hardened_and_only_the_api_key_hashes(objects: list[dict[str, Any]]) -> None:
    dep = _one(objects, "Deployment")
    spec = dep["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"].startswith("allot/console:")
    assert c["securityContext"]["readOnlyRootFilesystem"] and c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"]
    env = {e["name"]: e for e in c["env"]}
    assert env["ALLOT_CONSOLE_SECURE_COOKIE"]["value"] == "always"
    secrets = {e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "valueFrom" in e}
    assert secrets == {"allot-api-keys"}
    assert not any(k.startswith(("ALLOT_KAFKA", "ALLOT_DATABASE")) for k in env)
    base_services = {d["metadata"]["name"] for d in yaml.safe_load_all(
        "\n---\n".join(p.read_text() for p in BASE.glob("*.yaml"))) if d and d.get("kind") == "Service"}
    for name, e in env.items():
        if name.endswith("_URL"):
            host = e["value"].split("//")[1].split(".")[0]
            assert host in base_services, f"{name} points at {host}, which the base does not run"
