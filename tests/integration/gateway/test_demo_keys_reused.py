"""`meterline up --demo` restarted reuses its keys and budgets: the simulator's keys file
against a real gateway (admin API, real broker). A revoked key is replaced, only it."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from meterline.simulate import SimulationConfig, build_plan
from meterline.simulate.send import create_keys

pytestmark = pytest.mark.integration


def test_a_second_start_creates_no_copies(start_gateway, tmp_path: Path) -> None:
    gateway = start_gateway()
    admin = {"Authorization": "Bearer test-admin-token"}
    keys_file = tmp_path / "demo_keys.json"
    config = SimulationConfig("normal", gateway_url=gateway.url, keys_file=keys_file)
    plan = build_plan(config)
    assert plan.keys

    first = create_keys(gateway.settings, config, plan)
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600  # it holds secrets
    second = create_keys(gateway.settings, config, plan)
    assert second == first
    listed = httpx.get(f"{gateway.url}/admin/keys", headers=admin).json()["data"]
    assert len(listed) == len(plan.keys)
    budgets = httpx.get(f"{gateway.url}/admin/budgets", headers=admin).json()["data"]
    assert len(budgets) == len(plan.budgets)

    name, revoked = next(iter(first.items()))
    httpx.delete(f"{gateway.url}/admin/keys/{revoked.key_id}", headers=admin).raise_for_status()
    third = create_keys(gateway.settings, config, plan)
    assert third[name] != revoked
    assert {n: k for n, k in third.items() if n != name} == {
        n: k for n, k in first.items() if n != name
    }
    listed = httpx.get(f"{gateway.url}/admin/keys", headers=admin).json()["data"]
    assert sum(not k["revoked"] for k in listed) == len(plan.keys)
