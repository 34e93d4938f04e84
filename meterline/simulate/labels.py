"""Ground truth: which subjects were malicious, for which detector, and from when.

One JSON line per subject the simulation touched (`key:<key_id>`, `session:<id>`,
`app:<app>`), benign ones included: they are the denominators of false-positive rates.
Times are what the simulator's clock said when it sent the request (epoch seconds, UTC).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

__all__ = ["GroundTruth", "Label", "read_labels", "write_labels"]


@dataclass
class Label:
    subject: str
    malicious: bool = False
    detector: str | None = None  # which detector should flag it (llmjacking, agent_loop, ...)
    scenario: str = ""  # of the first malicious request, else of the first request
    stage: str = ""
    first_request_ts: float = 0.0
    first_malicious_ts: float | None = None
    requests: int = 0
    malicious_requests: int = 0
    name: str = ""  # the plan's name for it (key names are resolved to ids when sent)


class GroundTruth:
    """Collects labels as requests go out."""

    def __init__(self) -> None:
        self.labels: dict[str, Label] = {}

    def record(
        self,
        subject: str,
        name: str,
        *,
        scenario: str,
        stage: str,
        malicious: bool,
        detector: str | None,
        ts: float,
    ) -> None:
        label = self.labels.get(subject)
        if label is None:
            label = self.labels[subject] = Label(
                subject, scenario=scenario, stage=stage, first_request_ts=ts, name=name
            )
        label.requests += 1
        if not malicious:
            return
        label.malicious_requests += 1
        if label.first_malicious_ts is None:
            label.malicious = True
            label.detector = detector
            label.scenario, label.stage = scenario, stage
            label.first_malicious_ts = ts

    def sorted(self) -> list[Label]:
        return sorted(self.labels.values(), key=lambda label: label.subject)


def write_labels(path: Path, labels: list[Label]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(asdict(label)) + b"\n" for label in labels))


def read_labels(path: Path) -> list[Label]:
    return [Label(**orjson.loads(line)) for line in path.read_bytes().splitlines() if line.strip()]
