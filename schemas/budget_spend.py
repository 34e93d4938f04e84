"""A cost's spend against one budget subject: the internal `budget-spend` topic.

Costs are keyed by key_id (ARCHITECTURE §3), but a budget sums spend per subject (an org
or team spans many keys). So each CostEvent is fanned out to every subject of its
attribution as one `BudgetSpend`, keyed by the subject and sent to the partition
`spend_partition(subject, partitions)`: every spend of a subject lands on one partition,
and one processors worker owns it. The budgets stage of that worker counts it once per
(cost event_id, subject), however often it is delivered.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from schemas.events.v1 import Money, Timestamp
from schemas.topics import partition_for

__all__ = ["BudgetSpend", "spend_partition"]


class BudgetSpend(BaseModel):
    """`amount` USD of cost `event_id` (request `request_id` started at `request_ts`)
    counted against budget subject `subject`. Money is an exact decimal string."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: str  # the CostEvent's
    subject: str
    amount: Money
    ts: Timestamp  # the CostEvent's
    request_ts: Timestamp
    request_id: str = ""

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


def spend_partition(subject: str, partitions: int) -> int:
    """The partition of the budget-spend topic that holds every spend of `subject`."""
    return partition_for(subject, partitions)
