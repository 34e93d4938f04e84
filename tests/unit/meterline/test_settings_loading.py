"""Settings loading: one variable per setting named after its section, list-valued variables
in plain or JSON form, nested YAML, child_env round trips, and each configuration mistake as
one ConfigError line naming the variable, or the file, line and key."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from meterline.config_sources import (
    ConfigError,
    Section,
    _shape,
    env_leaves,
    unknown_env_warnings,
)
from meterline.settings import CONFIG_FILE_ENV, Settings, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No METERLINE_* from the outside, and no ./meterline.yaml by accident."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("METERLINE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _list_variables() -> dict[str, tuple[str, ...]]:
    """Every list-of-strings setting's variable and path: each takes comma-separated values."""
    return {
        variable: path
        for variable, (path, field) in env_leaves(Settings).items()
        if _shape(field) == "list"
    }


def _get(settings: Settings, path: tuple[str, ...]) -> Any:
    value: Any = settings
    for part in path:
        value = getattr(value, part)
    return value


def test_every_list_of_strings_setting_is_known_to_the_test() -> None:
    # Guards the parametrization below: a new list setting is covered automatically.
    assert {
        "METERLINE_GATEWAY_TRUSTED_PROXIES",
        "METERLINE_ALERT_WEBHOOKS",
        "METERLINE_ALERT_SECURITY_WEBHOOKS",
    } <= set(_list_variables())


@pytest.mark.parametrize("variable", sorted(_list_variables()))
def test_list_settings_take_comma_separated_or_json(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    path = _list_variables()[variable]
    values = (
        ["127.0.0.1/32", "10.0.0.0/8"]
        if path[-1] == "trusted_proxies"
        else ["http://a.example/x", "http://b.example/y"]
    )
    monkeypatch.setenv(variable, f" {values[0]} , {values[1]},")
    assert _get(load_settings(), path) == values
    monkeypatch.setenv(variable, f'["{values[0]}", "{values[1]}"]')
    assert _get(load_settings(), path) == values
    monkeypatch.setenv(variable, values[0])  # the single value
    assert _get(load_settings(), path) == values[:1]
    monkeypatch.setenv(variable, "")
    assert _get(load_settings(), path) == []


def test_a_map_of_plain_values_takes_name_equals_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METERLINE_GUARDRAIL_MODES", "pii=block, secrets=off")
    assert load_settings().gateway.guardrail.modes == {"pii": "block", "secrets": "off"}
    monkeypatch.setenv("METERLINE_GUARDRAIL_MODES", '{"pii": "redact"}')
    assert load_settings().gateway.guardrail.modes == {"pii": "redact"}


def test_every_setting_has_one_variable_named_after_its_innermost_section() -> None:
    leaves = env_leaves(Settings)
    paths = [path for path, _field in leaves.values()]
    assert len(set(paths)) == len(paths) == len(set(leaves))  # unique both ways
    for variable, (path, _field) in leaves.items():
        stem = "_".join(path[-2:]) if len(path) > 1 else path[0]
        assert variable == f"METERLINE_{stem.upper()}"
    # Names the sections kept from the flat settings, and the top level's unchanged ones.
    assert {
        "METERLINE_LLMJACKING_WINDOW_S",
        "METERLINE_EMITTER_REDELIVERY_WINDOW_S",
        "METERLINE_ENFORCEMENT_FAIL_MODE",
        "METERLINE_GUARDRAIL_MODES",
        "METERLINE_OTLP_AUTH",
        "METERLINE_SINK_GROUP_ID",
        "METERLINE_PROCESSORS_APP_ID",
        "METERLINE_GATEWAY_SPANS",
        "METERLINE_BUDGET_TICK_INTERVAL_S",
        "METERLINE_AGENT_LOOP_MAX_SESSION_USD",
        "METERLINE_DASHBOARD_REFRESH_S",
        "METERLINE_GATEWAY_MAX_BODY_BYTES",
        "METERLINE_OTLP_MAX_BODY_BYTES",
        "METERLINE_KAFKA_BOOTSTRAP",
        "METERLINE_ADMIN_TOKEN",
        "METERLINE_GATEWAY_PORT",
    } <= set(leaves)


def test_every_section_forbids_unknown_keys() -> None:
    def sections(model: type[BaseModel]) -> list[type[BaseModel]]:
        found = []
        for field in model.model_fields.values():
            if isinstance(field.annotation, type) and issubclass(field.annotation, Section):
                found += [field.annotation, *sections(field.annotation)]
        return found

    assert len(sections(Settings)) == 16
    for section in sections(Settings):
        assert section.model_config.get("extra") == "forbid", section
        assert section.__doc__, section


def test_a_nested_variable_sets_its_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METERLINE_LLMJACKING_WINDOW_S", "12")
    monkeypatch.setenv("METERLINE_GATEWAY_MAX_BODY_BYTES", "100")
    monkeypatch.setenv("METERLINE_OTLP_MAX_BODY_BYTES", "200")
    settings = load_settings(processors={"llmjacking": {"block_s": 5}})
    assert settings.processors.llmjacking.window_s == 12
    assert settings.processors.llmjacking.block_s == 5  # merged, not replaced
    assert (settings.gateway.max_body_bytes, settings.ingest.otlp.max_body_bytes) == (100, 200)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("METERLINE_TRUSTED_PROXIES", "METERLINE_GATEWAY_TRUSTED_PROXIES"),
        ("METERLINE_SECURITY_WEBHOOKS", "METERLINE_ALERT_SECURITY_WEBHOOKS"),
        ("METERLINE_MAX_BODY_BYTES", "METERLINE_GATEWAY_MAX_BODY_BYTES"),
        ("METERLINE_LLMJACKING_WINDOWS", "METERLINE_LLMJACKING_WINDOW_S"),
    ],
)
def test_an_unknown_variable_warns_once_with_the_closest_name(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, old: str, new: str
) -> None:
    monkeypatch.setenv(old, "1")
    monkeypatch.setattr("meterline.config_sources._warned", set())
    with caplog.at_level(logging.WARNING, logger="meterline.settings"):
        load_settings()
        load_settings()
    lines = [r.getMessage() for r in caplog.records if old in r.getMessage()]
    assert lines == [f"{old} names no Meterline setting and is ignored; did you mean {new}?"]


def test_the_config_variable_and_provider_key_variables_are_not_unknown() -> None:
    environ = {"METERLINE_CONFIG": "x", "METERLINE_UPSTREAM_KEY": "k", "METERLINE_HOST": "h"}
    (line,) = unknown_env_warnings(Settings, environ, ["METERLINE_CONFIG"])
    assert line.startswith("METERLINE_UPSTREAM_KEY names no Meterline setting and is ignored")
    assert (
        unknown_env_warnings(Settings, environ, ["METERLINE_CONFIG", "meterline_upstream_key"])
        == []
    )


def test_child_env_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `meterline up` hands its children reproduces every setting, secrets included."""
    parent = load_settings(
        admin_token="adm",
        read_token_security="sec",
        kafka_bootstrap="k:9092",
        providers=[{"name": "a", "base_url": "http://x/v1", "api_key_env": "A_KEY"}],
        price_overrides={"m": {"input_mtok": "0.5"}},
        gateway={
            "trusted_proxies": ["10.0.0.0/8"],
            "spans": False,
            "spool_dir": "/tmp/spool",
            "guardrail": {"modes": {"pii": "block"}},
            "enforcement": {"fail_mode": "closed"},
        },
        processors={
            "alert": {"webhooks": ["http://h/1"], "on_lift": False},
            "llmjacking": {"default_mode": "enforce", "probation_s": 30.0},
            "agent_loop": {"max_session_usd": "1.25"},
            "drift": {"reference": "fixed"},
        },
        ingest={"otlp": {"auth": "off"}, "sink": {"group_id": "g"}},
        dashboard={"refresh_s": 0},
    )
    env = parent.child_env()
    assert env["METERLINE_ADMIN_TOKEN"] == "adm" and env["METERLINE_READ_TOKEN_SECURITY"] == "sec"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert load_settings() == parent


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "METERLINE_GATEWAY_TRUSTED_PROXIES",
            "nonsense",
            "METERLINE_GATEWAY_TRUSTED_PROXIES: expected networks",
        ),
        (
            "METERLINE_DRIFT_MIN_EVENTS",
            "1",
            "processors.drift: need 2 <= min_events <= window_events",
        ),
        (
            "METERLINE_LLMJACKING_DEFAULT_MODE",
            "loud",
            "METERLINE_LLMJACKING_DEFAULT_MODE: expected 'off', 'monitor' or 'enforce'",
        ),
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
        (
            "processors:\n  drift:\n    reference: fixd\n",
            "{path}: processors.drift.reference: expected 'fixed' or 'trailing'",
        ),
        (
            "processors:\n  llmjacking:\n    default_mod: enforce\n",
            "{path}: processors.llmjacking: unknown key 'default_mod' "
            "(did you mean 'default_mode'?)",
        ),
        (
            "llmjacking_default_mode: enforce\n",
            "{path}: unknown key 'llmjacking_default_mode': settings are grouped now, "
            "it is processors.llmjacking.default_mode",
        ),
        (
            "trusted_proxies: [10.0.0.0/8]\n",
            "{path}: unknown key 'trusted_proxies': settings are grouped now, "
            "it is gateway.trusted_proxies",
        ),
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
        "gateway_port: 9000\ngateway:\n  trusted_proxies: [10.0.0.0/8]\n  spans: false\n"
        "processors: {llmjacking: {default_mode: enforce, window_s: 60}}\n"
        "providers:\n  - {name: a, base_url: 'http://x/v1', models: ['gpt-*']}\n"
    )
    monkeypatch.setenv("METERLINE_GATEWAY_PORT", "9001")
    monkeypatch.setenv("METERLINE_LLMJACKING_WINDOW_S", "30")
    settings = load_settings()
    assert (settings.gateway_port, settings.gateway.trusted_proxies) == (9001, ["10.0.0.0/8"])
    assert settings.gateway.spans is False
    assert settings.processors.llmjacking.default_mode == "enforce"  # the file's
    assert settings.processors.llmjacking.window_s == 30  # the environment's
    assert settings.provider_for("gpt-4o") is not None
