"""The whole embedded stack, as a user runs it: broker, ingest (owning ClickHouse),
processors, gateway and the mock provider as child processes; the official openai SDK as
the client; the read API as the only window onto the warehouse."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from genai_prices import Usage, calc_price
from openai import OpenAI

from meterline.runtime import Stack
from tests.e2e.stack_helpers import eventually, stack_settings

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    instance = Stack(
        stack_settings(tmp_path_factory.mktemp("stack")), mock_provider=True, progress=print
    )
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def api_key(stack: Stack) -> str:
    s = stack.settings
    response = httpx.post(
        f"http://{s.host}:{s.gateway_port}/admin/keys",
        json={"org": "acme", "team": "search", "project": "web", "user": "ana@acme.example"},
        headers={"Authorization": "Bearer e2e-admin-token"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def _read_api(stack: Stack, path: str, **params: Any) -> Any:
    s = stack.settings
    response = httpx.get(f"http://{s.host}:{s.ingest_port}{path}", params=params, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _find_request(stack: Stack, request_id: str) -> dict[str, Any] | None:
    body = _read_api(stack, "/api/requests", limit=100)
    rows = body["requests"] if isinstance(body, dict) else body
    for row in rows:
        if row["request_id"] == request_id and row.get("cost_usd") is not None:
            return dict(row)
    return None


def test_requests_are_costed_exactly_end_to_end(stack: Stack, api_key: str) -> None:
    s = stack.settings
    client = OpenAI(base_url=f"http://{s.host}:{s.gateway_port}/v1", api_key=api_key)

    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Summarize our Q3 costs."}]
    )
    completion = raw.parse()
    plain_id = raw.headers["x-request-id"]
    assert completion.choices[0].message.content

    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Stream a haiku about invoices."}],
        stream=True,
    ) as streamed:
        stream_id = streamed.headers["x-request-id"]
        chunks = list(streamed.parse())
    assert any(chunk.choices and chunk.choices[0].delta.content for chunk in chunks)

    for request_id, usage in ((plain_id, completion.usage), (stream_id, None)):
        row = eventually(lambda rid=request_id: _find_request(stack, rid), what=request_id)
        assert row["org"] == "acme" and row["model_used"] == "gpt-4o-mini"
        assert row["priced"] is True
        assert row["price_source"].startswith("genai-prices@")
        if usage is not None:
            assert row["input_tokens"] == usage.prompt_tokens
            assert row["output_tokens"] == usage.completion_tokens
        expected = calc_price(
            Usage(input_tokens=row["input_tokens"], output_tokens=row["output_tokens"]),
            model_ref="gpt-4o-mini",
        ).total_price
        assert Decimal(row["cost_usd"]) == expected

    showback = _read_api(stack, "/api/showback", group_by="org,model")
    acme = [r for r in showback["rows"] if r["org"] == "acme" and r["model"] == "gpt-4o-mini"]
    assert len(acme) == 1 and acme[0]["requests"] >= 2


def test_unknown_model_is_flagged_not_free(stack: Stack, api_key: str) -> None:
    s = stack.settings
    client = OpenAI(base_url=f"http://{s.host}:{s.gateway_port}/v1", api_key=api_key)
    raw = client.chat.completions.with_raw_response.create(
        # No price list knows it, and (unlike the demo's acme-local-7b) no override prices it.
        model="mystery-local-13b",
        messages=[{"role": "user", "content": "hi"}],
    )
    row = eventually(lambda: _find_request(stack, raw.headers["x-request-id"]), what="unpriced")
    assert row["priced"] is False


def test_meterline_up_demo_fills_showback_and_stops_cleanly(tmp_path: Path) -> None:
    """`meterline up --demo` exactly as `make up` runs it, then Ctrl-C."""
    settings = stack_settings(tmp_path / "data")
    env = {**os.environ, **{k: str(v) for k, v in settings.child_env().items()}}
    process = subprocess.Popen(
        [sys.executable, "-m", "meterline.cli", "up", "--demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    output: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if "Press Ctrl-C to stop." in line or process.poll() is not None:
                break
        text = "".join(output)
        assert "Meterline is running" in text, text
        assert f"http://127.0.0.1:{settings.gateway_port}/v1" in text

        def demo_spend() -> list[dict[str, Any]] | None:
            response = httpx.get(
                f"http://127.0.0.1:{settings.ingest_port}/api/showback",
                params={"group_by": "org"},
                timeout=5,
            )
            rows = response.json()["rows"] if response.status_code == 200 else []
            return rows if len({row["org"] for row in rows}) >= 2 else None

        rows = eventually(demo_spend, timeout_s=60, what="demo traffic in showback")
        assert sum(Decimal(row["cost_usd"]) for row in rows) > 0
    finally:
        process.send_signal(signal.SIGINT)
        remaining, _ = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(output) + remaining
    assert "stopping gateway" in remaining


README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("block", ["quick start", "closed loop"])
def test_the_readmes_commands_work_as_printed(stack: Stack, tmp_path: Path, block: str) -> None:
    """The README's marked blocks, run by bash in a fresh shell (no venv on PATH) from a
    directory laid out as the repository after `make up`: `.venv`, `.meterline/admin_token`.
    Only the ports differ (the test's stack listens on free ones)."""
    found = re.search(
        rf"<!-- README test: {block} -->\n```bash\n(.*?)```", README.read_text(), re.DOTALL
    )
    assert found, f"no '{block}' block in the README"
    s = stack.settings
    script = found.group(1)
    for default, port in (("8080", s.gateway_port), ("4318", s.ingest_port)):
        for host in ("localhost", "127.0.0.1"):
            script = script.replace(f"{host}:{default}", f"127.0.0.1:{port}")
    (tmp_path / ".meterline").mkdir()
    (tmp_path / ".meterline" / "admin_token").write_text(str(s.admin_token.get_secret_value()))
    (tmp_path / ".venv").symlink_to(README.parent / ".venv")
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "METERLINE_GATEWAY_PORT": str(s.gateway_port),
        "METERLINE_INGEST_PORT": str(s.ingest_port),
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    if block == "quick start":
        assert '"group_by":["org","model"]' in done.stdout and '"requests":[' in done.stdout
        assert done.stdout.count("\n") >= 3  # the three SDK answers, a line each
    else:
        assert "blocked team:acme/ml until" in done.stdout
        assert "unblocked team:acme/ml" in done.stdout and "team:acme/ml  $50.00/day" in done.stdout
