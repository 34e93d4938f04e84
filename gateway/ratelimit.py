"""Token buckets for the local rate limits: per-key RPM/TPM and throttled subjects.

Buckets live in each gateway's memory (no shared state, no network on the hot path). A
bucket holds up to one minute's allowance and refills continuously. With several
gateways, each one also takes from its buckets what the others report having admitted
(`KeyLimiter.take_reported`, fed by gateway/rate_share.py), so a key's limit holds across
the fleet; what this gateway takes is kept for its own report (`KeyLimiter.drain`).
Token costs are estimated before the call (prompt chars / 4 + max_tokens) and corrected
with the real usage after, so a bucket may go into debt and make the next requests wait.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from schemas.rate_usage import KeyUsage

__all__ = ["KeyLimiter", "LimitCheck", "SubjectThrottle", "TokenBucket", "estimate_tokens"]

_MAX_RETRY_AFTER_S = 60


def estimate_tokens(prompt_chars: int, max_tokens: int | None) -> int:
    """Tokens a request may use, guessed before it runs (~4 characters per token)."""
    return prompt_chars // 4 + 1 + (max_tokens or 0)


def retry_after_s(wait_s: float) -> int:
    """Whole seconds for a Retry-After header: at least 1, at most a minute."""
    if math.isinf(wait_s):
        return _MAX_RETRY_AFTER_S
    return max(1, min(_MAX_RETRY_AFTER_S, math.ceil(wait_s)))


class TokenBucket:
    """`per_minute` units a minute, bursting up to `per_minute`; times are monotonic seconds."""

    __slots__ = ("capacity", "per_minute", "rate", "stamp", "tokens")

    def __init__(self, per_minute: int, now: float) -> None:
        self.per_minute = per_minute
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.tokens = self.capacity
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait(self, cost: float, now: float) -> float:
        """Seconds until `cost` can be taken (0 now). A cost above the capacity needs a
        full bucket, so an oversized request is slow, never refused forever."""
        self._refill(now)
        if cost <= 0:
            return 0.0
        need = min(cost, self.capacity)
        if need > 0 and self.tokens >= need:
            return 0.0
        if self.rate <= 0:
            return math.inf
        return (need - self.tokens) / self.rate

    def take(self, cost: float) -> None:
        self.tokens -= cost  # may go negative: debt delays the next requests

    def give_back(self, amount: float) -> None:
        self.tokens = min(self.capacity, self.tokens + amount)

    @property
    def remaining(self) -> int:
        return max(0, int(self.tokens))


@dataclass(slots=True)
class LimitCheck:
    """The outcome of one per-key check; `exceeded` names the limit that refused it."""

    limit_requests: int | None
    remaining_requests: int | None
    limit_tokens: int | None
    remaining_tokens: int | None
    exceeded: str | None = None  # "requests" | "tokens"
    retry_after: int = 0
    tokens_taken: int = 0

    def headers(self) -> list[tuple[bytes, bytes]]:
        out = []
        if self.limit_requests is not None:
            out.append((b"x-ratelimit-limit-requests", str(self.limit_requests).encode()))
            out.append((b"x-ratelimit-remaining-requests", str(self.remaining_requests).encode()))
        if self.limit_tokens is not None:
            out.append((b"x-ratelimit-limit-tokens", str(self.limit_tokens).encode()))
            out.append((b"x-ratelimit-remaining-tokens", str(self.remaining_tokens).encode()))
        if self.exceeded:
            out.append((b"retry-after", str(self.retry_after).encode()))
        return out


class KeyLimiter:
    """Per-key RPM and TPM buckets; a key whose limits change gets fresh buckets."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._requests: dict[str, TokenBucket] = {}
        self._tokens: dict[str, TokenBucket] = {}
        self._max_keys = max_keys
        # What this gateway took per limited key since the last drain:
        # key_id -> [requests, tokens, rpm, tpm].
        self._taken: dict[str, list[Any]] = {}

    def _note(self, key_id: str, requests: int, tokens: int, rpm: Any, tpm: Any) -> None:
        taken = self._taken.get(key_id)
        if taken is None:
            if len(self._taken) >= self._max_keys:
                return  # a report is bounded; the next one starts afresh
            self._taken[key_id] = [requests, tokens, rpm, tpm]
        else:
            taken[0] += requests
            taken[1] += tokens

    def drain(self) -> dict[str, KeyUsage]:
        """What this gateway took per limited key since the last drain."""
        taken, self._taken = self._taken, {}
        return {k: KeyUsage(r, t, rpm, tpm) for k, (r, t, rpm, tpm) in taken.items()}

    def take_reported(self, usage: dict[str, KeyUsage], now: float) -> None:
        """Take what another gateway admitted (debt allowed, as for a correction)."""
        for key_id, used in usage.items():
            requests = self._bucket(self._requests, key_id, used.rpm, now)
            if requests is not None and used.requests:
                requests.take(used.requests)
            tokens = self._bucket(self._tokens, key_id, used.tpm, now)
            if tokens is not None and used.tokens:
                tokens.take(used.tokens)

    def _bucket(
        self, table: dict[str, TokenBucket], key_id: str, limit: int | None, now: float
    ) -> TokenBucket | None:
        if limit is None:
            return None
        bucket = table.get(key_id)
        if bucket is None or bucket.per_minute != limit:
            if len(table) >= self._max_keys:
                table.clear()  # bounded memory; a reset only forgives recent use
            bucket = table[key_id] = TokenBucket(limit, now)
        return bucket

    def check(
        self, key_id: str, rpm: int | None, tpm: int | None, tokens: int, now: float
    ) -> LimitCheck:
        """Take one request and `tokens` if both fit; otherwise take nothing."""
        requests = self._bucket(self._requests, key_id, rpm, now)
        token_bucket = self._bucket(self._tokens, key_id, tpm, now)
        wait_r = requests.wait(1, now) if requests else 0.0
        wait_t = token_bucket.wait(tokens, now) if token_bucket else 0.0
        exceeded = "requests" if wait_r > 0 else "tokens" if wait_t > 0 else None
        if exceeded is None:
            if requests:
                requests.take(1)
            if token_bucket:
                token_bucket.take(tokens)
            if requests or token_bucket:
                self._note(key_id, 1, tokens if token_bucket else 0, rpm, tpm)
        return LimitCheck(
            limit_requests=rpm,
            remaining_requests=requests.remaining if requests else None,
            limit_tokens=tpm,
            remaining_tokens=token_bucket.remaining if token_bucket else None,
            exceeded=exceeded,
            retry_after=retry_after_s(max(wait_r, wait_t)) if exceeded else 0,
            tokens_taken=tokens if exceeded is None and token_bucket else 0,
        )

    def correct(self, key_id: str, estimated: int, actual: int) -> None:
        """Replace a request's estimate with its real usage (a refund or more debt)."""
        bucket = self._tokens.get(key_id)
        if bucket is not None and estimated:
            if actual < estimated:
                bucket.give_back(estimated - actual)
            else:
                bucket.take(actual - estimated)
            rpm = self._requests.get(key_id)
            limits = (rpm.per_minute if rpm else None, bucket.per_minute)
            self._note(key_id, 0, actual - estimated, *limits)


class SubjectThrottle:
    """RPM buckets for subjects under a `throttle` decision (one bucket per subject)."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def acquire(self, subject: str, rpm: int, now: float) -> int:
        """0 if the request may go, else the Retry-After in seconds."""
        bucket = self._buckets.get(subject)
        if bucket is None or bucket.per_minute != rpm:
            if len(self._buckets) >= 100_000:
                self._buckets.clear()
            bucket = self._buckets[subject] = TokenBucket(rpm, now)
        wait = bucket.wait(1, now)
        if wait > 0:
            return retry_after_s(wait)
        bucket.take(1)
        return 0
