"""The vocabulary of budgets (ARCHITECTURE §4, §9): their periods, what a hard limit does,
and the status a BudgetState reports.

`BudgetRecord` and `BudgetState` (schemas.events) are typed with these; the admin API,
the budgets processor, the read API and the simulator use the same names.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["BudgetPeriod", "BudgetStatus", "HardLimitAction"]

BudgetPeriod = Literal["day", "week", "month"]
# What crossing the hard limit does: an enforcement decision (block, throttle) or only an alert.
HardLimitAction = Literal["block", "throttle", "alert"]
BudgetStatus = Literal["ok", "soft", "hard"]
