"""The README's configuration examples are valid configuration, as printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meterline.settings import CONFIG_FILE_ENV, load_settings

README = Path(__file__).resolve().parents[3] / "README.md"
YAML_BLOCKS = re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_has_configuration_examples() -> None:
    assert len(YAML_BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(YAML_BLOCKS)))
def test_each_yaml_example_loads(index: int, tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "meterline.yaml"
    config.write_text(YAML_BLOCKS[index])
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    settings = load_settings(data_dir=tmp_path)
    if "routing:" in YAML_BLOCKS[index]:
        groups = {g.name: g for g in settings.routing.groups}
        assert groups["gpt-4o"].fallbacks == ["claude-sonnet-4-5"]
        assert {p.kind for p in settings.providers} == {"openai", "azure", "anthropic"}
