"""A hard budget across two gateways while the processors are down: each gateway counts the
other's spend from its rate-usage reports (by spend mark), so the pair refuses at the
limit, not at twice the limit, though no BudgetState arrives any more."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from meterline.mock_provider import prompt_tokens
from meterline.settings import PriceOverride
from tests.conftest import free_port
from tests.integration.gateway.conftest import ADMIN
from tests.integration.processors.worker_helpers import worker_process

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "hi"}]
PER_REQUEST = Decimal("0.0000975")  # 4 input tokens x $24.375/Mtok
LIMIT = PER_REQUEST * 6  # the 6th request reaches it: 6 served, then refused
MODEL = "fleet-budget-model"


def _listed(url: str, subject: str) -> dict[str, Any]:
    budgets = httpx.get(f"{url}/admin/budgets", headers=ADMIN, timeout=10).json()["data"]
    return next((b for b in budgets if b["subject"] == subject), {})


def test_a_hard_budget_holds_across_two_gateways_with_the_processors_down(
    start_gateway: Callable[..., Any], tmp_path: Path
) -> None:
    assert prompt_tokens(MESSAGES) == 4
    first = start_gateway(
        price_overrides={MODEL: PriceOverride(name="test", input_mtok=Decimal("24.375"))},
        processors_port=free_port(),
    )
    second = start_gateway(first.settings)  # same topics, its own ledgers
    key = first.create_key(org="acme")
    subject = f"key:{key['key_id']}"
    body = {"subject": subject, "period": "day", "limit_usd": str(LIMIT)}
    response = httpx.post(f"{first.url}/admin/budgets", json=body, headers=ADMIN, timeout=10)
    assert response.status_code == 201, response.text

    log = tmp_path / "worker.log"
    with worker_process(first.settings, log) as worker:
        # The processors publish the budget's first state (nothing spent), then die.
        deadline = time.monotonic() + 60
        while not all(_listed(g.url, subject).get("state") for g in (first, second)):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        worker.kill()
        worker.wait(10)

    def chat(url: str) -> int:
        return httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": MODEL, "messages": MESSAGES, "max_tokens": 5},
            headers={"Authorization": f"Bearer {key['key']}"},
            timeout=15,
        ).status_code

    served: list[str] = []
    refused: set[str] = set()
    for i in range(40):
        url = (first.url, second.url)[i % 2]
        status = chat(url)
        assert status in (200, 403), status
        if status == 200:
            served.append(url)
        else:
            refused.add(url)
        if refused == {first.url, second.url}:
            break
        time.sleep(0.5)  # more than a report interval (0.2 s) and its delivery
    # Both refuse, after the limit's worth of requests: one gateway alone would serve 6,
    # two that did not count each other's spend about 12.
    assert refused == {first.url, second.url}, served
    assert 6 <= len(served) <= 7, served
    assert {first.url, second.url} <= set(served)  # both served a share
    estimates = [_listed(g.url, subject)["state"]["local_estimate_usd"] for g in (first, second)]
    assert all(e == pytest.approx(float(PER_REQUEST) * len(served)) for e in estimates), estimates
