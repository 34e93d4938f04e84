"""Cross-API translation: OpenAI chat completions <-> Anthropic Messages.

Pure functions over plain dicts (no I/O, no clock, no pydantic on the hot path). A client body
that cannot be translated faithfully raises `gateway.errors.InvalidRequest` naming the field; a
malformed upstream answer raises `gateway.errors.UpstreamUnavailable` and nothing else.

- chat client, Messages upstream: `chat_request_to_messages`, `messages_response_to_chat`,
  `ChatChunksFromMessagesStream` (module `chat_to_messages`).
- Messages client, chat upstream: `messages_request_to_chat`, `chat_response_to_messages`,
  `MessagesEventsFromChatStream` (module `messages_to_chat`).

Each module's docstring lists the decisions taken where the two APIs differ.
"""

from gateway.translate.chat_to_messages import (
    DEFAULT_MAX_TOKENS,
    ChatChunksFromMessagesStream,
    chat_request_to_messages,
    messages_response_to_chat,
)
from gateway.translate.messages_to_chat import (
    MessagesEventsFromChatStream,
    chat_response_to_messages,
    messages_request_to_chat,
)

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "ChatChunksFromMessagesStream",
    "MessagesEventsFromChatStream",
    "chat_request_to_messages",
    "chat_response_to_messages",
    "messages_request_to_chat",
    "messages_response_to_chat",
]
