"""The tool-arguments fingerprint: the same question hashes alike, a new one does not."""

from __future__ import annotations

import pytest

from schemas.tool_arguments import tool_arguments_hash

BASE = '{"repo": "acme/api", "state": "open"}'


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # formatting: key order and whitespace
        ('{"repo":"acme/api","state":"open"}', '{ "state": "open",\n  "repo": "acme/api" }'),
        # the same value, parsed (Messages' `input`) or as text (chat, Responses, spans)
        ({"repo": "acme/api", "state": "open"}, BASE),
        # a fresh request id or idempotency key each call
        (
            '{"q": "build status", "request_id": "7f8a1c2e-9b3d-4e5f-8a6b-1c2d3e4f5a6b"}',
            '{"q": "build status", "request_id": "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"}',
        ),
        ('{"q": "x", "idempotencyKey": "a1"}', '{"q": "x", "idempotencyKey": "b2"}'),
        ('{"q": "x", "nonce": 17}', '{"q": "x", "nonce": 18}'),
        # the current time, as ISO 8601 or epoch milliseconds, or inside a string
        (
            '{"job": 7, "since": "2026-01-05T10:00:00.123Z"}',
            '{"job": 7, "since": "2026-01-05T10:00:07.456Z"}',
        ),
        ('{"job": 7, "timestamp": 1767607200123}', '{"job": 7, "timestamp": 1767607207456}'),
        (
            '{"url": "https://x.io/s?t=2026-01-05 10:00:00"}',
            '{"url": "https://x.io/s?t=2026-01-05 10:09:59"}',
        ),
        ('{"job": 7, "created_at": 1767607200}', '{"job": 7, "created_at": 1767607299}'),
        # the clock under another name this time, or none at all
        ('{"job": 7, "since": "2026-01-05T10:00:00Z"}', '{"job": 7, "timestamp": 1767607207456}'),
        ('{"q": "x", "request_id": "r-1"}', '{"q": "x"}'),
        # not JSON (a cut stream): whitespace and date-times
        ("run  tests at 2026-01-05T10:00:00Z", "run tests at 2026-01-05T11:00:00Z"),
    ],
)
def test_noise_does_not_change_the_fingerprint(first: object, second: object) -> None:
    assert tool_arguments_hash(first) == tool_arguments_hash(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (BASE, '{"repo": "acme/web", "state": "open"}'),
        ('{"page": 1}', '{"page": 2}'),  # paging by number
        ('{"offset": 0}', '{"offset": 50}'),
        ('{"cursor": "eyJvZmZzZXQiOjB9"}', '{"cursor": "eyJvZmZzZXQiOjUwfQ"}'),  # opaque cursors
        ('{"day": "2026-01-05"}', '{"day": "2026-01-06"}'),  # a report per day
        ('{"sha": "1f3a9c0d2b7e4f56"}', '{"sha": "9e8d7c6b5a4f3e21"}'),  # commits
        ('{"user_id": 1767607200}', '{"user_id": 1767607201}'),  # ids, not clocks
        ('{"a": 1}', '{"a": "1"}'),
        ('{"since": {"day": "2026-01-05"}}', '{"since": {"day": "2026-01-06"}}'),  # looked into
    ],
)
def test_a_new_question_changes_the_fingerprint(first: object, second: object) -> None:
    assert tool_arguments_hash(first) != tool_arguments_hash(second)


def test_odd_inputs_hash_without_raising() -> None:
    for value in ("", "\ud800", b"\xff\xfe", 2**80, {"deep": [[[[{"a": 1}]]]]}, "[1, 2"):
        assert len(tool_arguments_hash(value)) == 64
