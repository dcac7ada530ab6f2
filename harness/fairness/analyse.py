"""One entry point: the `fairness` section of results.json from a ticket table."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from .params import FairnessParams, coerce
from .part import merge, partial
from .tickets import TicketTable


def analyse(tickets: TicketTable | Sequence[Mapping[str, Any]], params: FairnessParams | Mapping[str, Any] | None = None,
            t_end: float | None = None) -> dict[str, Any]:
    """Every fairness figure of a run (docs/fairness.md defines each one).

    `tickets` is a TicketTable or a list of ticket dicts (the live harness's records);
    `t_end` (for dicts) is the run's end, where searches still open are censored
    (default: the latest time in the records). The same as `merge([partial(table)])`.
    """
    p = coerce(params)
    t = tickets if isinstance(tickets, TicketTable) else TicketTable.from_records(tickets, t_end=t_end)
    return merge([partial(t, p)], p)
