"""The embedded stack behind `meterline up`: broker, ingest, processors, gateway, dashboards
(+ demo).

Each service runs as its own child process (`meterline <verb>`), configured through the
environment from one `Settings`, so what runs here is exactly what runs in production.
Start order follows the data flow's dependencies; stop order is the reverse, so intake
stops first and every buffer is flushed downstream before its consumer goes away.

Several processes per service (meterline/workers.py): `processors.workers` and
`gateway.workers` children (`meterline <service> --worker I`, each supervised, each with
its own log `<name>-<i>.log`); the sink's consumers are threads of the ingest process.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
from pydantic import SecretStr
from tenacity import (
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    wait_fixed,
)

from meterline.embedded.broker import EmbeddedBroker
from meterline.kafka import create_topics, wait_for_broker
from meterline.settings import PriceOverride, ProviderConfig, Settings
from meterline.supervisor import Supervisor
from meterline.workers import (
    Service,
    gateway_worker_port,
    worker_count,
)

__all__ = [
    "DEMO_PRICE_OVERRIDES",
    "ServiceProcess",
    "Stack",
    "ensure_admin_token",
    "meterline_command",
    "run_up",
    "run_workers",
    "worker_processes",
]

Progress = Callable[[str], None]


@dataclass
class ServiceProcess:
    """One child service and how to tell it is healthy."""

    name: str
    argv: list[str]
    health_url: str | None
    log_path: Path
    env: dict[str, str] | None = field(default=None, repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, env: dict[str, str] | None = None) -> None:
        """Start (or start again, with the environment of the first start)."""
        if env is not None:
            self.env = env
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_hint(self) -> str:
        return f"log: {self.log_path}"

    @property
    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def wait_healthy(self, timeout_s: float) -> None:
        healthy = Retrying(
            retry=retry_if_exception_type(httpx.HTTPError) | retry_if_result(lambda ok: not ok),
            stop=stop_after_delay(timeout_s),
            wait=wait_fixed(0.1),
            retry_error_callback=lambda state: False,
        )(self._healthy)
        if not healthy:
            raise RuntimeError(
                f"{self.name} was not healthy at {self.health_url} within {timeout_s:.0f}s.\n"
                f"Last lines of {self.log_path}:\n{self.log_tail()}"
            )

    def _healthy(self) -> bool:
        """One health probe; a child that exited is an error at once, not retried."""
        if self.exit_code is not None:
            raise RuntimeError(
                f"{self.name} exited with code {self.exit_code} while starting.\n"
                f"Last lines of {self.log_path}:\n{self.log_tail()}"
            )
        return self.health_url is None or (
            httpx.get(self.health_url, timeout=1.0).status_code == 200
        )

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def ensure_admin_token(settings: Settings) -> Settings:
    """Use the configured admin token, or one generated once and kept in the data dir."""
    if settings.admin_token is not None:
        return settings
    path = settings.admin_token_file
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return settings.model_copy(update={"admin_token": SecretStr(path.read_text().strip())})


def meterline_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "meterline.cli", *args]


# The demo's self-hosted model, priced as deploy/meterline.yaml prices it (a test keeps
# the two equal), so every demo request that reaches the provider is priced.
DEMO_PRICE_OVERRIDES = {
    "acme-local-7b": PriceOverride(
        name="acme-self-hosted", input_mtok=Decimal("0.05"), output_mtok=Decimal("0.10")
    )
}


def demo_keys_file(settings: Settings) -> Path:
    """Where `meterline up --demo` keeps its simulator's keys between starts."""
    return settings.data_dir / "demo_keys.json"


def demo_providers(settings: Settings) -> list[ProviderConfig]:
    """The mock provider as two upstreams, as a real deployment has them: `claude-*` over
    Anthropic's Messages API, everything else over OpenAI's, each priced as its vendor
    (acme-local-7b, which no price list knows, by DEMO_PRICE_OVERRIDES)."""
    mock_url = f"http://{settings.host}:{settings.mock_provider_port}/v1"
    return [
        ProviderConfig(
            name="mock-anthropic",
            kind="anthropic",
            base_url=mock_url,
            price_provider="anthropic",
            models=["claude-*"],
        ),
        ProviderConfig(name="mock-openai", base_url=mock_url, price_provider="openai"),
    ]


def worker_processes(settings: Settings, service: Service) -> list[ServiceProcess]:
    """The children of a service: one plain `meterline <service>` for one worker, else
    `meterline <service> --worker I` named `<service>-<I>`, each probed on its own port."""
    count = worker_count(settings, service)
    logs = settings.data_dir / "logs"
    base_port = settings.gateway_port if service == "gateway" else settings.processors_port
    if count == 1:
        url = f"http://{settings.host}:{base_port}/healthz"
        return [ServiceProcess(service, meterline_command(service), url, logs / f"{service}.log")]
    children = []
    for index in range(count):
        port = (
            gateway_worker_port(settings, index)
            if service == "gateway"
            else settings.processors_port + index
        )
        name = f"{service}-{index}"
        children.append(
            ServiceProcess(
                name,
                meterline_command(service, "--worker", str(index)),
                f"http://{settings.host}:{port}/healthz",
                logs / f"{name}.log",
            )
        )
    return children


def _start_all(
    children: list[ServiceProcess], env: dict[str, str], timeout_s: float
) -> list[ServiceProcess]:
    """Start every child, then wait for each (Faust workers join their group together)."""
    for child in children:
        child.start(env)
    for child in children:
        child.wait_healthy(timeout_s)
    return children


class Stack:
    """Start, watch and stop the embedded services."""

    def __init__(
        self,
        settings: Settings,
        *,
        mock_provider: bool = False,
        traffic: bool = False,
        dashboard: bool = False,
        progress: Progress = print,
    ):
        settings = ensure_admin_token(settings)
        if mock_provider and not settings.providers:
            settings = settings.model_copy(update={"providers": demo_providers(settings)})
        if mock_provider and not settings.price_overrides:
            settings = settings.model_copy(update={"price_overrides": DEMO_PRICE_OVERRIDES})
        if traffic and not settings.gateway.trusted_proxies:
            # The demo simulator plays many clients through its loopback hop (X-Forwarded-For).
            loopback = ["127.0.0.0/8", "::1/128"]
            gateway = settings.gateway.model_copy(update={"trusted_proxies": loopback})
            settings = settings.model_copy(update={"gateway": gateway})
        self.settings = settings
        # Decided once: after start() the settings name the embedded broker's address.
        self.embedded_broker = settings.kafka_bootstrap is None
        self.mock_provider = mock_provider
        self.traffic = traffic
        self.dashboard = dashboard
        self.progress = progress
        self.broker: EmbeddedBroker | None = None
        self.services: list[ServiceProcess] = []

    @property
    def urls(self) -> dict[str, str]:
        s = self.settings
        urls = {
            "gateway (OpenAI + Anthropic)": f"http://{s.host}:{s.gateway_port}/v1",
            "read API": f"http://{s.host}:{s.ingest_port}/api/showback?group_by=org",
            "processors": f"http://{s.host}:{s.processors_port}/healthz",
            "Kafka": s.bootstrap,
            "ClickHouse": s.resolved_clickhouse_url,
        }
        if self.dashboard:
            urls["dashboards"] = f"http://{s.host}:{s.dashboard_port}"
        if self.mock_provider:
            urls["mock provider"] = f"http://{s.host}:{s.mock_provider_port}/v1"
        return urls

    def _service(
        self, name: str, argv: list[str], health_port: int | None, health_path: str = "/healthz"
    ) -> ServiceProcess:
        host = self.settings.host
        health = f"http://{host}:{health_port}{health_path}" if health_port else None
        return ServiceProcess(name, argv, health, self.settings.data_dir / "logs" / f"{name}.log")

    def start(self) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        steps = 4 + int(self.mock_provider) + int(self.traffic) + int(self.dashboard)
        step = 0

        def announce(text: str) -> float:
            nonlocal step
            step += 1
            self.progress(f"[{step}/{steps}] {text} ...")
            return time.monotonic()

        def done(started: float) -> None:
            self.progress(f"      ok ({time.monotonic() - started:.1f}s)")

        started = announce(f"Kafka broker at {s.bootstrap}")
        if self.embedded_broker:
            self.broker = EmbeddedBroker(
                s.broker_port, host=s.host, log_path=s.data_dir / "logs" / "broker.log"
            )
            self.broker.start()
            self.settings = s = s.model_copy(update={"kafka_bootstrap": self.broker.bootstrap})
        wait_for_broker(s)
        created = create_topics(s)
        self.progress(f"      topics created: {len(created)} (prefix {s.topic_prefix!r})")
        done(started)

        env = {**os.environ, **{k: str(v) for k, v in s.child_env().items()}}
        plan: list[tuple[str, list[ServiceProcess], float]] = []
        if self.mock_provider:
            plan.append(
                (
                    "mock provider",
                    [
                        self._service(
                            "mock-provider",
                            meterline_command("mock-provider"),
                            s.mock_provider_port,
                        )
                    ],
                    30,
                )
            )
        sinks = s.ingest.sink.workers
        processors = s.processors.workers
        gateways = s.gateway.workers
        plan += [
            (
                "ingest (ClickHouse sink + read API)"
                + (f", {sinks} sink consumers" if sinks > 1 else ""),
                [self._service("ingest", meterline_command("ingest"), s.ingest_port)],
                90,
            ),
            (
                "processors (Faust)" + (f", {processors} workers" if processors > 1 else ""),
                worker_processes(s, "processors"),
                90,
            ),
            (
                "gateway"
                + (f", {gateways} processes on port {s.gateway_port}" if gateways > 1 else ""),
                worker_processes(s, "gateway"),
                60,
            ),
        ]
        if self.dashboard:
            # Streamlit's own health endpoint; the app reads only the read and admin APIs.
            dashboard = self._service(
                "dashboard", meterline_command("dashboard"), s.dashboard_port, "/_stcore/health"
            )
            plan.append(("dashboards (Streamlit)", [dashboard], 60))
        if self.traffic:
            plan.append(
                (
                    "demo traffic (simulate normal)",
                    [
                        self._service(
                            "simulator",
                            meterline_command(
                                "simulate",
                                "normal",
                                "--duration",
                                "0",
                                "--rate",
                                "3",
                                # A restart reuses the demo's keys (and so its budgets).
                                "--keys-file",
                                str(demo_keys_file(s)),
                            ),
                            None,
                        )
                    ],
                    5,
                )
            )
        for label, children, timeout_s in plan:
            started = announce(label)
            self.services += children  # stopped by stop() even when one fails to start
            _start_all(children, env, timeout_s)
            done(started)

    def recreate_topics(self) -> None:
        """After an embedded-broker restart (memory storage: every topic is gone)."""
        wait_for_broker(self.settings)
        created = create_topics(self.settings)
        self.progress(f"broker: {len(created)} topics recreated (the restart emptied it)")

    def supervisor(self) -> Supervisor:
        """A supervisor watching every child started so far (the broker included)."""
        supervisor = Supervisor(log=self.progress)
        if self.broker is not None:
            supervisor.watch(self.broker, on_restart=self.recreate_topics)
        for service in self.services:
            supervisor.watch(service)
        return supervisor

    def stop(self) -> None:
        # Reverse start order (data flow): intake stops first, sinks flush last, broker last.
        for service in reversed(self.services):
            self.progress(f"stopping {service.name} ...")
            try:
                service.stop()
            except Exception as exc:  # one child's trouble must not leave the others running
                self.progress(f"  could not stop {service.name} cleanly ({exc}); killed")
                service.kill()
        self.services.clear()
        if self.broker is not None:
            self.progress("stopping Kafka broker ...")
            self.broker.stop()
            self.broker = None


def install_stop_signals(log: Progress = print) -> None:
    """SIGINT and SIGTERM stop the stack: the first raises KeyboardInterrupt where the main
    loop waits; a second one (Ctrl-C pressed again, a wrapper forwarding the signal) must
    not cut the orderly stop short and leave children running, so it is only answered.
    Installed explicitly: a shell that backgrounds `meterline up` ignores SIGINT for it."""
    stopping = False

    def on_stop_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        if stopping:
            log("already stopping: every service is being stopped in order, please wait")
            return
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_stop_signal)
    signal.signal(signal.SIGINT, on_stop_signal)


def run_up(
    settings: Settings, *, demo: bool, mock_provider: bool = False, dashboard: bool = True
) -> int:
    """`meterline up`: start everything, print the URLs, supervise until Ctrl-C/SIGTERM."""
    stack = Stack(settings, mock_provider=demo or mock_provider, traffic=demo, dashboard=dashboard)
    install_stop_signals()
    try:
        stack.start()
        print("\nMeterline is running:")
        for name, url in stack.urls.items():
            print(f"  {name:<30} {url}")
        token = stack.settings.admin_token
        assert token is not None
        print(f"\n  admin token: {token.get_secret_value()}")
        print(f"  logs:        {stack.settings.data_dir / 'logs'}")
        print("\nPress Ctrl-C to stop.")
        supervisor = stack.supervisor()
        while True:  # until Ctrl-C or SIGTERM; a crashed child is restarted
            supervisor.check()
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("\nstopping ...")
        return 0
    except RuntimeError as exc:
        print(f"\nmeterline up failed: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()


def run_workers(settings: Settings, service: Service, *, log: Progress = print) -> int:
    """Standalone `meterline gateway` / `meterline processors` with workers > 1: start the
    workers, supervise them like `meterline up` does, stop them on SIGTERM/SIGINT."""
    children = worker_processes(settings, service)
    env = {**os.environ, **{k: str(v) for k, v in settings.child_env().items()}}
    install_stop_signals(log)
    started: list[ServiceProcess] = []
    try:
        started += children
        _start_all(children, env, 90)
        log(f"{service}: {len(children)} workers running (logs: {settings.data_dir / 'logs'})")
        supervisor = Supervisor(log=log)
        for child in children:
            supervisor.watch(child)
        while True:
            supervisor.check()
            time.sleep(0.2)
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        log(f"{service} workers failed: {exc}")
        return 1
    finally:
        for child in reversed(started):
            child.stop()
