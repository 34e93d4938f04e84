"""Budgets: costs fanned out per budget subject, spend per budget and calendar period ->
BudgetStates and enforcement decisions, one worker per subject (logic.py pure, agent.py
thin, control.py reads every BudgetRecord, reconcile.py restores spend from the warehouse)."""

from __future__ import annotations

__all__: list[str] = []
