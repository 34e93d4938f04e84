"""The detection scorer on hand-made labels and detections (no stack)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from meterline.evaluate import Detection, ObservedRequest, score
from meterline.evaluate.collect import Collected
from meterline.simulate.labels import Label


def _key(name: str, malicious: bool = False, since: float | None = None) -> Label:
    return Label(
        f"key:{name}",
        malicious=malicious,
        detector="llmjacking" if malicious else None,
        first_request_ts=0.0,
        first_malicious_ts=since,
    )


LABELS = [
    _key("stolen1", True, 100.0),
    _key("stolen2", True, 200.0),
    *[_key(f"ok{i}") for i in range(8)],
    Label("session:loop", True, "agent_loop", first_request_ts=50.0, first_malicious_ts=60.0),
    Label("session:long", first_request_ts=10.0),
    # An agent-loop session is not an llmjacking positive, and vice versa.
    Label("key:agents", first_request_ts=0.0),
]


def test_precision_recall_and_false_positive_rate() -> None:
    detections = [
        Detection("llmjacking", "key:stolen1", 112.0),
        Detection("llmjacking", "key:stolen1", 130.0),  # the first one counts
        Detection("llmjacking", "key:ok3", 150.0),
        Detection("llmjacking", "key:not-from-this-run", 1.0),
        Detection("agent_loop", "session:loop", 64.0),
        Detection("drift", "key:ok1", 10.0),  # another detector's: ignored
    ]
    scores = score(LABELS, detections)
    jack = scores["llmjacking"]
    assert (jack.positives, jack.negatives) == (2, 9)
    assert (jack.true_positives, jack.false_positives) == (1, 1)
    assert jack.precision == 0.5 and jack.recall == 0.5
    assert jack.false_positive_rate == pytest.approx(1 / 9)
    assert jack.missed_subjects == ["key:stolen2"]
    assert jack.false_positive_subjects == ["key:ok3"]
    assert jack.unlabelled_detections == 1
    [timing] = jack.timings
    assert timing.detected_after_s == 12.0 and timing.blocked_after_s is None
    loop = scores["agent_loop"]
    assert (loop.positives, loop.negatives, loop.true_positives) == (1, 1, 1)
    assert loop.recall == 1.0 and loop.false_positive_rate == 0.0
    assert loop.timings[0].detected_after_s == 4.0


def test_time_requests_and_dollars_to_detection_and_block() -> None:
    requests = [
        ObservedRequest(("key:stolen1",), 90.0, Decimal("5")),  # the owner, before the theft
        *[
            ObservedRequest(("key:stolen1", f"session:s{i}"), 100.0 + i, Decimal("0.25"))
            for i in range(20)
        ],
        ObservedRequest(("key:ok1",), 101.0, Decimal("9")),
    ]
    detections = [
        Detection("llmjacking", "key:stolen1", 104.0),
        Detection("llmjacking", "key:stolen1", 109.5, block=True),
    ]
    timing = score(LABELS, detections, requests)["llmjacking"].timings[0]
    assert (timing.detected_after_s, timing.requests_to_detect) == (4.0, 5)
    assert timing.usd_to_detect == Decimal("1.25")
    assert (timing.blocked_after_s, timing.requests_to_block) == (9.5, 10)
    assert timing.usd_to_block == Decimal("2.50")


def test_a_block_alone_is_a_detection_and_nothing_detected_has_no_precision() -> None:
    blocked = score(LABELS, [Detection("llmjacking", "key:stolen2", 230.0, block=True)])
    timing = blocked["llmjacking"].timings[0]
    assert timing.detected_after_s == timing.blocked_after_s == 30.0
    empty = score(LABELS, [])["llmjacking"]
    assert empty.precision is None and empty.recall == 0.0 and empty.median("x") is None


def test_collected_topic_records_become_detections_and_requests() -> None:
    collected = Collected(
        {
            "anomalies": [
                {"kind": "llmjacking", "subject": "key:a", "ts": "2025-01-01T00:00:10.000Z"},
                {"kind": "llmjacking", "subject": "key:a"},  # no time: unusable
            ],
            "enforcement": [
                {
                    "source": "llmjacking",
                    "subject": "key:a",
                    "action": "block",
                    "decided_at": "2025-01-01T00:00:12.500Z",
                },
                {"source": "budget", "subject": "key:b", "action": "throttle", "ts": "x"},
            ],
            "requests": [
                {
                    "request_id": "r1",
                    "key_id": "a",
                    "session_id": "s",
                    "ts_start": "2025-01-01T00:00:09.000Z",
                }
            ],
            "costs": [{"request_id": "r1", "total_cost": "0.0125"}],
        }
    )
    base = 1735689600.0
    assert collected.detections == [
        Detection("llmjacking", "key:a", base + 10),
        Detection("llmjacking", "key:a", base + 12.5, block=True),
    ]
    assert collected.requests == [
        ObservedRequest(("key:a", "session:s"), base + 9, Decimal("0.0125"))
    ]
