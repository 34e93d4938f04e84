"""Chaos through the real embedded stack, started as users start it (`meterline up`).

One stack for the module; each scenario meters its own org, so each total is exact on its
own: the showback dollars must equal genai-prices over the usage the clients were served,
to the last digit, with no manual step, while the damage happens under load.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.chaos_helpers import Load, MeterlineUp, wait_for_exact_spend

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeterlineUp]:
    stack = MeterlineUp.start(Path(tmp_path_factory.mktemp("chaos")))
    try:
        yield stack
    finally:
        stack.kill()


def _kill_under_load(up: MeterlineUp, org: str, verb: str, health_path: str) -> Load:
    key = up.create_key(org)
    with Load(up.gateway, key) as load:
        load.wait_for(40)
        old = up.kill_child(verb)
        up.wait_restarted(verb, old)
        if health_path:
            up.wait_healthy(health_path)
        served = len(load.served)
        load.wait_for(served + 40)
    return load


def test_processors_sigkill_under_load_keeps_serving_and_costs_exactly(up: MeterlineUp) -> None:
    load = _kill_under_load(
        up, "chaos-procs", "processors", f"http://127.0.0.1:{up.port('PROCESSORS')}/healthz"
    )
    assert load.failures == []  # the gateway never noticed
    row = wait_for_exact_spend(up, "chaos-procs", load)
    assert row["requests"] == len(load.served)
    assert any("processors killed by SIGKILL; restarting" in line for line in up.lines)


def test_ingest_sigkill_under_load_loses_nothing(up: MeterlineUp) -> None:
    load = _kill_under_load(up, "chaos-ingest", "ingest", f"{up.ingest}/healthz")
    assert load.failures == []
    row = wait_for_exact_spend(up, "chaos-ingest", load)
    assert row["requests"] == len(load.served)


def test_broker_sigkill_and_restart_under_load_heals_exactly(up: MeterlineUp) -> None:
    load = _kill_under_load(up, "chaos-broker", "broker", "")
    assert load.failures == []  # clients see no error: the gateway spools
    row = wait_for_exact_spend(up, "chaos-broker", load, timeout_s=240)
    assert row["requests"] == len(load.served)
    assert any("broker killed by SIGKILL; restarting" in line for line in up.lines)


def test_ctrl_c_stops_everything_quickly_broker_last_without_error_floods(
    up: MeterlineUp,
) -> None:
    time.sleep(1)
    seconds = up.stop()
    assert up.process is not None and up.process.returncode == 0
    assert seconds < 10, f"stop took {seconds:.1f}s"
    stops = [line for line in up.lines if line.startswith("stopping ")]
    assert stops[-1].startswith("stopping Kafka broker"), stops
    for name in ("gateway", "ingest", "processors"):
        refused = up.log(name).count("Connection refused")
        assert refused < 20, f"{name} logged {refused} 'Connection refused' lines"
