"""The official SDKs against the mock served by uvicorn on a free port; failure prefixes; stats."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
import uvicorn

from meterline.mock_provider import create_app, plan_for, usage_for
from meterline.ports import free_port

MESSAGES = [{"role": "user", "content": "hello mock!"}]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        create_app(), host="127.0.0.1", port=port, http="httptools", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


@pytest.fixture()
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=5) as client:
        client.post("/mock/reset")
        yield client


def test_anthropic_sdk_messages_stream_and_tools(base_url: str, http: httpx.Client) -> None:
    anthropic = pytest.importorskip("anthropic")  # a test dependency
    client = anthropic.Anthropic(base_url=base_url + "/d/claude", api_key="k", max_retries=0)
    body = {"model": "claude-x", "max_tokens": 64, "messages": MESSAGES}
    message = client.messages.create(**body)
    assert message.content[0].text == plan_for("messages", body).text
    assert message.usage.output_tokens == usage_for("messages", body)["output_tokens"]
    with client.messages.stream(**body) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == message.content[0].text and final.usage.output_tokens > 0
    tool = {"name": "lookup", "input_schema": {"type": "object"}}
    with client.messages.stream(**body, tools=[tool]) as stream:
        called = stream.get_final_message()
    assert called.stop_reason == "tool_use" and called.content[0].input == {
        "q": plan_for("messages", body).digest.hex()[:8]
    }
    counted = client.messages.count_tokens(model="c", messages=MESSAGES)
    assert counted.input_tokens == 6
    assert http.get("/mock/stats").json() == {
        "claude": {"/v1/messages": 3, "/v1/messages/count_tokens": 1}
    }


def test_openai_sdk_responses_completions_chat_azure(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="k", max_retries=0)
    response = client.responses.create(model="gpt-x", input="hello mock!")
    assert response.output_text == plan_for("responses", {"input": "hello mock!"}).text
    with client.responses.stream(model="gpt-x", input="hello mock!") as stream:
        final = stream.get_final_response()
    assert final.output_text == response.output_text and final.usage is not None
    completion = client.completions.create(model="i", prompt="hello mock!")
    streamed = client.completions.create(model="i", prompt="hello mock!", stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == completion.choices[0].text
    chat = client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert chat.usage is not None and chat.usage.prompt_tokens == 6
    azure = openai.AzureOpenAI(
        azure_endpoint=base_url, api_key="k", api_version="2024-10-21", max_retries=0
    )
    azure_chat = azure.chat.completions.create(model="east-gpt4", messages=MESSAGES)  # type: ignore[arg-type]
    assert azure_chat.model == "east-gpt4"


def test_fail_prefix_first_n_then_answers_and_counts(http: httpx.Client) -> None:
    path = "/d/east/fail/500x2/v1/chat/completions"
    body = {"model": "m", "messages": MESSAGES}
    statuses = [http.post(path, json=body).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    limited = http.post("/d/west/fail/429:3/v1/messages", json={"model": "c", "max_tokens": 5})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert http.post("/fail/503/v1/responses", json={}).json()["error"]["type"] == "server_error"
    context = http.post("/fail/context/v1/chat/completions", json=body)
    assert (
        context.status_code == 400 and context.json()["error"]["code"] == "context_length_exceeded"
    )
    assert http.post("/fail/nope/v1/chat/completions", json=body).status_code == 404
    http.post("/v1/chat/completions", content=b"not json")
    assert http.get("/mock/stats").json() == {
        "east": {"/v1/chat/completions": 3},
        "west": {"/v1/messages": 1},
        "default": {
            "/v1/responses": 1,
            "/v1/chat/completions": 2,
            "/fail/nope/v1/chat/completions": 1,
        },
    }
    http.post("/mock/reset")
    assert http.get("/mock/stats").json() == {}
    assert http.post(path, json=body).status_code == 500  # the xN budget is reset too


def test_timeout_disconnect_and_slow_stream(http: httpx.Client) -> None:
    body = {"model": "m", "messages": MESSAGES}
    with pytest.raises(httpx.ReadTimeout):
        http.post("/fail/timeout/v1/chat/completions", json=body, timeout=0.3)
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/fail/disconnect/v1/messages", json={**body, "max_tokens": 5})
    stream_body = {**body, "max_tokens": 5, "stream": True}
    received = []
    mid_stream = "/fail/disconnect-mid-stream/v1/messages"
    with (
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", mid_stream, json=stream_body) as r,
    ):
        assert r.status_code == 200
        for line in r.iter_lines():
            received.append(line)
    assert any("content_block_delta" in line for line in received)
    assert not any("message_stop" in line for line in received)
    started = time.monotonic()
    slow = http.post(
        "/fail/slow-stream:0.05/v1/responses", json={"model": "m", "input": "x", "stream": True}
    )
    assert slow.status_code == 200 and "response.completed" in slow.text
    assert time.monotonic() - started >= 0.05 * 5
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/fail/disconnectx1/v1/chat/completions", json=body)
    assert http.post("/fail/disconnectx1/v1/chat/completions", json=body).status_code == 200
    assert http.get("/mock/stats").json()["default"]["/v1/messages"] == 2
