"""docker-compose.yml's optional `observability` profile (#17): Prometheus scraping every Allot service's /metrics,
Grafana with the Prometheus datasource and the Allot dashboard provisioned, and a Kafka UI, all pinned.

Offline: the compose file and the mounted configuration files are parsed and cross-checked (what Prometheus
scrapes against the services compose runs, what Grafana loads against the files mounted into it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PROFILE = "observability"
PINNED = {
    "prometheus": r"prom/prometheus:v\d+\.\d+\.\d+",
    "grafana": r"grafana/grafana:\d+\.\d+\.\d+",
    "kafka-ui": r"(kafbat|provectuslabs)/kafka-ui:v\d+\.\d+\.\d+",
}


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _allot_services(services: dict[str, Any]) -> set[str]:
    """Services compose always runs from the Allot image (a SERVICE build argument, no profile)."""
    return {name for name, svc in services.items()
            if "SERVICE" in svc.get("build", {}).get("args", {}) and not svc.get("profiles") and "command" not in svc}


def _mounts(svc: dict[str, Any]) -> dict[str, Path]:
    """Bind mounts of a service: container path → host path (named volumes left out)."""
    out = {}
    for volume in svc.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            out[target] = ROOT / source
    return out


def _file_in(svc: dict[str, Any], container_path: str) -> Path:
    """The host file behind a container path, through a file mount or a mounted directory."""
    for target, host in _mounts(svc).items():
        if container_path == target:
            return host
        if container_path.startswith(target.rstrip("/") + "/"):
            return host / container_path[len(target.rstrip("/")) + 1:]
    raise AssertionError(f"{container_path} is not mounted")


def test_observability_services_are_optional_and_pinned(services: dict[str, Any]) -> None:
    for name, pattern in PINNED.items():
        svc = services[name]
        assert svc["profiles"] == [PROFILE], name
        assert re.fullmatch(pattern, svc["image"]), f"{name}: pin an exact tag, not {svc['image']}"
        for target, host in _mounts(svc).items():
            assert host.exists(), f"{name} mounts {host} at {target}: missing from the repository"
        assert all(str(p).startswith("127.0.0.1:") for p in svc.get("ports", [])), f"{name}: loopback only"
    # Nothing of the default stack depends on the optional profile.
    for name, svc in services.items():
        if PROFILE not in svc.get("profiles", []):
            assert not set(svc.get("depends_on", {})) & set(PINNED), name


def test_prometheus_scrapes_every_service_metrics(services: dict[str, Any]) -> None:
    prometheus = services["prometheus"]
    config_arg = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config = yaml.safe_load(_file_in(prometheus, config_arg.split("=", 1)[1]).read_text())
    scraped: dict[str, str] = {}
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                scraped[target] = job.get("metrics_path", "/metrics")
    allot = _allot_services(services)
    assert {"guardrails", "executor", "pools", "rules", "pacing", "connections", "ingest", "notify"} <= allot
    for name in sorted(allot):
        port = services[name]["environment"]["ALLOT_HTTP_PORT"]
        assert scraped.get(f"{name}:{port}") == "/metrics", f"Prometheus does not scrape {name}'s /metrics"
    unknown = {t.split(":")[0] for t in scraped} - set(services)
    assert not unknown, f"scrape targets compose does not run: {sorted(unknown)}"


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboard(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    assert "prometheus" in grafana["depends_on"]
    datasources = yaml.safe_load(
        _file_in(grafana, "/etc/grafana/provisioning/datasources/prometheus.yaml").read_text())["datasources"]
    (prom,) = [d for d in datasources if d["type"] == "prometheus"]
    assert prom["url"] == "http://prometheus:9090" and prom["isDefault"] is True
    assert "9090:9090" in services["prometheus"]["ports"][0]

    providers = yaml.safe_load(
        _file_in(grafana, "/etc/grafana/provisioning/dashboards/allot.yaml").read_text())["providers"]
    (provider,) = providers
    dashboard_dir = provider["options"]["path"]
    loaded = _file_in(grafana, f"{dashboard_dir}/allot-dashboard.json")
    assert loaded == ROOT / "deploy" / "grafana" / "allot-dashboard.json"
    dashboard = json.loads(loaded.read_text())
    # The dashboard chooses its datasource by type: the provisioned one is of that type.
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == prom["type"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD")


def test_kafka_ui_points_at_the_compose_broker(services: dict[str, Any]) -> None:
    ui = services["kafka-ui"]
    env = ui["environment"]
    assert env["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"] == "kafka:9092"
    assert ui["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert "PLAINTEXT://kafka:9092" in services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
