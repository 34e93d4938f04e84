"""Stream processors (Faust): cost today; budgets, anomalies and drift join the same app.

Talks to the rest of Meterline only through Kafka topics (and its own /healthz,
/metrics web endpoints).
"""

from __future__ import annotations

__all__: list[str] = []
