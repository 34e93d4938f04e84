"""Every `meterline <verb>`, run as a user runs it, answers a configuration mistake with one
line on stderr and exit code 2: no traceback, and nothing started."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from meterline.cli import _parser

METERLINE = str(Path(sys.executable).with_name("meterline"))

# One invocation per verb, with its required arguments.
VERBS: list[list[str]] = [
    ["up"],
    ["gateway"],
    ["ingest"],
    ["processors"],
    ["dashboard"],
    ["mock-provider"],
    ["schemas", "export", "out"],
    ["warehouse", "migrate"],
    ["warehouse", "rebuild-aggregates"],
    ["simulate", "normal"],
    ["eval", "detections"],
    ["keys", "create", "--org", "acme"],
    ["keys", "list"],
    ["keys", "revoke", "key_1"],
    ["budgets", "set", "org:acme", "--limit-usd", "1"],
    ["budgets", "list"],
    ["block", "org:acme", "--reason", "test"],
    ["unblock", "org:acme"],
    ["ingest-tokens", "create", "--org", "acme"],
    ["ingest-tokens", "list"],
    ["ingest-tokens", "revoke", "itok_1"],
]


def _leaf_verbs(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> set[tuple]:
    found: set[tuple] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= _leaf_verbs(sub, (*prefix, name))
    return found or {prefix}


def test_the_list_covers_every_verb() -> None:
    listed = {tuple(argv[: len(leaf)]) for argv in VERBS for leaf in _leaf_verbs(_parser())}
    assert _leaf_verbs(_parser()) <= listed


def _run(argv: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("METERLINE_")}
    return subprocess.run(
        [METERLINE, *argv],
        env={**clean, "METERLINE_DATA_DIR": str(tmp_path / "data"), **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _assert_one_line(result: subprocess.CompletedProcess[str], *parts: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("meterline: configuration error: ")
    for part in parts:
        assert part in lines[0], lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize("argv", VERBS, ids=[" ".join(v[:2]) for v in VERBS])
def test_every_verb_reports_an_unknown_yaml_key(tmp_path: Path, argv: list[str]) -> None:
    (tmp_path / "meterline.yaml").write_text("gateway_port: 8080\ningest_prot: 4318\n")
    result = _run(argv, tmp_path)
    _assert_one_line(result, "meterline.yaml: unknown key 'ingest_prot'", "'ingest_port'")
    assert not (tmp_path / "data").exists()  # nothing was started or written


@pytest.mark.parametrize(
    ("env", "text", "parts"),
    [
        ({"METERLINE_CONFIG": "absent.yaml"}, None, ["METERLINE_CONFIG=absent.yaml: no such"]),
        ({}, "providers:\n  - name: [\n", ["meterline.yaml:3:1: malformed YAML"]),
        ({"METERLINE_GATEWAY_PORT": "eighty"}, None, ["METERLINE_GATEWAY_PORT", "integer"]),
        ({"METERLINE_GATEWAY_PORT": "65536"}, None, ["METERLINE_GATEWAY_PORT", "65535"]),
        (
            {"METERLINE_ENFORCEMENT_FAIL_MODE": "shut"},
            None,
            ["METERLINE_ENFORCEMENT_FAIL_MODE", "'open' or 'closed'"],
        ),
        (
            {"METERLINE_GATEWAY_TRUSTED_PROXIES": "127.0.0.1/99"},
            None,
            ["METERLINE_GATEWAY_TRUSTED_PROXIES"],
        ),
        ({"METERLINE_PROVIDERS": "mock"}, None, ["METERLINE_PROVIDERS: expected JSON"]),
    ],
)
def test_each_kind_of_mistake_is_one_line(
    tmp_path: Path, env: dict[str, str], text: str | None, parts: list[str]
) -> None:
    if text is not None:
        (tmp_path / "meterline.yaml").write_text(text)
    _assert_one_line(_run(["keys", "list"], tmp_path, **env), *parts)


def test_a_comma_separated_trusted_proxies_value_is_accepted(tmp_path: Path) -> None:
    """The issue's example crashed with a pydantic traceback; now it configures."""
    result = _run(
        ["keys", "list"],
        tmp_path,
        METERLINE_GATEWAY_TRUSTED_PROXIES="127.0.0.1/32",
        METERLINE_GATEWAY_URL="http://127.0.0.1:9",  # nothing listens: the admin call fails
        METERLINE_ADMIN_TOKEN="t",
    )
    assert result.returncode == 1 and "cannot reach the gateway" in result.stderr
    assert "Traceback" not in result.stderr
