"""The rate-usage report: what one gateway admitted per key, bounded when read."""

from __future__ import annotations

import orjson
import pytest

from schemas.rate_usage import KeyUsage, RateUsage, decode_rate_usage, encode_rate_usage


def test_a_report_round_trips() -> None:
    usage = RateUsage("gw-1", 1765000000.5, {"k1": KeyUsage(3, -20, 60, None)})
    assert decode_rate_usage(encode_rate_usage(usage)) == usage


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (b"{", "not JSON"),
        (b"[]", "gateway id"),
        (orjson.dumps({"gateway": "g", "keys": {}}), "`at`"),
        (orjson.dumps({"gateway": "g", "at": 1, "keys": []}), "keys must be"),
        (orjson.dumps({"gateway": "g", "at": 1, "keys": {"k": [1, 2]}}), "bad entry"),
        (orjson.dumps({"gateway": "g", "at": 1, "keys": {"k": [-1, 0, 0, 0]}}), "bad counts"),
        (orjson.dumps({"gateway": "g", "at": 1, "keys": {"k": [1, 0, "60", 0]}}), "bad counts"),
        (orjson.dumps({"gateway": "g", "at": 1, "keys": {"k": [10**12, 0, 0, 0]}}), "bad counts"),
    ],
)
def test_a_bad_report_is_refused_naming_the_problem(value: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        decode_rate_usage(value)
