"""OTLP decoding: body (content type, gzip, size caps), protobuf and JSON encodings."""

from __future__ import annotations

import gzip
import random
from typing import Any

import orjson
import pytest
from google.protobuf.json_format import Parse
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import (
    ResourceSpans,
    ScopeSpans,
    Span,
)
from opentelemetry.proto.trace.v1.trace_pb2 import (
    Status as SpanStatus,
)

from ingest.otlp.body import decompress, encoding_of
from ingest.otlp.decode_json import decode_json
from ingest.otlp.decode_proto import decode_protobuf
from ingest.otlp.errors import (
    MalformedPayloadError,
    OtlpError,
    PayloadTooLargeError,
    UnsupportedMediaError,
)
from ingest.otlp.receiver import receive_spans
from ingest.otlp.response import error_reply, export_reply
from ingest.otlp.spans import RejectedSpan

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN = bytes.fromhex("eee19b7ec3c1b174")
PARENT = bytes.fromhex("eee19b7ec3c1b173")
START = 1_700_000_000_123_456_789
END = START + 250_000_000


def kv(key: str, value: Any) -> KeyValue:
    return KeyValue(key=key, value=any_value(value))


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=[kv(k, v) for k, v in value.items()]))
    return AnyValue(string_value=value)


def proto_span(span_id: bytes = SPAN, trace_id: bytes = TRACE, **attributes: Any) -> Span:
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=PARENT,
        name="chat gpt-4o-mini",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=START,
        end_time_unix_nano=END,
        status=SpanStatus(code=SpanStatus.STATUS_CODE_ERROR, message="upstream 500"),
        attributes=[kv(k.replace("__", "."), v) for k, v in attributes.items()],
    )


def proto_request(*spans: Span, service: str = "shop") -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[kv("service.name", service)]),
                scope_spans=[ScopeSpans(spans=list(spans))],
            )
        ]
    )


def json_request(*spans: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]
                    },
                    "scopeSpans": [{"scope": {"name": "my.scope"}, "spans": list(spans)}],
                }
            ]
        }
    )


def json_span(**overrides: Any) -> dict[str, Any]:
    span = {
        "traceId": TRACE.hex(),
        "spanId": SPAN.hex(),
        "parentSpanId": "",
        "name": "chat",
        "kind": 3,
        "startTimeUnixNano": str(START),
        "endTimeUnixNano": END,
        "status": {"code": 1},
        "attributes": [
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "120"}},
            {"key": "temperature", "value": {"doubleValue": 0.5}},
            {"key": "stream", "value": {"boolValue": False}},
            {"key": "blob", "value": {"bytesValue": "AAEC"}},
            {
                "key": "gen_ai.response.finish_reasons",
                "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}},
            },
            {
                "key": "nested",
                "value": {"kvlistValue": {"values": [{"key": "a", "value": {"intValue": 1}}]}},
            },
        ],
    }
    span.update(overrides)
    return span


# --- body ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/x-protobuf", "protobuf"),
        ("application/protobuf", "protobuf"),
        ("application/json", "json"),
        ("Application/JSON; charset=utf-8", "json"),
    ],
)
def test_content_types_select_the_encoding(content_type: str, expected: str) -> None:
    assert encoding_of(content_type) == expected


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/grpc"])
def test_other_content_types_are_unsupported(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaError, match="unsupported content type") as caught:
        encoding_of(content_type)
    assert caught.value.status_code == 415


def test_gzip_is_inflated_and_identity_passes_through() -> None:
    payload = b"x" * 100_000
    assert decompress(gzip.compress(payload), "gzip", 200_000) == payload
    assert decompress(gzip.compress(b""), "GZIP", 10) == b""
    assert decompress(payload, None, 10) is payload  # size is checked by the caller
    assert decompress(payload, "identity", 10) is payload


def test_gzip_bomb_is_refused_before_it_is_inflated() -> None:
    bomb = gzip.compress(b"\0" * 50_000_000)
    assert len(bomb) < 100_000

    with pytest.raises(PayloadTooLargeError, match="limit of 1000000 bytes") as caught:
        decompress(bomb, "gzip", 1_000_000)
    assert caught.value.status_code == 413


def test_broken_gzip_and_unknown_encodings_are_refused() -> None:
    with pytest.raises(MalformedPayloadError, match="invalid gzip"):
        decompress(b"not gzip at all", "gzip", 1000)
    with pytest.raises(MalformedPayloadError, match="truncated"):
        decompress(gzip.compress(b"y" * 1000)[:20], "gzip", 10_000)
    with pytest.raises(UnsupportedMediaError, match="'br'"):
        decompress(b"", "br", 1000)


def test_oversized_raw_body_is_refused() -> None:
    with pytest.raises(PayloadTooLargeError):
        receive_spans(b"x" * 101, "json", None, 100)


# --- protobuf -----------------------------------------------------------------------------


def test_protobuf_spans_decode_with_every_value_type() -> None:
    request = proto_request(
        proto_span(
            s="text",
            i=7,
            d=0.25,
            b=True,
            raw=b"\x01\x02",
            arr=["a", 1],
            kvs={"k": "v", "n": {"deep": 1}},
        )
    )

    batch = decode_protobuf(request.SerializeToString())

    assert batch.rejected == []
    (span,) = batch.spans
    assert span.trace_id == TRACE.hex() and span.span_id == SPAN.hex()
    assert span.parent_span_id == PARENT.hex()
    assert (span.kind, span.status_code, span.status_message) == (3, 2, "upstream 500")
    assert (span.start_ns, span.end_ns) == (START, END)
    assert span.resource == {"service.name": "shop"}
    assert span.attributes == {
        "s": "text",
        "i": 7,
        "d": 0.25,
        "b": True,
        "raw": b"\x01\x02",
        "arr": ["a", 1],
        "kvs": {"k": "v", "n": {"deep": 1}},
    }


def test_protobuf_bad_spans_are_rejected_one_by_one() -> None:
    good = proto_span()
    short_trace = proto_span(trace_id=b"\x01\x02")
    zero_span = proto_span(span_id=b"\0" * 8)
    backwards = proto_span()
    backwards.end_time_unix_nano = START - 1

    batch = decode_protobuf(
        proto_request(good, short_trace, zero_span, backwards).SerializeToString()
    )

    assert len(batch.spans) == 1
    reasons = [(r.where, r.reason) for r in batch.rejected]
    assert reasons == [
        ("resourceSpans[0].scopeSpans[0].spans[1]", "trace_id must be 16 bytes, got 2"),
        ("resourceSpans[0].scopeSpans[0].spans[2]", "span_id is all zeros"),
        (
            "resourceSpans[0].scopeSpans[0].spans[3]",
            "end_time_unix_nano is before start_time_unix_nano",
        ),
    ]


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff garbage", b'{"json": true}'])
def test_protobuf_garbage_is_malformed(garbage: bytes) -> None:
    with pytest.raises(MalformedPayloadError, match="not an OTLP ExportTraceServiceRequest"):
        decode_protobuf(garbage)


def test_empty_protobuf_is_an_empty_export() -> None:
    batch = decode_protobuf(b"")
    assert batch.spans == [] and batch.rejected == []


# --- JSON -------------------------------------------------------------------------------


def test_json_spans_decode_with_hex_ids_enum_ints_and_any_values() -> None:
    batch = decode_json(json_request(json_span()))

    assert batch.rejected == []
    (span,) = batch.spans
    assert span.trace_id == TRACE.hex() and span.span_id == SPAN.hex()
    assert span.parent_span_id is None
    assert (span.kind, span.status_code, span.start_ns, span.end_ns) == (3, 1, START, END)
    assert span.scope_name == "my.scope"
    assert span.resource == {"service.name": "shop"}
    assert span.attributes == {
        "gen_ai.usage.input_tokens": 120,
        "temperature": 0.5,
        "stream": False,
        "blob": b"\x00\x01\x02",
        "gen_ai.response.finish_reasons": ["stop"],
        "nested": {"a": 1},
    }


def test_json_accepts_enum_names_and_snake_case_like_protobuf_parsers() -> None:
    span = {
        "trace_id": TRACE.hex().upper(),
        "span_id": SPAN.hex(),
        "kind": "SPAN_KIND_SERVER",
        "start_time_unix_nano": START,
        "end_time_unix_nano": END,
        "status": {"code": "STATUS_CODE_ERROR"},
    }

    (decoded,) = decode_json(json_request(span)).spans

    assert decoded.trace_id == TRACE.hex() and (decoded.kind, decoded.status_code) == (2, 2)


def test_json_equals_protobuf_for_the_same_export() -> None:
    # The same span in OTLP JSON (hex ids, enum ints, int64 as strings) decodes identically.
    request = proto_request(proto_span(model="gpt-4o", n=3))
    from_proto = decode_protobuf(request.SerializeToString()).spans[0]
    as_json = {
        "traceId": TRACE.hex(),
        "spanId": SPAN.hex(),
        "parentSpanId": PARENT.hex(),
        "name": "chat gpt-4o-mini",
        "kind": 3,
        "startTimeUnixNano": str(START),
        "endTimeUnixNano": str(END),
        "status": {"code": 2, "message": "upstream 500"},
        "attributes": [
            {"key": "model", "value": {"stringValue": "gpt-4o"}},
            {"key": "n", "value": {"intValue": "3"}},
        ],
    }

    from_json = decode_json(json_request(as_json)).spans[0]

    assert from_json == from_proto.__class__(**{**from_proto.__dict__, "scope_name": "my.scope"})


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"traceId": "zz" * 16}, "is not hex"),
        ({"spanId": "00" * 8}, "span_id is all zeros"),
        # Reasons from protobuf's json_format: they name the field and the bad value.
        ({"startTimeUnixNano": "soon"}, "Failed to parse startTimeUnixNano field"),
        ({"startTimeUnixNano": None}, "start_time_unix_nano is missing"),
        ({"kind": "SIDEWAYS"}, "Invalid enum value SIDEWAYS"),
        ({"attributes": {"not": "a list"}}, "repeated field attributes must be in []"),
        ({"attributes": [{"key": "x", "value": {"intValue": "1.5"}}]}, "intValue"),
        ({"attributes": [{"key": "x", "value": {"madeUpValue": 1}}]}, 'no field named "madeUp'),
        ({"attributes": [{"key": "x", "value": "plain"}]}, '"Span.attributes[0].value"'),
        ({"parentSpanId": 7}, "ids must be hex strings"),
    ],
)
def test_json_bad_spans_are_rejected_with_the_reason(
    overrides: dict[str, Any], reason: str
) -> None:
    batch = decode_json(json_request(json_span(), json_span(**overrides)))

    assert len(batch.spans) == 1
    (rejected,) = batch.rejected
    assert rejected.where == "resourceSpans[0].scopeSpans[0].spans[1]"
    assert reason in rejected.reason


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\x00 not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"resourceSpans": 5}', "resourceSpans must be a list"),
        (b'{"resourceSpans": [7]}', "resourceSpans[0] must be a JSON object"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": "x"}]}]}', "spans must be a list"),
    ],
)
def test_json_that_is_not_an_export_is_malformed(body: bytes, message: str) -> None:
    with pytest.raises(MalformedPayloadError) as caught:
        decode_json(body)
    assert message in caught.value.message


def test_deeply_nested_values_are_summarised_not_walked() -> None:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(50):
        value = {"arrayValue": {"values": [value]}}
    span = json_span(attributes=[{"key": "deep", "value": value}])

    (decoded,) = decode_json(json_request(span)).spans

    flattened = orjson.dumps(decoded.attributes["deep"]).decode()
    assert "nested too deep" in flattened and "leaf" not in flattened


def test_hostile_nesting_rejects_the_span_with_the_reason() -> None:
    # Deeper than json_format is allowed to follow (orjson.dumps cannot write it: by hand).
    deep = '{"arrayValue": {"values": [' * 150 + '{"stringValue": "leaf"}' + "]}}" * 150
    span = orjson.dumps(json_span(attributes=[{"key": "deep", "value": "DEEP"}])).decode()
    spans = orjson.dumps(json_span()).decode() + "," + span.replace('"DEEP"', deep)
    body = '{"resourceSpans": [{"scopeSpans": [{"spans": [' + spans + "]}]}]}"

    batch = decode_json(body.encode())

    assert len(batch.spans) == 1
    (rejected,) = batch.rejected
    assert rejected.reason == "attribute values are nested deeper than 200 messages"


def test_json_ignores_span_fields_it_does_not_know_and_events_and_links() -> None:
    # OTLP: receivers ignore unknown fields (a newer exporter); events and links go unread.
    span = json_span(
        futureField={"x": 1},
        events=[{"name": "e", "spanId": "not hex"}],
        links=[{"traceId": "nor this"}],
        flags=1,
        traceState="a=b",
    )

    (decoded,) = decode_json(json_request(span)).spans

    assert decoded.span_id == SPAN.hex() and decoded.attributes["gen_ai.usage.input_tokens"] == 120


# --- responses --------------------------------------------------------------------------


def test_partial_success_response_in_both_encodings() -> None:
    rejected = [RejectedSpan(f"spans[{i}]", "bad id") for i in range(7)]

    proto = export_reply("protobuf", rejected, total=10)
    as_json = export_reply("json", rejected, total=10)

    decoded = ExportTraceServiceResponse.FromString(proto.body)
    assert proto.media_type == "application/x-protobuf" and proto.status_code == 200
    assert decoded.partial_success.rejected_spans == 7
    message = decoded.partial_success.error_message
    assert message.startswith("7 of 10 spans rejected: spans[0]: bad id") and "2 more" in message
    parsed = Parse(as_json.body, ExportTraceServiceResponse())
    assert parsed == decoded and as_json.media_type == "application/json"
    assert export_reply("json", [], total=3).body == b"{}"


def test_error_reply_is_a_status_message() -> None:
    reply = error_reply(400, "garbage", "protobuf")
    assert reply.status_code == 400 and Status.FromString(reply.body).message == "garbage"
    assert orjson.loads(error_reply(415, "nope").body) == {"code": 3, "message": "nope"}


def test_no_mutated_payload_escapes_as_anything_but_an_otlp_answer() -> None:
    # Byte flips of valid exports: every outcome is spans, rejected spans or an OtlpError.
    rng = random.Random(7)
    valid = {
        "protobuf": proto_request(proto_span(model="gpt-4o", n=3, arr=["a", {"k": 1}])),
        "json": json_request(json_span()),
    }
    outcomes: set[str] = set()
    for encoding, body in (
        ("protobuf", valid["protobuf"].SerializeToString()),
        ("json", valid["json"]),
    ):
        for _ in range(400):
            mutated = bytearray(body)
            for _ in range(rng.randint(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            try:
                received = receive_spans(bytes(mutated), encoding, None, 1_000_000)  # type: ignore[arg-type]
                outcomes.add("rejected" if received.rejected else "accepted")
            except OtlpError as exc:
                assert exc.status_code == 400 and exc.message
                outcomes.add("refused")
    assert outcomes == {"accepted", "rejected", "refused"}
