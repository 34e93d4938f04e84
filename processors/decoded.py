"""Each message decoded once, however many handlers read it. Pure: no Kafka, no Faust.

Every handler of a topic runs in one agent and gets the same message, the same value
bytes object (processors/streams.py `consume`), one handler after the other. `decode`
remembers the last few payloads it validated, by identity, with the event or the
validation error they gave, so the cost, drift, llmjacking and agent-loop handlers of a
request share one validation. Identity, not equality: equal bytes from another message
are decoded again (each message is its own event), and a remembered payload is held, so
its identity cannot be reused while it is remembered.
"""

from __future__ import annotations

from collections import deque
from typing import TypeVar

from pydantic import BaseModel, ValidationError

__all__ = ["decode"]

E = TypeVar("E", bound=BaseModel)

_REMEMBERED = 8  # handlers of one message run back to back: a few are plenty

_recent: deque[tuple[bytes, type[BaseModel], BaseModel | ValidationError]] = deque(
    maxlen=_REMEMBERED
)


def decode(model: type[E], payload: bytes) -> E:
    """`model.model_validate_json(payload)`, once per payload object and model."""
    for seen, seen_model, result in _recent:
        if seen is payload and seen_model is model:
            if isinstance(result, ValidationError):
                raise result
            return result  # type: ignore[return-value]
    try:
        event: BaseModel | ValidationError = model.model_validate_json(payload)
    except ValidationError as exc:
        event = exc
    _recent.append((payload, model, event))
    if isinstance(event, ValidationError):
        raise event
    return event  # type: ignore[return-value]
