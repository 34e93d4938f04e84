"""Evaluation of the detectors against simulated attacks with ground truth
(`meterline eval detections`): `scoring.py` is the pure scorer, `collect.py` reads the
pipeline's conclusions from its topics, `run.py` runs the whole exercise."""

from __future__ import annotations

from meterline.evaluate.scoring import (
    DETECTOR_SUBJECTS,
    Detection,
    DetectorScore,
    ObservedRequest,
    SubjectTiming,
    score,
)

__all__ = [
    "DETECTOR_SUBJECTS",
    "Detection",
    "DetectorScore",
    "ObservedRequest",
    "SubjectTiming",
    "score",
]
