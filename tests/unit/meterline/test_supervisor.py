"""The supervisor of `meterline up`: a crashed child is restarted after its backoff delay,
never before, with a log line naming it and why; delays grow and are capped; a child that
stayed up long enough starts over at the initial delay; failed starts and failed set-up
hooks are retried; the other children are left alone."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from meterline.runtime import ServiceProcess
from meterline.supervisor import Backoff, Supervisor, describe_exit


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeChild:
    """A child whose exit is set by the test; start() may be told to fail."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.exit_code: int | None = None
        self.starts = 0
        self.start_error: Exception | None = None

    def start(self) -> None:
        self.starts += 1
        if self.start_error is not None:
            raise self.start_error
        self.exit_code = None

    def log_hint(self) -> str:
        return f"log: /var/log/{self.name}.log"


class Harness:
    def __init__(self, backoff: Backoff | None = None) -> None:
        self.clock = FakeClock()
        self.lines: list[str] = []
        self.supervisor = Supervisor(log=self.lines.append, backoff=backoff, clock=self.clock)

    def child(self, name: str, on_restart=None) -> FakeChild:
        child = FakeChild(name)
        self.supervisor.watch(child, on_restart=on_restart)
        return child

    def crash_and_restart(self, child: FakeChild, code: int = 1) -> float:
        """Let `child` exit now; the delay it was restarted after (checked on both sides)."""
        child.exit_code = code
        starts = child.starts
        crashed_at = self.clock.now
        self.supervisor.check()
        assert child.starts == starts  # noticed, not restarted at once
        delay = float(self.lines[-1].split("restarting in ")[1].split("s")[0])
        self.clock.now = crashed_at + delay - 0.01
        self.supervisor.check()
        assert child.starts == starts, "restarted before its delay"
        self.clock.now = crashed_at + delay
        self.supervisor.check()
        assert child.starts == starts + 1, "not restarted once its delay passed"
        return delay


def test_backoff_delays_double_from_the_initial_one_up_to_the_cap() -> None:
    backoff = Backoff(initial_s=0.5, factor=2.0, max_s=30.0)
    assert [backoff.delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay(0) == 0.5  # never below the initial delay
    assert Backoff().delay(1) == 0.5 and Backoff().delay(100) == 30.0


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (-signal.SIGKILL, "killed by SIGKILL"),
        (-signal.SIGTERM, "killed by SIGTERM"),
        (-250, "killed by signal 250"),
        (0, "exited with code 0"),
        (3, "exited with code 3"),
    ],
)
def test_describe_exit(code: int, text: str) -> None:
    assert describe_exit(code) == text


def test_a_killed_child_is_restarted_after_the_delay_and_not_before() -> None:
    h = Harness()
    child = h.child("gateway")
    h.clock.advance(5)
    h.supervisor.check()
    assert child.starts == 0 and h.lines == []  # running: nothing to do

    child.exit_code = -signal.SIGKILL
    crashed_at = h.clock.now
    h.supervisor.check()
    assert h.lines == [
        "gateway killed by SIGKILL; restarting in 0.5s (restart 1; log: /var/log/gateway.log)"
    ]
    h.clock.now = crashed_at + 0.49
    h.supervisor.check()
    h.supervisor.check()
    assert child.starts == 0
    assert len(h.lines) == 1  # the exit is reported once, not on every check

    h.clock.now = crashed_at + 0.5
    h.supervisor.check()
    assert child.starts == 1 and child.exit_code is None
    assert h.lines[-1] == "gateway restarted"
    assert h.supervisor.restarts == {"gateway": 1}

    h.clock.advance(10)
    h.supervisor.check()
    assert child.starts == 1 and len(h.lines) == 2  # running again: left alone


def test_delays_grow_while_the_child_keeps_crashing_and_are_capped() -> None:
    h = Harness(Backoff(initial_s=0.5, factor=2.0, max_s=4.0, stable_after_s=60.0))
    child = h.child("processors")
    delays = [h.crash_and_restart(child, code=2) for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert "processors exited with code 2; restarting in 4.0s (restart 6;" in h.lines[-2]
    assert h.supervisor.restarts == {"processors": 6}


def test_a_child_that_stayed_up_long_enough_starts_over_at_the_initial_delay() -> None:
    h = Harness(Backoff(initial_s=0.5, max_s=30.0, stable_after_s=60.0))
    child = h.child("ingest")
    assert [h.crash_and_restart(child) for _ in range(3)] == [0.5, 1.0, 2.0]

    h.clock.advance(59.0)  # not yet stable: the next delay keeps growing
    assert h.crash_and_restart(child) == 4.0
    h.clock.advance(60.0)  # stable since its last restart
    assert h.crash_and_restart(child) == 0.5
    assert "(restart 1;" in h.lines[-2]
    assert h.crash_and_restart(child) == 1.0


def test_a_failing_start_is_noticed_as_an_exit_again_and_retried() -> None:
    h = Harness()
    child = h.child("dashboard")
    child.start_error = OSError("streamlit: not found")
    child.exit_code = 1
    h.supervisor.check()
    h.clock.advance(0.5)
    h.supervisor.check()
    assert child.starts == 1
    assert h.lines[-1] == "dashboard could not be restarted: streamlit: not found"
    assert h.supervisor.restarts == {"dashboard": 0}

    h.supervisor.check()  # still not running: a second restart, with a longer delay
    assert h.lines[-1].startswith("dashboard exited with code 1; restarting in 1.0s (restart 2;")
    noticed_at = h.clock.now
    h.clock.now = noticed_at + 0.99
    h.supervisor.check()
    assert child.starts == 1
    child.start_error = None
    h.clock.now = noticed_at + 1.0
    h.supervisor.check()
    assert child.starts == 2 and child.exit_code is None
    assert h.lines[-1] == "dashboard restarted"
    assert h.supervisor.restarts == {"dashboard": 1}


def test_a_failing_restart_hook_is_retried_while_the_child_keeps_running() -> None:
    calls: list[float] = []
    failures = [RuntimeError("broker not ready"), RuntimeError("still not ready")]

    def recreate_topics() -> None:
        calls.append(h.clock.now)
        if failures:
            raise failures.pop(0)

    h = Harness()
    broker = h.child("broker", on_restart=recreate_topics)
    broker.exit_code = -signal.SIGKILL
    h.supervisor.check()
    h.clock.advance(0.5)
    h.supervisor.check()
    restarted_at = h.clock.now
    assert broker.starts == 1 and calls == [restarted_at]  # right after the start
    assert h.lines[-1] == "broker: set-up after restart failed (broker not ready); retrying"

    h.clock.now = restarted_at + 0.9
    h.supervisor.check()
    assert calls == [restarted_at]  # not before ~1 s
    h.clock.now = restarted_at + 1.0
    h.supervisor.check()
    assert calls == [restarted_at, restarted_at + 1.0]
    assert "(still not ready)" in h.lines[-1]
    h.clock.now = restarted_at + 2.0
    h.supervisor.check()
    assert len(calls) == 3 and not failures  # the third try worked
    h.clock.advance(30)
    h.supervisor.check()
    assert len(calls) == 3  # done: not called again
    assert broker.starts == 1  # the child kept running throughout, never restarted


def test_a_successful_hook_runs_once_per_restart() -> None:
    calls: list[float] = []
    h = Harness()
    broker = h.child("broker", on_restart=lambda: calls.append(h.clock.now))
    h.supervisor.check()
    assert calls == []  # not at watch time: the caller set it up
    h.crash_and_restart(broker)
    h.clock.advance(5)
    h.supervisor.check()
    assert len(calls) == 1


def test_other_children_are_untouched() -> None:
    h = Harness()
    gateway, ingest, processors = h.child("gateway"), h.child("ingest"), h.child("processors")
    h.crash_and_restart(ingest, code=-signal.SIGSEGV)
    assert (gateway.starts, ingest.starts, processors.starts) == (0, 1, 0)
    assert all("ingest" in line for line in h.lines)
    assert "killed by SIGSEGV" in h.lines[0]
    assert h.supervisor.restarts == {"gateway": 0, "ingest": 1, "processors": 0}


@pytest.mark.timeout(30)
def test_a_real_killed_process_is_restarted(tmp_path: Path) -> None:
    child = ServiceProcess(
        name="sleeper",
        argv=[sys.executable, "-c", "import time; time.sleep(60)"],
        health_url=None,
        log_path=tmp_path / "sleeper.log",
    )
    lines: list[str] = []
    supervisor = Supervisor(log=lines.append, backoff=Backoff(initial_s=0.2))
    child.start()
    try:
        assert child.process is not None
        first = child.process.pid
        supervisor.watch(child)
        supervisor.check()
        assert child.exit_code is None and lines == []

        os.kill(first, signal.SIGKILL)
        child.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while child.process.pid == first:
            assert time.monotonic() < deadline, f"not restarted: {lines}"
            supervisor.check()
            time.sleep(0.01)
        assert child.exit_code is None  # the new process runs
        assert lines[0].startswith("sleeper killed by SIGKILL; restarting in 0.2s (restart 1;")
        assert f"log: {child.log_path}" in lines[0]
        assert lines[-1] == "sleeper restarted"
        assert supervisor.restarts == {"sleeper": 1}
    finally:
        child.stop(timeout_s=5)
