"""Cost: price every RequestEvent into exactly one CostEvent (logic.py pure, agent.py thin)."""

from __future__ import annotations

__all__: list[str] = []
