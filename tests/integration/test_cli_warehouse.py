"""`meterline warehouse ...` as a user runs it: its own process owns the embedded engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _meterline(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "METERLINE_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "meterline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrate_is_idempotent_and_rebuild_reports_rows(tmp_path: Path) -> None:
    first = _meterline(tmp_path, "warehouse", "migrate")
    assert first.returncode == 0, first.stderr
    assert "0001_raw_events" in first.stdout
    second = _meterline(tmp_path, "warehouse", "migrate")
    assert second.returncode == 0 and "none (up to date)" in second.stdout
    rebuilt = _meterline(tmp_path, "warehouse", "rebuild-aggregates")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilt spend_daily from raw costs: 0 aggregate row(s)" in rebuilt.stdout
    assert (tmp_path / "clickhouse").is_dir()
