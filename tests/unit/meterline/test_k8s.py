"""deploy/k8s cannot be applied here (no cluster), so it is kept honest by parsing, as
docker-compose.yml is (test_docker_compose.py): the same images, settings, ports and
replica counts, and Kubernetes' own wiring (selectors, Service ports, env sources)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from meterline.config_sources import env_leaves
from meterline.settings import CONFIG_FILE_ENV, Settings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text())
DOCS: list[dict[str, Any]] = [
    doc
    for name in KUSTOMIZATION["resources"]
    for doc in yaml.safe_load_all((K8S / name).read_text())
    if doc
]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
METERLINE = re.compile(r"^METERLINE_")
SECRET_KEYS = {"admin-token", "clickhouse-password", "openai-api-key", "anthropic-api-key"}


def _of(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in DOCS if doc["kind"] == kind}


WORKLOADS = {**_of("Deployment"), **_of("StatefulSet")}
SERVICES = _of("Service")
ENV_MAP = _of("ConfigMap")["meterline-env"]["data"]
MERGE_ENV = re.compile(r"\$\((\w+)\)")


def _container(name: str) -> dict[str, Any]:
    (container,) = WORKLOADS[name]["spec"]["template"]["spec"]["containers"]
    return container


def _environment(name: str) -> dict[str, str | None]:
    """A container's environment as Kubernetes builds it: envFrom first, then env, with
    $(VAR) expanded from earlier variables; a secret's value is None."""
    container = _container(name)
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] == "meterline-env"
        env.update(ENV_MAP)
    for item in container.get("env", []):
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "meterline-secrets" and ref["key"] in SECRET_KEYS, item
            env[item["name"]] = None
            continue
        env[item["name"]] = MERGE_ENV.sub(lambda m: env.get(m[1]) or "secret", item["value"])
    return env


def _settings(name: str, monkeypatch) -> Settings:
    for variable in [v for v in os.environ if METERLINE.match(v)]:
        monkeypatch.delenv(variable)
    for variable, value in _environment(name).items():
        if METERLINE.match(variable) and variable != CONFIG_FILE_ENV and value is not None:
            monkeypatch.setenv(variable, value)
    return Settings()


def _replicas(name: str) -> int:
    return int(WORKLOADS[name]["spec"].get("replicas", 1))


def test_kustomization_lists_every_manifest_and_every_doc_is_named() -> None:
    files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(KUSTOMIZATION["resources"]) == files
    for doc in DOCS:
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], doc


def test_same_components_and_images_as_docker_compose() -> None:
    for name in ("kafka", "clickhouse", "gateway", "ingest", "processors", "dashboards"):
        assert name in WORKLOADS, name
        image = _container(name)["image"]
        assert image == COMPOSE[name]["image"], (name, image)
        assert image.rsplit(":", 1)[-1] not in ("", "latest")


def test_meterline_pods_run_the_compose_verbs_with_the_mounted_config() -> None:
    for name in ("gateway", "ingest", "processors", "dashboards"):
        assert _container(name)["args"] == COMPOSE[name]["command"], name
        pod = WORKLOADS[name]["spec"]["template"]["spec"]
        mounts = {m["name"]: m["mountPath"] for m in _container(name)["volumeMounts"]}
        config = Path(ENV_MAP[CONFIG_FILE_ENV])
        assert mounts["config"] == str(config.parent)
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["config"]["configMap"]["name"] == "meterline-config"
        # One writer per spool: each pod its own data dir, never a shared claim.
        assert mounts["data"] == ENV_MAP["METERLINE_DATA_DIR"]
        assert volumes["data"] == {"name": "data", "emptyDir": {}}


def test_every_meterline_variable_exists_in_settings_and_matches_compose() -> None:
    known = set(env_leaves(Settings)) | {CONFIG_FILE_ENV}
    for name in ("gateway", "ingest", "processors", "dashboards"):
        for variable, value in _environment(name).items():
            if not METERLINE.match(variable):
                continue
            assert variable in known, f"{name} sets {variable}, unknown to Settings"
            composed = str(COMPOSE[name]["environment"].get(variable))
            # Compose interpolates secrets and routes clients through its nginx (lb).
            if value is not None and not re.search(r"\$\{|@|//lb:", composed):
                assert value == composed, (name, variable)


def test_secrets_come_from_the_secret_never_from_the_manifests() -> None:
    for name in ("gateway", "ingest", "processors", "dashboards", "clickhouse"):
        env = _environment(name)
        for variable in ("METERLINE_ADMIN_TOKEN", "CLICKHOUSE_PASSWORD", "OPENAI_API_KEY"):
            if variable in env:
                assert env[variable] is None, f"{name}: {variable} is written in the manifest"
    url = _environment("ingest")["METERLINE_CLICKHOUSE_URL"]
    assert url == "http://meterline:secret@clickhouse:8123"  # built from the secret


def test_services_and_probes_match_the_settings_ports(monkeypatch) -> None:
    ports = {
        "gateway": _settings("gateway", monkeypatch).gateway_port,
        "ingest": _settings("ingest", monkeypatch).ingest_port,
        "processors": _settings("processors", monkeypatch).processors_port,
        "dashboards": _settings("dashboards", monkeypatch).dashboard_port,
    }
    for name, port in ports.items():
        container = _container(name)
        assert [p["containerPort"] for p in container["ports"]] == [port], name
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["port"] == port, (name, probe)
    for name, service in SERVICES.items():
        labels = WORKLOADS[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"] == labels, name
        assert WORKLOADS[name]["spec"]["selector"]["matchLabels"] == labels, name
        exposed = {p["containerPort"] for p in _container(name)["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in exposed, (name, port)
    assert {"gateway", "ingest", "dashboards", "kafka", "clickhouse"} <= set(SERVICES)
    # The gateways sit behind one load-balanced Service that keeps the client's address.
    assert SERVICES["gateway"]["spec"]["type"] == "LoadBalancer"
    assert SERVICES["gateway"]["spec"]["externalTrafficPolicy"] == "Local"


def test_services_reach_kafka_and_clickhouse_through_their_services(monkeypatch) -> None:
    settings = _settings("ingest", monkeypatch)
    host, port = settings.kafka_bootstrap.split(":")
    assert host in SERVICES and int(port) in {p["port"] for p in SERVICES[host]["spec"]["ports"]}
    assert settings.clickhouse_url.endswith("@clickhouse:8123")
    dashboards = _settings("dashboards", monkeypatch)
    assert dashboards.read_api_url == f"http://ingest:{settings.ingest_port}"
    assert dashboards.gateway_url == f"http://gateway:{settings.gateway_port}"


def test_replicas_fit_the_topic_partitions(monkeypatch) -> None:
    processors = _settings("processors", monkeypatch)
    ingest = _settings("ingest", monkeypatch)
    assert _replicas("gateway") >= 2 and _replicas("processors") >= 2 and _replicas("ingest") >= 2
    processor_consumers = _replicas("processors") * processors.processors.workers
    sink_consumers = _replicas("ingest") * ingest.ingest.sink.workers
    assert ingest.ingest.sink.workers >= 2
    partitions = {
        name: _settings(name, monkeypatch).effective_topic_partitions
        for name in ("gateway", "ingest", "processors", "dashboards")
    }
    assert len(set(partitions.values())) == 1, partitions  # every service creates the same
    assert max(processor_consumers, sink_consumers) <= processors.topic_partitions
    assert processors.effective_topic_partitions == processors.topic_partitions


def test_kafka_runs_in_kraft_mode_without_auto_creation() -> None:
    env = {item["name"]: item["value"] for item in _container("kafka")["env"]}
    assert "controller" in env["KAFKA_PROCESS_ROLES"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
