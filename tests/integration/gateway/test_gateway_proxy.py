"""The gateway end to end over real HTTP: openai SDK -> gateway -> mock provider, with
every RequestEvent read back from the real broker."""

from __future__ import annotations

import socket

import httpx
import openai
import orjson
import pytest

from schemas.events import RequestEvent

pytestmark = pytest.mark.integration

UPSTREAM_SECRET = "sk-upstream-never-leaves-the-gateway"


@pytest.fixture
def gateway(start_gateway, monkeypatch):
    monkeypatch.setenv("METERLINE_TEST_UPSTREAM_KEY", UPSTREAM_SECRET)
    return start_gateway()


@pytest.fixture
def key(gateway) -> dict:
    return gateway.create_key(org="acme", team="search", project="p1", user="ana")


def _client(gateway, key: dict) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key["key"], max_retries=0)


def _assert_clean(event: dict, key: dict) -> None:
    RequestEvent.model_validate(event)
    text = str(event)
    assert key["key"] not in text and UPSTREAM_SECRET not in text


def test_non_streaming_chat_is_proxied_and_metered(gateway, key, events_for) -> None:
    client = _client(gateway, key)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hello there, meter"}],
        max_tokens=30,
        extra_headers={
            "x-session-id": "sess-1",
            "x-meterline-app": "demo",
            "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
        },
    )
    completion = raw.parse()
    request_id = raw.headers["x-request-id"]
    assert completion.model == "gpt-4o-mini"
    assert completion.choices[0].message.content
    # mock: ceil(18 / 4) + 3 prompt tokens
    assert completion.usage.prompt_tokens == 8
    (event,) = events_for(gateway.settings, [request_id])
    _assert_clean(event, key)
    assert event["_key"] == key["key_id"]
    assert (event["key_id"], event["org"], event["team"], event["project"], event["user"]) == (
        key["key_id"],
        "acme",
        "search",
        "p1",
        "ana",
    )
    assert (event["input_tokens"], event["output_tokens"]) == (
        8,
        completion.usage.completion_tokens,
    )
    assert (event["model_requested"], event["model_used"], event["provider"]) == (
        "gpt-4o-mini",
        "gpt-4o-mini",
        "openai",
    )
    assert (event["status_code"], event["stream"], event["max_tokens_requested"]) == (
        200,
        False,
        30,
    )
    assert (event["session_id"], event["app"], event["trace_id"]) == ("sess-1", "demo", "a" * 32)
    assert event["response_chars"] == len(completion.choices[0].message.content)
    assert event["prompt_chars"] == 18 and len(event["prompt_hash"]) == 64
    assert event["client_ip"] == "127.0.0.1" and event["finish_reason"] == "stop"


def test_streaming_requests_usage_upstream_and_strips_it(gateway, key, events_for) -> None:
    client = _client(gateway, key)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "stream please"}], stream=True
    )
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and all(c.choices for c in chunks)  # no usage-only chunk reached the client
    assert all(c.usage is None for c in chunks)
    (event,) = events_for(gateway.settings, [raw.headers["x-request-id"]])
    _assert_clean(event, key)
    assert event["stream"] is True and event["output_tokens"] == len(text.split())
    assert event["input_tokens"] == 3 + 4 and event["response_chars"] == len(text)
    assert event["ttft_ms"] is not None and 0 <= event["ttft_ms"] <= event["latency_ms"]
    assert event["finish_reason"] == "stop"


def test_streaming_keeps_usage_when_the_client_asks(gateway, key, events_for) -> None:
    client = _client(gateway, key)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "usage please"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"mock_cached_tokens": 4, "mock_reasoning_tokens": 2},
    )
    chunks = list(raw.parse())
    usage_chunks = [c for c in chunks if not c.choices]
    assert len(usage_chunks) == 1 and usage_chunks[0].usage is not None
    (event,) = events_for(gateway.settings, [raw.headers["x-request-id"]])
    assert event["input_tokens"] == usage_chunks[0].usage.prompt_tokens
    assert (event["cache_read_tokens"], event["reasoning_tokens"]) == (4, 2)


def test_embeddings_and_models(gateway, key, events_for) -> None:
    client = _client(gateway, key)
    raw = client.embeddings.with_raw_response.create(model="mock-embed", input=["abcd", "ef"])
    result = raw.parse()
    assert len(result.data) == 2 and result.usage.prompt_tokens == 2
    (event,) = events_for(gateway.settings, [raw.headers["x-request-id"]])
    assert (event["endpoint"], event["input_tokens"], event["prompt_chars"]) == (
        "/v1/embeddings",
        2,
        6,
    )
    assert {m.id for m in client.models.list()} >= {"mock-gpt", "mock-embed"}


def test_tool_calls_are_hashed_not_stored(gateway, key, events_for) -> None:
    client = _client(gateway, key)
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "use a tool"}], tools=tools
    )
    call = raw.parse().choices[0].message.tool_calls[0]
    (event,) = events_for(gateway.settings, [raw.headers["x-request-id"]])
    assert event["tool_calls"][0]["name"] == "lookup"
    assert call.function.arguments not in str(event)
    assert event["finish_reason"] == "tool_calls"


def _post(gateway, path: str, key: dict | None, **kwargs) -> httpx.Response:
    headers = kwargs.pop("headers", {})
    if key is not None:
        headers.setdefault("Authorization", f"Bearer {key['key']}")
    return httpx.request(
        kwargs.pop("method", "POST"), f"{gateway.url}{path}", headers=headers, timeout=10, **kwargs
    )


CHAT = "/v1/chat/completions"
OK_BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("case", "status", "code", "param"),
    [
        ("bad json", 400, "invalid_request", None),
        ("missing model", 400, "missing_required_parameter", "model"),
        ("messages wrong type", 400, "invalid_type", "messages"),
        ("model too long", 400, "string_above_max_length", "model"),
        ("role not a string", 400, "invalid_type", "messages[0].role"),
        ("content neither string nor array", 400, "invalid_type", "messages[0].content"),
        ("n below 1", 400, "integer_below_min_value", "n"),
        ("max_tokens below 1", 400, "integer_below_min_value", "max_tokens"),
        ("user an object", 400, "invalid_type", "user"),
        ("text/plain body", 400, "unsupported_content_type", "Content-Type"),
        ("too large", 413, "body_too_large", None),
        ("no key", 401, "invalid_api_key", None),
        ("bad key", 401, "invalid_api_key", None),
        ("model not allowed", 403, "model_not_allowed", "model"),
        ("upstream 429", 429, "rate_limit_exceeded", None),
        ("upstream 500", 502, "upstream_unavailable", None),
        ("upstream timeout", 504, "upstream_timeout", None),
        ("wrong method", 405, "method_not_allowed", None),
    ],
)
def test_errors_are_openai_shaped_and_emitted(
    gateway, key, events_for, case, status, code, param
) -> None:
    request = {
        "bad json": dict(content=b"{oops"),
        "missing model": dict(json={"messages": [{"role": "user", "content": "x"}]}),
        "messages wrong type": dict(json={"model": "gpt-4o", "messages": "hi"}),
        "model too long": dict(json={**OK_BODY, "model": "m" * 257}),
        "role not a string": dict(json={**OK_BODY, "messages": [{"role": 1, "content": "x"}]}),
        "content neither string nor array": dict(
            json={**OK_BODY, "messages": [{"role": "user", "content": {"text": "x"}}]}
        ),
        "n below 1": dict(json={**OK_BODY, "n": 0}),
        "max_tokens below 1": dict(json={**OK_BODY, "max_tokens": 0}),
        "user an object": dict(json={**OK_BODY, "user": {"id": "u1"}}),
        "text/plain body": dict(
            content=orjson.dumps(OK_BODY), headers={"content-type": "text/plain"}
        ),
        "too large": dict(
            json={**OK_BODY, "pad": "x" * (gateway.settings.gateway.max_body_bytes + 1)}
        ),
        "model not allowed": dict(json={**OK_BODY, "model": "claude-3"}),
        "upstream 429": dict(json={**OK_BODY, "model": "mock-fail-429"}),
        "upstream 500": dict(json={**OK_BODY, "model": "mock-fail-500"}),
        "upstream timeout": dict(json={**OK_BODY, "model": "mock-timeout"}),
        "wrong method": dict(method="GET"),
    }.get(case, dict(json=OK_BODY))
    use_key = key
    if case == "no key":
        use_key = None
    elif case == "bad key":
        use_key = {"key": "ml-not-a-real-key"}
    elif case == "model not allowed":
        use_key = gateway.create_key(org="acme", models=["gpt-*"])
    response = _post(gateway, CHAT, use_key, **request)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "code", "param"}
    assert error["code"] == code and error["param"] == param
    if param:
        assert param in error["message"]
    if case == "upstream 429":
        assert response.headers["retry-after"] == "7"
    (event,) = events_for(gateway.settings, [response.headers["x-request-id"]])
    RequestEvent.model_validate(event)
    assert event["status_code"] == status and event["error_type"]


def test_unknown_model_is_404_model_not_found(start_gateway, monkeypatch, events_for) -> None:
    from meterline.settings import ProviderConfig

    gw = start_gateway(
        providers=[ProviderConfig(name="only", base_url="http://127.0.0.1:9/v1", models=["only-*"])]
    )
    key = gw.create_key(org="acme")
    response = _post(gw, CHAT, key, json=OK_BODY)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    (event,) = events_for(gw.settings, [response.headers["x-request-id"]])
    assert event["status_code"] == 404


def test_unreachable_upstream_is_502(start_gateway, events_for) -> None:
    from meterline.settings import ProviderConfig

    gw = start_gateway(providers=[ProviderConfig(name="down", base_url="http://127.0.0.1:9/v1")])
    key = gw.create_key(org="acme")
    for stream in (False, True):
        response = _post(gw, CHAT, key, json={**OK_BODY, "stream": stream})
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_unavailable"


def test_mid_stream_disconnect_is_reported_in_band_and_emitted(gateway, key, events_for) -> None:
    response = _post(
        gateway, CHAT, key, json={**OK_BODY, "model": "mock-disconnect", "stream": True}
    )
    assert response.status_code == 200
    assert '"upstream_unavailable"' in response.text
    (event,) = events_for(gateway.settings, [response.headers["x-request-id"]])
    assert event["status_code"] == 502 and event["error_type"] == "upstream_unavailable"


def test_unknown_paths_and_odd_inputs_never_500(gateway, key) -> None:
    assert _post(gateway, "/nope", key).json()["error"]["code"] == "not_found"
    odd_bodies = [
        b"",
        b"null",
        b"[]",
        b"[{}]",
        b'"x"',
        b"1e999999",
        b"{}",
        b'{"model": null}',
        b'{"model": "gpt-4o", "messages": null}',
        b'{"model": "gpt-4o", "messages": [null]}',
        b'{"model": "gpt-4o", "messages": [{"content": 12345678901234567890123}]}',
        b'{"model": "gpt-4o", "messages": [{"content": null}], "max_tokens": 1e300}',
        b'{"model": "gpt-4o", "messages": [{"content": "\xf0\x9f\x92\xa5 \xe2\x80\xae"}]}',
        b'{"model": "\\u0000", "messages": [{}]}',
        b"\xff\xfe\x00",
        b"{" * 10000,
        b'{"model": "gpt-4o", "messages": [{"role": "user"}], "stream": null,'
        b' "stream_options": null, "max_tokens": null}',
        b'{"model": "gpt-4o", "input": [[1, 2], "x", 3]}',
    ]
    statuses = []
    for path in (CHAT, "/v1/embeddings"):
        for body in odd_bodies:
            for content_type in ("application/json", "text/plain"):
                response = _post(
                    gateway, path, key, content=body, headers={"content-type": content_type}
                )
                statuses.append(response.status_code)
                assert response.status_code < 500
                assert "error" in response.json() or response.status_code == 200
    assert 400 in statuses and 200 in statuses
    admin = httpx.post(
        f"{gateway.url}/admin/keys",
        content=b"[1",
        headers={"Authorization": "Bearer test-admin-token"},
    )
    assert admin.status_code == 400 and "error" in admin.json()
    for body in ({"org": None}, {"org": "a", "rpm": "many"}, {"org": "a" * 10_000}, []):
        admin = httpx.post(
            f"{gateway.url}/admin/keys",
            json=body,
            headers={"Authorization": "Bearer test-admin-token"},
        )
        assert admin.status_code == 400, admin.text
    bad_header = httpx.post(
        f"{gateway.url}{CHAT}", json=OK_BODY, headers={"Authorization": b"Bearer \xe9\xff"}
    )
    assert bad_header.status_code == 401
    # a lying Content-Length, straight on the socket
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + key["key"].encode() + b"\r\n"
            b"Content-Length: 99999999999\r\n\r\n{}"
        )
        assert b" 413 " in sock.recv(65536).split(b"\r\n")[0] + b" "


def test_health_and_metrics(gateway, key) -> None:
    _post(gateway, CHAT, key, json=OK_BODY)
    health = httpx.get(f"{gateway.url}/healthz").json()
    assert health["status"] == "ok" and health["emitter"] == "connected"
    assert health["keys_loaded"] >= 1 and health["spool_size"] == 0
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert (
        'meterline_gateway_requests_total{endpoint="/v1/chat/completions",status="200"} 1'
        in metrics
    )
    assert "meterline_gateway_request_seconds_bucket" in metrics
    assert "meterline_gateway_spool_events 0" in metrics
