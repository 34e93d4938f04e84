"""The rate-usage report: what one gateway admitted per key, bounded when read."""

from __future__ import annotations

import orjson
import pytest

from schemas.rate_usage import (
    KeyUsage,
    RateUsage,
    SharedSpend,
    decode_rate_usage,
    encode_rate_usage,
)


def test_a_report_round_trips() -> None:
    spend = (SharedSpend("b1", 1765000000123, "req-1", 0.0000975),)
    usage = RateUsage("gw-1", 1765000000.5, {"k1": KeyUsage(3, -20, 60, None)}, spend)
    assert decode_rate_usage(encode_rate_usage(usage)) == usage
    # A report without spend (an older gateway) reads as one with none.
    assert decode_rate_usage(orjson.dumps({"gateway": "g", "at": 1, "keys": {}})).spend == ()


def _spend(*entries: object) -> bytes:
    return orjson.dumps({"gateway": "g", "at": 1, "keys": {}, "spend": list(entries)})


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
        (_spend(["b", 1, "r"]), "each spend entry"),
        (_spend(["", 1, "r", 0.1]), "budget_id and request_id"),
        (_spend(["b", 1, "r" * 300, 0.1]), "budget_id and request_id"),
        (_spend(["b", -5, "r", 0.1]), "ts_ms"),
        (_spend(["b", 1, "r", -0.1]), "usd must be"),
        (_spend(["b", 1, "r", "0.1"]), "usd must be"),
        (orjson.dumps({"gateway": "g", "at": 1, "keys": {}, "spend": {}}), "spend must be"),
    ],
)
def test_a_bad_report_is_refused_naming_the_problem(value: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        decode_rate_usage(value)
