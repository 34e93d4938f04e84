"""Hot-route fuzz: hand-made malformed bodies never get a 5xx (issues 10 and 12).

Hypothesis builds chat, completions, embeddings, Responses and Messages bodies field by
field, each field either a valid value or any JSON value, plus raw non-JSON bodies, odd
content types and long header values; every case goes through the real gateway, mock
upstream and broker (Messages to an OpenAI-style upstream: translated). Every 4xx must
be in the route's own error shape (Anthropic's on /v1/messages, OpenAI's elsewhere), and
every request must leave exactly one RequestEvent, bounded. Derandomized, so a failure
reproduces.
"""

from __future__ import annotations

import json
import string
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import RequestEvent

pytestmark = pytest.mark.integration

CASES = 1000

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a valid value (4 in 5), else any JSON value at all."""
    return st.integers(min_value=0, max_value=4).flatmap(
        lambda pick: json_values if pick == 4 else valid
    )


models = field(
    st.sampled_from(["gpt-4o", "mock-gpt", "gpt-4o-mini"])
    | st.text(min_size=1, max_size=300).filter(lambda m: not m.startswith("mock-"))
)
parts = st.fixed_dictionaries(
    {"type": field(st.sampled_from(["text", "image_url"]))},
    optional={"text": field(st.text(max_size=30)), "image_url": json_values},
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "role": field(st.sampled_from(["user", "assistant", "system", "tool", "developer"])),
        "content": field(st.text(max_size=40) | st.lists(parts, max_size=3)),
        "tool_calls": json_values,
        "name": field(st.text(max_size=10)),
    },
)
chat_bodies = st.fixed_dictionaries(
    {"model": models, "messages": field(st.lists(messages, min_size=1, max_size=3))},
    optional={
        "stream": field(st.booleans()),
        "stream_options": field(st.fixed_dictionaries({"include_usage": field(st.booleans())})),
        "max_tokens": field(st.integers(min_value=-2, max_value=40)),
        "max_completion_tokens": field(st.integers(min_value=-2, max_value=40)),
        "n": field(st.integers(min_value=-1, max_value=130)),
        "user": field(st.text(max_size=10)),
        "tools": json_values,
        "temperature": json_values,
    },
)
embeddings_bodies = st.fixed_dictionaries(
    {"model": models},
    optional={
        "input": field(
            st.text(max_size=40)
            | st.lists(st.text(max_size=10), max_size=3)
            | st.lists(st.lists(st.integers(min_value=0, max_value=100), max_size=3), max_size=3)
        ),
        "user": field(st.text(max_size=10)),
        "encoding_format": json_values,
    },
)
blocks = st.fixed_dictionaries(
    {"type": field(st.sampled_from(["text", "image", "tool_use", "tool_result"]))},
    optional={
        "text": field(st.text(max_size=30)),
        "id": field(st.text(max_size=8)),
        "name": field(st.text(max_size=8)),
        "input": json_values,
        "tool_use_id": field(st.text(max_size=8)),
        "content": json_values,
        "source": json_values,
    },
)
anthropic_messages = st.fixed_dictionaries(
    {},
    optional={
        "role": field(st.sampled_from(["user", "assistant"])),
        "content": field(st.text(max_size=40) | st.lists(blocks, max_size=3)),
    },
)
messages_bodies = st.fixed_dictionaries(
    {
        "model": models,
        "messages": field(st.lists(anthropic_messages, min_size=1, max_size=3)),
        "max_tokens": field(st.integers(min_value=-2, max_value=40)),
    },
    optional={
        "system": field(st.text(max_size=20) | st.lists(blocks, max_size=2)),
        "stream": field(st.booleans()),
        "tools": json_values,
        "tool_choice": json_values,
        "stop_sequences": json_values,
        "metadata": json_values,
    },
)
responses_bodies = st.fixed_dictionaries(
    {"model": models, "input": field(st.text(max_size=40) | st.lists(messages, max_size=3))},
    optional={
        "instructions": field(st.text(max_size=20)),
        "stream": field(st.booleans()),
        "max_output_tokens": field(st.integers(min_value=-2, max_value=64)),
        "tools": json_values,
        "previous_response_id": field(st.text(max_size=12)),
    },
)
completions_bodies = st.fixed_dictionaries(
    {"model": models, "prompt": field(st.text(max_size=40) | st.lists(st.text(), max_size=3))},
    optional={
        "stream": field(st.booleans()),
        "max_tokens": field(st.integers(min_value=-2, max_value=40)),
        "n": field(st.integers(min_value=-1, max_value=130)),
        "echo": json_values,
    },
)
header_text = st.text(alphabet=string.ascii_letters + string.digits + " -_/.;=", max_size=400).map(
    lambda text: text.strip() or "x"  # HTTP header values carry no edge whitespace
)


def _dumps(value: Any) -> bytes:
    # the standard library writes integers of any size (orjson stops at 64 bits)
    return json.dumps(value, ensure_ascii=False).encode()


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str]]:
    path, bodies = draw(
        st.sampled_from(
            [
                ("/v1/chat/completions", chat_bodies),
                ("/v1/embeddings", embeddings_bodies),
                ("/v1/completions", completions_bodies),
                ("/v1/responses", responses_bodies),
                ("/v1/messages", messages_bodies),
            ]
        )
    )
    pick = draw(st.integers(min_value=0, max_value=9))  # 8 in 10: a body of the route
    if pick < 8:
        raw = draw(bodies.map(_dumps))
    else:
        raw = draw(json_values.map(_dumps) if pick == 8 else st.binary(max_size=40))
    other_types = ["text/plain", "application/x-www-form-urlencoded", "application/json; x=1"]
    pick = draw(st.integers(min_value=0, max_value=9))  # 7 in 10: plain JSON
    headers = {"content-type": "application/json" if pick < 7 else other_types[pick - 7]}
    for name in ("x-session-id", "x-meterline-app", "user-agent", "traceparent"):
        value = draw(st.none() | header_text)
        if value is not None:
            headers[name] = value
    return path, raw, headers


def _assert_error_shape(path: str, response: httpx.Response) -> None:
    body = response.json()
    error = body["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str)
    if path == "/v1/messages":  # Anthropic's shape
        assert body["type"] == "error" and set(error) == {"type", "message"}
    else:
        assert "code" in error and "param" in error


def test_malformed_bodies_never_get_a_5xx(start_gateway, read_events) -> None:
    gateway = start_gateway()
    secret = gateway.create_key(org="acme")["key"]
    statuses: dict[int, int] = {}
    request_ids: list[str] = []

    with httpx.Client(base_url=gateway.url, timeout=30) as client:

        @settings(
            max_examples=CASES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(case=cases())
        def check(case: tuple[str, bytes, dict[str, str]]) -> None:
            path, raw, headers = case
            headers = {**headers, "authorization": f"Bearer {secret}"}
            response = client.post(path, content=raw, headers=headers)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500, (path, raw[:300], headers, response.text)
            if response.status_code >= 400:
                _assert_error_shape(path, response)
            request_ids.append(response.headers["x-request-id"])

        check()

    assert sum(statuses.values()) >= CASES
    # both valid and invalid requests were exercised, not one kind only
    assert statuses.get(200, 0) >= CASES // 20 and statuses.get(400, 0) >= CASES // 20, statuses
    wanted = set(request_ids)
    events = read_events(
        gateway.settings, lambda evs: wanted <= {e["request_id"] for e in evs}, timeout_s=60
    )
    mine = [e for e in events if e["request_id"] in wanted]
    assert len(mine) == len(wanted)  # one event per request, whatever it sent
    for event in mine:
        event.pop("_key")
        RequestEvent.model_validate(event)
        assert len(orjson.dumps(event)) < 8192
