"""Each message decoded once per batch, however many stages read it. Pure: no Kafka, no Faust.

Every stage of a topic gets the same batch of messages, the same value bytes objects
(processors/streams.py), one stage after the other. `decode` remembers what it validated,
by payload identity and model, with the event or the validation error it gave, until the
batch is done (`forget_decoded`), so the cost, drift, llmjacking and agent-loop stages of
a request share one validation. Identity, not equality: equal bytes from another message
are decoded again (each message is its own event), and a remembered payload is held, so
its identity cannot be reused while it is remembered.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

__all__ = ["decode", "forget_decoded"]

E = TypeVar("E", bound=BaseModel)

# A batch is at most a few thousand messages; a caller that never forgets (a test, a
# tool) is bounded all the same.
_MAX_REMEMBERED = 50_000

# (id(payload), model) -> (payload, the event or the error it gave)
_seen: dict[tuple[int, type[BaseModel]], tuple[bytes, BaseModel | ValidationError]] = {}


def decode(model: type[E], payload: bytes) -> E:
    """`model.model_validate_json(payload)`, once per payload object and model."""
    key = (id(payload), model)
    found = _seen.get(key)
    if found is not None and found[0] is payload:
        result = found[1]
    else:
        try:
            result = model.model_validate_json(payload)
        except ValidationError as exc:
            result = exc
        if len(_seen) >= _MAX_REMEMBERED:
            _seen.clear()
        _seen[key] = (payload, result)
    if isinstance(result, ValidationError):
        raise result
    return result  # type: ignore[return-value]


def forget_decoded() -> None:
    """The batch is done: its payloads are not read again."""
    _seen.clear()
