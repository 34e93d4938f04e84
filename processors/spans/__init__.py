"""Span costs: price LLM spans from instrumented apps (logic.py pure, agent.py thin)."""

from __future__ import annotations

__all__: list[str] = []
