"""Settings loading: list-valued variables in plain or JSON form, and each configuration
mistake as one ConfigError line naming the variable, or the file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterline.config_sources import ConfigError
from meterline.settings import CONFIG_FILE_ENV, Settings, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No METERLINE_* from the outside, and no ./meterline.yaml by accident."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("METERLINE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _list_fields() -> list[str]:
    """Every list-of-strings setting: each must take a comma-separated value."""
    from meterline.config_sources import _shape

    return [name for name, field in Settings.model_fields.items() if _shape(field) == "list"]


def test_every_list_of_strings_setting_is_known_to_the_test() -> None:
    # Guards the parametrization below: a new list setting is covered automatically.
    assert {"trusted_proxies", "alert_webhooks", "security_webhooks"} <= set(_list_fields())


@pytest.mark.parametrize("field", _list_fields())
def test_list_settings_take_comma_separated_or_json(
    monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    values = (
        ["127.0.0.1/32", "10.0.0.0/8"]
        if field == "trusted_proxies"
        else ["http://a.example/x", "http://b.example/y"]
    )
    monkeypatch.setenv(f"METERLINE_{field.upper()}", f" {values[0]} , {values[1]},")
    assert getattr(load_settings(), field) == values
    monkeypatch.setenv(f"METERLINE_{field.upper()}", f'["{values[0]}", "{values[1]}"]')
    assert getattr(load_settings(), field) == values
    monkeypatch.setenv(f"METERLINE_{field.upper()}", values[0])  # the single value
    assert getattr(load_settings(), field) == values[:1]
    monkeypatch.setenv(f"METERLINE_{field.upper()}", "")
    assert getattr(load_settings(), field) == []


def test_a_map_of_plain_values_takes_name_equals_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METERLINE_GUARDRAIL_MODES", "pii=block, secrets=off")
    assert load_settings().guardrail_modes == {"pii": "block", "secrets": "off"}
    monkeypatch.setenv("METERLINE_GUARDRAIL_MODES", '{"pii": "redact"}')
    assert load_settings().guardrail_modes == {"pii": "redact"}


def test_child_env_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `meterline up` hands its children (JSON lists and maps) still loads."""
    parent = load_settings(trusted_proxies=["10.0.0.0/8"], alert_webhooks=["http://h/1"])
    for name, value in parent.child_env().items():
        monkeypatch.setenv(name, value)
    child = load_settings()
    assert (child.trusted_proxies, child.alert_webhooks, child.providers) == (
        ["10.0.0.0/8"],
        ["http://h/1"],
        [],
    )


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("METERLINE_TRUSTED_PROXIES", "nonsense", "METERLINE_TRUSTED_PROXIES: expected networks"),
        ("METERLINE_GATEWAY_PORT", "abc", "METERLINE_GATEWAY_PORT: expected a valid integer"),
        ("METERLINE_INGEST_PORT", "70000", "METERLINE_INGEST_PORT: expected less than or equal"),
        ("METERLINE_TOPIC_PARTITIONS", "0", "METERLINE_TOPIC_PARTITIONS: expected greater than"),
        (
            "METERLINE_ENFORCEMENT_FAIL_MODE",
            "maybe",
            "METERLINE_ENFORCEMENT_FAIL_MODE: expected 'open' or 'closed', got 'maybe'",
        ),
        ("METERLINE_PROVIDERS", "[{", "METERLINE_PROVIDERS: expected JSON"),
        (
            "METERLINE_PROVIDERS",
            '[{"name": "x", "base_ulr": "http://h"}]',
            "METERLINE_PROVIDERS[0]: unknown key 'base_ulr' (did you mean 'base_url'?)",
        ),
        (
            "METERLINE_GUARDRAIL_MODES",
            "pii",
            "METERLINE_GUARDRAIL_MODES: expected name=value pairs",
        ),
        ("METERLINE_GUARDRAIL_MODES", "pii=loud", "METERLINE_GUARDRAIL_MODES.pii: expected 'off'"),
    ],
)
def test_a_bad_variable_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_a_secret_is_never_repeated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("admin_token: [s3cr3t-value]\n")
    monkeypatch.setenv(CONFIG_FILE_ENV, str(path))
    with pytest.raises(ConfigError, match="admin_token: expected a valid string") as caught:
        load_settings()
    assert "s3cr3t" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gateway_prot: 1\n", "{path}: unknown key 'gateway_prot' (did you mean 'gateway_port'?)"),
        ("zzz: 1\n", "{path}: unknown key 'zzz'"),
        (
            "providers:\n  - name: a\n    base_url: http://x\n    modles: ['*']\n",
            "{path}: providers[0]: unknown key 'modles' (did you mean 'models'?)",
        ),
        (
            "price_overrides:\n  m:\n    input_mtoks: 1\n",
            "{path}: price_overrides.m: unknown key 'input_mtoks' (did you mean 'input_mtok'?)",
        ),
        ("a: [1, 2\nb: 3\n", "{path}:2:2: malformed YAML: expected ',' or ']', but got ':'"),
        ("- 1\n", "{path}: expected a mapping of settings, got a list"),
        ("gateway_port: http\n", "{path}: gateway_port: expected a valid integer"),
        ("drift_reference: fixd\n", "{path}: drift_reference: expected 'fixed' or 'trailing'"),
    ],
)
def test_a_bad_yaml_file_is_one_line_with_file_and_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "meterline.yaml"
    path.write_text(text)
    monkeypatch.setenv(CONFIG_FILE_ENV, str(path))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(expected.format(path=path)), message
    assert "\n" not in message


def test_a_missing_named_file_is_an_error_but_no_default_file_is_fine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert load_settings().providers == []  # no ./meterline.yaml: defaults
    monkeypatch.setenv(CONFIG_FILE_ENV, str(tmp_path / "absent.yaml"))
    with pytest.raises(ConfigError, match=r"METERLINE_CONFIG=.*absent.yaml: no such"):
        load_settings()


def test_a_good_file_loads_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "meterline.yaml").write_text(
        "gateway_port: 9000\ntrusted_proxies: [10.0.0.0/8]\n"
        "providers:\n  - {name: a, base_url: 'http://x/v1', models: ['gpt-*']}\n"
    )
    monkeypatch.setenv("METERLINE_GATEWAY_PORT", "9001")
    settings = load_settings()
    assert (settings.gateway_port, settings.trusted_proxies) == (9001, ["10.0.0.0/8"])
    assert settings.provider_for("gpt-4o") is not None
