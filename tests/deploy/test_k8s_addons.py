"""deploy/k8s's cluster add-on objects (#17): NetworkPolicies, KEDA ScaledObjects (consumer lag), Prometheus Operator
ServiceMonitors and alert rules, in the base and the production overlay.

Custom resources are validated with jsonschema against the minimal CRD schemas in tests/deploy/crd_schemas (see
its README: no registry ships the CRDs, each schema cites the official reference it was written from); the
NetworkPolicies against the Kubernetes schema (test_deploy_manifests.py). Beyond the schemas, the objects are
checked against what the code says: consumer groups and topics of each ServiceSpec, the brokers in allot-config,
the metric names and labels the services define.
"""

from __future__ import annotations

import copy
import importlib
import ipaddress
import re
import typing
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from allot.contracts import payloads
from allot.contracts.registry import TOPICS
from tests.support.kustomize import in_namespace, render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = Path(__file__).parent / "crd_schemas"
SERVICES = ("guardrails", "executor", "pools", "rules", "pacing", "connections", "ingest", "notify")
#: Services that talk to the internet (ad platforms, Graph API, notification channels): nobody else does.
PUBLIC_EGRESS = {"executor": {443}, "ingest": {443}, "notify": {443, 465, 587}}
#: Services that call another over HTTP (caller -> callee): the guardrails dry run behind previews and simulations.
INTERNAL_HTTP = {"rules": "guardrails", "pools": "guardrails"}
#: Documented parameters of KEDA's kafka scaler (https://keda.sh/docs/2.17/scalers/apache-kafka/).
KAFKA_SCALER_PARAMS = {
    "bootstrapServers", "bootstrapServersFromEnv", "consumerGroup", "consumerGroupFromEnv", "topic", "topicFromEnv",
    "lagThreshold", "activationLagThreshold", "offsetResetPolicy", "allowIdleConsumers", "scaleToZeroOnInvalidOffset",
    "excludePersistentLag", "limitToPartitionsWithLag", "ensureEvenDistributionOfPartitions", "partitionLimitation",
    "version", "sasl", "tls", "unsafeSsl",
}
REQUIRED_ALERTS = {"AllotConsumerLagHigh", "AllotDeadLetterQueueGrowing", "AllotExecutorFailures", "AllotKillSwitchOn"}
#: Labels Prometheus adds to every scraped series (target labels of a ServiceMonitor).
TARGET_LABELS = {"namespace", "pod", "instance", "job", "container", "endpoint"}
PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16")]


def _schemas() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path in SCHEMAS.glob("*.yaml"):
        schema = yaml.safe_load(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        props = schema["properties"]
        out[(props["apiVersion"]["const"], props["kind"]["const"])] = schema
    return out


SCHEMA_BY_KIND = _schemas()


def _validate(obj: dict[str, Any]) -> list[str]:
    schema = SCHEMA_BY_KIND[(obj["apiVersion"], obj["kind"])]
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{obj['kind']}/{obj['metadata']['name']}: {e.message} at {list(e.absolute_path)}"
            for e in validator.iter_errors(obj)]


@pytest.fixture(scope="module", params=["base", "production"])
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    """The services' namespace "allot" (production also renders the console in allot-console:
    tests/deploy/test_console_k8s.py)."""
    directory = K8S / "base" if request.param == "base" else K8S / "overlays" / "production"
    return request.param, in_namespace(render(directory), "allot")


def _by_name(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _config(objects: list[dict[str, Any]]) -> dict[str, str]:
    return _by_name(objects, "ConfigMap")["allot-config"]["data"]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"only matchLabels selectors are used here: {selector}"
    return selector.get("matchLabels", {}).items() <= labels.items()


# ================================================================== schemas


def test_every_custom_resource_is_valid_against_its_crd_schema(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    custom = [o for o in objects if "." in o["apiVersion"].split("/")[0] and not o["apiVersion"].startswith(
        ("apps/", "batch/", "policy/", "networking.k8s.io/", "autoscaling/", "rbac.authorization.k8s.io/"))]
    kinds = {(o["apiVersion"], o["kind"]) for o in custom}
    assert kinds >= {("keda.sh/v1alpha1", "ScaledObject"), ("monitoring.coreos.com/v1", "ServiceMonitor"),
                     ("monitoring.coreos.com/v1", "PrometheusRule")}
    assert kinds <= set(SCHEMA_BY_KIND), f"no schema for {sorted(kinds - set(SCHEMA_BY_KIND))}"
    errors = [e for o in custom for e in _validate(o)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(("kind", "breakage"), [
    ("ScaledObject", lambda o: o["spec"]["triggers"][0]["metadata"].update(lagThreshold=50)),  # must be a string
    ("ScaledObject", lambda o: o["spec"].update(maxReplicas=6)),  # the HPA's name, not KEDA's
    ("ScaledObject", lambda o: o["spec"].pop("scaleTargetRef")),
    ("ServiceMonitor", lambda o: o["spec"]["endpoints"][0].update(interval="30 seconds")),
    ("ServiceMonitor", lambda o: o["spec"].pop("selector")),
    ("PrometheusRule", lambda o: o["spec"]["groups"][0]["rules"][0].update(record="x")),  # alert and record
    ("PrometheusRule", lambda o: o["spec"]["groups"][0]["rules"][0].pop("expr")),
])
def test_the_crd_schemas_reject_broken_objects(kind: str, breakage: Any) -> None:
    objects = render(K8S / "base")
    obj = copy.deepcopy(next(o for o in objects if o["kind"] == kind))
    assert _validate(obj) == []
    breakage(obj)
    assert _validate(obj), f"the {kind} schema accepted a broken object"


# ================================================================== KEDA


def test_consumers_scale_on_their_own_consumer_lag(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    which, objects = rendered
    config = _config(objects)
    deployments = _by_name(objects, "Deployment")
    auths = _by_name(objects, "TriggerAuthentication")
    for name, so in _by_name(objects, "ScaledObject").items():
        service = name.removeprefix("allot-")
        spec = importlib.import_module(f"allot.{service}.service").SPEC
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        env = {e["name"] for e in container.get("env", [])}
        assert "ALLOT_CONSUMER_GROUP" not in env, "the group would then not be the service's name"
        triggers = so["spec"]["triggers"]
        if not spec.consumes:
            assert [t["type"] for t in triggers] == ["cpu"], name
            continue
        (trigger,) = triggers
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka", name
        unknown = set(meta) - KAFKA_SCALER_PARAMS
        assert not unknown, f"{name}: unknown kafka scaler parameters {sorted(unknown)}"
        # The group the service's consumer joins (settings.consumer_group or the service's name) and a topic it reads.
        assert meta["consumerGroup"] == spec.name, name
        assert meta["topic"] in spec.consumes and meta["topic"] in TOPICS, name
        assert int(meta["lagThreshold"]) > 0
        assert so["spec"]["maxReplicaCount"] <= TOPICS[meta["topic"]].partitions
        assert meta.get("allowIdleConsumers", "false") == "false", "idle consumers beyond the partitions help nobody"
        # The brokers are the services' own: read from the container's environment (allot-config).
        assert meta["bootstrapServersFromEnv"] == "ALLOT_KAFKA_BOOTSTRAP" and "ALLOT_KAFKA_BOOTSTRAP" in config
        assert {"configMapRef": {"name": "allot-config"}} in container["envFrom"]
        if config.get("ALLOT_KAFKA_SECURITY_PROTOCOL") == "SASL_SSL":
            mechanism = config["ALLOT_KAFKA_SASL_MECHANISM"].lower().replace("-", "_")  # SCRAM-SHA-512 → scram_sha512
            assert meta["sasl"] == mechanism.replace("sha_", "sha"), name
            assert meta["tls"] == "enable", name
            auth = auths[trigger["authenticationRef"]["name"]]
            refs = {(r["parameter"], r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
            assert refs == {("username", "allot-kafka-credentials", "username"),
                            ("password", "allot-kafka-credentials", "password")}
        else:
            assert "sasl" not in meta and "authenticationRef" not in trigger, name
    assert which == "base" or auths, "production authenticates the lag scaler"


# ================================================================== NetworkPolicies


def _ports(rule: dict[str, Any]) -> set[Any]:
    return {p["port"] for p in rule.get("ports", [])}


def _bootstrap_ports(config: dict[str, str]) -> set[int]:
    return {int(hostport.rsplit(":", 1)[1]) for hostport in config["ALLOT_KAFKA_BOOTSTRAP"].split(",")}


def test_namespace_denies_by_default(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    deny = _by_name(objects, "NetworkPolicy")["allot-default-deny"]
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_each_workload_gets_only_what_it_needs(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    config = _config(objects)
    kafka_ports = _bootstrap_ports(config)
    policies = [p for p in _by_name(objects, "NetworkPolicy").values() if p["spec"]["podSelector"]]
    workloads = {**_by_name(objects, "Deployment"), **_by_name(objects, "Job")}
    assert set(workloads) == {f"allot-{s}" for s in SERVICES} | {"allot-create-topics"}
    for name, workload in workloads.items():
        pod_labels = workload["spec"]["template"]["metadata"]["labels"]
        (policy,) = [p for p in policies if _selects(p["spec"]["podSelector"], pod_labels)]
        spec = policy["spec"]
        assert spec["policyTypes"] == ["Ingress", "Egress"], name
        egress = spec["egress"]
        # DNS to kube-dns only.
        dns = egress[0]
        assert _ports(dns) == {53} and {p["protocol"] for p in dns["ports"]} == {"UDP", "TCP"}, name
        assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
        # The brokers of allot-config, on their port.
        assert _ports(egress[1]) == kafka_ports, f"{name}: Kafka egress {_ports(egress[1])} vs bootstrap {kafka_ports}"
        service = name.removeprefix("allot-")
        if name == "allot-create-topics":
            assert len(egress) == 2 and not spec.get("ingress"), "the topics Job needs the brokers only"
            continue
        assert _ports(egress[2]) == {5432}, name
        public = egress[3:]
        if service in INTERNAL_HTTP:  # the one service it asks over HTTP, on its pods' HTTP port
            internal, *public = public
            assert _ports(internal) == {8000}, name
            assert internal["to"] == [{"podSelector": {"matchLabels": {
                "app.kubernetes.io/name": f"allot-{INTERNAL_HTTP[service]}"}}}], name
        if service in PUBLIC_EGRESS:
            (rule,) = public
            assert _ports(rule) == PUBLIC_EGRESS[service], name
            (peer,) = rule["to"]
            block = peer["ipBlock"]
            assert block["cidr"] == "0.0.0.0/0"
            excepted = [ipaddress.ip_network(c) for c in block["except"]]
            for private in PRIVATE:
                assert any(private.subnet_of(e) for e in excepted), f"{name} may reach {private}"
        else:
            assert public == [], f"{service} has no business on the internet: {public}"
        for rule in egress:
            assert rule.get("ports"), f"{name}: an egress rule without ports opens every port"
        # Ingress: the HTTP port, from the console / ingress controller and monitoring namespaces only, and from
        # the pods of the services that call this one.
        ingress, *internal_ingress = spec["ingress"]
        callers = {c for c, callee in INTERNAL_HTTP.items() if callee == service}
        if callers:
            (rule,) = internal_ingress
            assert _ports(rule) == {"http"}, name
            (peer,) = rule["from"]
            (expr,) = peer["podSelector"]["matchExpressions"]
            assert set(peer) == {"podSelector"} and set(expr["values"]) == {f"allot-{c}" for c in callers}, name
        else:
            assert internal_ingress == [], f"{name}: ingress from {internal_ingress}"
        container_ports = {p["name"]: p["containerPort"] for c in workload["spec"]["template"]["spec"]["containers"]
                           for p in c["ports"]}
        assert {container_ports.get(p, p) for p in _ports(ingress)} == {8000}, name
        for peer in ingress["from"]:
            assert set(peer) == {"namespaceSelector"}, f"{name}: ingress from {peer}"
        namespaces = set()
        for peer in ingress["from"]:
            sel = peer["namespaceSelector"]
            namespaces |= {v for e in sel.get("matchExpressions", []) for v in e["values"]}
            namespaces |= {v for k, v in sel.get("matchLabels", {}).items()}
        assert namespaces == {"allot-console", "ingress-nginx", "monitoring"}, name


def test_only_the_executor_may_reach_the_ad_platforms_write_side(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """Belt and braces to the credential scoping: of the services, only these three have internet egress at all."""
    _, objects = rendered
    with_internet = {p["metadata"]["name"].removeprefix("allot-") for p in _by_name(objects, "NetworkPolicy").values()
                     if any("ipBlock" in peer for rule in p["spec"].get("egress", []) for peer in rule.get("to", []))}
    assert with_internet == set(PUBLIC_EGRESS)


# ================================================================== Prometheus Operator


def test_a_service_monitor_scrapes_every_service(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    services = _by_name(objects, "Service")
    monitors = _by_name(objects, "ServiceMonitor")
    assert set(monitors) == set(services) == {f"allot-{s}" for s in SERVICES}
    runtime_service = (ROOT / "libs" / "runtime" / "src" / "allot" / "runtime" / "service.py").read_text()
    for name, monitor in monitors.items():
        svc = services[name]
        assert _selects(monitor["spec"]["selector"], svc["metadata"]["labels"]), name
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}, name
        assert endpoint["path"] == "/metrics" and '"/metrics"' in runtime_service
        # The metrics' own "service" label (the Allot service) must survive the target's "service" label.
        assert endpoint["honorLabels"] is True, name


def _metric_labels() -> dict[str, set[str]]:
    """Every allot_* metric the code defines with prometheus_client → its label names (static scan)."""
    pattern = re.compile(r"\b(?:Counter|Gauge|Histogram|Summary)\(\s*[\"'](allot_\w+)[\"']\s*,"
                         r"(?:\s*(?:\"[^\"]*\"|'[^']*'))+\s*(?:,\s*\[([^\]]*)\])?", re.DOTALL)
    out: dict[str, set[str]] = {}
    for src in [*ROOT.glob("libs/*/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]:
        for name, labels in pattern.findall(src.read_text()):
            out[name] = set(re.findall(r"[\"'](\w+)[\"']", labels or ""))
    return out


def _alerts(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    (rule_object,) = [o for o in objects if o["kind"] == "PrometheusRule"]
    return {r["alert"]: r for g in rule_object["spec"]["groups"] for r in g["rules"] if "alert" in r}


def test_alerts_cover_lag_dlq_executor_failures_and_the_kill_switch(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    alerts = _alerts(objects)
    assert set(alerts) >= REQUIRED_ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
    assert "allot_consumer_lag" in alerts["AllotConsumerLagHigh"]["expr"]
    assert "allot_dlq_events_total" in alerts["AllotDeadLetterQueueGrowing"]["expr"]
    assert 'allot_executor_outcomes_total{outcome="failed"}' in alerts["AllotExecutorFailures"]["expr"]
    assert "failed" in typing.get_args(payloads.Outcome)
    assert "allot_guardrail_kill_switches_on" in alerts["AllotKillSwitchOn"]["expr"]


def test_alert_expressions_use_real_metric_names_and_labels(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    defined = _metric_labels()
    assert {"allot_consumer_lag", "allot_dlq_events_total", "allot_executor_outcomes_total"} <= set(defined)
    for name, rule in _alerts(objects).items():
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), name
        metrics = re.findall(r"\b(allot_\w+)", expr)
        assert metrics, name
        allowed = set(TARGET_LABELS)
        for metric in metrics:
            assert metric in defined, f"{name}: no service defines {metric}"
            allowed |= defined[metric]
        used = {m for sel in re.findall(r"\{([^}]*)\}", expr) for m in re.findall(r"(\w+)\s*[!=]~?", sel)}
        used |= {label.strip() for grp in re.findall(r"\bby\s*\(([^)]*)\)", expr) for label in grp.split(",")}
        assert used <= allowed, f"{name}: labels {sorted(used - allowed)} are on none of {metrics}"
        templated = set(re.findall(r"\$labels\.(\w+)", " ".join(rule["annotations"].values())))
        kept = {label.strip() for grp in re.findall(r"\bby\s*\(([^)]*)\)", expr) for label in grp.split(",")}
        assert templated <= kept, f"{name}: annotations use {sorted(templated - kept)}, which the expression drops"
