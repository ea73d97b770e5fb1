"""deploy/k8s/console: the console in namespace allot-console (admitted by the base's NetworkPolicies), one
replica (sessions are per process), no data and no secrets but the API-key hashes, valid Kubernetes; and the same
console in the production overlay: pinned image, production sizing, an Ingress with TLS and a ServiceMonitor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version, major_minor

from allot.console.settings import ConsoleSettings
from tests.support.kustomize import in_namespace, render

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "deploy" / "k8s" / "console"
BASE = ROOT / "deploy" / "k8s" / "base"
PRODUCTION = ROOT / "deploy" / "k8s" / "overlays" / "production"
CRD_SCHEMAS = Path(__file__).parent / "crd_schemas"
#: The services whose HTTP APIs the console calls: its settings' ALLOT_<SERVICE>_URL.
CALLED = sorted(f.removesuffix("_url") for f in ConsoleSettings.model_fields
                if f.endswith("_url") and f != "database_url")


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


# ================================================================== the console in the production overlay


@pytest.fixture(scope="module")
def production() -> list[dict[str, Any]]:
    return render(PRODUCTION)


@pytest.fixture(scope="module")
def prod_console(production: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The production overlay's objects in namespace allot-console, by kind (one of each)."""
    objects = in_namespace(production, "allot-console")
    kinds = [o["kind"] for o in objects]
    assert len(kinds) == len(set(kinds)), kinds
    return {o["kind"]: o for o in objects}


def test_production_renders_the_services_and_the_console_and_nothing_else(
        production: list[dict[str, Any]], prod_console: dict[str, dict[str, Any]]) -> None:
    assert set(prod_console) == {"Namespace", "Deployment", "Service", "NetworkPolicy", "Ingress", "ServiceMonitor"}
    # Every object is in one of the two namespaces (the other tests check namespace allot's).
    assert len(in_namespace(production, "allot")) + len(prod_console) == len(production)
    for kind, obj in prod_console.items():
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "allot", kind
        if kind != "Namespace":
            assert obj["metadata"]["name"] == "allot-console", kind
    labels = prod_console["Namespace"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("version", ["1.31", major_minor(latest_version())])
def test_production_console_objects_are_valid(prod_console: dict[str, dict[str, Any]], version: str) -> None:
    for kind, obj in prod_console.items():
        if kind == "ServiceMonitor":
            schema = yaml.safe_load((CRD_SCHEMAS / "monitoring.coreos.com_v1_ServiceMonitor.yaml").read_text())
            errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(obj)]
            assert not errors, errors
        else:
            kubernetes_validate.validate(obj, version, strict=True)


def test_production_console_is_one_pinned_hardened_pod_with_production_sizing(
        production: list[dict[str, Any]], prod_console: dict[str, dict[str, Any]]) -> None:
    dep = prod_console["Deployment"]
    # One replica, never two at once: sessions are in the process's memory. No PDB (it would block every drain).
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    assert not [o for o in production if o["kind"] == "PodDisruptionBudget"
                and o["metadata"].get("namespace") == "allot-console"]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == "registry.example.com/allot/console:1.0.0"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
    assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["resources"] == {"requests": {"cpu": "100m", "memory": "192Mi"},
                              "limits": {"cpu": "1", "memory": "512Mi"}}
    env = {e["name"]: e for e in c["env"]}
    # No Kafka, no database, none of the services' production patches; its one Secret is the API-key list.
    assert not any(k.startswith(("ALLOT_KAFKA", "ALLOT_DATABASE")) for k in env), sorted(env)
    assert "envFrom" not in c
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "valueFrom" in e} == {"allot-api-keys"}
    assert env["ALLOT_CONSOLE_SECURE_COOKIE"]["value"] == "always"
    # Every service it calls, at its Service in namespace allot (port 80 → the pods' http).
    services = {o["metadata"]["name"]: o for o in in_namespace(production, "allot") if o["kind"] == "Service"}
    urls = {k.removeprefix("ALLOT_").removesuffix("_URL").lower(): e["value"] for k, e in env.items()
            if k.endswith("_URL")}
    assert sorted(urls) == CALLED
    for name, url in urls.items():
        assert url == f"http://allot-{name}.allot.svc.cluster.local", url
        assert [p["port"] for p in services[f"allot-{name}"]["spec"]["ports"]] == [80]


def _namespaces(peer: dict[str, Any]) -> set[str]:
    sel = peer["namespaceSelector"]
    return ({v for e in sel.get("matchExpressions", []) for v in e["values"]}
            | set(sel.get("matchLabels", {}).values()))


def test_production_console_network_policy_admits_the_ingress_and_reaches_only_the_services_it_calls(
        production: list[dict[str, Any]], prod_console: dict[str, dict[str, Any]]) -> None:
    spec = prod_console["NetworkPolicy"]["spec"]
    assert spec["podSelector"] == {} and spec["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = spec["ingress"]
    assert [p["port"] for p in ingress["ports"]] == ["http"]
    assert set().union(*(_namespaces(p) for p in ingress["from"])) == {"ingress-nginx", "monitoring"}
    dns, services = spec["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    (peer,) = services["to"]
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "allot"}}
    (expr,) = peer["podSelector"]["matchExpressions"]
    assert expr["operator"] == "In" and sorted(expr["values"]) == [f"allot-{s}" for s in CALLED]
    assert [(p["protocol"], p["port"]) for p in services["ports"]] == [("TCP", 8000)]
    # ... and each of those services' own policy admits namespace allot-console on its HTTP port.
    policies = {o["metadata"]["name"]: o for o in in_namespace(production, "allot") if o["kind"] == "NetworkPolicy"}
    for name in CALLED:
        rules = policies[f"allot-{name}"]["spec"]["ingress"]
        assert any("allot-console" in _namespaces(p) and [x["port"] for x in r["ports"]] == ["http"]
                   for r in rules for p in r["from"] if "namespaceSelector" in p), name


def test_production_console_is_served_over_tls_and_scraped(prod_console: dict[str, dict[str, Any]]) -> None:
    svc = prod_console["Service"]
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    ingress = prod_console["Ingress"]
    assert ingress["spec"]["ingressClassName"] == "nginx"  # the namespace the NetworkPolicy admits: ingress-nginx
    (tls,) = ingress["spec"]["tls"]
    assert tls["secretName"] == "allot-console-tls"
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/ssl-redirect"] == "true"
    for rule in ingress["spec"]["rules"]:
        assert rule["host"] in tls["hosts"], f"{rule['host']} would be served without TLS"
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == svc["metadata"]["name"] and backend["port"]["name"] in ports
    monitor = prod_console["ServiceMonitor"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
    app = (ROOT / "services" / "console" / "src" / "allot" / "console" / "app.py").read_text()
    assert '@app.get("/metrics"' in app
