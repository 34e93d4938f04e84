"""docker-compose.yml cannot run here (no Docker engine), so it is kept honest by parsing."""

from __future__ import annotations

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
