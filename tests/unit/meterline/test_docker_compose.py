"""docker-compose.yml cannot run here (no Docker engine), so it is kept honest by parsing."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from meterline.config_sources import env_leaves
from meterline.settings import CONFIG_FILE_ENV, Settings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
MERGE_KEY = re.compile(r"^METERLINE_")


def test_stack_has_every_component() -> None:
    expected = {"kafka", "clickhouse", "gateway", "processors", "ingest", "dashboards"}
    assert expected <= set(SERVICES)
    assert SERVICES["mock-provider"]["profiles"] == ["demo"]


def test_images_are_pinned() -> None:
    for name, service in SERVICES.items():
        image = service["image"]
        tag = image.rsplit(":", 1)[-1] if ":" in image else ""
        assert tag and tag != "latest", f"{name}: image {image!r} is not pinned"


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name, service in SERVICES.items():
        if name == "simulator":
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_kafka_runs_in_kraft_mode_without_auto_creation() -> None:
    env = SERVICES["kafka"]["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_every_meterline_variable_exists_in_settings() -> None:
    known = set(env_leaves(Settings)) | {CONFIG_FILE_ENV}
    seen = set()
    for name, service in SERVICES.items():
        for variable in service.get("environment", {}):
            if MERGE_KEY.match(variable):
                seen.add(variable)
                assert variable in known, f"{name} sets {variable}, unknown to Settings"
    assert {"METERLINE_KAFKA_BOOTSTRAP", "METERLINE_CLICKHOUSE_URL"} <= seen


def test_services_point_at_the_compose_kafka_and_clickhouse() -> None:
    env = SERVICES["gateway"]["environment"]
    assert env["METERLINE_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["METERLINE_CLICKHOUSE_URL"].endswith("@clickhouse:8123")


def test_mounted_config_parses_into_settings(monkeypatch) -> None:
    monkeypatch.setenv(CONFIG_FILE_ENV, str(ROOT / "deploy" / "meterline.yaml"))
    settings = Settings()
    assert settings.provider_for("gpt-4o-mini").name == "openai"
    assert settings.provider_for("acme-local-7b").name == "mock"
    assert "acme-local-7b" in settings.price_overrides


# --- scaled out (issue 13) ----------------------------------------------------------------

NGINX = (ROOT / "deploy" / "nginx.conf").read_text()


def _replicas(name: str) -> int:
    return int(SERVICES[name].get("deploy", {}).get("replicas", 1))


def _settings_of(name: str, monkeypatch) -> Settings:
    """The Settings a container of service `name` runs with (its METERLINE_* environment)."""
    for variable in [v for v in os.environ if MERGE_KEY.match(v)]:
        monkeypatch.delenv(variable)
    for variable, value in SERVICES[name]["environment"].items():
        if MERGE_KEY.match(variable) and variable != CONFIG_FILE_ENV:
            monkeypatch.setenv(variable, str(value))
    return Settings()


def test_processors_and_sinks_run_several_replicas_within_the_partitions(monkeypatch) -> None:
    processors = _settings_of("processors", monkeypatch)
    ingest = _settings_of("ingest", monkeypatch)
    assert _replicas("processors") >= 2 and _replicas("ingest") >= 2
    assert _replicas("gateway") >= 2
    # One consumer group each: a consumer beyond the partition count would sit idle.
    processor_consumers = _replicas("processors") * processors.processors.workers
    sink_consumers = _replicas("ingest") * ingest.ingest.sink.workers
    assert ingest.ingest.sink.workers >= 2  # several sink consumers per replica, too
    for settings in (processors, ingest):
        assert processor_consumers <= settings.topic_partitions
        assert sink_consumers <= settings.topic_partitions
        # Every service creates the topics with the same partition count.
        assert settings.effective_topic_partitions == settings.topic_partitions
    assert processors.topic_partitions == ingest.topic_partitions


def test_every_service_agrees_on_the_topic_partitions(monkeypatch) -> None:
    counts = {
        name: _settings_of(name, monkeypatch).effective_topic_partitions
        for name, service in SERVICES.items()
        if "METERLINE_KAFKA_BOOTSTRAP" in service.get("environment", {})
    }
    assert len(set(counts.values())) == 1, counts


def test_scaled_services_have_no_fixed_host_port_and_no_shared_spool() -> None:
    # Replicas cannot all publish the same host port; the load balancer does.
    for name in ("gateway", "ingest", "processors"):
        assert not SERVICES[name].get("ports"), f"{name} publishes a host port"
    # One writer per spool directory: no named volume on the gateway's data dir.
    named = set(COMPOSE.get("volumes") or {})
    for mount in SERVICES["gateway"].get("volumes", []):
        source = mount.split(":")[0]
        assert source not in named, f"gateway replicas would share the volume {source}"


def _upstream(name: str) -> list[str]:
    match = re.search(r"upstream\s+" + name + r"\s*\{(.*?)\}", NGINX, flags=re.DOTALL)
    assert match, f"no upstream {name} in deploy/nginx.conf"
    return re.findall(r"^\s*server\s+(\S+?);", match.group(1), flags=re.MULTILINE)


def test_the_load_balancer_is_nginx_in_front_of_the_gateway_and_ingest(monkeypatch) -> None:
    lb = SERVICES["lb"]
    assert lb["image"].startswith("nginx:")
    assert any(v.startswith("./deploy/nginx.conf:/etc/nginx/nginx.conf") for v in lb["volumes"])
    gateway_port = _settings_of("gateway", monkeypatch).gateway_port
    ingest_port = _settings_of("ingest", monkeypatch).ingest_port
    assert _upstream("gateway") == [f"gateway:{gateway_port}"]
    assert _upstream("ingest") == [f"ingest:{ingest_port}"]
    listens = set(re.findall(r"listen\s+(\d+);", NGINX))
    assert {str(gateway_port), str(ingest_port)} <= listens
    published = {p.split(":")[-1] for p in lb["ports"]}
    assert {str(gateway_port), str(ingest_port)} <= published
    # Streams pass through unbuffered; X-Forwarded-For is set and trusted from the LB only.
    assert "proxy_buffering off;" in NGINX
    assert "X-Forwarded-For" in NGINX
    assert _settings_of("gateway", monkeypatch).gateway.trusted_proxies


def test_clients_of_the_gateway_and_read_api_go_through_the_load_balancer() -> None:
    for name in ("dashboards", "simulator"):
        env = SERVICES[name]["environment"]
        assert env["METERLINE_GATEWAY_URL"].startswith("http://lb:"), name
    assert SERVICES["dashboards"]["environment"]["METERLINE_READ_API_URL"].startswith("http://lb:")
