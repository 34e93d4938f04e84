from __future__ import annotations

from pathlib import Path

from dashboards.admin_api import AdminApi
from dashboards.read_api import ReadApi
from meterline.settings import Settings


def test_read_api_sends_the_role_token_else_admin(tmp_path: Path) -> None:
    base = {"data_dir": tmp_path, "read_api_url": "http://ingest:4318/"}
    both = Settings(**base, read_token_finance="fin", read_token_admin="adm")
    assert ReadApi.from_settings(both, "finance").token == "fin"
    assert ReadApi.from_settings(both, "security").token == "adm"
    assert ReadApi.from_settings(both, "security").base_url == "http://ingest:4318"
    assert ReadApi.from_settings(Settings(**base), "finance").token is None


def test_admin_token_typed_wins_over_settings_and_none_means_no_actions(tmp_path: Path) -> None:
    assert AdminApi.from_settings(Settings(data_dir=tmp_path)) is None
    configured = Settings(data_dir=tmp_path, admin_token="conf", gateway_url="http://gw:8080")
    assert AdminApi.from_settings(configured) == AdminApi("http://gw:8080", "conf")
    assert AdminApi.from_settings(configured, "typed").token == "typed"
    (tmp_path / "admin_token").write_text("generated\n")  # what `meterline up` leaves
    assert AdminApi.from_settings(Settings(data_dir=tmp_path)).token == "generated"
