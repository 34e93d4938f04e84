"""Chaos harness: `meterline up` as a user starts it, client load through the openai SDK,
and the processes to kill found by their command line (not collected: no test_ prefix).

Every figure a chaos test checks is exact: the dollars the clients were served, priced
with genai-prices from the usage each response carried, against the showback dollars.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from genai_prices import Usage, calc_price
from openai import APIError, OpenAI

from tests.conftest import free_port, unique

ADMIN_TOKEN = "chaos-admin-token"
MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini")


@dataclass
class MeterlineUp:
    """`meterline up --mock-provider --no-dashboard` in a child process, output captured."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    process: subprocess.Popen[str] | None = None

    @classmethod
    def start(cls, data_dir: Path, timeout_s: float = 120.0) -> MeterlineUp:
        ports = {
            name: free_port()
            for name in ("GATEWAY", "INGEST", "PROCESSORS", "BROKER", "MOCK_PROVIDER", "DASHBOARD")
        }
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("METERLINE_")},
            **{f"METERLINE_{name}_PORT": str(port) for name, port in ports.items()},
            "METERLINE_DATA_DIR": str(data_dir),
            "METERLINE_TOPIC_PREFIX": unique("chaos") + ".",
            "METERLINE_TOPIC_PARTITIONS": "2",
            "METERLINE_ADMIN_TOKEN": ADMIN_TOKEN,
            "METERLINE_PROCESSORS_APP_ID": unique("chaos-procs-"),
            "METERLINE_SINK_GROUP_ID": unique("chaos-sink-"),
            # Heal lost costs within seconds rather than the default two minutes.
            "METERLINE_RECOST_GRACE_S": "10",
            "METERLINE_RECOST_INTERVAL_S": "3",
            "PYTHONUNBUFFERED": "1",
        }
        up = cls(data_dir, env)
        up.process = subprocess.Popen(
            [sys.executable, "-m", "meterline.cli", "up", "--mock-provider", "--no-dashboard"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=data_dir,
        )
        threading.Thread(target=up._read, daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while not any("Press Ctrl-C to stop" in line for line in up.lines):
            if up.process.poll() is not None or time.monotonic() > deadline:
                up.kill()
                raise AssertionError("meterline up did not start:\n" + "\n".join(up.lines))
            time.sleep(0.1)
        return up

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def port(self, name: str) -> int:
        return int(self.env[f"METERLINE_{name}_PORT"])

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.port('GATEWAY')}"

    @property
    def ingest(self) -> str:
        return f"http://127.0.0.1:{self.port('INGEST')}"

    def child_pid(self, verb: str) -> int:
        """The pid of this stack's `meterline <verb>` child (`broker`: the tansu process)."""
        for pid in _pids():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if verb == "broker":
                wanted = f"tcp://127.0.0.1:{self.port('BROKER')}".encode()
                if argv[0].endswith(b"tansu") and wanted in argv:
                    return pid
                continue
            if b"meterline.cli" in argv and verb.encode() in argv[3:4] and self._owns(pid):
                return pid
        raise AssertionError(f"no running {verb} child")

    def _owns(self, pid: int) -> bool:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return False
        return f"METERLINE_DATA_DIR={self.data_dir}".encode() in environ

    def kill_child(self, verb: str) -> int:
        pid = self.child_pid(verb)
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_restarted(self, verb: str, old_pid: int, timeout_s: float = 60.0) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                pid = self.child_pid(verb)
                if pid != old_pid:
                    return pid
            except AssertionError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{verb} was not restarted:\n" + "\n".join(self.lines[-30:]))

    def wait_healthy(self, url: str, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{url} not healthy:\n" + "\n".join(self.lines[-30:]))

    def stop(self, timeout_s: float = 60.0) -> float:
        """Ctrl-C, as a user stops it; the seconds it took."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        return time.monotonic() - started

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def create_key(self, org: str) -> str:
        response = httpx.post(
            f"{self.gateway}/admin/keys",
            json={"org": org, "team": "chaos", "project": "p"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["key"])

    def create_budget(self, subject: str, limit_usd: str) -> str:
        response = httpx.post(
            f"{self.gateway}/admin/budgets",
            json={"subject": subject, "period": "month", "limit_usd": limit_usd},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["budget_id"])

    def budget_spent(self, budget_id: str) -> Decimal | None:
        """What the processors' latest BudgetState says was spent (None: no state yet)."""
        response = httpx.get(
            f"{self.ingest}/api/budgets",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )
        if response.status_code != 200:
            return None
        for budget in response.json()["budgets"]:
            if budget["budget_id"] == budget_id and budget["state"] is not None:
                return Decimal(budget["state"]["spent_usd"])
        return None

    def showback(self, org: str) -> dict[str, Any] | None:
        response = httpx.get(
            f"{self.ingest}/api/showback",
            params={"group_by": "org", "from": "2000-01-01T00:00:00Z"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )
        if response.status_code != 200:
            return None
        return next((row for row in response.json()["rows"] if row["org"] == org), None)

    def log(self, name: str) -> str:
        return (self.data_dir / "logs" / f"{name}.log").read_text(errors="replace")


def _pids() -> Iterator[int]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


@dataclass
class Load:
    """Chat completions from `threads` clients until stopped; every outcome recorded."""

    base_url: str
    key: str
    threads: int = 2
    pause_s: float = 0.02
    served: list[tuple[str, int, int]] = field(default_factory=list)  # model, in, out
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(index,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)

    def _run(self, index: int) -> None:
        client = OpenAI(base_url=f"{self.base_url}/v1", api_key=self.key, max_retries=0)
        n = 0
        while not self._stop.is_set():
            model = MODELS[(index + n) % len(MODELS)]
            words = " ".join(["cost"] * (1 + (index * 7 + n) % 40))
            try:
                reply = client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": f"{n} {words}"}]
                )
                assert reply.usage is not None
                self.served.append(
                    (model, reply.usage.prompt_tokens, reply.usage.completion_tokens)
                )
            except APIError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            n += 1
            time.sleep(self.pause_s)

    def wait_for(self, count: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.served) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    @property
    def expected_usd(self) -> Decimal:
        return sum(
            (
                calc_price(Usage(input_tokens=i, output_tokens=o), model_ref=m).total_price
                for m, i, o in self.served
            ),
            Decimal(0),
        )


def wait_for_exact_spend(
    up: MeterlineUp, org: str, load: Load, timeout_s: float = 180.0
) -> dict[str, Any]:
    """Until showback for `org` equals the clients' priced usage exactly, or fail showing both."""
    expected = load.expected_usd
    row: dict[str, Any] | None = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = up.showback(org)
        if row is not None and Decimal(row["cost_usd"]) == expected:
            # The figures a closing note quotes (pytest -s shows them).
            print(
                f"{org}: {len(load.served)} requests served, {len(load.failures)} failed, "
                f"{row['requests']} metered; expected ${expected}, stored ${row['cost_usd']}"
            )
            return row
        time.sleep(1.0)
    raise AssertionError(
        f"{org}: showback {row and row['cost_usd']} (requests {row and row['requests']}) != "
        f"expected {expected} over {len(load.served)} served requests"
    )
