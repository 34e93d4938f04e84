"""`SimulationConfig`: what `meterline simulate` was asked to do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["SimulationConfig"]


@dataclass
class SimulationConfig:
    scenario: str
    rate: float = 5.0  # requests per second of normal traffic, at the busiest hour
    duration_s: float = 60.0  # 0 runs until interrupted (normal only)
    seed: int = 7
    gateway_url: str = "http://127.0.0.1:8080"
    day_length_s: float = 600.0  # one simulated day, compressed
    labels_path: Path | None = None  # ground truth, JSON lines
    progress_every_s: float = 10.0
    max_in_flight: int = 64  # beyond this the simulator falls behind instead of piling up
    keys_file: Path | None = None  # reuse the keys saved here, save the ones created
