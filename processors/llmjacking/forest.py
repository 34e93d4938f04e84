"""IsolationForest over per-key window features, one model per org or one global. Pure.

Trained on recent clean windows (those that raised nothing), per org once the org has
`min_windows` of them, else on every org's windows together; retrained every
`retrain_every` windows so the model follows the traffic. Scoring costs ~3 ms, so the
detector asks only when a rule signal appears or a busy window closes, never per request.
The object pickles (models and buffers), which is how it survives a restart.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
from sklearn.ensemble import IsolationForest

from processors.llmjacking.profile import KeyWindow

__all__ = ["FEATURES", "ForestModels", "window_features"]

FEATURES = (
    "log_requests",
    "log_tokens",
    "networks",
    "user_agents",
    "models",
    "error_rate",
    "log_validation_errors",
    "expensive_share",
    "off_hours_share",
    "log_peak_minute_requests",
)
_ORG_BUFFER = 2048
_GLOBAL_BUFFER = 8192
_TREES = 64
_GLOBAL = "\x00global"  # never an org name


def window_features(window: KeyWindow) -> np.ndarray:
    n = max(window.requests, 1)
    return np.array(
        [
            math.log1p(window.requests),
            math.log1p(window.tokens),
            len(window.networks),
            len(window.user_agents),
            len(window.models),
            window.errors / n,
            math.log1p(window.validation_errors),
            window.expensive / n,
            window.off_hours / n,
            math.log1p(window.peak_minute_requests),
        ],
        dtype=np.float64,
    )


class ForestModels:
    def __init__(self, min_windows: int = 50, retrain_every: int = 200, seed: int = 0) -> None:
        self.min_windows = min_windows
        self.retrain_every = retrain_every
        self.seed = seed
        self._buffers: dict[str, deque[np.ndarray]] = {}
        self._since: dict[str, int] = {}  # windows added since the last training
        self._models: dict[str, IsolationForest] = {}
        self.trainings = 0

    def add(self, org: str, features: np.ndarray) -> None:
        """Learn from one clean window (training happens here, when due)."""
        for scope, size in ((org, _ORG_BUFFER), (_GLOBAL, _GLOBAL_BUFFER)):
            buffer = self._buffers.setdefault(scope, deque(maxlen=size))
            buffer.append(features)
            self._since[scope] = self._since.get(scope, 0) + 1
            due = scope not in self._models or self._since[scope] >= self.retrain_every
            if due and len(buffer) >= self.min_windows:
                self._train(scope)

    def score(self, org: str, features: np.ndarray) -> float | None:
        """Anomaly score in (0, 1] (about 0.5 is ordinary, near 1 isolated at once);
        the org's model if it has one, else the global one, else None."""
        model = self._models.get(org) or self._models.get(_GLOBAL)
        if model is None:
            return None
        return float(-model.score_samples(features.reshape(1, -1))[0])

    def has_model(self, org: str) -> bool:
        return org in self._models

    def _train(self, scope: str) -> None:
        data = np.vstack(self._buffers[scope])
        model = IsolationForest(
            n_estimators=_TREES, max_samples=min(256, len(data)), random_state=self.seed
        )
        self._models[scope] = model.fit(data)
        self._since[scope] = 0
        self.trainings += 1
