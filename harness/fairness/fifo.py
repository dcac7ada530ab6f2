"""FIFO inversions: pairings where an earlier, compatible, still-waiting user was passed over.

A complete pairing (a, b) is an inversion when, for either side s (partner o), some ticket
c was passed over (compat.py states the five conditions: same pool, joined more than the
tolerance before o, still waiting the tolerance after the pairing, compatible with s by
rule 5, not rematch-blocked). The rate is inversions / complete pairings.

Per query row (side x candidate list): the first ticket of the list, in join order, that
was still waiting at t_p + tol is found by a binary search on the running maximum of the
lists' end keys; it is a witness when its join rank is below the row's bound. Only when
that witness is rematch-blocked from s is the list scanned further.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .compat import Compat


@dataclass
class FifoResult:
    pairs: int
    inversions: int
    inverted: np.ndarray      # bool per complete pairing (order of TicketTable.pairs)
    side_inverted: np.ndarray  # bool per side (2P)

    @property
    def rate(self) -> float | None:
        return self.inversions / self.pairs if self.pairs else None


def fifo_inversions(cx: Compat) -> FifoResult:
    rows, lists, R = cx.rows, cx.lists, cx.R
    n_sides = 2 * cx.n_pairs
    found = np.zeros(rows.side.size, dtype=bool)
    if rows.side.size and lists.ticket.size:
        base = rows.src * R
        hi = np.searchsorted(lists.jkey, base + rows.jr, side="left")
        key_t = base + rows.tr
        first = np.searchsorted(lists.pmax, key_t, side="right")
        found = first < hi
        idx = np.flatnonzero(found)
        witness = lists.ticket[first[idx]]
        blocked = cx.blocked(rows.s[idx], witness, rows.tp[idx])
        redo = idx[blocked]
        found[redo] = cx.first_unblocked(redo, first[redo] + 1, hi[redo], key_t[redo])
    side_inv = np.bincount(rows.side[found], minlength=n_sides) > 0 if n_sides else np.zeros(0, bool)
    inverted = side_inv[:cx.n_pairs] | side_inv[cx.n_pairs:]
    return FifoResult(pairs=cx.n_pairs, inversions=int(inverted.sum()), inverted=inverted, side_inverted=side_inv)
