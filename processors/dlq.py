"""Dead letters: anything an agent cannot process goes to the dlq topic with the reason.

The agent then moves on; a bad message never stops the stream.
"""

from __future__ import annotations

import logging

from faust.types import Message, TopicT

from processors.metrics import ProcessorMetrics
from schemas.events.v1 import DeadLetter

__all__ = ["MAX_PAYLOAD_CHARS", "DeadLetterPublisher", "dead_letter_for"]

log = logging.getLogger(__name__)

# Keeps a dead letter well under the broker's message size limit even for huge input.
MAX_PAYLOAD_CHARS = 64 * 1024


def dead_letter_for(message: Message, error: str, stage: str) -> DeadLetter:
    payload = _text(message.value) or ""
    if len(payload) > MAX_PAYLOAD_CHARS:
        error = f"{error} (payload truncated from {len(payload)} chars)"
        payload = payload[:MAX_PAYLOAD_CHARS]
    return DeadLetter(
        original_topic=message.topic,
        original_partition=message.partition,
        original_offset=message.offset,
        original_key=_text(message.key),
        error=error,
        stage=stage,
        payload=payload,
        source=stage,
    )


class DeadLetterPublisher:
    """Sends DeadLetter records to the dlq topic, keyed by the original message key."""

    def __init__(self, topic: TopicT, metrics: ProcessorMetrics) -> None:
        self._topic = topic
        self._metrics = metrics

    async def publish(self, message: Message, error: str, stage: str) -> None:
        letter = dead_letter_for(message, error, stage)
        log.warning(
            "dead letter %s[%s]@%s: %s",
            message.topic,
            message.partition,
            message.offset,
            letter.error,
        )
        await self._topic.send(key=_key_bytes(message.key), value=letter.to_json())
        self._metrics.dead_letter(stage)


def _text(value: bytes | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return bytes(value).decode("utf-8", errors="replace")


def _key_bytes(key: bytes | str | None) -> bytes | None:
    return key.encode() if isinstance(key, str) else key
