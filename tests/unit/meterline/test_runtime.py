from __future__ import annotations

from pathlib import Path

from meterline.runtime import Stack, ensure_admin_token
from meterline.settings import Settings


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


def test_demo_routes_every_model_to_the_mock_provider(tmp_path: Path, monkeypatch) -> None:
    stack = Stack(Settings(data_dir=tmp_path, mock_provider_port=19100), mock_provider=True)
    for name, value in stack.settings.child_env().items():
        monkeypatch.setenv(name, str(value))
    child = Settings()
    provider = child.provider_for("any-model-at-all")
    assert provider is not None and provider.base_url == "http://127.0.0.1:19100/v1"
    assert child.admin_token == stack.settings.admin_token
