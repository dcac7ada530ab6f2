"""FIFO inversions: pairings where an earlier, compatible, still-waiting user was passed over.

A complete pairing (a, b) is an inversion when, for either side s (partner o), some ticket
c was passed over (compat.py states the five conditions: same pool, joined more than the
tolerance before o, still waiting the tolerance after the pairing, compatible with s by
rule 5, not rematch-blocked). The rate is inversions / complete pairings.

Per row (side x candidate list), in passes: the first ticket of the list, in join order,
still waiting at t_p + tol is where the running maximum of the lists' end keys first
reaches the row's threshold (found by merging, search.py); it is a witness when it joined
before the row's bound. Only when that
witness is rematch-blocked from s is the list scanned further. Pairings already known to
be inversions are skipped by later rows (the figure is per pairing, not per row).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .compat import Chunk, Lists, scan
from .prepared import Prepared
from .rematch import blocked
from .search import merge_search


@dataclass
class FifoResult:
    pairs: int
    inversions: int

    @property
    def rate(self) -> float | None:
        return self.inversions / self.pairs if self.pairs else None


@dataclass(eq=False)
class Fifo:
    """Inversion flags per pairing (Prepared order), filled chunk by chunk."""

    pr: Prepared
    lists: Lists
    inverted: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.inverted = np.zeros(self.pr.n_pairs, dtype=bool)

    def add(self, ch: Chunk, found: np.ndarray) -> None:
        """Mark the pairings of rows whose first waiting candidate (or a later one in the
        prefix, when that one is rematch-blocked) is not rematch-blocked."""
        sel = np.flatnonzero(found & ~self.inverted[ch.p])
        if sel.size:
            self._first_witness(ch, sel)

    def _first_witness(self, ch: Chunk, sel: np.ndarray) -> None:
        pr, lists = self.pr, self.lists
        mask = (1 << pr.bits) - 1
        first = merge_search(lists.pmax, ch.kt[sel], side="left")
        witness = lists.jkey[first] & mask
        p = ch.p[sel]
        blk = blocked(pr, ch.s[sel], witness, pr.tp[p])
        self.inverted[p[~blk]] = True
        keep = ~self.inverted[p[blk]]
        redo, start = sel[blk][keep], first[blk][keep] + 1
        if not redo.size:
            return
        s, pp = ch.s[redo], ch.p[redo]
        T = pr.T[pp]

        def unblocked_waiting(items: np.ndarray, pos: np.ndarray) -> np.ndarray:
            c = lists.jkey[pos] & mask
            ok = pr.end_rank[c] >= T[items]
            k = np.flatnonzero(ok)
            ok[k] = ~blocked(pr, s[items[k]], c[k], pr.tp[pp[items[k]]])
            return ok

        hit = scan(start, ch.hi[redo], unblocked_waiting)
        self.inverted[pp[hit]] = True

    def result(self) -> FifoResult:
        return FifoResult(pairs=self.pr.n_pairs, inversions=int(self.inverted.sum()))
