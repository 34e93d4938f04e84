"""The wire APIs the gateway speaks, one Dialect each (see `gateway.apis.base`)."""

from __future__ import annotations

from gateway.apis.base import ApiName, Dialect, ParsedRequest, Slot, StreamReader, StreamText
from gateway.apis.chat import CHAT, ChatDialect
from gateway.apis.completions import COMPLETIONS, CompletionsDialect
from gateway.apis.embeddings import EMBEDDINGS, EmbeddingsDialect
from gateway.apis.messages import MESSAGES, MessagesDialect
from gateway.apis.prompt import prompt_stats, prompt_texts
from gateway.apis.responses import RESPONSES, ResponsesDialect

__all__ = [
    "CHAT",
    "COMPLETIONS",
    "DIALECTS",
    "EMBEDDINGS",
    "MESSAGES",
    "RESPONSES",
    "ApiName",
    "ChatDialect",
    "CompletionsDialect",
    "Dialect",
    "EmbeddingsDialect",
    "MessagesDialect",
    "ParsedRequest",
    "ResponsesDialect",
    "Slot",
    "StreamReader",
    "StreamText",
    "prompt_stats",
    "prompt_texts",
]

DIALECTS: dict[ApiName, Dialect] = {
    "chat": CHAT,
    "completions": COMPLETIONS,
    "embeddings": EMBEDDINGS,
    "messages": MESSAGES,
    "responses": RESPONSES,
}
