"""The vocabulary of budgets (ARCHITECTURE §4, §9): their periods, what a hard limit does,
and the status a BudgetState reports.

`BudgetRecord` and `BudgetState` (schemas.events) are typed with these; the admin API,
the budgets processor, the read API and the simulator use the same names.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

__all__ = [
    "BUDGET_PERIODS",
    "HARD_LIMIT_ACTIONS",
    "BudgetPeriod",
    "BudgetStatus",
    "HardLimitAction",
]

BudgetPeriod = Literal["day", "week", "month"]
BUDGET_PERIODS: Final[tuple[BudgetPeriod, ...]] = get_args(BudgetPeriod)
# What crossing the hard limit does: an enforcement decision (block, throttle) or only an alert.
HardLimitAction = Literal["block", "throttle", "alert"]
HARD_LIMIT_ACTIONS: Final[tuple[HardLimitAction, ...]] = get_args(HardLimitAction)
BudgetStatus = Literal["ok", "soft", "hard"]
