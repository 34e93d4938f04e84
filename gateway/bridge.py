"""How a client's API reaches one upstream: as it is, or translated (gateway/translate).

`bridge_for(client, provider)` picks the bridge once per attempt:
- pass-through when the upstream speaks the client's API natively: the body goes as
  sent (re-serialized only when the deployment's model differs, or a chat stream must
  ask for usage), the answer comes back byte for byte;
- chat completions to an Anthropic upstream (Messages), and Messages to an OpenAI-style
  upstream (chat completions), both ways, streams included;
- anything else (Responses or embeddings to Anthropic, ...) has no bridge: the router
  skips such deployments, and a model only they serve is a clear 400.

Usage is always read from the upstream's own answer in its own dialect, so metering is
exact whatever the client sees (chat cannot express Anthropic's cache writes).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson

from gateway.apis import CHAT, DIALECTS, MESSAGES, Dialect, ParsedRequest, StreamReader
from gateway.apis.chat import ChatStreamReader
from gateway.errors import UpstreamUnavailable
from gateway.providers import Provider
from gateway.sse import DONE, encode_done, encode_event, parse_event, parse_json
from gateway.translate import (
    ChatChunksFromMessagesStream,
    MessagesEventsFromChatStream,
    chat_request_to_messages,
    chat_response_to_messages,
    messages_request_to_chat,
    messages_response_to_chat,
)
from gateway.usage import ResponseSummary

__all__ = ["Bridge", "Exchanged", "bridge_for"]

Exchanged = tuple[Any, bytes, ResponseSummary]  # (client answer, its bytes, upstream usage)


def _load(data: bytes, provider: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamUnavailable(f"upstream {provider} sent an answer that is not JSON") from None


class Bridge:
    """Pass-through: the client's dialect is the upstream's."""

    def __init__(self, client: Dialect, upstream: Dialect) -> None:
        self.client = client
        self.upstream = upstream

    def request(self, parsed: ParsedRequest, raw: bytes, model: str) -> bytes:
        """The upstream body for the deployment's `model`."""
        if parsed.stream:
            if model != parsed.model:
                raw = orjson.dumps({**parsed.body, "model": model})
            return self.client.stream_body(parsed, raw)
        if model == parsed.model:
            return raw
        return orjson.dumps({**parsed.body, "model": model})

    def response(self, data: bytes, provider: str) -> Exchanged:
        answer = _load(data, provider)
        return answer, data, self.upstream.summarize(answer)

    def stream_reader(self, parsed: ParsedRequest) -> StreamReader:
        """Reads the upstream's events (usage, first token)."""
        return self.client.stream_reader(parsed)

    async def stream(
        self, parsed: ParsedRequest, batches: AsyncIterator[list[bytes]], reader: StreamReader
    ) -> AsyncGenerator[list[bytes], None]:
        """The client's events, a list per upstream read (never empty), each upstream event
        fed to `reader` first."""
        async for batch in batches:
            out = []
            for event in batch:
                name, data = parse_event(event)
                payload = parse_json(data)
                if payload is not None and reader.feed(name, payload):
                    continue  # chat's usage chunk the client did not ask for
                out.append(event)
            if out:
                yield out


class ChatViaMessages(Bridge):
    """A chat-completions client, an Anthropic Messages upstream."""

    def __init__(self) -> None:
        super().__init__(CHAT, MESSAGES)

    def request(self, parsed: ParsedRequest, raw: bytes, model: str) -> bytes:
        return orjson.dumps({**chat_request_to_messages(parsed.body), "model": model})

    def response(self, data: bytes, provider: str) -> Exchanged:
        message = _load(data, provider)
        summary = MESSAGES.summarize(message)
        answer = messages_response_to_chat(message, created=int(time.time()))
        return answer, orjson.dumps(answer), summary

    def stream_reader(self, parsed: ParsedRequest) -> StreamReader:
        return MESSAGES.stream_reader(parsed)

    async def stream(
        self, parsed: ParsedRequest, batches: AsyncIterator[list[bytes]], reader: StreamReader
    ) -> AsyncGenerator[list[bytes], None]:
        chunks = ChatChunksFromMessagesStream(
            created=int(time.time()), include_usage=parsed.client_wants_usage
        )
        async for batch in batches:
            out = []
            for event in batch:
                name, data = parse_event(event)
                payload = parse_json(data)
                if not isinstance(payload, dict):
                    continue
                reader.feed(name, payload)
                out += [encode_event(chunk) for chunk in chunks.feed(name, payload)]
            if out:
                yield out
        if not chunks.done:
            raise UpstreamUnavailable("the upstream stream ended before message_stop")
        yield [encode_done()]


class MessagesViaChat(Bridge):
    """An Anthropic Messages client, an OpenAI-style chat-completions upstream."""

    def __init__(self) -> None:
        super().__init__(MESSAGES, CHAT)

    def request(self, parsed: ParsedRequest, raw: bytes, model: str) -> bytes:
        return orjson.dumps({**messages_request_to_chat(parsed.body), "model": model})

    def response(self, data: bytes, provider: str) -> Exchanged:
        completion = _load(data, provider)
        summary = CHAT.summarize(completion)
        answer = chat_response_to_messages(completion)
        return answer, orjson.dumps(answer), summary

    def stream_reader(self, parsed: ParsedRequest) -> StreamReader:
        return ChatStreamReader()

    async def stream(
        self, parsed: ParsedRequest, batches: AsyncIterator[list[bytes]], reader: StreamReader
    ) -> AsyncGenerator[list[bytes], None]:
        translated = MessagesEventsFromChatStream()
        done = False
        async for batch in batches:
            out = []
            for event in batch:
                name, data = parse_event(event)
                if data == DONE:
                    done = True
                    break
                payload = parse_json(data)
                if not isinstance(payload, dict):
                    continue
                reader.feed(name, payload)
                out += [encode_event(e, kind) for kind, e in translated.feed(payload)]
            if out:
                yield out
            if done:
                break
        tail = [encode_event(e, kind) for kind, e in translated.finish()]
        if tail:
            yield tail


_PASS_THROUGH = {dialect.name: Bridge(dialect, dialect) for dialect in DIALECTS.values()}
_CHAT_VIA_MESSAGES = ChatViaMessages()
_MESSAGES_VIA_CHAT = MessagesViaChat()


def bridge_for(client: Dialect, provider: Provider) -> Bridge | None:
    """How `client` reaches `provider`, or None when it cannot. Bridges hold no state."""
    if client.name in provider.apis:
        return _PASS_THROUGH[client.name]
    if client is CHAT and "messages" in provider.apis:
        return _CHAT_VIA_MESSAGES
    if client is MESSAGES and "chat" in provider.apis:
        return _MESSAGES_VIA_CHAT
    return None
