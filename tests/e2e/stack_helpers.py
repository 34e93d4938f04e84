"""Helpers shared by the end-to-end tests (not collected: no test_ prefix)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from meterline.runtime import Stack
from meterline.settings import Settings, merged
from tests.conftest import free_port, unique

T = TypeVar("T")
ADMIN_TOKEN = "e2e-admin-token"


def stack_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "topic_prefix": unique("e2e") + ".",
        "topic_partitions": 2,
        # Workers bind the ports after these (meterline/workers.py): room for up to 7.
        "gateway_port": free_port(span=8),
        "ingest_port": free_port(),
        "processors_port": free_port(span=8),
        "broker_port": free_port(),
        "mock_provider_port": free_port(),
        "dashboard_port": free_port(),
        "admin_token": ADMIN_TOKEN,
        "processors": {"app_id": unique("e2e-procs-")},
        "ingest": {"sink": {"group_id": unique("e2e-sink-")}},
    }
    return Settings(**merged(values, overrides))


def eventually(check: Callable[[], T | None], timeout_s: float = 30.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


class Admin:
    """The gateway's admin API, as an operator's script would call it."""

    def __init__(self, stack: Stack, port: int | None = None) -> None:
        s = stack.settings
        self.base = f"http://{s.host}:{port or s.gateway_port}"
        self.read_api = f"http://{s.host}:{s.ingest_port}"
        self.headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def post(self, path: str, body: dict[str, Any], expect: int = 201) -> dict[str, Any]:
        response = httpx.post(self.base + path, json=body, headers=self.headers, timeout=10)
        assert response.status_code == expect, response.text
        return dict(response.json())

    def get(self, path: str) -> Any:
        response = httpx.get(self.base + path, headers=self.headers, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def delete(self, path: str) -> dict[str, Any]:
        response = httpx.delete(self.base + path, headers=self.headers, timeout=10)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def create_key(self, org: str, team: str, **extra: Any) -> dict[str, Any]:
        return self.post("/admin/keys", {"org": org, "team": team, "project": "p", **extra})

    def read(self, path: str, **params: Any) -> Any:
        response = httpx.get(self.read_api + path, params=params, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()
