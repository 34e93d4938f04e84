"""One drift scope's traffic drawn from wide ranges, stable or with a shift. Pure.

A scope (one app x one model) serves requests at a drawn rate, 0.2-40 req/s (log-uniform),
that swings by up to +-50% over 10-60 minutes. Per scope, drawn: the prompts' content (one
of `CONTENTS`) and length (lognormal, median 200-8,000 chars, sigma 0.4-1.2), answers
(lognormal, median 60-800 tokens, sigma 0.3-1.0, cut at max_tokens), latency (time to
first token lognormal, median 150-1,500 ms, plus 5-40 ms per output token, and 0.5-3% of
requests 2-10x slower), upstream errors (0-3%: 429s and 5xxs) and refusals (0-2%,
finish_reason `content_filter`). Every request's figures are drawn from those.

A shift (`Shift`) changes one thing from its start on. Real shifts, sizes drawn from
ranges a person would call a real change (`REAL_SIZES`):

- `prompt_longer`: every prompt x1.5-4 (the median at least +50%, >= 100 chars);
- `answer_longer`: every answer x1.5-4 in tokens (and characters, and latency with it);
- `latency_up`: the provider x1.5-5 slower (time to first token and per token);
- `error_rate_up`: +5 to +30 points of upstream errors;
- `refusal_rate_up`: +5 to +30 points of refusals;
- `content_change`: 50-100% of prompts become another kind of content, same lengths.

Sub-threshold shifts (`SUB_THRESHOLD_SIZES`) stay below the detector's documented effect
floors (a median or p90 moved by 25%, a rate by 2 points): x1.03-1.15, +0.2 to +1 point.
Content has no such floor, so it has no sub-threshold shift.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from meterline.evaluate.draws import T0
from schemas.events.v1 import RequestEvent
from schemas.signature import MAX_BYTES, prompt_signature

__all__ = [
    "CONTENTS",
    "REAL_SIZES",
    "SHIFT_KINDS",
    "SHIFT_METRICS",
    "SUB_THRESHOLD_SIZES",
    "Scope",
    "Shift",
    "draw_scope",
    "draw_shift",
    "scope_requests",
]

SHIFT_KINDS = (
    "prompt_longer",
    "answer_longer",
    "latency_up",
    "error_rate_up",
    "refusal_rate_up",
    "content_change",
)
# What the detector must name (Anomaly.signals) for a shift of each kind.
SHIFT_METRICS: dict[str, frozenset[str]] = {
    "prompt_longer": frozenset({"prompt_chars", "input_tokens"}),
    "answer_longer": frozenset({"response_chars", "output_tokens"}),
    "latency_up": frozenset({"latency_ms"}),
    "error_rate_up": frozenset({"error_rate"}),
    "refusal_rate_up": frozenset({"refusal_rate"}),
    "content_change": frozenset({"prompt_signature"}),
}
REAL_SIZES: dict[str, tuple[float, float]] = {
    "prompt_longer": (1.5, 4.0),  # x median
    "answer_longer": (1.5, 4.0),
    "latency_up": (1.5, 5.0),
    "error_rate_up": (0.05, 0.30),  # + share of requests
    "refusal_rate_up": (0.05, 0.30),
    "content_change": (0.5, 1.0),  # share of prompts of the new content
}
SUB_THRESHOLD_SIZES: dict[str, tuple[float, float]] = {
    "prompt_longer": (1.03, 1.15),
    "answer_longer": (1.03, 1.15),
    "latency_up": (1.03, 1.15),
    "error_rate_up": (0.002, 0.01),
    "refusal_rate_up": (0.002, 0.01),
}
CONTENTS: dict[str, tuple[str, ...]] = {
    "support": (
        "my", "order", "has", "not", "arrived", "yet", "can", "you", "help", "refund",
        "please", "the", "package", "was", "damaged", "I", "want", "to", "cancel", "thanks",
        "account", "password", "reset", "invoice", "wrong", "address", "delivery", "when",
    ),
    "logs": (
        "ERROR", "WARN", "INFO", "2026-01-05T10:22:31.118Z", "Traceback", "File", "line",
        "0x7ffe3a1c", "segfault", "timeout", "retrying", "pod/api-7f9c", "OOMKilled",
        "upstream", "nginx", "GET", "/api/v2/orders", "500", "503", "worker-3", "pid=4411",
    ),
    "code": (
        "def", "return", "self", "import", "from", "for", "in", "if", "else:", "None",
        "(self,", "x):", "==", "+=", "[i]", "{", "}", "async", "await", "raise", "class",
        "ValueError", "print(", "len(", "items", "result", "dict[str,", "int]", "->",
    ),
    "json": (
        '{"id":', '"name":', '"price":', "19.99,", '"tags":', '["a",', '"b"],', "null,",
        "true,", '"created_at":', '"2026-01-05",', '"items":', "[{", "}]", "},", '"qty":', "3,",
    ),
    "german": (
        "Ich", "habe", "eine", "Frage", "zu", "meiner", "Bestellung", "die", "Lieferung",
        "ist", "noch", "nicht", "angekommen", "bitte", "helfen", "Sie", "mir", "Rechnung",
        "falsch", "Konto", "Passwort", "zurücksetzen", "danke", "für", "Ihre", "Hilfe",
    ),
    "sql": (
        "SELECT", "FROM", "WHERE", "JOIN", "ON", "GROUP", "BY", "ORDER", "LIMIT", "orders",
        "customers", "o.id", "=", "c.id", "AND", "created_at", ">", "'2026-01-01'", "COUNT(*)",
        "SUM(total)", "AS", "revenue", "HAVING", "DESC", ";",
    ),
}  # fmt: skip
_ERRORS = (
    (429, "rate_limited", 0.4),
    (500, "upstream_500", 0.2),
    (502, "upstream_unavailable", 0.15),
)
_ERRORS += ((503, "upstream_503", 0.15), (504, "upstream_timeout", 0.1))
_POOL = 600  # distinct prompt texts per content and length law (a templated app's variety)


@dataclass(frozen=True)
class Shift:
    kind: str
    size: float  # a factor (x median), a share of requests, or a share of prompts
    at_s: float  # seconds after the scope's first request
    real: bool = True  # False: below the detector's effect floors (sub-threshold)


@dataclass(frozen=True)
class Scope:
    app: str
    model: str
    rate: float  # requests per second, on average
    swing: float  # the rate's relative swing
    swing_period_s: float
    content: str
    new_content: str  # what a content change brings
    prompt_median: float  # chars
    prompt_sigma: float
    answer_median: float  # tokens
    answer_sigma: float
    max_tokens: int
    ttft_ms: float
    ttft_sigma: float
    ms_per_token: float
    slow_share: float  # requests 2-10x slower than usual
    error_rate: float
    refusal_rate: float
    system_tokens: int


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def draw_scope(rng: random.Random, name: str) -> Scope:
    content, new_content = rng.sample(sorted(CONTENTS), 2)
    return Scope(
        app=name,
        model=rng.choice(("gpt-4o-mini", "gpt-4o", "claude-3-5-haiku-latest", "gpt-4.1-nano")),
        rate=_log_uniform(rng, 0.2, 40.0),
        swing=rng.uniform(0.0, 0.5),
        swing_period_s=rng.uniform(600.0, 3600.0),
        content=content,
        new_content=new_content,
        prompt_median=_log_uniform(rng, 200.0, 8000.0),
        prompt_sigma=rng.uniform(0.4, 1.2),
        answer_median=_log_uniform(rng, 60.0, 800.0),
        answer_sigma=rng.uniform(0.3, 1.0),
        max_tokens=int(_log_uniform(rng, 2048, 8192)),
        ttft_ms=_log_uniform(rng, 150.0, 1500.0),
        ttft_sigma=rng.uniform(0.2, 0.6),
        ms_per_token=_log_uniform(rng, 5.0, 40.0),
        slow_share=rng.uniform(0.005, 0.03),
        error_rate=rng.uniform(0.0, 0.03),
        refusal_rate=rng.uniform(0.0, 0.02),
        system_tokens=rng.randint(50, 2000),
    )


def draw_shift(rng: random.Random, kind: str, at_s: float, real: bool = True) -> Shift:
    low, high = (REAL_SIZES if real else SUB_THRESHOLD_SIZES)[kind]
    return Shift(kind, rng.uniform(low, high), at_s, real)


def _texts(
    rng: random.Random, words: tuple[str, ...], median: float, sigma: float
) -> list[tuple[int, str | None]]:
    """(prompt chars, signature) of a pool of prompts: lengths from the law, words of
    `words`; the signature reads the first MAX_BYTES only, so only those are written."""
    stream = " ".join(rng.choices(words, k=4 * MAX_BYTES))  # each prompt: a slice of it
    pool = []
    for _ in range(_POOL):
        chars = max(3, round(median * math.exp(rng.gauss(0.0, sigma))))
        kept = min(chars, MAX_BYTES)
        start = rng.randrange(len(stream) - kept)
        pool.append((chars, prompt_signature(stream[start : start + kept])))
    return pool


def scope_requests(
    rng: random.Random, scope: Scope, since_s: float, until_s: float, shift: Shift | None
) -> Iterator[RequestEvent]:
    """The scope's RequestEvents started from `since_s` to `until_s` (seconds after T0), in
    the order they start (not yet in ts_end order)."""
    kind = shift.kind if shift is not None else None
    size = shift.size if shift is not None else 0.0
    base = _texts(rng, CONTENTS[scope.content], scope.prompt_median, scope.prompt_sigma)
    changed = base
    if kind == "prompt_longer":
        median = scope.prompt_median * size
        changed = _texts(rng, CONTENTS[scope.content], median, scope.prompt_sigma)
    elif kind == "content_change":
        words = CONTENTS[scope.new_content]
        changed = _texts(rng, words, scope.prompt_median, scope.prompt_sigma)
    peak = scope.rate * (1 + scope.swing)
    at, number = since_s, 0
    while True:
        at += rng.expovariate(peak)  # thinning: a Poisson process whose rate swings
        if at >= until_s:
            return
        swing = 1 + scope.swing * math.sin(2 * math.pi * at / scope.swing_period_s)
        if rng.random() * (1 + scope.swing) > swing:
            continue
        shifted = shift is not None and at >= shift.at_s
        number += 1
        yield _request(rng, scope, at, number, kind if shifted else None, size, base, changed)


def _request(
    rng: random.Random,
    scope: Scope,
    at_s: float,
    number: int,
    kind: str | None,
    size: float,
    base: list[tuple[int, str | None]],
    changed: list[tuple[int, str | None]],
) -> RequestEvent:
    pool = base
    if kind == "prompt_longer" or (kind == "content_change" and rng.random() < size):
        pool = changed
    chars, signature = rng.choice(pool)
    slower = size if kind == "latency_up" else 1.0
    ttft = scope.ttft_ms * math.exp(rng.gauss(0.0, scope.ttft_sigma)) * slower
    errors = scope.error_rate + (size if kind == "error_rate_up" else 0.0)
    refusals = scope.refusal_rate + (size if kind == "refusal_rate_up" else 0.0)
    status, error, finish = 200, None, "stop"
    draw = rng.random()
    if draw < errors:
        status, error = _error(rng)
        output, finish = 0, None
        # Rate limits answer at once; server errors after a while; timeouts at the limit.
        latency = rng.uniform(30_000, 60_000) if status == 504 else ttft * rng.uniform(0.1, 3)
    else:
        if draw < errors + refusals:
            output, finish = rng.randint(5, 60), "content_filter"
        else:
            longer = size if kind == "answer_longer" else 1.0
            law = scope.answer_median * longer * math.exp(rng.gauss(0.0, scope.answer_sigma))
            output = max(1, min(scope.max_tokens, round(law)))
            finish = "length" if output == scope.max_tokens else "stop"
        per_token = scope.ms_per_token * slower * math.exp(rng.gauss(0.0, 0.15))
        latency = ttft + output * per_token
        if rng.random() < scope.slow_share:
            latency *= rng.uniform(2.0, 10.0)  # a provider hiccup: the heavy tail
    start = T0 + timedelta(seconds=at_s)
    ok = status == 200
    return RequestEvent(
        request_id=f"{scope.app}-{number}",
        ts_start=start,
        ts_end=start + timedelta(milliseconds=latency),
        latency_ms=latency,
        key_id=f"{scope.app}-key",
        org="acme",
        app=scope.app,
        provider="anthropic" if scope.model.startswith("claude") else "openai",
        model_requested=scope.model,
        model_used=scope.model,
        endpoint="/v1/chat/completions",
        status_code=status,
        error_type=error,
        input_tokens=round(chars / rng.uniform(3.5, 4.5)) + scope.system_tokens if ok else 0,
        output_tokens=output,
        prompt_chars=chars,
        response_chars=round(output * rng.uniform(3.2, 4.8)),
        prompt_signature=signature,
        finish_reason=finish,
        max_tokens_requested=scope.max_tokens,
    )


def _error(rng: random.Random) -> tuple[int, str]:
    status, error, _ = rng.choices(_ERRORS, weights=[w for _, _, w in _ERRORS])[0]
    return status, error
