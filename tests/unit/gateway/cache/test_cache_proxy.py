"""The response cache through the proxy, in process: the gateway app over the mock
provider's ASGI app (InProcessUpstream), events in a MemoryEmitter. The same over real
servers, the SDKs and the broker: tests/integration/gateway/test_gateway_cache.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.app import create_app
from gateway.collaborators import MemoryControlPublisher, StaticViews
from gateway.emit import MemoryEmitter
from gateway.providers import InProcessUpstream
from gateway.runtime import GatewayRuntime
from meterline.mock_provider import create_app as create_mock_app
from meterline.settings import ProviderConfig, Settings
from schemas.events import RequestEvent

ADMIN = {"Authorization": "Bearer test-admin-token"}
CHAT = "/v1/chat/completions"


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}], **extra}


class Harness:
    def __init__(self, runtime: GatewayRuntime, http: httpx.AsyncClient, mock: Any) -> None:
        self.runtime, self.http, self.mock = runtime, http, mock
        self.now = 1_000_000.0
        runtime.cache.clock = lambda: self.now

    async def key(self, org: str = "acme") -> dict[str, str]:
        response = await self.http.post("/admin/keys", json={"org": org}, headers=ADMIN)
        assert response.status_code == 201, response.text
        return {"Authorization": f"Bearer {response.json()['key']}"}

    async def policy(self, subject: str, kind: str, mode: str, **params: Any) -> httpx.Response:
        body = {"subject": subject, "kind": kind, "mode": mode, "params": params}
        return await self.http.post("/admin/policies", json=body, headers=ADMIN)

    async def post(self, headers: dict[str, str], body: dict[str, Any], path: str = CHAT):
        return await self.http.post(path, json=body, headers=headers)

    def upstream_calls(self, path: str = "/v1/chat/completions") -> int:
        return sum(counts.get(path, 0) for counts in self.mock.stats.values())

    def event(self, response: httpx.Response) -> dict[str, Any]:
        request_id = response.headers["x-request-id"]
        events = self.runtime.emitter.values(self.runtime.requests_topic)  # type: ignore[attr-defined]
        (event,) = [e for e in events if e["request_id"] == request_id]
        RequestEvent.model_validate(event)
        return event


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    settings = Settings(
        data_dir=tmp_path,
        admin_token="test-admin-token",
        gateway={
            "spans": False,
            "guardrail": {"modes": {"secrets": "off"}},
            "cache": {"mode": "exact", "ttl_s": 60},
        },
        providers=[
            ProviderConfig(
                name="mock", base_url="http://upstream/v1", price_provider="openai", models=["*"]
            )
        ],
    )
    mock = create_mock_app()
    runtime = GatewayRuntime(
        settings,
        emitter=MemoryEmitter(),
        upstream=InProcessUpstream(mock),
        views=StaticViews,
        publisher=MemoryControlPublisher(),
    )
    app = create_app(settings, runtime=runtime)
    await runtime.start()
    transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 5555))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            yield Harness(runtime, http, mock)
    finally:
        await runtime.aclose()


async def test_a_repeat_is_answered_from_the_cache_and_says_whose_answer(harness) -> None:
    key = await harness.key()
    first = await harness.post(key, chat("What is metering?", temperature=0))
    again = await harness.post(key, chat("What is metering?", temperature=0, user="ana"))
    assert (first.headers["x-meterline-cache"], again.headers["x-meterline-cache"]) == (
        "MISS",
        "HIT",
    )
    assert again.content == first.content
    assert harness.upstream_calls() == 1
    filled, hit = harness.event(first), harness.event(again)
    assert (filled["cache"], hit["cache"]) == ("miss", "hit")
    assert hit["cache_source_event_id"] == filled["event_id"]
    assert (hit["provider"], hit["model_used"]) == (filled["provider"], filled["model_used"])
    assert (hit["input_tokens"], hit["output_tokens"]) == (
        filled["input_tokens"],
        filled["output_tokens"],
    )
    other = await harness.post(key, chat("What is metering?", temperature=0.5))
    assert other.headers["x-meterline-cache"] == "MISS" and harness.upstream_calls() == 2


async def test_a_stream_replays_as_the_same_well_formed_stream(harness) -> None:
    key = await harness.key()
    body = chat("stream me a story", stream=True, stream_options={"include_usage": True})
    first = await harness.post(key, body)
    again = await harness.post(key, body)
    assert again.headers["x-meterline-cache"] == "HIT"
    assert again.headers["content-type"].startswith("text/event-stream")
    assert again.content == first.content and again.content.endswith(b"data: [DONE]\n\n")
    assert harness.upstream_calls() == 1
    hit = harness.event(again)
    assert hit["stream"] and hit["cache"] == "hit" and hit["ttft_ms"] is not None
    assert hit["output_tokens"] == harness.event(first)["output_tokens"] > 0


async def test_no_answer_crosses_orgs(harness) -> None:
    acme, globex = await harness.key("acme"), await harness.key("globex")
    await harness.post(acme, chat("shared question"))
    crossed = await harness.post(globex, chat("shared question"))
    assert crossed.headers["x-meterline-cache"] == "MISS"
    assert harness.upstream_calls() == 2
    same_org = await harness.post(await harness.key("acme"), chat("shared question"))
    assert same_org.headers["x-meterline-cache"] == "HIT"  # org scope: any key of acme


async def test_entries_expire_after_their_ttl(harness) -> None:
    key = await harness.key()
    assert (await harness.policy("org:acme", "cache", "exact", ttl_s=30)).status_code == 201
    await harness.post(key, chat("ttl"))
    harness.now += 29.9
    assert (await harness.post(key, chat("ttl"))).headers["x-meterline-cache"] == "HIT"
    harness.now += 0.2
    assert (await harness.post(key, chat("ttl"))).headers["x-meterline-cache"] == "MISS"
    assert harness.upstream_calls() == 2


async def test_opt_out_and_refresh_headers(harness) -> None:
    key = await harness.key()
    await harness.post(key, chat("q"))
    skipped = await harness.http.post(
        CHAT, json=chat("q"), headers={**key, "Cache-Control": "no-store"}
    )
    assert "x-meterline-cache" not in skipped.headers
    assert harness.event(skipped)["cache"] is None
    refreshed = await harness.http.post(
        CHAT, json=chat("q"), headers={**key, "x-meterline-cache": "refresh"}
    )
    assert refreshed.headers["x-meterline-cache"] == "REFRESH"
    assert harness.event(refreshed)["cache"] == "miss"
    assert harness.upstream_calls() == 3
    after = await harness.post(key, chat("q"))
    assert harness.event(after)["cache_source_event_id"] == harness.event(refreshed)["event_id"]


async def test_a_blocked_prompt_is_never_served_from_the_cache(harness) -> None:
    key = await harness.key()
    secret = chat("my key is AKIAIOSFODNN7EXAMPLE, keep it")
    assert (await harness.post(key, secret)).status_code == 200  # secrets off: cached
    response = await harness.policy("org:acme", "guardrail:secrets", "block")
    assert response.status_code == 201
    blocked = await harness.post(key, secret)
    assert blocked.status_code == 400, blocked.text
    assert "x-meterline-cache" not in blocked.headers
    assert harness.event(blocked)["cache"] is None
    assert harness.upstream_calls() == 1


async def test_policy_off_per_org_and_its_validation(harness) -> None:
    key = await harness.key()
    assert (await harness.policy("org:acme", "cache", "off")).status_code == 201
    await harness.post(key, chat("nothing cached"))
    again = await harness.post(key, chat("nothing cached"))
    assert "x-meterline-cache" not in again.headers and harness.upstream_calls() == 2
    bad = await harness.policy("org:acme", "cache", "exact", similarity=2)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "params.similarity"
    wrong_mode = await harness.policy("org:acme", "cache", "block")
    assert wrong_mode.status_code == 400
    no_params = await harness.policy("org:acme", "guardrail:pii", "monitor", ttl_s=3)
    assert no_params.status_code == 400
    listed = (await harness.http.get("/admin/policies", headers=ADMIN)).json()["data"]
    assert any(p["kind"] == "cache" and p["mode"] == "off" for p in listed)


async def test_semantic_hit_above_the_threshold_and_miss_below(harness) -> None:
    key = await harness.key()
    response = await harness.policy("org:acme", "cache", "semantic", similarity=0.85)
    assert response.status_code == 201
    filled = await harness.post(key, chat("What is the capital of France?"))
    # The entry's bytes count its prompt's vector too (256 float32 from the mock).
    assert harness.runtime.cache.store.bytes >= len(filled.content) + 256 * 4
    near = await harness.post(key, chat("What is the capital city of France?"))
    assert near.headers["x-meterline-cache"] == "SEMANTIC_HIT"
    hit = harness.event(near)
    assert hit["cache"] == "semantic_hit" and 0.85 <= hit["cache_similarity"] < 1
    far = await harness.post(key, chat("Write a poem about the sea"))
    assert far.headers["x-meterline-cache"] == "MISS"
    other_params = await harness.post(key, chat("What is the capital of France?", top_p=0.5))
    assert other_params.headers["x-meterline-cache"] == "MISS"
    assert harness.upstream_calls() == 3
    # Each lookup's embedding call is a metered request of its own, on the same key.
    embeds = [
        e
        for e in harness.runtime.emitter.values(harness.runtime.requests_topic)  # type: ignore[attr-defined]
        if e["endpoint"] == "/v1/embeddings"
    ]
    assert len(embeds) == 4 and all(e["app"] == "meterline-cache" for e in embeds)
    assert all(e["input_tokens"] > 0 and e["status_code"] == 200 for e in embeds)


async def test_semantic_lookups_skip_tool_results(harness) -> None:
    key = await harness.key()
    await harness.policy("org:acme", "cache", "semantic", similarity=0.5)
    tool_turn = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    await harness.post(key, {"model": "gpt-4o", "messages": tool_turn})
    changed = [*tool_turn[:2], {**tool_turn[2], "content": "rainy"}]
    response = await harness.post(key, {"model": "gpt-4o", "messages": changed})
    assert response.headers["x-meterline-cache"] == "MISS"
    assert harness.upstream_calls("/v1/embeddings") == 0


async def test_admin_cache_reports_memory_and_lookups(harness) -> None:
    key = await harness.key()
    await harness.post(key, chat("a"))
    await harness.post(key, chat("a"))
    stats = (await harness.http.get("/admin/cache", headers=ADMIN)).json()
    assert stats["entries"] == 1 and stats["bytes"] > 0
    assert stats["lookups"] == {"hit": 1, "semantic_hit": 0, "miss": 1}
    metrics = (await harness.http.get("/metrics")).text
    assert 'meterline_gateway_cache_lookups_total{result="hit"} 1' in metrics
    assert "meterline_gateway_cache_bytes" in metrics


async def test_a_hit_counts_against_no_budget(harness) -> None:
    response = await harness.http.post(
        "/admin/budgets",
        json={"subject": "org:acme", "period": "day", "limit_usd": "100"},
        headers=ADMIN,
    )
    assert response.status_code == 201, response.text
    budget_id = response.json()["budget_id"]
    state = {"budget_id": budget_id, "subject": "org:acme", "spent_usd": "0", "limit_usd": "100"}
    assert harness.runtime.budgets.apply_state(budget_id.encode(), orjson.dumps(state))
    key = await harness.key()
    await harness.post(key, chat("priced question", max_tokens=50))
    after_miss = harness.runtime.budgets.spent_estimate(budget_id)
    assert after_miss is not None and after_miss > 0
    hit = await harness.post(key, chat("priced question", max_tokens=50))
    assert hit.headers["x-meterline-cache"] == "HIT"
    assert harness.runtime.budgets.spent_estimate(budget_id) == after_miss


async def test_a_client_gone_during_a_replay_is_recorded_not_logged_as_a_bug(
    harness, caplog
) -> None:
    key = await harness.key()
    await harness.post(key, chat("leaving"))
    body = orjson.dumps(chat("leaving"))
    scope = {
        "type": "http",
        "method": "POST",
        "path": CHAT,
        "headers": [(b"authorization", key["Authorization"].encode())],
        "client": ("10.0.0.7", 1),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        raise OSError("client went away")

    app = harness.http._transport.app  # type: ignore[attr-defined]
    await app(scope, receive, send)
    events = harness.runtime.emitter.values(harness.runtime.requests_topic)  # type: ignore[attr-defined]
    assert (events[-1]["cache"], events[-1]["error_type"]) == ("hit", "client_disconnected")
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def test_semantic_neighbours_and_key_scope_stay_in_their_partition(harness) -> None:
    for org in ("acme", "globex"):
        response = await harness.policy(f"org:{org}", "cache", "semantic", similarity=0.5)
        assert response.status_code == 201
    acme, globex = await harness.key("acme"), await harness.key("globex")
    await harness.post(acme, chat("What is the capital of France?"))
    crossed = await harness.post(globex, chat("What is the capital city of France?"))
    assert crossed.headers["x-meterline-cache"] == "MISS"
    same_org = await harness.post(acme, chat("What is the capital city of France?"))
    assert same_org.headers["x-meterline-cache"] == "SEMANTIC_HIT"
    # scope: key -> another key of the same org has its own entries
    await harness.policy("org:acme", "cache", "exact", scope="key")
    first_key, second_key = await harness.key("acme"), await harness.key("acme")
    await harness.post(first_key, chat("per key"))
    assert (await harness.post(second_key, chat("per key"))).headers["x-meterline-cache"] == "MISS"
    assert (await harness.post(first_key, chat("per key"))).headers["x-meterline-cache"] == "HIT"
