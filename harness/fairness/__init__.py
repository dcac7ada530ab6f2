"""Queue fairness figures from per-ticket records (docs/fairness.md).

    from harness.fairness import analyse, TicketTable, FairnessParams
    section = analyse(TicketTable.from_records(records), FairnessParams())
"""
from .analyse import analyse
from .params import FairnessParams
from .tickets import TicketTable

__all__ = ["FairnessParams", "TicketTable", "analyse"]
