"""A key's RPM limit across two gateways: each takes from its buckets what the other
reports having admitted (rate-usage topic), so the pair admits about what one gateway
would, not twice the limit."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.integration.gateway.conftest import ADMIN

pytestmark = pytest.mark.integration

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
RPM = 20
RATE_PER_S = 10  # fleet-wide, alternating between the two gateways
REQUESTS = 50


def _chat(url: str, secret: str) -> int:
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json=BODY,
        headers={"Authorization": f"Bearer {secret}"},
        timeout=10,
    )
    assert response.status_code in (200, 429), response.text
    return response.status_code


def test_a_key_rpm_holds_across_two_gateways_within_the_stated_bound(start_gateway) -> None:
    first = start_gateway()
    second = start_gateway(first.settings)  # same topics, its own buckets
    key = first.create_key(org="acme", rpm=RPM)
    deadline = time.monotonic() + 15
    statuses: dict[str, list[int]] = {first.url: [], second.url: []}
    while not httpx.get(f"{second.url}/admin/keys", headers=ADMIN).json()["data"]:
        assert time.monotonic() < deadline, "the key never reached the second gateway"
        time.sleep(0.05)

    started = time.monotonic()
    for i in range(REQUESTS):
        url = (first.url, second.url)[i % 2]
        statuses[url].append(_chat(url, key["key"]))
        time.sleep(max(0.0, started + (i + 1) / RATE_PER_S - time.monotonic()))
    elapsed = time.monotonic() - started

    admitted = sum(s.count(200) for s in statuses.values())
    refill = RPM / 60 * elapsed
    # The stated bound (gateway/rate_share.py): the limit, its refill, and what the fleet
    # admits before a report lands (0.2 s interval + delivery); allowed a full second of
    # the fleet's traffic here so a loaded machine cannot fail it. Without sharing, each
    # gateway would admit its own RPM: ~2x.
    assert RPM <= admitted <= RPM + refill + RATE_PER_S, (admitted, statuses)
    assert admitted < 2 * RPM
    assert all(429 in s for s in statuses.values()), statuses  # both refused their share
