"""Several processes per service (issue 13): the settings and their bounds, the `up` flags,
which ports, directories and logs worker i gets, the topic partition rule, the sink's
combined status, and the supervisor keeping N workers of a service running."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from ingest.sink.status import SinkStatus, SinkStatusGroup
from meterline.cli import _parser, _with_workers
from meterline.config_sources import env_leaves
from meterline.kafka import partition_problem
from meterline.runtime import meterline_command, worker_processes
from meterline.settings import MAX_WORKERS, ConfigError, Settings, load_settings
from meterline.supervisor import Backoff, Supervisor
from meterline.workers import gateway_worker_port, worker_settings

VARIABLES = {
    "METERLINE_PROCESSORS_WORKERS": ("processors", "workers"),
    "METERLINE_GATEWAY_WORKERS": ("gateway", "workers"),
    "METERLINE_SINK_WORKERS": ("ingest", "sink", "workers"),
}


def _get(settings: Settings, path: tuple[str, ...]) -> object:
    value: object = settings
    for part in path:
        value = getattr(value, part)
    return value


def test_each_service_has_a_workers_setting_named_as_documented(monkeypatch) -> None:
    assert set(VARIABLES) <= set(env_leaves(Settings))
    defaults = Settings()
    for variable, path in VARIABLES.items():
        assert _get(defaults, path) == 1
        monkeypatch.setenv(variable, "3")
    settings = Settings()
    assert all(_get(settings, path) == 3 for path in VARIABLES.values())


@pytest.mark.parametrize("value", ["0", "-1", str(MAX_WORKERS + 1), "many"])
def test_workers_are_bounded(monkeypatch, value: str) -> None:
    monkeypatch.setenv("METERLINE_GATEWAY_WORKERS", value)
    with pytest.raises(ConfigError, match="METERLINE_GATEWAY_WORKERS"):
        load_settings()


def test_up_takes_the_process_counts() -> None:
    args = _parser().parse_args(["up", "--processors", "3", "--gateways", "2", "--sinks", "4"])
    settings = _with_workers(
        Settings(), processors=args.processors, gateways=args.gateways, sinks=args.sinks
    )
    assert (settings.processors.workers, settings.gateway.workers) == (3, 2)
    assert settings.ingest.sink.workers == 4
    # Children get them through the environment.
    env = settings.child_env()
    assert env["METERLINE_PROCESSORS_WORKERS"] == "3"
    assert env["METERLINE_GATEWAY_WORKERS"] == "2"
    assert env["METERLINE_SINK_WORKERS"] == "4"
    unset = _parser().parse_args(["up"])
    assert (unset.processors, unset.gateways, unset.sinks) == (None, None, None)
    assert _with_workers(Settings(processors={"workers": 2})).processors.workers == 2


@pytest.mark.parametrize("value", ["0", "65", "x"])
def test_up_refuses_a_bad_count(value: str, capsys) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["up", "--gateways", value])
    assert "--gateways" in capsys.readouterr().err


def test_gateway_and_processors_take_a_worker_index() -> None:
    assert _parser().parse_args(["gateway", "--worker", "1"]).worker == 1
    assert _parser().parse_args(["processors"]).worker is None


def test_worker_zero_keeps_a_single_process_paths_and_the_others_get_their_own(
    tmp_path: Path,
) -> None:
    settings = Settings(
        data_dir=tmp_path, processors={"workers": 3}, gateway={"workers": 2}, gateway_port=18080
    )
    first = worker_settings(settings, "processors", 0)
    third = worker_settings(settings, "processors", 2)
    assert (first.processors_port, first.data_dir) == (6066, tmp_path)
    assert (third.processors_port, third.data_dir) == (6068, tmp_path / "processors-2")
    assert third.processors.app_id == settings.processors.app_id  # one consumer group
    gateway_0 = worker_settings(settings, "gateway", 0)
    gateway_1 = worker_settings(settings, "gateway", 1)
    assert gateway_0.resolved_spool_dir == tmp_path / "spool"
    assert gateway_1.resolved_spool_dir == tmp_path / "spool-1"
    assert gateway_1.gateway_port == 18080  # the shared port
    assert [gateway_worker_port(settings, i) for i in range(2)] == [18081, 18082]
    with pytest.raises(ValueError, match="out of range"):
        worker_settings(settings, "gateway", 2)


def test_one_worker_is_the_plain_service_and_several_are_numbered(tmp_path: Path) -> None:
    one = worker_processes(Settings(data_dir=tmp_path), "gateway")
    assert [(c.name, c.argv, c.health_url) for c in one] == [
        ("gateway", meterline_command("gateway"), "http://127.0.0.1:8080/healthz")
    ]
    settings = Settings(data_dir=tmp_path, processors={"workers": 2}, gateway={"workers": 2})
    gateways = worker_processes(settings, "gateway")
    assert [c.name for c in gateways] == ["gateway-0", "gateway-1"]
    assert gateways[1].argv == meterline_command("gateway", "--worker", "1")
    assert [c.health_url for c in gateways] == [
        "http://127.0.0.1:8081/healthz",  # each process's own port, not the shared one
        "http://127.0.0.1:8082/healthz",
    ]
    processors = worker_processes(settings, "processors")
    assert [c.health_url for c in processors] == [
        "http://127.0.0.1:6066/healthz",
        "http://127.0.0.1:6067/healthz",
    ]
    assert [c.log_path for c in processors] == [
        tmp_path / "logs" / "processors-0.log",
        tmp_path / "logs" / "processors-1.log",
    ]


def test_topics_get_at_least_the_largest_consumer_count() -> None:
    assert Settings(topic_partitions=3).effective_topic_partitions == 3
    settings = Settings(
        topic_partitions=3, processors={"workers": 2}, ingest={"sink": {"workers": 5}}
    )
    assert settings.effective_topic_partitions == 5
    assert partition_problem(settings, "requests", 5) is None
    assert partition_problem(settings, "requests", 3) == (
        "meterline.requests has 3 partitions, not 5"
    )
    # Compacted topics are read whole, never grown: topic_partitions or more is right.
    assert partition_problem(settings, "control", 3) is None
    assert partition_problem(settings, "control", 2) is not None


def test_the_sink_status_of_several_consumers_is_their_sum() -> None:
    first, second = SinkStatus(started_at=10.0), SinkStatus(started_at=12.0)
    first.update(running=True, assigned_partitions=2, rows_written=5, last_flush_at=20.0)
    second.update(running=True, assigned_partitions=3, rows_written=7, consecutive_failures=2)
    second.update(last_error="down")
    snapshot = SinkStatusGroup([first, second]).snapshot()
    assert snapshot["consumers"] == 2
    assert (snapshot["assigned_partitions"], snapshot["rows_written"]) == (5, 12)
    assert (snapshot["started_at"], snapshot["last_flush_at"]) == (10.0, 20.0)
    assert (snapshot["consecutive_failures"], snapshot["last_error"]) == (2, "down")
    assert snapshot["running"] is True
    second.update(running=False)
    assert SinkStatusGroup([first, second]).snapshot()["running"] is False


def test_the_supervisor_restarts_the_one_worker_that_died(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, processors={"workers": 3})
    children = worker_processes(settings, "processors")
    for child in children:  # the real processes, sleeping instead of running Faust
        child.argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    lines: list[str] = []
    supervisor = Supervisor(log=lines.append, backoff=Backoff(initial_s=0.2))
    for child in children:
        child.start()
        supervisor.watch(child)
    try:
        pids = [c.process.pid for c in children if c.process is not None]
        os.kill(pids[1], signal.SIGKILL)
        children[1].process.wait(timeout=10)  # type: ignore[union-attr]
        deadline = time.monotonic() + 10
        while children[1].process.pid == pids[1]:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, f"not restarted: {lines}"
            supervisor.check()
            time.sleep(0.01)
        assert [c.process.pid for c in children][::2] == pids[::2]  # type: ignore[union-attr]
        assert all(c.exit_code is None for c in children)
        assert lines[0].startswith("processors-1 killed by SIGKILL; restarting in 0.2s")
        assert f"log: {tmp_path / 'logs' / 'processors-1.log'}" in lines[0]
        assert supervisor.restarts == {"processors-0": 0, "processors-1": 1, "processors-2": 0}
    finally:
        for child in children:
            child.stop(timeout_s=5)
