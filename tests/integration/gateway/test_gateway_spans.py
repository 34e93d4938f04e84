"""Gateway spans over the real stack: openai SDK with a W3C traceparent -> gateway -> mock
provider; the SpanEvent is read back from the spans topic of the real broker, and joins
the RequestEvent on trace_id."""

from __future__ import annotations

import httpx
import openai
import pytest

from schemas.events import RequestEvent, SpanEvent
from schemas.signature import prompt_signature
from schemas.topics import SPANS

pytestmark = pytest.mark.integration

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
PROMPT = "Summarize the refund policy for order 1234, please."


@pytest.fixture
def gateway(start_gateway, monkeypatch):
    monkeypatch.setenv("METERLINE_TEST_UPSTREAM_KEY", "sk-upstream")
    return start_gateway()


def _spans_for(read_events, settings, request_ids: list[str]) -> list[SpanEvent]:
    wanted = set(request_ids)
    events = read_events(
        settings,
        lambda evs: wanted <= {e["attributes"].get("meterline.request_id") for e in evs},
        topic=SPANS,
    )
    by_id = {e["attributes"]["meterline.request_id"]: e for e in events}
    return [SpanEvent.model_validate(by_id[r]) for r in request_ids]


def test_a_traced_chat_request_yields_a_child_span_joined_to_its_request_event(
    gateway, read_events, events_for
) -> None:
    key = gateway.create_key(org="acme", team="search", project="p1", user="ana")
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key["key"], max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": PROMPT}],
        extra_headers={"traceparent": f"00-{TRACE}-{PARENT}-01", "x-session-id": "sess-9"},
    )
    completion = raw.parse()
    request_id = raw.headers["x-request-id"]

    (span,) = _spans_for(read_events, gateway.settings, [request_id])
    (request,) = events_for(gateway.settings, [request_id])

    assert (span.trace_id, span.parent_span_id) == (TRACE, PARENT)
    assert span.span_id != PARENT and span.status == "unset"
    assert (span.kind, span.operation, span.service_name) == ("LLM", "chat", "meterline-gateway")
    assert span.attributes["meterline.source"] == "gateway"
    assert (span.key_id, span.org, span.team, span.project, span.user, span.session_id) == (
        key["key_id"],
        "acme",
        "search",
        "p1",
        "ana",
        "sess-9",
    )
    assert (span.input_tokens, span.output_tokens) == (
        completion.usage.prompt_tokens,
        completion.usage.completion_tokens,
    )
    assert (span.model, span.provider, span.finish_reasons) == ("gpt-4o-mini", "openai", ["stop"])
    event = RequestEvent.model_validate(request)
    assert event.trace_id == TRACE
    assert event.prompt_signature == prompt_signature(PROMPT)
    assert (event.input_tokens, event.output_tokens) == (span.input_tokens, span.output_tokens)


def test_untraced_and_failed_requests_start_their_own_traces(
    gateway, read_events, events_for
) -> None:
    key = gateway.create_key(org="acme")
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key["key"], max_retries=0)
    embedded = client.embeddings.with_raw_response.create(model="emb-small", input="two words")
    refused = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]},
        headers={"Authorization": "Bearer not-a-key"},
        timeout=10,
    )
    assert refused.status_code == 401
    ids = [embedded.headers["x-request-id"], refused.headers["x-request-id"]]

    embedding_span, refused_span = _spans_for(read_events, gateway.settings, ids)
    embedding_event, refused_event = events_for(gateway.settings, ids)

    assert embedding_span.kind == "EMBEDDING" and embedding_span.parent_span_id is None
    assert embedding_span.input_tokens == embedded.parse().usage.prompt_tokens
    assert embedding_event["trace_id"] == embedding_span.trace_id
    assert embedding_event["prompt_signature"] == prompt_signature("two words")
    assert refused_span.status == "error" and refused_span.key_id is None
    assert refused_span.attributes["error.type"] == refused_event["error_type"]
    assert refused_event["trace_id"] == refused_span.trace_id != embedding_span.trace_id
