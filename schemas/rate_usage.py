"""One gateway's rate-limit consumption and budget spend since its last report: the
internal `rate-usage` topic.

A key's RPM/TPM limit is a token bucket in each gateway's memory (gateway/ratelimit.py).
With several gateways, each also takes from its buckets what the others report having
admitted, so the fleet as a whole admits what one gateway would, give or take what is
admitted during one report interval (gateway/rate_share.py). Every gateway reads every
report (no consumer group) and skips its own.

Wire form (orjson): `{"gateway": "<instance id>", "at": <unix seconds>, "keys":
{"<key_id>": [requests, tokens, rpm, tpm]}}`; rpm/tpm are the key's limits (0: none), so
a gateway that has not seen the key yet can make its buckets; `at` lets a reader skip a
report that arrives late (replayed from a spool after an outage): old usage is no longer
in any bucket.

`"spend": [[budget_id, ts_ms, request_id, usd], ...]` (optional) is the estimated cost of
each request this gateway served on a budget with a hard action, by its spend mark
(schemas/spend.py): every other gateway counts it against the budget until a BudgetState
covers that mark, so the fleet refuses at the limit even while the processors lag or are
down (gateway/budgets.py). Decoding bounds every value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from schemas.report_json import load_report

__all__ = ["KeyUsage", "RateUsage", "SharedSpend", "decode_rate_usage", "encode_rate_usage"]

_MAX_KEYS = 10_000  # per report
_MAX_SPEND = 20_000  # spend entries per report
_MAX_COUNT = 10**9  # requests or tokens per report, and a limit
_MAX_TEXT = 256  # a budget id or request id
_MAX_USD = 10**6  # one request's estimated cost


@dataclass(frozen=True, slots=True)
class KeyUsage:
    requests: int
    tokens: int  # may be negative: a refund of an over-estimate
    rpm: int | None
    tpm: int | None


@dataclass(frozen=True, slots=True)
class SharedSpend:
    budget_id: str
    ts_ms: int  # the request's spend mark: its start millisecond ...
    request_id: str  # ... and its id
    usd: float  # estimated, as the gateway prices


@dataclass(frozen=True, slots=True)
class RateUsage:
    gateway: str
    at: float  # unix seconds when it was sent
    keys: dict[str, KeyUsage]
    spend: tuple[SharedSpend, ...] = ()


def encode_rate_usage(usage: RateUsage) -> bytes:
    return orjson.dumps(
        {
            "gateway": usage.gateway,
            "at": usage.at,
            "keys": {
                key_id: [u.requests, u.tokens, u.rpm or 0, u.tpm or 0]
                for key_id, u in usage.keys.items()
            },
            "spend": [[e.budget_id, e.ts_ms, e.request_id, e.usd] for e in usage.spend],
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
    return RateUsage(sender, at, usage, _spend(data.get("spend", [])))


def _spend(entries: Any) -> tuple[SharedSpend, ...]:
    if not isinstance(entries, list) or len(entries) > _MAX_SPEND:
        raise ValueError(f"spend must be a list of at most {_MAX_SPEND} entries")
    out = []
    for entry in entries:
        if not isinstance(entry, list) or len(entry) != 4:
            raise ValueError("each spend entry is [budget_id, ts_ms, request_id, usd]")
        budget_id, ts_ms, request_id, usd = entry
        if not all(isinstance(t, str) and 0 < len(t) <= _MAX_TEXT for t in (budget_id, request_id)):
            raise ValueError(f"budget_id and request_id must be 1-{_MAX_TEXT} characters")
        if type(ts_ms) is not int or not 0 <= ts_ms < 10**14:
            raise ValueError("ts_ms must be epoch milliseconds")
        if type(usd) not in (int, float) or not 0 <= usd <= _MAX_USD:
            raise ValueError(f"usd must be a number from 0 to {_MAX_USD}")
        out.append(SharedSpend(budget_id, ts_ms, request_id, float(usd)))
    return tuple(out)
