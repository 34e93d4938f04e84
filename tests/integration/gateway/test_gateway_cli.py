"""The admin CLI verbs, in-process (`meterline.cli.main`), against a running gateway."""

from __future__ import annotations

import httpx
import pytest

from meterline.cli import main
from tests.conftest import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def cli(start_gateway, monkeypatch, capsys, tmp_path):
    gateway = start_gateway()
    monkeypatch.setenv("METERLINE_DATA_DIR", str(tmp_path))  # no token file of `meterline up`
    monkeypatch.setenv("METERLINE_GATEWAY_URL", gateway.url)
    monkeypatch.setenv("METERLINE_ADMIN_TOKEN", "test-admin-token")

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    run.gateway = gateway  # type: ignore[attr-defined]
    return run


def _chat(url: str, secret: str) -> int:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {secret}"}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers).status_code


def test_keys_budgets_block_and_unblock_through_the_cli(cli) -> None:
    url = cli.gateway.url
    code, out, err = cli("keys", "create", "--org", "acme", "--team", "ml", "--rpm", "100")
    assert code == 0 and "shown once" in err
    key_id = out.split("key_id:")[1].split()[0]
    secret = out.split("key:")[-1].strip()
    assert secret.startswith("ml-") and _chat(url, secret) == 200

    code, out, _ = cli("keys", "list")
    assert code == 0 and key_id in out and "acme/ml" in out and "rpm=100" in out

    code, out, _ = cli("budgets", "set", "team:acme/ml", "--period", "day", "--limit-usd", "10")
    assert code == 0 and "team:acme/ml $10.00 per day" in out
    code, out, _ = cli("budgets", "list")
    assert code == 0 and "team:acme/ml" in out and "hard->block" in out

    code, out, _ = cli("block", "team:acme/ml", "--reason", "investigating", "--for", "2h")
    assert code == 0 and "blocked team:acme/ml until" in out
    # The audit trail names who did it (the admin token only says they may).
    listing = httpx.get(
        f"{url}/admin/enforcement", headers={"Authorization": "Bearer test-admin-token"}
    ).json()["data"]
    [decision] = [d for d in listing if d["subject"] == "team:acme/ml"]
    assert decision["decided_by"].startswith("admin:") and "@" in decision["decided_by"]
    assert _chat(url, secret) == 403
    code, out, _ = cli("unblock", "team:acme/ml")
    assert code == 0 and out.strip() == "unblocked team:acme/ml"
    assert _chat(url, secret) == 200

    code, out, _ = cli("keys", "revoke", key_id)
    assert code == 0 and _chat(url, secret) == 401
    code, out, _ = cli("keys", "list")  # still listed, as revoked, with who revoked it
    assert code == 0 and f"{key_id}  acme/ml" in out and "REVOKED" in out and "by admin:" in out


def test_ingest_tokens_through_the_cli(cli) -> None:
    code, out, err = cli(
        "ingest-tokens", "create", "--org", "acme", "--team", "ml", "--name", "otel"
    )
    assert code == 0 and "shown once" in err and "OTEL_EXPORTER_OTLP_HEADERS" in err
    token_id = out.split("token_id:")[1].split()[0]
    assert out.split("token:")[-1].strip().startswith("mli-")
    code, out, _ = cli("ingest-tokens", "list")
    assert code == 0 and f"{token_id}  acme/ml  otel" in out
    code, out, _ = cli("ingest-tokens", "revoke", token_id)
    assert code == 0 and out.strip() == f"revoked {token_id}"
    code, out, _ = cli("ingest-tokens", "list")
    assert code == 0 and token_id not in out


def test_cli_errors_tell_the_user_what_to_do(cli, monkeypatch, tmp_path) -> None:
    code, _, err = cli("block", "acme", "--reason", "x")
    assert code == 1 and "must start with one of" in err

    monkeypatch.setenv("METERLINE_ADMIN_TOKEN", "wrong")
    code, _, err = cli("keys", "list")
    assert code == 1 and "refused the admin token" in err and "METERLINE_ADMIN_TOKEN" in err

    monkeypatch.delenv("METERLINE_ADMIN_TOKEN")
    code, _, err = cli("keys", "list")
    assert code == 1 and "set METERLINE_ADMIN_TOKEN" in err

    # Without the variable, the token `meterline up` generated is used.
    (tmp_path / "admin_token").write_text("test-admin-token\n")
    code, _, err = cli("keys", "list")
    assert code == 0 and "key(s)" in err

    monkeypatch.setenv("METERLINE_ADMIN_TOKEN", "test-admin-token")
    monkeypatch.setenv("METERLINE_GATEWAY_URL", f"http://127.0.0.1:{free_port()}")
    code, _, err = cli("unblock", "org:acme")
    assert code == 1 and "cannot reach the gateway" in err and "meterline gateway" in err
