"""Mergeable fairness analysis: `partial` per table, `merge` of the parts (docs/fairness.md).

Why: the simulator runs disjoint sets of pools in separate processes. Every pool-bound
figure (FIFO inversions, starvation, repeat partners, interest matching) only looks
inside one pool, so each process can compute its counts on its own table; what is not
additive (exact percentiles) is kept as the waits themselves, grouped by cohort cell and
sorted (`WaitCells`), which `merge` selects from without sorting again. `analyse(t)` is
`merge([partial(t)])`, so there is one code path.

Exactness: for a table split by pool (each part holds whole pools, so every user, every
pairing and every candidate of a pairing), merge(parts) equals analyse(whole): counts and
percentiles exactly, Jain's index and the rates up to float rounding of the sums.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .compat import build_lists, build_sides, chunks
from .fifo import Fifo
from .jain import jain_from_sums, jain_sums
from .params import FairnessParams, coerce
from .prepared import Prepared, prepare
from .rates import rate_counts, rate_figures
from .starvation import Starvation, starvation_counts
from .tickets import TicketTable
from .waits import WaitCells, wait_cells, wait_figures

#: Additive counts of a part, in the order they are kept.
COUNTS = ("tickets", "paired", "gave_up", "pairings", "fifo_inversions", "starved", "waited_past_threshold",
          "gave_up_passed_over", "interest_paired", "interest_matched", "with_interests", "fell_back",
          "repeat_pairings")


@dataclass(eq=False)
class FairnessPart:
    """One table's share of the figures: additive counts and sums, plus its sorted waits.

    Picklable and compact: about 8 bytes per ticket (the waits) plus a few hundred bytes.
    """

    params: dict[str, Any]
    t_end: float
    counts: dict[str, int]
    wait_sum: float
    wait_sq: float
    cells: WaitCells


#: Share of partial's time spent before each step ends (measured on a day's shard, 42M
#: tickets): the progress reported is a time estimate, not a count of steps.
STEPS = {"prepare": 0.32, "waits": 0.40, "lists": 0.55, "sides": 0.70, "rows": 0.99}

Progress = Callable[[float], None]


def _fifo_and_starvation(pr: Prepared, progress: Progress) -> tuple[int, np.ndarray]:
    """(inverted pairings, passed-over flag per ticket): one sweep over every row."""
    if not pr.n_pairs:
        return 0, np.zeros(pr.n, dtype=bool)
    lists = build_lists(pr)
    progress(STEPS["lists"])
    sides = build_sides(pr, lists)
    progress(STEPS["sides"])
    fifo = Fifo(pr, lists)
    starv = Starvation(pr, lists, sides)
    total, done = 2 * sides.open_rows.size + sides.int_rows.size, 0   # passes 0 and 1 share the open rows
    span = STEPS["rows"] - STEPS["sides"]
    for ch in chunks(pr, lists, sides):
        found = ch.found(lists)
        fifo.add(ch, found)
        starv.add(ch, found)
        done += ch.label.size
        progress(STEPS["sides"] + span * done / max(total, 1))
    return fifo.result().inversions, starv.passed_over()


def partial(table: TicketTable, params: FairnessParams | Mapping[str, Any] | None = None,
            progress: Progress | None = None) -> FairnessPart:
    """The part of one table (which must hold whole pools to be merged exactly with others).

    `progress(frac)`, if given, hears the estimated fraction done, from 0 to 1 (a day's
    shard takes ~15 s here).
    """
    report: Progress = progress if progress is not None else (lambda frac: None)
    report(0.0)
    p = coerce(params)
    pr = prepare(table, p)
    report(STEPS["prepare"])
    wait = pr.wait
    assert wait is not None
    cells = wait_cells(wait, pr.has, pr.mode, pr.lang, pr.cls, pr.names)
    s, sq = jain_sums(wait)
    rates = rate_counts(pr, wait)
    past = wait > p.starvation_threshold_s
    pr.wait = wait = None                           # the rest needs no waits: free them first
    report(STEPS["waits"])
    inversions, passed = _fifo_and_starvation(pr, report)
    starv = starvation_counts(past, passed, pr.gave_up)
    counts = {
        "tickets": pr.n,
        "paired": int(pr.paired.sum()),
        "gave_up": starv["gave_up"],
        "pairings": pr.n_pairs,
        "fifo_inversions": inversions,
        "starved": starv["starved"],
        "waited_past_threshold": starv["waited_past_threshold"],
        "gave_up_passed_over": starv["gave_up_passed_over"],
        **rates,
    }
    report(1.0)
    return FairnessPart(params=p.to_dict(), t_end=pr.t_end, counts=counts, wait_sum=s, wait_sq=sq, cells=cells)


def merge(parts: Sequence[FairnessPart], params: FairnessParams | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `fairness` section of all parts together (the same dict `analyse` gives).

    `params` defaults to the parts' own; parts computed with other rules are refused.
    """
    p = coerce(params if params is not None else (parts[0].params if parts else None))
    for part in parts:
        if part.params != p.to_dict():
            raise ValueError(f"a part was computed with other fairness params: {part.params} != {p.to_dict()}")
    c = {k: sum(part.counts[k] for part in parts) for k in COUNTS}
    n, pairings = c["tickets"], c["pairings"]
    out: dict[str, Any] = {
        "tickets": n,
        "paired": c["paired"],
        "gave_up": c["gave_up"],
        "still_waiting": n - c["paired"] - c["gave_up"],
        "pairings": pairings,
        "unmatched_paired_tickets": c["paired"] - 2 * pairings,
        "jain_index": jain_from_sums(n, math.fsum(x.wait_sum for x in parts), math.fsum(x.wait_sq for x in parts)),
        "fifo_inversion_rate": c["fifo_inversions"] / pairings if pairings else None,
        "fifo_inversions": c["fifo_inversions"],
    }
    out.update(wait_figures([x.cells for x in parts], p))
    out.update({
        "starved": c["starved"],
        "starved_detail": {
            "threshold_s": p.starvation_threshold_s,
            "waited_past_threshold": c["waited_past_threshold"],
            "gave_up_passed_over": c["gave_up_passed_over"],
            "gave_up": c["gave_up"],
            "rate": float(c["starved"]) / n if n else None,
        },
    })
    out.update(rate_figures(c, pairings))
    out["params"] = p.to_dict()
    out["t_end"] = max((x.t_end for x in parts), default=None)
    return out
