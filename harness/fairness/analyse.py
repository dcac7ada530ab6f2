"""One entry point: the `fairness` section of results.json from a ticket table."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from .compat import Compat
from .fifo import fifo_inversions
from .jain import jain_of_waits
from .params import FairnessParams, coerce
from .rates import rate_figures
from .starvation import starvation_figures
from .tickets import TicketTable
from .waits import wait_figures


def analyse(tickets: TicketTable | Sequence[Mapping[str, Any]], params: FairnessParams | Mapping[str, Any] | None = None,
            t_end: float | None = None) -> dict[str, Any]:
    """Every fairness figure of a run (docs/fairness.md defines each one).

    `tickets` is a TicketTable or a list of ticket dicts (the live harness's records);
    `t_end` (for dicts) is the run's end, where searches still open are censored
    (default: the latest time in the records).
    """
    p = coerce(params)
    t = tickets if isinstance(tickets, TicketTable) else TicketTable.from_records(tickets, t_end=t_end)
    cx = Compat(t, p)
    fifo = fifo_inversions(cx)
    out: dict[str, Any] = {
        "tickets": t.n,
        "paired": int(t.paired.sum()),
        "gave_up": int(t.gave_up.sum()),
        "still_waiting": int(t.n - t.paired.sum() - t.gave_up.sum()),
        "pairings": fifo.pairs,
        "unmatched_paired_tickets": int(t.paired.sum()) - 2 * fifo.pairs,
        "jain_index": jain_of_waits(t),
        "fifo_inversion_rate": fifo.rate,
        "fifo_inversions": fifo.inversions,
    }
    out.update(wait_figures(t, p))
    out.update(starvation_figures(cx))
    out.update(rate_figures(t, p))
    out["params"] = p.to_dict()
    out["t_end"] = t.t_end
    return out
