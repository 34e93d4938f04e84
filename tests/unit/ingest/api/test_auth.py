from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from ingest.api.auth import ReadTokens, allowed_roles, exposure_warning, is_loopback
from meterline.settings import Settings


def test_policy_by_path_segment() -> None:
    assert allowed_roles("/api/showback/timeseries") == {"finance", "admin"}
    assert allowed_roles("/api/export/focus") == {"finance", "admin"}
    assert allowed_roles("/api/traces/abc") == {"security", "admin"}
    assert allowed_roles("/api/enforcement/history") == {"security", "admin"}
    # Prefixes match whole segments, and an unlisted /api path is admin-only.
    assert allowed_roles("/api/showbackdoor") == {"admin"}
    assert allowed_roles("/api") == {"admin"}
    assert allowed_roles("/healthz") is None and allowed_roles("/v1/traces") is None


def test_tokens_name_roles(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        read_token_finance="f",
        read_token_security="",  # empty: unset, or an empty header would match it
        read_token_admin="a",
    )
    tokens = ReadTokens.from_settings(settings)
    assert set(tokens.tokens) == {"finance", "admin"}
    assert tokens.role_for("f") == "finance" and tokens.role_for("a") == "admin"
    assert tokens.role_for("") is None and tokens.role_for("a ") is None
    shared = ReadTokens({"finance": SecretStr("x"), "admin": SecretStr("x")})
    assert shared.role_for("x") == "admin"  # the wider role wins
    assert not ReadTokens.from_settings(Settings(data_dir=tmp_path)).enabled


def test_open_api_off_loopback_is_warned_about() -> None:
    none = ReadTokens({})
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("ingest.internal")
    assert exposure_warning(none, "127.0.0.1") is None
    warning = exposure_warning(none, "0.0.0.0")
    assert warning is not None and "METERLINE_READ_TOKEN_ADMIN" in warning
    assert exposure_warning(ReadTokens({"admin": SecretStr("a")}), "0.0.0.0") is None


def test_child_processes_get_the_real_tokens(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, read_token_admin="s3cret", read_token_finance="f")
    env = settings.child_env()
    assert env["METERLINE_READ_TOKEN_ADMIN"] == "s3cret"  # not the masked '**********'
    assert env["METERLINE_READ_TOKEN_FINANCE"] == "f"
    assert "METERLINE_READ_TOKEN_SECURITY" not in env
