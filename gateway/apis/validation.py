"""Hand validation shared by the dialects' `parse` (ARCHITECTURE §8: no pydantic here).

Bodies are parsed once with orjson; only the fields the gateway reads, plus the few shapes
the real API itself rejects, are checked with plain type tests. Every failure is an
InvalidRequest (400) naming the field (`param`), worded as OpenAI words it (`invalid_type`,
`missing_required_parameter`, ...): Anthropic's own wording differs, but its error body
carries only the message, so the same helpers serve it. Integers are bounded to MAX_INT
(token counts beyond any model, far inside the events' Int64 columns).
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.bounds import MAX_MODEL_CHARS
from gateway.errors import InvalidRequest

__all__ = [
    "MAX_INT",
    "as_int",
    "empty_array",
    "int_field",
    "load_object",
    "missing",
    "model_field",
    "optional_type",
    "stream_flag",
    "wrong_type",
]

MAX_INT = 2**31 - 1


def load_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc.msg}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    return body


def _kind(value: Any) -> str:
    """The JSON type of a value, worded as OpenAI words it in its errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def wrong_type(param: str, expected: str, value: Any) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead.",
        param=param,
        code="invalid_type",
    )


def missing(param: str) -> InvalidRequest:
    return InvalidRequest(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def empty_array(param: str) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, "
        "but got an empty array instead.",
        param=param,
        code="empty_array",
    )


def model_field(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise missing("model")
    if not isinstance(model, str):
        raise wrong_type("model", "a string", model)
    if not model.strip():
        raise InvalidRequest("'model' must be a non-empty string", param="model")
    if len(model) > MAX_MODEL_CHARS:  # it is routed by and copied into every event
        raise InvalidRequest(
            f"Invalid 'model': string too long. Expected a string with maximum length "
            f"{MAX_MODEL_CHARS}, but got a string with length {len(model)} instead.",
            param="model",
            code="string_above_max_length",
        )
    return model


def int_field(body: dict[str, Any], field: str, low: int, high: int = MAX_INT) -> int | None:
    """An optional integer in [low, high]; OpenAI's wording and codes when it is not."""
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise wrong_type(field, "an integer", value)
    if value < low:
        raise InvalidRequest(
            f"Invalid '{field}': integer below minimum value. Expected a value >= {low}, "
            f"but got {value} instead.",
            param=field,
            code="integer_below_min_value",
        )
    if value > high:  # also keeps the value inside the event's Int64 column
        raise InvalidRequest(
            f"Invalid '{field}': integer above maximum value. Expected a value <= {high}, "
            f"but got {value} instead.",
            param=field,
            code="integer_above_max_value",
        )
    return value


_EXPECTED = {str: "a string", list: "an array", dict: "an object", bool: "a boolean"}


def optional_type(body: dict[str, Any], field: str, *types: type, param: str = "") -> None:
    """`body[field]` absent, null, or of one of `types` (bool is never an int here)."""
    value = body.get(field)
    if value is None or (
        isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    ):
        return
    expected = " or ".join(_EXPECTED.get(t, t.__name__) for t in types)
    raise wrong_type(param or field, expected, value)


def stream_flag(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise wrong_type("stream", "a boolean", stream)
    return stream


def as_int(value: Any) -> int:
    """A token count from an upstream answer: a non-negative int, else 0."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 <= value <= MAX_INT else (MAX_INT if value > 0 else 0)
    return 0
