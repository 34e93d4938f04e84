"""OpenAI embeddings (`POST /v1/embeddings`): no stream, no answer text to guard."""

from __future__ import annotations

from typing import Any

from gateway.apis.base import Dialect, ParsedRequest, Slot, StreamReader, StreamText
from gateway.apis.chat import openai_stream_error, openai_summary
from gateway.apis.validation import load_object, model_field, optional_type
from gateway.errors import GatewayError, InvalidRequest
from gateway.usage import ResponseSummary

__all__ = ["EMBEDDINGS", "EmbeddingsDialect"]


class _NoStream(StreamReader):
    """Embeddings never stream; a reader that reads nothing keeps the interface total."""

    def __init__(self) -> None:
        self._summary = ResponseSummary()

    def feed(self, name: str | None, payload: Any) -> bool:
        return False

    @property
    def started(self) -> bool:
        return False

    def finish(self) -> ResponseSummary:
        return self._summary


class EmbeddingsDialect(Dialect):
    name = "embeddings"
    endpoint = "/v1/embeddings"
    upstream_path = "/embeddings"
    prompt_field = "input"
    streams = False
    hashed_fields: tuple[str, ...] = ("input",)

    def parse(self, raw: bytes) -> ParsedRequest:
        body = load_object(raw)
        model = model_field(body)
        value = body.get("input")
        valid = isinstance(value, str) or (
            isinstance(value, list)
            and bool(value)
            and all(
                isinstance(item, (str, int, list)) and not isinstance(item, bool) for item in value
            )
        )
        if not valid:
            raise InvalidRequest(
                "'input' is required and must be a string or a non-empty array", param="input"
            )
        optional_type(body, "user", str)
        return ParsedRequest(body=body, model=model)

    def input_slots(self, body: dict[str, Any]) -> list[Slot]:
        value = body.get("input")
        if isinstance(value, str):
            return [(body, "input", False)]
        if isinstance(value, list):
            return [(value, i, False) for i, item in enumerate(value) if isinstance(item, str)]
        return []

    def output_slots(self, response: Any) -> list[Slot]:
        return []

    def summarize(self, response: Any) -> ResponseSummary:
        return openai_summary(response)[0]

    def stream_reader(self, parsed: ParsedRequest) -> StreamReader:
        return _NoStream()

    def stream_texts(self, name: str | None, payload: Any) -> list[StreamText]:
        return []

    def text_event(self, index: int, text: str, template: Any) -> bytes:
        return b""

    def error_body(self, error: GatewayError) -> bytes:
        return error.render()

    def stream_error(self, error: GatewayError) -> bytes:
        return openai_stream_error(error)


EMBEDDINGS = EmbeddingsDialect()
