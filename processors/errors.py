"""Input the processors' logic cannot use: what it raises, how it words the reason, and
how a detector skips what another agent already dead-letters.

Pure: no Kafka, no Faust (the logic modules import it). Every `reason` ends up in a dead
letter, so it is kept short and readable rather than exhaustive.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from processors.decoded import decode

__all__ = ["MAX_LISTED_ERRORS", "Rejected", "describe_validation_error", "parse_event"]

MAX_LISTED_ERRORS = 5

E = TypeVar("E", bound=BaseModel)


class Rejected(ValueError):
    """Input that cannot be used; `reason` says why (it goes to the dead letter)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def describe_validation_error(exc: ValidationError, *, count_omitted: bool = True) -> str:
    """A short readable summary of a ValidationError, for dead letters.

    At most MAX_LISTED_ERRORS errors are listed; `count_omitted` adds "and N more".
    """
    parts = []
    for error in exc.errors(include_url=False)[:MAX_LISTED_ERRORS]:
        where = ".".join(str(part) for part in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    extra = exc.error_count() - MAX_LISTED_ERRORS
    if count_omitted and extra > 0:
        parts.append(f"and {extra} more")
    return "; ".join(parts)


def parse_event(model: type[E], payload: bytes | None) -> E | None:
    """Raw value -> event; None for anything unreadable (the cost, span-cost and budget
    agents dead-letter those with the reason: one dead letter per bad message)."""
    if payload is None:
        return None
    try:
        return decode(model, payload)
    except ValidationError:
        return None
