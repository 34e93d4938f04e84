"""Drift: per app/model scope, compare windows of request metrics with a reference window
(PSI + KS) and report to the drift topic, alerting once per drifted window (logic.py pure,
agent.py thin)."""

from __future__ import annotations

__all__: list[str] = []
