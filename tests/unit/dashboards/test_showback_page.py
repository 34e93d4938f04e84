from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

import dashboards
from tests.conftest import free_port

APP = str(Path(dashboards.__file__).parent / "app.py")


def test_unreachable_read_api_is_explained(monkeypatch) -> None:
    monkeypatch.setenv("METERLINE_READ_API_URL", f"http://127.0.0.1:{free_port()}")
    page = AppTest.from_file(APP, default_timeout=30).run()
    assert not page.exception
    assert len(page.error) == 1
    assert "unreachable" in page.error[0].value
    assert "meterline ingest" in page.error[0].value
