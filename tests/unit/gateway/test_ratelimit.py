from __future__ import annotations

from gateway.ratelimit import KeyLimiter, SubjectThrottle, TokenBucket, estimate_tokens
from schemas.rate_usage import KeyUsage


def test_bucket_bursts_to_its_minute_then_refills_continuously() -> None:
    bucket = TokenBucket(60, now=0.0)  # one a second

    for _ in range(60):
        assert bucket.wait(1, 0.0) == 0.0
        bucket.take(1)

    assert bucket.wait(1, 0.0) == 1.0
    assert bucket.wait(1, 0.5) == 0.5
    assert bucket.wait(1, 1.0) == 0.0
    assert TokenBucket(60, now=0.0).remaining == 60


def test_an_oversized_cost_waits_for_a_full_bucket_and_may_go_into_debt() -> None:
    bucket = TokenBucket(100, now=0.0)

    assert bucket.wait(500, 0.0) == 0.0  # larger than the bucket: allowed when full
    bucket.take(500)
    assert bucket.remaining == 0
    # 400 tokens of debt plus 100 for the next full bucket, at 100/60 per second
    assert round(bucket.wait(500, 0.0), 6) == 300.0


def test_a_zero_limit_never_admits() -> None:
    assert TokenBucket(0, now=0.0).wait(1, 1e9) == float("inf")


def test_key_limiter_checks_both_limits_before_taking_anything() -> None:
    limiter = KeyLimiter()
    first = limiter.check("k", rpm=2, tpm=100, tokens=60, now=0.0)
    assert (first.exceeded, first.remaining_requests, first.remaining_tokens) == (None, 1, 40)
    refused = limiter.check("k", rpm=2, tpm=100, tokens=60, now=0.0)
    assert refused.exceeded == "tokens" and refused.retry_after == 12  # 20 tokens at 100/60 s
    assert refused.remaining_requests == 1  # the request was not consumed
    headers = dict(refused.headers())
    assert headers[b"x-ratelimit-limit-tokens"] == b"100"
    assert headers[b"x-ratelimit-remaining-tokens"] == b"40"
    assert headers[b"retry-after"] == b"12"

    limiter.correct("k", estimated=60, actual=10)  # real usage refunds the estimate
    second = limiter.check("k", rpm=2, tpm=100, tokens=60, now=0.0)
    assert (second.exceeded, second.remaining_requests, second.remaining_tokens) == (None, 0, 30)
    third = limiter.check("k", rpm=2, tpm=100, tokens=1, now=0.0)
    assert (third.exceeded, third.retry_after) == ("requests", 30)


def test_changed_limits_get_fresh_buckets_and_unlimited_keys_no_headers() -> None:
    limiter = KeyLimiter()
    assert limiter.check("k", rpm=1, tpm=None, tokens=5, now=0.0).exceeded is None
    assert limiter.check("k", rpm=1, tpm=None, tokens=5, now=0.0).exceeded == "requests"
    assert limiter.check("k", rpm=5, tpm=None, tokens=5, now=0.0).exceeded is None
    assert limiter.check("free", rpm=None, tpm=None, tokens=5, now=0.0).headers() == []


def test_token_estimate_is_prompt_chars_over_four_plus_max_tokens() -> None:
    assert estimate_tokens(400, 50) == 151
    assert estimate_tokens(0, None) == 1


def test_subject_throttle_answers_retry_after_seconds() -> None:
    throttle = SubjectThrottle()
    assert throttle.acquire("team:a/b", 2, 0.0) == 0
    assert throttle.acquire("team:a/b", 2, 0.0) == 0
    assert throttle.acquire("team:a/b", 2, 0.0) == 30
    assert throttle.acquire("team:a/c", 2, 0.0) == 0  # per subject
    assert throttle.acquire("team:a/b", 2, 30.0) == 0


def test_the_limiter_reports_what_it_admitted_and_takes_what_others_report() -> None:
    limiter = KeyLimiter()
    assert not limiter.check("k1", 2, 100, 10, now=0.0).exceeded
    limiter.correct("k1", 10, 4)  # a refund of the over-estimate is reported too
    assert limiter.check("k2", None, None, 10, now=0.0).exceeded is None  # unlimited
    assert limiter.drain() == {"k1": KeyUsage(1, 4, 2, 100)}
    assert limiter.drain() == {}

    # Another gateway admitted one request of k1: the shared limit of 2 is now spent.
    limiter.take_reported({"k1": KeyUsage(1, 50, 2, 100)}, now=0.0)
    assert limiter.check("k1", 2, 100, 10, now=0.0).exceeded == "requests"
    # A key this gateway never saw gets its buckets from the report's limits.
    limiter.take_reported({"k3": KeyUsage(5, 0, 5, None)}, now=0.0)
    assert limiter.check("k3", 5, None, 0, now=0.0).exceeded == "requests"
    assert limiter.drain() == {}  # refusals are not usage
