"""How serious an anomaly or alert is (ARCHITECTURE §4: Anomaly.severity), lowest first.

Detectors rank their findings on this scale, the alerts processor routes by it and the
read API and its client type it: one list, so a new level cannot reach only some of them.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

__all__ = ["SEVERITIES", "Severity"]

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: Final[tuple[Severity, ...]] = get_args(Severity)  # by rank: index = rank
