"""Issue 10's budget case through the real stack: a gateway, the real processors worker
(`python -m processors`: cost -> budgets -> alerts) and the real tansu broker.

A key with a $0.0005/day hard budget sends sequential requests of $0.0000975 each (19.5%).
Before the fix the gateway refused the request after the one that reached 97.5% spent (it
counted that one twice) while the state stayed `soft`: no alert, no decision for other
gateways. Now the 6th (97.5% -> 117%) is served, spend crosses the limit, and the budget
is exhausted for everyone: the state says `hard`, `meterline budgets list` says so, one
"Budget exhausted" alert, one block on the enforcement topic, and raising the limit lifts
it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from meterline.mock_provider import prompt_tokens
from meterline.money import usd
from meterline.settings import PriceOverride
from schemas.events.v1 import EnforcementDecision
from schemas.topics import ENFORCEMENT
from tests.conftest import free_port
from tests.integration.gateway.conftest import ADMIN
from tests.integration.processors.worker_helpers import TopicReader, worker_process

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "hi"}]
LIMIT = Decimal("0.0005")
PER_REQUEST = Decimal("0.0000975")  # 19.5% of the limit: 5 requests are 97.5%
MODEL = "budget-model"


class Webhook:
    """A real local HTTP receiver collecting the alert texts POSTed to it."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        lock = self._lock = threading.Lock()
        texts = self.texts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with lock:
                    texts.append(str(orjson.loads(body).get("text", "")))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def exhausted(self) -> list[str]:
        with self._lock:
            return [t for t in self.texts if "Budget exhausted" in t]

    @contextmanager
    def running(self) -> Iterator[Webhook]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=5)


def _until(check: Callable[[], Any], timeout_s: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; worker log:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)
    return found


def test_a_refused_hard_budget_is_exhausted_for_everyone_and_lifts(
    start_gateway: Callable[..., Any], tmp_path: Path
) -> None:
    # The mock provider counts this prompt as 4 input tokens: 4 x $24.375/Mtok = $0.0000975.
    assert prompt_tokens(MESSAGES) == 4
    webhook = Webhook()
    gateway = start_gateway(
        price_overrides={MODEL: PriceOverride(name="test", input_mtok=Decimal("24.375"))},
        processors_port=free_port(),
        processors={"alert": {"webhooks": [webhook.url]}, "budget": {"tick_interval_s": 1.0}},
    )
    settings = gateway.settings
    log = tmp_path / "worker.log"
    key = gateway.create_key(org="acme")
    subject = f"key:{key['key_id']}"

    def set_budget(limit: Decimal) -> str:
        body = {"subject": subject, "period": "day", "limit_usd": str(limit), "soft_pct": 80}
        response = httpx.post(f"{gateway.url}/admin/budgets", json=body, headers=ADMIN)
        assert response.status_code == 201, response.text
        return str(response.json()["budget_id"])

    def listed() -> dict[str, Any]:
        budgets = httpx.get(f"{gateway.url}/admin/budgets", headers=ADMIN).json()["data"]
        return next(b for b in budgets if b["subject"] == subject)

    def chat() -> httpx.Response:
        return httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": MODEL, "messages": MESSAGES, "max_tokens": 5},
            headers={"Authorization": f"Bearer {key['key']}"},
            timeout=15,
        )

    reader = TopicReader(settings, [ENFORCEMENT])
    decisions = reader.records[settings.topic(ENFORCEMENT)]
    with webhook.running(), worker_process(settings, log) as worker:
        budget_id = set_budget(LIMIT)
        _until(lambda: listed().get("state"), 60, "the budget's first state", log)

        served = 0
        while (response := chat()).status_code == 200:
            served += 1
            assert served <= 6, "the budget never refused"
            spent = PER_REQUEST * served

            def covered(spent: Decimal = spent) -> bool:
                # The state counted this request, and the gateway no longer counts it too.
                state = listed()["state"]
                return Decimal(state["spent_usd"]) == spent and state["local_estimate_usd"] == 0

            _until(covered, 60, f"the state after request {served}", log)

        # Refused only once spend crossed the limit: the 6th (97.5% -> 117%) was served.
        assert served == 6 and response.status_code == 403, response.text
        error = response.json()["error"]
        # By the processors' decision (code "blocked") or the local guard ("budget_exceeded").
        assert (error["source"], error["subject"]) == ("budget", subject), error
        assert budget_id in error.get("budget_id", error["reason"]), error
        state = listed()["state"]
        assert (state["status"], Decimal(state["spent_usd"])) == ("hard", PER_REQUEST * 6)

        cli = subprocess.run(
            [sys.executable, "-m", "meterline.cli", "budgets", "list"],
            env={
                **os.environ,
                "METERLINE_GATEWAY_URL": gateway.url,
                "METERLINE_ADMIN_TOKEN": "test-admin-token",
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        # In the digits a person needs ($0.00059 of $0.0005), not $0.00 or 18 decimals.
        assert f"{usd(LIMIT)}/day" in cli.stdout and usd(LIMIT) == "$0.0005", cli.stdout
        assert f"spent {usd(PER_REQUEST * 6)} (hard)" in cli.stdout, cli.stdout

        # Every gateway learns it: the processors' block is on the enforcement topic.
        reader.read_until(lambda: len(decisions) >= 1, timeout_s=30, log=log)
        (decision_key, decision_value), *_ = decisions
        decision = EnforcementDecision.model_validate_json(decision_value or b"")
        assert decision_key == f"budget|{subject}".encode()
        assert (decision.action, decision.source, decision.subject) == ("block", "budget", subject)
        _until(webhook.exhausted, 30, "the budget exhausted alert", log)
        for _ in range(3):  # refused requests cost nothing: no new state, no second alert
            assert chat().status_code == 403
        time.sleep(2.0)
        assert len(webhook.exhausted()) == 1, webhook.texts
        assert budget_id in webhook.exhausted()[0]

        # Raising the limit lifts it, for this gateway and (tombstone) for every other.
        set_budget(LIMIT * 2)
        _until(lambda: chat().status_code == 200, 30, "the lifted budget to serve", log)
        reader.read_until(lambda: len(decisions) >= 2, timeout_s=30, log=log)
        assert decisions[1] == (f"budget|{subject}".encode(), None)
        assert listed()["state"]["status"] in ("ok", "soft")

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    reader.close()
