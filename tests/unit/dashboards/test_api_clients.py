"""The dashboards' doors: which token each page sends, and what a person reads when a
call fails (what to run, which setting to change)."""

from __future__ import annotations

from pathlib import Path

from dashboards.api import admin_client, admin_problem, read_client, read_problem
from meterline.clients import AdminClient, ApiError, ApiUnreachable, ReadClient
from meterline.settings import Settings


def test_read_client_sends_the_role_token_else_admin(tmp_path: Path) -> None:
    base = {"data_dir": tmp_path, "read_api_url": "http://ingest:4318/"}
    both = Settings(**base, read_token_finance="fin", read_token_admin="adm")
    assert read_client(both, "finance").token == "fin"
    assert read_client(both, "security").token == "adm"
    assert read_client(both, "security").base_url == "http://ingest:4318"
    assert read_client(Settings(**base), "finance").token is None


def test_admin_token_typed_wins_over_settings_and_none_means_no_actions(tmp_path: Path) -> None:
    def token_of(client: AdminClient | None) -> str | None:
        assert client is not None
        return client.token

    assert admin_client(Settings(data_dir=tmp_path)) is None
    configured = Settings(data_dir=tmp_path, admin_token="conf", gateway_url="http://gw:8080")
    assert admin_client(configured).base_url == "http://gw:8080"  # type: ignore[union-attr]
    assert token_of(admin_client(configured)) == "conf"
    assert token_of(admin_client(configured, "typed")) == "typed"
    (tmp_path / "admin_token").write_text("generated\n")  # what `meterline up` leaves
    assert token_of(admin_client(Settings(data_dir=tmp_path))) == "generated"


def test_read_problems_say_what_to_run_or_set() -> None:
    open_api = ReadClient("http://ingest:4318")
    guarded = ReadClient("http://ingest:4318", "fin")
    down = read_problem(ApiUnreachable("http://ingest:4318", "ConnectError"), open_api, "finance")
    assert "unreachable (ConnectError)" in down and "METERLINE_READ_API_URL" in down
    no_token = read_problem(ApiError(401, "no", path="/api/budgets"), open_api, "finance")
    assert "requires a token" in no_token and "METERLINE_READ_TOKEN_FINANCE" in no_token
    wrong = read_problem(ApiError(401, "no", path="/api/budgets"), guarded, "finance")
    assert "rejected the dashboards' token" in wrong
    role = read_problem(ApiError(403, "no", path="/api/anomalies"), guarded, "security")
    assert "read /api/anomalies" in role and "METERLINE_READ_TOKEN_SECURITY" in role
    other = read_problem(ApiError(400, "bad 'to'", path="/api/drift"), guarded, "security")
    assert other == "The read API answered 400 on /api/drift: bad 'to'"


def test_admin_problems_say_what_to_run_or_set() -> None:
    client = AdminClient("http://gw:8080", "x")
    down = admin_problem(ApiUnreachable("http://gw:8080", "ConnectError"), client)
    assert "unreachable" in down and "METERLINE_GATEWAY_URL" in down
    assert "refused the admin token" in admin_problem(ApiError(401, "no"), client)
    assert admin_problem(ApiError(503, "broker down"), client) == (
        "The gateway answered 503: broker down"
    )
