"""An app instrumented with OpenTelemetry + OpenInference exports its spans over real
OTLP/HTTP to the stack's ingest, authenticated by a virtual key configured the standard
way (OTEL_EXPORTER_OTLP_HEADERS). Calling the (mock) provider directly, its LLM span is
stored with its tokens and costed exactly. Calling through the gateway with the trace
context propagated, the gateway's span joins the app's trace under the app's LLM span,
and the call is costed once. No prompt text is stored."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from genai_prices import Usage, calc_price

from meterline.runtime import Stack
from meterline.settings import Settings
from tests.conftest import free_port, unique

pytestmark = pytest.mark.e2e

PROMPT = "Where is my order #4711? It was due yesterday."

APP = textwrap.dedent(
    """
    import json
    import sys

    from openai import OpenAI
    from openinference.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    import httpx
    from opentelemetry.propagate import inject

    traces_url, provider_url, prompt, api_key = sys.argv[1:5]
    resource = Resource.create(
        {"service.name": "support-bot", "meterline.org": "acme", "meterline.team": "support"}
    )
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=traces_url)))
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)

    # W3C trace context on every request, as an app propagating its traces does.
    http_client = httpx.Client(event_hooks={"request": [lambda request: inject(request.headers)]})
    client = OpenAI(base_url=provider_url, api_key=api_key, http_client=http_client)
    with tracer_provider.get_tracer("support-bot").start_as_current_span("answer-ticket") as root:
        completion = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
        )
        trace_id = format(root.get_span_context().trace_id, "032x")
    tracer_provider.shutdown()
    print(json.dumps({"trace_id": trace_id, "usage": completion.usage.model_dump()}))
    """
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("traces"),
        topic_prefix=unique("e2e") + ".",
        topic_partitions=2,
        gateway_port=free_port(),
        ingest_port=free_port(),
        processors_port=free_port(),
        broker_port=free_port(),
        mock_provider_port=free_port(),
        dashboard_port=free_port(),
        admin_token="e2e-admin-token",
        processors={"app_id": unique("e2e-procs-")},
        ingest={"sink": {"group_id": unique("e2e-sink-")}},
    )
    instance = Stack(settings, mock_provider=True, progress=print)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


def create_key(stack: Stack) -> dict[str, Any]:
    s = stack.settings
    response = httpx.post(
        f"http://{s.host}:{s.gateway_port}/admin/keys",
        json={"org": "acme", "team": "support"},
        headers={"Authorization": "Bearer e2e-admin-token"},
        timeout=15,
    )
    assert response.status_code == 201, response.text
    key = dict(response.json())
    # Ingest learns the key from the control topic: an empty export says when it has.
    deadline = time.monotonic() + 30
    while (
        httpx.post(
            f"http://{s.host}:{s.ingest_port}/v1/traces",
            content=b"{}",
            headers={"Authorization": f"Bearer {key['key']}", "Content-Type": "application/json"},
            timeout=10,
        ).status_code
        != 200
    ):
        assert time.monotonic() < deadline, "ingest never accepted the new key"
        time.sleep(0.1)
    return key


def run_instrumented_app(
    stack: Stack,
    tmp_path: Path,
    otlp_key: str,
    base_url: str | None = None,
    api_key: str = "unused",
) -> dict[str, Any]:
    s = stack.settings
    script = tmp_path / "support_bot.py"
    script.write_text(APP)
    # The standard OpenTelemetry exporter setting is all the app needs for ingest's auth.
    env = {**os.environ, "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{otlp_key}"}
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            f"http://{s.host}:{s.ingest_port}/v1/traces",
            base_url or f"http://{s.host}:{s.mock_provider_port}/v1",
            PROMPT,
            api_key,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(orjson.loads(result.stdout.strip().splitlines()[-1]))


def test_an_instrumented_apps_llm_span_is_stored_and_costed(stack: Stack, tmp_path: Path) -> None:
    s = stack.settings
    key = create_key(stack)
    app = run_instrumented_app(stack, tmp_path, key["key"])
    url = f"http://{s.host}:{s.ingest_port}/api/traces/{app['trace_id']}"

    def costed_trace() -> dict[str, Any] | None:
        response = httpx.get(url, timeout=10)
        assert response.status_code == 200, response.text
        body = response.json()
        llm = [span for span in body["spans"] if span["kind"] == "LLM"]
        return body if body["span_count"] == 2 and llm and llm[0]["cost_usd"] else None

    deadline = time.monotonic() + 60
    trace = costed_trace()
    while trace is None:
        assert time.monotonic() < deadline, f"trace not costed: {httpx.get(url).text}"
        time.sleep(0.25)
        trace = costed_trace()

    (llm,) = [span for span in trace["spans"] if span["kind"] == "LLM"]
    (root,) = [span for span in trace["spans"] if span["name"] == "answer-ticket"]
    usage = app["usage"]
    assert llm["parent_span_id"] == root["span_id"]
    assert llm["service_name"] == "support-bot" and llm["provider"] == "openai"
    assert llm["model"] == "gpt-4o-mini"
    assert (llm["org"], llm["team"]) == ("acme", "support")
    assert (llm["input_tokens"], llm["output_tokens"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    expected = calc_price(
        Usage(
            input_tokens=llm["input_tokens"],
            output_tokens=llm["output_tokens"],
            cache_read_tokens=llm["cache_read_tokens"],
        ),
        model_ref="gpt-4o-mini",
    ).total_price
    assert Decimal(llm["cost_usd"]) == expected > 0
    assert llm["priced"] is True and llm["price_source"].startswith("genai-prices@")
    assert root["cost_usd"] is None  # a plain parent span is not costed
    assert Decimal(trace["cost_usd"]) == expected
    # Prompt text is not stored, only its size.
    assert "#4711" not in orjson.dumps(trace).decode()
    assert int(llm["attributes"]["llm.input_messages.chars"]) >= len(PROMPT)


def test_a_call_through_the_gateway_joins_the_apps_trace_and_is_costed_once(
    stack: Stack, tmp_path: Path
) -> None:
    s = stack.settings
    gateway = f"http://{s.host}:{s.gateway_port}"
    key = create_key(stack)
    app = run_instrumented_app(stack, tmp_path, key["key"], f"{gateway}/v1", key["key"])
    url = f"http://{s.host}:{s.ingest_port}/api/traces/{app['trace_id']}"

    def joined_trace() -> dict[str, Any] | None:
        body = httpx.get(url, timeout=10).json()
        gateway_spans = [x for x in body["spans"] if x["service_name"] == "meterline-gateway"]
        if body["span_count"] == 3 and gateway_spans and gateway_spans[0]["cost_usd"]:
            return dict(body)
        return None

    deadline = time.monotonic() + 60
    trace = joined_trace()
    while trace is None:
        assert time.monotonic() < deadline, f"trace not joined: {httpx.get(url).text}"
        time.sleep(0.25)
        trace = joined_trace()

    (llm,) = [
        x for x in trace["spans"] if x["kind"] == "LLM" and x["service_name"] == "support-bot"
    ]
    (proxied,) = [x for x in trace["spans"] if x["service_name"] == "meterline-gateway"]
    assert proxied["parent_span_id"] == llm["span_id"]  # the gateway's span is the app's child
    usage = app["usage"]
    assert (proxied["input_tokens"], proxied["output_tokens"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert proxied["key_id"] == key["key_id"] and proxied["org"] == "acme"
    expected = calc_price(
        Usage(input_tokens=usage["prompt_tokens"], output_tokens=usage["completion_tokens"]),
        model_ref="gpt-4o-mini",
    ).total_price
    assert Decimal(proxied["cost_usd"]) == expected
    # The app's own LLM span describes the same call: it is not costed a second time.
    time.sleep(2.0)
    trace = httpx.get(url, timeout=10).json()
    (llm,) = [
        x for x in trace["spans"] if x["kind"] == "LLM" and x["service_name"] == "support-bot"
    ]
    assert llm["cost_usd"] is None
    assert Decimal(trace["cost_usd"]) == expected
