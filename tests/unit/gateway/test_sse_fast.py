"""parse_event's fast paths give what the general line-by-line parse gives."""

from __future__ import annotations

import random

from gateway.sse import _parse_lines, parse_event

PIECES = [
    b"data: ",
    b"data:",
    b"event: ",
    b"event:",
    b"\n",
    b"\n\n",
    b" ",
    b"x",
    b'{"a":1}',
    b"\r",
    b":c",
    b"id: 1",
    b"\xff",
    b"\t",
]


def test_parse_event_is_the_line_by_line_parse_on_random_events() -> None:
    rng = random.Random(22)
    for _ in range(100_000):
        raw = b"".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 8)))
        assert parse_event(raw) == _parse_lines(raw), raw


def test_the_common_shapes() -> None:
    assert parse_event(b'data: {"x":1}\n\n') == (None, b'{"x":1}')
    assert parse_event(b'event: message_start\ndata: {"x":1}\n\n') == (
        "message_start",
        b'{"x":1}',
    )
    assert parse_event(b"data: [DONE]\n\n") == (None, b"[DONE]")
