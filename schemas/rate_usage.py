"""One gateway's rate-limit consumption since its last report: the internal `rate-usage` topic.

A key's RPM/TPM limit is a token bucket in each gateway's memory (gateway/ratelimit.py).
With several gateways, each also takes from its buckets what the others report having
admitted, so the fleet as a whole admits what one gateway would, give or take what is
admitted during one report interval (gateway/rate_share.py). Every gateway reads every
report (no consumer group) and skips its own.

Wire form (orjson): `{"gateway": "<instance id>", "at": <unix seconds>, "keys":
{"<key_id>": [requests, tokens, rpm, tpm]}}`; rpm/tpm are the key's limits (0: none), so
a gateway that has not seen the key yet can make its buckets; `at` lets a reader skip a
report that arrives late (replayed from a spool after an outage): old usage is no longer
in any bucket. Decoding bounds every value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from schemas.report_json import load_report

__all__ = ["KeyUsage", "RateUsage", "decode_rate_usage", "encode_rate_usage"]

_MAX_KEYS = 10_000  # per report
_MAX_COUNT = 10**9  # requests or tokens per report, and a limit


@dataclass(frozen=True, slots=True)
class KeyUsage:
    requests: int
    tokens: int  # may be negative: a refund of an over-estimate
    rpm: int | None
    tpm: int | None


@dataclass(frozen=True, slots=True)
class RateUsage:
    gateway: str
    at: float  # unix seconds when it was sent
    keys: dict[str, KeyUsage]


def encode_rate_usage(usage: RateUsage) -> bytes:
    return orjson.dumps(
        {
            "gateway": usage.gateway,
            "at": usage.at,
            "keys": {
                key_id: [u.requests, u.tokens, u.rpm or 0, u.tpm or 0]
                for key_id, u in usage.keys.items()
            },
        }
    )


def _count(value: Any, *, signed: bool = False) -> int | None:
    if type(value) is not int or abs(value) > _MAX_COUNT or (value < 0 and not signed):
        return None
    return value


def decode_rate_usage(value: bytes) -> RateUsage:
    """The report, or ValueError naming what is wrong with it."""
    data, sender, at = load_report(value, "gateway")
    keys = data.get("keys")
    if not isinstance(keys, dict) or len(keys) > _MAX_KEYS:
        raise ValueError(f"keys must be an object of at most {_MAX_KEYS} entries")
    usage: dict[str, KeyUsage] = {}
    for key_id, entry in keys.items():
        if not isinstance(entry, list) or len(entry) != 4 or len(key_id) > 128:
            raise ValueError(f"bad entry for key {key_id[:128]!r}")
        requests, rpm, tpm = _count(entry[0]), _count(entry[2]), _count(entry[3])
        tokens = _count(entry[1], signed=True)
        if requests is None or tokens is None or rpm is None or tpm is None:
            raise ValueError(f"bad counts for key {key_id!r}")
        usage[key_id] = KeyUsage(requests, tokens, rpm or None, tpm or None)
    return RateUsage(sender, at, usage)
