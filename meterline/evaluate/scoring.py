"""Score detections against ground truth. Pure: labels + detections + requests -> metrics.

A detector is judged over the subjects of its kind the simulation touched (`key:` for
llmjacking, `session:` for agent_loop): a subject is positive when the labels say that
detector should flag it, detected when the detector raised an anomaly or a decision on it.
Time, requests and dollars "to detect" run from the subject's first malicious request to
its first anomaly (requests and dollars: to the request that made it, when the anomaly
names its event time, `evidence.last_seen`); "to block", to the detector's first block
decision on it. Requests are every request the gateway saw for the subject in that window
(a stolen key's owner's too).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from meterline.simulate.labels import Label
from schemas.subjects import SubjectKind, parse_subject

__all__ = [
    "DETECTOR_SUBJECTS",
    "Detection",
    "DetectorScore",
    "ObservedRequest",
    "SubjectTiming",
    "score",
]

# detector -> the subject kind it names (processors/llmjacking, processors/agentloop)
DETECTOR_SUBJECTS: dict[str, SubjectKind] = {"llmjacking": "key", "agent_loop": "session"}


@dataclass(frozen=True)
class Detection:
    detector: str  # Anomaly.kind or EnforcementDecision.source
    subject: str
    ts: float  # epoch seconds
    block: bool = False  # an enforcement decision that blocks (else an anomaly or alert)
    trigger_ts: float | None = None  # event time of the request that made the anomaly


@dataclass(frozen=True)
class ObservedRequest:
    subjects: tuple[str, ...]  # key:<id> and session:<id> of one RequestEvent
    ts: float
    cost_usd: Decimal = Decimal(0)


@dataclass
class SubjectTiming:
    subject: str
    detected_after_s: float | None = None
    requests_to_detect: int | None = None
    usd_to_detect: Decimal | None = None
    blocked_after_s: float | None = None
    requests_to_block: int | None = None
    usd_to_block: Decimal | None = None


@dataclass
class DetectorScore:
    detector: str
    positives: int = 0
    negatives: int = 0
    true_positives: int = 0
    false_positives: int = 0
    false_positive_subjects: list[str] = field(default_factory=list)
    missed_subjects: list[str] = field(default_factory=list)
    timings: list[SubjectTiming] = field(default_factory=list)
    unlabelled_detections: int = 0  # subjects this run did not send (other traffic)

    @property
    def precision(self) -> float | None:
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else None

    @property
    def recall(self) -> float | None:
        return self.true_positives / self.positives if self.positives else None

    @property
    def false_positive_rate(self) -> float | None:
        return self.false_positives / self.negatives if self.negatives else None

    def median(self, name: str) -> float | None:
        values = [float(v) for t in self.timings if (v := getattr(t, name)) is not None]
        return statistics.median(values) if values else None


def _window(requests: list[ObservedRequest], start: float, end: float) -> tuple[int, Decimal]:
    inside = [r for r in requests if start <= r.ts <= end]
    return len(inside), sum((r.cost_usd for r in inside), Decimal(0))


def score(
    labels: Iterable[Label],
    detections: Iterable[Detection],
    requests: Iterable[ObservedRequest] = (),
    detectors: Iterable[str] = DETECTOR_SUBJECTS,
) -> dict[str, DetectorScore]:
    labels = list(labels)
    first_seen: dict[tuple[str, str], float] = {}
    first_block: dict[tuple[str, str], float] = {}
    first_trigger: dict[tuple[str, str], float] = {}
    for d in detections:
        table = first_block if d.block else first_seen
        pair = (d.detector, d.subject)
        table[pair] = min(table.get(pair, d.ts), d.ts)
        if d.trigger_ts is not None:
            first_trigger[pair] = min(first_trigger.get(pair, d.trigger_ts), d.trigger_ts)
        if d.block:  # a block is a detection too
            first_seen[pair] = min(first_seen.get(pair, d.ts), d.ts)
    by_subject: dict[str, list[ObservedRequest]] = defaultdict(list)
    for request in requests:
        for subject in request.subjects:
            by_subject[subject].append(request)

    scores = {}
    for detector in detectors:
        kind = DETECTOR_SUBJECTS[detector]
        result = DetectorScore(detector)
        universe = [label for label in labels if parse_subject(label.subject)[0] == kind]
        known = {label.subject for label in universe}
        result.unlabelled_detections = len(
            {s for (k, s) in first_seen if k == detector and parse_subject(s)[0] == kind} - known
        )
        for label in universe:
            positive = label.malicious and label.detector == detector
            seen = first_seen.get((detector, label.subject))
            if not positive:
                result.negatives += 1
                if seen is not None:
                    result.false_positives += 1
                    result.false_positive_subjects.append(label.subject)
                continue
            result.positives += 1
            if seen is None:
                result.missed_subjects.append(label.subject)
                continue
            result.true_positives += 1
            start = label.first_malicious_ts or label.first_request_ts
            timing = SubjectTiming(label.subject, detected_after_s=seen - start)
            history = by_subject.get(label.subject, [])
            # Requests the detector needed: up to the one that made the anomaly (the
            # pipeline's lag after it shows in the time to detect and to block).
            until = first_trigger.get((detector, label.subject), seen)
            timing.requests_to_detect, timing.usd_to_detect = _window(history, start, until)
            blocked = first_block.get((detector, label.subject))
            if blocked is not None:
                timing.blocked_after_s = blocked - start
                timing.requests_to_block, timing.usd_to_block = _window(history, start, blocked)
            result.timings.append(timing)
        scores[detector] = result
    return scores
