"""Every page explains an unreachable read API (what to run, which setting) and never raises."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import dashboards
from tests.conftest import free_port

APP = str(Path(dashboards.__file__).parent / "app.py")


@pytest.mark.parametrize(
    "page",
    [None, "views/budgets.py", "views/security.py", "views/operations.py", "views/audit.py"],
)
def test_unreachable_read_api_is_explained(monkeypatch, tmp_path, page) -> None:
    monkeypatch.setenv("METERLINE_READ_API_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("METERLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("METERLINE_CONFIG", str(_empty_config(tmp_path)))
    app = AppTest.from_file(APP, default_timeout=30).run()
    if page is not None:
        app.switch_page(page).run()
    assert not app.exception
    assert len(app.error) == 1
    message = app.error[0].value
    assert "unreachable" in message
    assert "meterline up" in message and "METERLINE_READ_API_URL" in message


def _empty_config(directory: Path) -> Path:
    """A configuration file with nothing in it: no ./meterline.yaml of the developer's
    can leak into the test (METERLINE_CONFIG must name a file that exists)."""
    path = directory / "meterline.yaml"
    path.write_text("{}\n")
    return path
