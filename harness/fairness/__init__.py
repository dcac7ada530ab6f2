"""Queue fairness figures from per-ticket records (docs/fairness.md).

    from harness.fairness import analyse, TicketTable, FairnessParams
    section = analyse(TicketTable.from_records(records), FairnessParams())
    section = merge([partial(table_a, p), partial(table_b, p)], p)   # tables split by pool
"""
from .analyse import analyse
from .params import FairnessParams
from .part import FairnessPart, merge, partial
from .tickets import TicketTable

__all__ = ["FairnessPart", "FairnessParams", "TicketTable", "analyse", "merge", "partial"]
