"""Exact costs for every API, end to end: a Messages request with cache writes and reads
(Anthropic upstream), a Responses request with cached input (OpenAI upstream) and a chat
request translated to a Claude model's Messages upstream go through the embedded stack
(`--demo`'s two providers on the mock); the read API's cost of each is genai-prices' own
price for (provider, model, usage), to the last digit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest
from genai_prices import Usage, calc_price

from meterline.mock_provider import usage_for
from meterline.runtime import Stack
from tests.e2e.stack_helpers import Admin, eventually, stack_settings

pytestmark = pytest.mark.e2e

PROMPT = "Summarize the quarterly invoice backlog for the finance team, please. " * 6
SYSTEM = "You are a terse assistant."


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    instance = Stack(stack_settings(tmp_path_factory.mktemp("api-costs")), mock_provider=True)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


def _expected(provider: str, model: str, usage: dict[str, int]) -> Decimal:
    return calc_price(
        Usage(**usage),
        model_ref=model,
        provider_id=provider,
        genai_request_timestamp=datetime.now(UTC),
    ).total_price


def test_messages_responses_and_translated_chat_are_costed_exactly(stack: Stack) -> None:
    s = stack.settings
    admin = Admin(stack)
    created = admin.create_key("acme", "finops")
    key, key_id = created["key"], created["key_id"]
    expected: dict[str, tuple[str, str, dict[str, int]]] = {}  # request id -> price inputs

    claude = anthropic.Anthropic(
        base_url=f"http://{s.host}:{s.gateway_port}", api_key=key, max_retries=0, timeout=30
    )
    cache = {"mock_cached_tokens": 30, "mock_cache_write_tokens": 20}
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    raw = claude.messages.with_raw_response.create(**body, extra_body=cache)
    message = raw.parse()
    mock = usage_for("messages", {**body, **cache})
    assert message.usage.cache_creation_input_tokens == 20
    assert message.usage.cache_read_input_tokens == 30
    expected[raw.headers["x-request-id"]] = (
        "anthropic",
        body["model"],
        {
            "input_tokens": mock["input_tokens"] + 30 + 20,  # genai-prices: the whole prompt
            "output_tokens": mock["output_tokens"],
            "cache_read_tokens": 30,
            "cache_write_tokens": 20,
        },
    )

    client = openai.OpenAI(
        base_url=f"http://{s.host}:{s.gateway_port}/v1", api_key=key, max_retries=0, timeout=30
    )
    steer = {"mock_cached_tokens": 24}
    responses_body = {"model": "gpt-4o", "instructions": SYSTEM, "input": PROMPT}
    raw_response = client.responses.with_raw_response.create(**responses_body, extra_body=steer)
    assert raw_response.parse().usage.input_tokens_details.cached_tokens == 24
    mock = usage_for("responses", {**responses_body, **steer})
    expected[raw_response.headers["x-request-id"]] = (
        "openai",
        "gpt-4o",
        {
            "input_tokens": mock["input_tokens"],
            "output_tokens": mock["output_tokens"],
            "cache_read_tokens": 24,
        },
    )

    chat_body = {
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 100,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}],
    }
    raw_chat = client.chat.completions.with_raw_response.create(**chat_body)
    completion = raw_chat.parse()
    mock = usage_for("chat", chat_body)
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == mock["prompt_tokens"]
    expected[raw_chat.headers["x-request-id"]] = (
        "anthropic",
        chat_body["model"],
        {"input_tokens": mock["prompt_tokens"], "output_tokens": mock["completion_tokens"]},
    )

    def costed() -> dict[str, dict[str, Any]] | None:
        rows = admin.read("/api/requests", key=key_id, limit=10)["requests"]
        found = {r["request_id"]: r for r in rows if r["cost_usd"] is not None}
        return found if set(expected) <= set(found) else None

    rows = eventually(costed, timeout_s=90, what="the three requests costed in the read API")
    assert len(rows) == 3  # one row (one event) per request
    for request_id, (provider, model, usage) in expected.items():
        row = rows[request_id]
        assert (row["provider"], row["model_used"], row["priced"]) == (provider, model, True)
        assert row["input_tokens"] == usage["input_tokens"], row
        assert row["output_tokens"] == usage["output_tokens"], row
        assert Decimal(row["cost_usd"]) == _expected(provider, model, usage), (row, usage)
    # The cache split matters: priced as plain input, the Messages request would cost more
    # (writes at 1.25x) or less (reads at 0.1x) than it does.
    messages_id = next(iter(expected))
    _, model, usage = expected[messages_id]
    plain = {"input_tokens": usage["input_tokens"], "output_tokens": usage["output_tokens"]}
    assert Decimal(rows[messages_id]["cost_usd"]) != _expected("anthropic", model, plain)
