"""The OTLP receiver over real HTTP: a real ingest service (broker, ClickHouse engine,
uvicorn on a free port), the official OTLP exporter and hand-made payloads. Every export
carries a virtual key, published on the control topic as the gateway's admin API does."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from ingest.server import IngestService, build_app
from meterline.kafka import consumer_config, create_topics, producer_config
from meterline.settings import Settings
from schemas.events.v1 import Event, IngestTokenRecord, KeyRecord, SpanEvent
from schemas.ids import deterministic_id, hash_key
from schemas.topics import CONTROL, SPANS
from tests.conftest import free_port, unique

pytestmark = pytest.mark.integration

MAX_BODY = 256 * 1024
SECRET = "ml-otlp-test-key"
KEY = KeyRecord(key_id="key_otlp", key_hash=hash_key(SECRET), org="acme", team="search")
AUTH = {"Authorization": f"Bearer {SECRET}"}
START = time.time_ns()
GENAI = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 42,
    "gen_ai.usage.output_tokens": 7,
    "gen_ai.prompt.0.content": "SECRET prompt text",
}


@pytest.fixture(scope="module")
def ingest(broker: Any, chdb_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("otlp"),
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=unique("t") + ".",
        topic_partitions=2,
        clickhouse_url=chdb_url,
        clickhouse_database=unique("db_"),
        ingest={
            "sink": {"group_id": unique("sink-"), "flush_interval_s": 0.2},
            "otlp": {"max_body_bytes": MAX_BODY},
        },
    )
    create_topics(settings)
    service = IngestService(settings)
    service.start()
    publish_control(settings, f"key:{KEY.key_id}", KEY)
    wait_for(lambda: service.credentials.book.lookup(SECRET))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(build_app(service), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    reader = SpanReader(settings)
    reader.service = service
    yield f"http://127.0.0.1:{port}", reader
    reader.close()
    server.should_exit = True
    thread.join(10)
    service.close()


def publish_control(settings: Settings, key: str, record: Event | None) -> None:
    """A control record (None: a tombstone), as the gateway's admin API publishes it."""
    producer = Producer(producer_config(settings))
    value = record.to_json() if record is not None else None
    producer.produce(settings.topic(CONTROL), key=key.encode(), value=value)
    assert producer.flush(10) == 0


class SpanReader:
    """Every record of the spans topic from the beginning, without a consumer group."""

    service: Any = None

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._consumer = Consumer(consumer_config(settings, group_id=None))
        self._consumer.assign(
            [
                TopicPartition(settings.topic(SPANS), partition, OFFSET_BEGINNING)
                for partition in range(settings.topic_partitions)
            ]
        )
        self.records: list[tuple[bytes, SpanEvent]] = []

    def spans_of(self, trace_id: str, count: int, timeout_s: float = 20.0) -> list[SpanEvent]:
        deadline = time.monotonic() + timeout_s
        while True:
            found = [event for _, event in self.records if event.trace_id == trace_id]
            if len(found) >= count:
                return found
            assert time.monotonic() < deadline, f"only {len(found)} spans of {trace_id}"
            message = self._consumer.poll(0.2)
            if message is not None and message.error() is None:
                event = SpanEvent.model_validate_json(message.value())
                assert message.key() == event.trace_id.encode()  # keyed by trace id
                self.records.append((message.key(), event))

    def close(self) -> None:
        self._consumer.close()


def kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def proto_export(trace_id: bytes, spans: list[tuple[bytes, dict[str, Any]]]) -> bytes:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[kv("service.name", "shop")]),
                scope_spans=[
                    ScopeSpans(
                        spans=[
                            Span(
                                trace_id=trace_id,
                                span_id=span_id,
                                name="chat gpt-4o-mini",
                                kind=Span.SPAN_KIND_CLIENT,
                                start_time_unix_nano=START,
                                end_time_unix_nano=START + 5_000_000,
                                attributes=[kv(k, v) for k, v in attributes.items()],
                            )
                            for span_id, attributes in spans
                        ]
                    )
                ],
            )
        ]
    ).SerializeToString()


def json_export(trace_id: str, spans: list[dict[str, Any]]) -> bytes:
    return orjson.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "bot"}}]
                    },
                    "scopeSpans": [{"spans": [{"traceId": trace_id, **s} for s in spans]}],
                }
            ]
        }
    )


def json_span(span_id: str, **attributes: Any) -> dict[str, Any]:
    values = []
    for key, value in attributes.items():
        typed = {"intValue": str(value)} if isinstance(value, int) else {"stringValue": value}
        values.append({"key": key.replace("__", "."), "value": typed})
    return {
        "spanId": span_id,
        "name": "chat",
        "kind": 3,
        "startTimeUnixNano": str(START),
        "endTimeUnixNano": str(START + 1_000_000),
        "status": {"code": 1},
        "attributes": values,
    }


def new_trace() -> bytes:
    return bytes.fromhex(unique("")[:10].rjust(32, "a"))


def test_protobuf_gzip_and_json_exports_become_span_events(ingest: Any) -> None:
    base, reader = ingest
    proto_trace, json_trace = new_trace(), new_trace().hex()
    body = gzip.compress(proto_export(proto_trace, [(b"\x01" * 8, GENAI)]))

    with httpx.Client(base_url=base, timeout=20) as http:
        proto = http.post(
            "/v1/traces",
            content=body,
            headers={**AUTH, "Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        )
        as_json = http.post(
            "/v1/traces",
            content=json_export(
                json_trace,
                [
                    json_span(
                        "00000000000000a1",
                        gen_ai__operation__name="chat",
                        gen_ai__system="anthropic",
                        gen_ai__response__model="claude-3-5-haiku-20241022",
                        gen_ai__usage__input_tokens=11,
                        gen_ai__usage__output_tokens=3,
                        custom__flag="on",
                    )
                ],
            ),
            headers={**AUTH, "Content-Type": "application/json"},
        )

    assert proto.status_code == 200 and proto.headers["content-type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(proto.content).HasField("partial_success")
    assert as_json.status_code == 200 and as_json.json() == {}
    (from_proto,) = reader.spans_of(proto_trace.hex(), 1)
    assert (from_proto.kind, from_proto.provider, from_proto.model) == (
        "LLM",
        "openai",
        "gpt-4o-mini",
    )
    assert (from_proto.input_tokens, from_proto.output_tokens) == (42, 7)
    assert from_proto.service_name == "shop" and from_proto.operation == "chat"
    assert "SECRET" not in from_proto.to_json().decode()
    assert from_proto.attributes["gen_ai.prompt.chars"] == str(len("SECRET prompt text"))
    (from_json,) = reader.spans_of(json_trace, 1)
    assert from_json.model == "claude-3-5-haiku-20241022" and from_json.provider == "anthropic"
    assert (from_json.input_tokens, from_json.output_tokens) == (11, 3)
    assert from_json.attributes["custom.flag"] == "on" and from_json.status == "ok"
    assert from_json.event_id == deterministic_id("span", json_trace, "00000000000000a1")

    # The sink stores them; the read API shows the trace (no processors here: no cost).
    def stored() -> dict[str, Any] | None:
        body = httpx.get(f"{base}/api/traces/{json_trace}", timeout=10).json()
        return body if body["span_count"] == 1 else None

    trace = wait_for(stored)
    assert trace["spans"][0]["model"] == "claude-3-5-haiku-20241022"
    assert trace["spans"][0]["cost_usd"] is None and trace["cost_usd"] == "0"


def test_the_official_otlp_exporter_is_understood(ingest: Any) -> None:
    base, reader = ingest
    provider = TracerProvider(resource=SdkResource.create({"service.name": "sdk-app"}))
    exporter = OTLPSpanExporter(
        endpoint=f"{base}/v1/traces", compression=Compression.Gzip, headers=AUTH
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")

    with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as span:
        for key, value in GENAI.items():
            span.set_attribute(key, value)
        span.set_attribute("gen_ai.response.finish_reasons", ["stop"])
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()

    (event,) = reader.spans_of(trace_id, 1)
    assert event.service_name == "sdk-app" and event.kind == "LLM"
    assert event.finish_reasons == ["stop"] and event.input_tokens == 42
    assert event.attributes["otel.span.kind"] == "CLIENT"


def test_bad_payloads_get_otlp_errors_and_never_a_500(ingest: Any) -> None:
    base, _ = ingest
    protobuf = {**AUTH, "Content-Type": "application/x-protobuf"}
    as_json = {**AUTH, "Content-Type": "application/json"}
    bomb = gzip.compress(b"\0" * (MAX_BODY * 40))
    assert len(bomb) < MAX_BODY

    with httpx.Client(base_url=base, timeout=20) as http:
        garbage = http.post("/v1/traces", content=b"\xff\xff\xff\xff garbage", headers=protobuf)
        not_json = http.post("/v1/traces", content=b"{nope", headers=as_json)
        wrong_type = http.post(
            "/v1/traces", content=b"hello", headers={**AUTH, "Content-Type": "text/plain"}
        )
        too_big = http.post("/v1/traces", content=b"x" * (MAX_BODY + 1), headers=as_json)
        zip_bomb = http.post(
            "/v1/traces", content=bomb, headers={**protobuf, "Content-Encoding": "gzip"}
        )
        brotli = http.post(
            "/v1/traces", content=b"{}", headers={**as_json, "Content-Encoding": "br"}
        )
        bad_gzip = http.post(
            "/v1/traces", content=b"not gzip", headers={**as_json, "Content-Encoding": "gzip"}
        )
        structure = http.post("/v1/traces", content=b'{"resourceSpans": 3}', headers=as_json)

    assert garbage.status_code == 400
    assert "not an OTLP ExportTraceServiceRequest" in Status.FromString(garbage.content).message
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["message"]
    assert wrong_type.status_code == 415 and "text/plain" in wrong_type.json()["message"]
    assert too_big.status_code == 413 and str(MAX_BODY) in too_big.json()["message"]
    assert zip_bomb.status_code == 413
    assert brotli.status_code == 415 and "'br'" in brotli.json()["message"]
    assert bad_gzip.status_code == 400 and "gzip" in bad_gzip.json()["message"]
    assert structure.status_code == 400 and "resourceSpans" in structure.json()["message"]


def test_partially_bad_exports_and_re_exports(ingest: Any) -> None:
    base, reader = ingest
    trace = new_trace().hex()
    good = json_span("00000000000000b1", llm__token_count__prompt=5)
    spans = [
        good,
        json_span("00000000000000b2", llm__token_count__prompt=-3),
        {**json_span("00000000000000b3"), "spanId": "xyz"},
    ]

    with httpx.Client(base_url=base, timeout=20) as http:
        partial = http.post(
            "/v1/traces",
            content=json_export(trace, spans),
            headers={**AUTH, "Content-Type": "application/json"},
        )
        again = http.post(
            "/v1/traces",
            content=proto_export(bytes.fromhex(trace), [(bytes.fromhex("00000000000000b1"), {})]),
            headers={**AUTH, "Content-Type": "application/x-protobuf"},
        )

    assert partial.status_code == 200
    success = partial.json()["partialSuccess"]
    assert int(success["rejectedSpans"]) == 2
    message = success["errorMessage"]
    assert message.startswith("2 of 3 spans rejected")
    assert "llm.token_count.prompt must be a non-negative integer" in message
    assert "spans[2]: id 'xyz' is not hex" in message
    assert again.status_code == 200
    events = reader.spans_of(trace, 2)
    assert {event.span_id for event in events} == {"00000000000000b1"}
    assert len({event.event_id for event in events}) == 1  # a re-export dedupes downstream


def wait_for(check: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def test_exports_without_a_valid_credential_get_401_and_publish_nothing(ingest: Any) -> None:
    base, reader = ingest
    forged = new_trace().hex()
    body = json_export(forged, [json_span("00000000000000c1", gen_ai__usage__input_tokens=9)])
    as_json = {"Content-Type": "application/json"}

    with httpx.Client(base_url=base, timeout=20) as http:
        anonymous = http.post("/v1/traces", content=body, headers=as_json)
        unknown = http.post(
            "/v1/traces", content=body, headers={**as_json, "Authorization": "Bearer ml-forged"}
        )
        basic = http.post(
            "/v1/traces", content=body, headers={**as_json, "Authorization": f"Basic {SECRET}"}
        )
        as_proto = http.post(
            "/v1/traces",
            content=proto_export(bytes.fromhex(forged), [(b"\x02" * 8, GENAI)]),
            headers={"Content-Type": "application/x-protobuf"},
        )
        # Refused before anything else is looked at, whatever the body.
        wrong_type = http.post("/v1/traces", content=b"x", headers={"Content-Type": "text/plain"})

    for response in (anonymous, unknown, basic, wrong_type):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["code"] == 16  # google.rpc.Code UNAUTHENTICATED
    assert "missing credential" in anonymous.json()["message"]
    assert "unknown or revoked credential" in unknown.json()["message"]
    assert as_proto.status_code == 401
    assert Status.FromString(as_proto.content).code == 16

    # A valid export sent afterwards arrives; the refused ones never reached the topic.
    valid = new_trace().hex()
    ok = httpx.post(
        f"{base}/v1/traces",
        content=json_export(valid, [json_span("00000000000000c2")]),
        headers={**AUTH, **as_json},
        timeout=20,
    )
    assert ok.status_code == 200
    reader.spans_of(valid, 1)
    assert not [event for _, event in reader.records if event.trace_id == forged]
    health = httpx.get(f"{base}/healthz", timeout=10).json()
    assert health["otlp"]["unauthenticated"] >= 5
    # /metrics: the same counters, for Prometheus
    metrics = httpx.get(f"{base}/metrics", timeout=10)
    assert metrics.headers["content-type"].startswith("text/plain")
    scraped = _samples(metrics.text)
    now = httpx.get(f"{base}/healthz", timeout=10).json()
    assert scraped["meterline_ingest_otlp_unauthenticated_total"] == now["otlp"]["unauthenticated"]
    assert scraped["meterline_ingest_otlp_spans_accepted_total"] >= 1
    assert scraped["meterline_ingest_sink_rows_written_total"] >= 0
    assert "meterline_ingest_sink_pending_rows" in scraped


def _samples(text: str) -> dict[str, float]:
    """name -> value of each unlabelled sample of a Prometheus text page."""
    return {
        name: float(value)
        for name, _, value in (line.partition(" ") for line in text.splitlines())
        if name and not name.startswith("#")
    }


def test_claimed_attribution_is_replaced_and_implausible_tokens_refused(ingest: Any) -> None:
    base, reader = ingest
    trace = new_trace().hex()
    document = orjson.loads(
        json_export(
            trace,
            [
                json_span(
                    "00000000000000d1",
                    gen_ai__operation__name="chat",
                    gen_ai__request__model="gpt-4o",
                    gen_ai__usage__input_tokens=100_000_000,
                ),
                json_span(
                    "00000000000000d2",
                    gen_ai__operation__name="chat",
                    gen_ai__request__model="gpt-4o",
                    gen_ai__usage__input_tokens=42,
                    meterline__team="payments",
                ),
            ],
        )
    )
    # The forgery of issue 10: the resource claims another org and key.
    document["resourceSpans"][0]["resource"]["attributes"] += [
        {"key": "meterline.org", "value": {"stringValue": "victim"}},
        {"key": "meterline.key_id", "value": {"stringValue": "key_victim"}},
    ]

    response = httpx.post(
        f"{base}/v1/traces",
        content=orjson.dumps(document),
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=20,
    )

    assert response.status_code == 200
    success = response.json()["partialSuccess"]
    assert int(success["rejectedSpans"]) == 1
    message = success["errorMessage"]
    assert "input_tokens 100000000 is beyond the plausible 10000000 tokens per span" in message
    assert (
        "claimed attribution ignored on 1 spans (meterline.key_id='key_victim', "
        "meterline.org='victim', meterline.team='payments')"
    ) in message
    assert "attributed to the credential key:key_otlp (org 'acme')" in message
    (event,) = reader.spans_of(trace, 1)
    assert event.span_id == "00000000000000d2" and event.input_tokens == 42
    assert (event.key_id, event.org, event.team, event.project) == (
        "key_otlp",
        "acme",
        "search",
        "",
    )
    assert not any(key.startswith("meterline.") for key in event.attributes)
    health = httpx.get(f"{base}/healthz", timeout=10).json()
    assert health["otlp"]["spans_with_dropped_claims"] >= 1


def test_an_ingest_token_attributes_to_its_org_until_revoked(ingest: Any) -> None:
    base, reader = ingest
    settings, book = reader.settings, reader.service.credentials.book
    token = IngestTokenRecord(
        token_id="itok_test", token_hash=hash_key("mli-test"), org="acme", team="ml"
    )
    publish_control(settings, "ingest_token:itok_test", token)
    wait_for(lambda: book.lookup("mli-test"))
    headers = {"Authorization": "Bearer mli-test", "Content-Type": "application/json"}
    trace = new_trace().hex()

    accepted = httpx.post(
        f"{base}/v1/traces",
        content=json_export(trace, [json_span("00000000000000e1", llm__token_count__prompt=3)]),
        headers=headers,
        timeout=20,
    )

    assert accepted.status_code == 200 and accepted.json() == {}
    (event,) = reader.spans_of(trace, 1)
    assert (event.key_id, event.org, event.team) == (None, "acme", "ml")

    publish_control(settings, "ingest_token:itok_test", None)  # revoked (tombstone)
    wait_for(lambda: book.lookup("mli-test") is None)
    refused = httpx.post(
        f"{base}/v1/traces",
        content=json_export(trace, [json_span("00000000000000e2")]),
        headers=headers,
        timeout=20,
    )
    assert refused.status_code == 401
