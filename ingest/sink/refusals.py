"""ClickHouse's insert errors, classified at the boundary: retry, or never as they are.

A write that fails because the server is down, busy or short of memory may succeed later
(RetryableSinkError: keep the batch, back off, retry). A write ClickHouse refuses because
of the rows themselves (a violated constraint, a value out of a type's range, too many
partitions in one block) fails the same way every time (PermanentSinkError): the sink
splits the batch to find the rows at fault and dead-letters them, so one bad row never
blocks the stream.
"""

from __future__ import annotations

import re

from ingest.sink.errors import PermanentSinkError, RetryableSinkError, SinkError

__all__ = ["PERMANENT_CODES", "classify_insert_error", "error_code"]

# ClickHouse error codes that depend only on the data inserted.
PERMANENT_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        128,  # TOO_LARGE_ARRAY_SIZE
        131,  # TOO_LARGE_STRING_SIZE
        190,  # SIZES_OF_ARRAYS_DONT_MATCH
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        407,  # DECIMAL_OVERFLOW
        469,  # VIOLATED_CONSTRAINT
    }
)
# TOO_MANY_PARTS (252) is both "merges are behind" (wait) and "one block spans more than
# max_partitions_per_insert_block partitions" (split): only the message tells them apart.
_TOO_MANY_PARTS = 252
_PARTITIONS_PER_BLOCK = "too many partitions for single insert block"
_CODE = re.compile(r"\bCode: (\d+)\b")
_MAX_REASON_CHARS = 1_000


def error_code(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    found = _CODE.search(str(exc))
    return int(found.group(1)) if found else None


def classify_insert_error(exc: Exception, what: str) -> SinkError:
    """The SinkError to raise for `exc` (the database client's own error)."""
    message = " ".join(str(exc).split())[:_MAX_REASON_CHARS]
    code = error_code(exc)
    permanent = code in PERMANENT_CODES or (
        code == _TOO_MANY_PARTS and _PARTITIONS_PER_BLOCK in message.lower()
    )
    error_class = PermanentSinkError if permanent else RetryableSinkError
    return error_class(f"ClickHouse refused {what}: {message}")
