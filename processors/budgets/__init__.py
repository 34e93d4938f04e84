"""Budgets: spend per budget and calendar period -> BudgetStates and enforcement decisions
(logic.py pure, agent.py thin, control.py reads every BudgetRecord)."""

from __future__ import annotations

__all__: list[str] = []
