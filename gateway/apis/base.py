"""What the gateway must know of one wire API (a "dialect") to proxy, meter and guard it.

The gateway speaks five APIs to clients and upstreams: OpenAI chat completions, legacy
completions, embeddings and Responses, and Anthropic Messages. The proxy's path (auth,
enforcement, limits, guardrails, routing, events) is the same for all of them; everything
that depends on the shape of a body, an answer, a stream event or an error lives behind
this interface, one implementation per API in `gateway/apis/`. When the client's API
and the upstream's differ, `gateway/translate/` converts between the two dialects.

Every method is pure (no I/O) and must never raise on any upstream answer: an answer
that is not what the API documents yields an empty summary, no slots, no text.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from gateway.errors import GatewayError
    from gateway.usage import ResponseSummary

__all__ = ["ApiName", "Dialect", "ParsedRequest", "Slot", "StreamReader", "StreamText"]

ApiName = Literal["chat", "completions", "embeddings", "messages", "responses"]

# (container, key, untrusted): container[key] is one text a guardrail may read or replace.
# `untrusted` marks text a prompt injection could hide in (user and tool content).
Slot = tuple[Any, Any, bool]


@dataclass(slots=True)
class ParsedRequest:
    body: dict[str, Any]
    model: str
    stream: bool = False
    max_tokens: int | None = None
    # Whether the client itself asked for the usage chunk of a chat stream.
    client_wants_usage: bool = False


@dataclass(slots=True)
class StreamText:
    """One piece of streamed answer text: `container[key]` (replaceable), for the output
    with this `index` (a choice, a content block, an output item), and whether the event
    also ends that output."""

    index: int
    container: Any
    key: Any
    finished: bool = False


class StreamReader(ABC):
    """Reads one upstream stream of a dialect, event by event, into a ResponseSummary."""

    @abstractmethod
    def feed(self, name: str | None, payload: Any) -> bool:
        """Account for one event (`payload`: parsed JSON, None if not JSON). Return True
        when the event must not reach the client (chat's usage chunk the gateway asked for
        on the client's behalf); False otherwise."""

    @property
    @abstractmethod
    def started(self) -> bool:
        """The answer's first text or tool call has arrived (time to first token)."""

    @abstractmethod
    def finish(self) -> ResponseSummary:
        """The summary once the stream ended (or broke off)."""


class Dialect(ABC):
    """One wire API. `endpoint` is the client-facing path, `upstream_path` the path below
    an upstream's `/v1` base URL, `prompt_field` the body field errors about the prompt
    name (`messages`, `input`, `prompt`)."""

    name: ApiName
    endpoint: str
    upstream_path: str
    prompt_field: str
    streams: bool = True  # embeddings do not stream

    @abstractmethod
    def parse(self, raw: bytes) -> ParsedRequest:
        """Validate what the gateway reads; InvalidRequest (400, in this API's words,
        naming the field) when the body is not a request of this API."""

    @abstractmethod
    def input_slots(self, body: dict[str, Any]) -> list[Slot]:
        """Every prompt text of a parsed body, in order (system first)."""

    @abstractmethod
    def output_slots(self, response: Any) -> list[Slot]:
        """Every answer text of a non-streaming response."""

    @abstractmethod
    def summarize(self, response: Any) -> ResponseSummary:
        """Model, usage, finish reason, tool calls and answer size of a response."""

    @abstractmethod
    def stream_reader(self, parsed: ParsedRequest) -> StreamReader: ...

    def stream_body(self, parsed: ParsedRequest, raw: bytes) -> bytes:
        """The body to send upstream for a stream (chat asks for usage); `raw` by default."""
        return raw

    @abstractmethod
    def stream_texts(self, name: str | None, payload: Any) -> list[StreamText]:
        """The answer text pieces one stream event carries (for output guardrails)."""

    def recap_texts(self, name: str | None, payload: Any) -> list[tuple[int, Any, Any]]:
        """Places where a stream event repeats the whole text of output `index` so far
        (`container[key]`), which must then say what the client was sent: Responses'
        `*.done` and `response.completed` events. None by default."""
        return []

    @abstractmethod
    def text_event(self, index: int, text: str, template: Any) -> bytes:
        """An encoded stream event carrying `text` for output `index`, shaped after the
        stream's last text event `template` (releases text a guardrail held back)."""

    @abstractmethod
    def error_body(self, error: GatewayError) -> bytes:
        """`error` in this API's error shape."""

    @abstractmethod
    def stream_error(self, error: GatewayError) -> bytes:
        """`error` as an in-band stream event (the response already began)."""
