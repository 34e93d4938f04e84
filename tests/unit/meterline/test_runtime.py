from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from meterline.config_sources import load_yaml_mapping
from meterline.runtime import (
    DEMO_PRICE_OVERRIDES,
    ServiceProcess,
    Stack,
    ensure_admin_token,
    install_stop_signals,
)
from meterline.settings import PriceOverride, Settings
from meterline.simulate.catalog import DEMO_MODELS
from processors.cost.logic import Pricer, TokenUsage


def test_generated_admin_token_is_kept_private_and_reused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = ensure_admin_token(settings)
    second = ensure_admin_token(settings)
    assert first.admin_token is not None and second.admin_token is not None
    assert first.admin_token.get_secret_value() == second.admin_token.get_secret_value()
    assert (tmp_path / "admin_token").stat().st_mode & 0o077 == 0


def test_child_environment_reproduces_the_settings(tmp_path: Path) -> None:
    stack = Stack(Settings(data_dir=tmp_path, gateway_port=18080), mock_provider=True)
    env = stack.settings.child_env()
    token = stack.settings.admin_token
    assert token is not None and env["METERLINE_ADMIN_TOKEN"] == token.get_secret_value()
    assert env["METERLINE_GATEWAY_PORT"] == "18080"
    assert env["METERLINE_DATA_DIR"] == str(tmp_path)


def test_demo_routes_claude_over_messages_and_the_rest_over_openai(
    tmp_path: Path, monkeypatch
) -> None:
    stack = Stack(Settings(data_dir=tmp_path, mock_provider_port=19100), mock_provider=True)
    for name, value in stack.settings.child_env().items():
        monkeypatch.setenv(name, str(value))
    child = Settings()
    claude = child.provider_for("claude-3-5-haiku-latest")
    other = child.provider_for("any-model-at-all")
    assert claude is not None and other is not None
    assert (claude.kind, claude.price_provider) == ("anthropic", "anthropic")
    assert (other.kind, other.price_provider) == ("openai", "openai")
    assert claude.base_url == other.base_url == "http://127.0.0.1:19100/v1"
    assert child.admin_token == stack.settings.admin_token


def _child(tmp_path: Path, code: str, health_url: str | None) -> ServiceProcess:
    return ServiceProcess("child", [sys.executable, "-c", code], health_url, tmp_path / "log")


def test_wait_healthy_fails_at_once_when_the_child_exits(tmp_path: Path) -> None:
    child = _child(tmp_path, "import sys; sys.exit(3)", "http://127.0.0.1:9/healthz")
    child.start()
    started = time.monotonic()

    with pytest.raises(RuntimeError, match="exited with code 3 while starting"):
        child.wait_healthy(30)
    assert time.monotonic() - started < 10  # not retried until the timeout


def test_wait_healthy_gives_up_after_the_timeout(tmp_path: Path) -> None:
    child = _child(tmp_path, "import time; time.sleep(30)", "http://127.0.0.1:9/healthz")
    child.start()
    try:
        with pytest.raises(RuntimeError, match=r"was not healthy at \S+ within"):
            child.wait_healthy(0.5)
        assert child.exit_code is None
    finally:
        assert child.process is not None
        child.process.kill()
        child.process.wait()


def test_a_second_stop_signal_does_not_cut_the_stop_short() -> None:
    """Ctrl-C twice (or a wrapper forwarding the signal) must not abandon the orderly
    stop half-way and leave children running."""
    import os
    import signal

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    said: list[str] = []
    try:
        install_stop_signals(said.append)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs at the next bytecode
        os.kill(os.getpid(), signal.SIGTERM)  # during the stop: answered, not raised
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert said and all("already stopping" in line for line in said)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_every_demo_model_is_priced_as_deploy_prices_it(tmp_path: Path, monkeypatch) -> None:
    stack = Stack(Settings(data_dir=tmp_path), mock_provider=True)
    for name, value in stack.settings.child_env().items():
        monkeypatch.setenv(name, str(value))
    child = Settings()  # what the processors of `meterline up --demo` read
    pricer = Pricer(child.price_overrides)
    for model in [m for m, _ in DEMO_MODELS] + [child.gateway.cache.embedding_model]:
        provider = child.provider_for(model)
        assert provider is not None, model
        usage = TokenUsage(model, provider.price_provider, 1000, 100, 0, 0, datetime.now(UTC))
        quote = pricer.quote(usage)
        assert quote.priced and quote.split.total_cost > 0, model
    deployed = load_yaml_mapping(Path(__file__).parents[3] / "deploy" / "meterline.yaml")
    overrides = {m: PriceOverride(**o) for m, o in deployed["price_overrides"].items()}
    assert overrides == DEMO_PRICE_OVERRIDES
