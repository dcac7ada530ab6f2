"""Starvation: tickets that waited past a threshold, or gave up after being passed over.

- waited_past_threshold: wait > `starvation_threshold_s` (paired late, gave up late, or
  still waiting at the end of the run);
- gave_up_passed_over: the ticket gave up, and while it waited at least one pairing passed
  it over (compat.py: a user compatible with it was served with a partner who joined
  clearly after it), i.e. compatible later arrivals were being served ahead of it.
`starved` counts tickets in either set.

The second set is the FIFO question asked from the candidate's side. The gave-up entries
of the candidate lists (G) are few. A row covers the list prefix [list start, hi): every
G entry there is a candidate it passed over if the candidate still waited at T. So each row
is filed at the last G entry of its list before hi, keeping the smallest label (labels
rise with T); a suffix minimum over G, per list, then gives each entry the covering row
with the earliest T. If that row is rematch-blocked, the rows of the list made while the
candidate waited are scanned.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .compat import CHUNK, PASS_INTEREST, Chunk, Lists, Sides, decode, pass_rows, scan
from .prepared import Prepared
from .rematch import blocked
from .search import merge_search

NONE = np.iinfo(np.int64).max


@dataclass(eq=False)
class Starvation:
    """Rows filed at the gave-up list entries, chunk by chunk (see the module docstring)."""

    pr: Prepared
    lists: Lists
    sides: Sides
    G: np.ndarray = field(init=False)      # list positions of gave-up tickets (sorted)
    src: np.ndarray = field(init=False)    # their list
    seg: np.ndarray = field(init=False)    # dense list index among G's lists
    best: np.ndarray = field(init=False)   # seg << LB | smallest label filed here

    def __post_init__(self) -> None:
        pr, jkey = self.pr, self.lists.jkey
        mask = (1 << pr.bits) - 1
        parts = [i + np.flatnonzero(pr.gave_up[jkey[i:i + CHUNK] & mask]) for i in range(0, jkey.size, CHUNK)]
        self.G = np.concatenate(parts) if parts and pr.n_pairs else np.zeros(0, dtype=np.int64)
        self.src = jkey[self.G] >> pr.bits
        new = np.ones(self.G.size, dtype=bool)
        new[1:] = self.src[1:] != self.src[:-1]
        self.seg = np.cumsum(new) - 1
        self.best = np.full(self.G.size, NONE, dtype=np.int64)

    def add(self, ch: Chunk, found: np.ndarray) -> None:
        if not self.G.size:
            return
        rows = np.flatnonzero(found)          # a row with no waiting candidate covers none
        g = merge_search(self.G, ch.hi[rows], side="left") - 1
        ok = g >= 0
        rows, g = rows[ok], g[ok]
        ok = self.src[g] == ch.src[rows]
        rows, g = rows[ok], g[ok]
        np.minimum.at(self.best, g, (self.seg[g] << self.sides.LB) | ch.label[rows])

    def passed_over(self) -> np.ndarray:
        """bool per ticket (join order): gave up after being passed over."""
        pr, lists, sides = self.pr, self.lists, self.sides
        out = np.zeros(pr.n, dtype=bool)
        if not self.G.size:
            return out
        LB, mask = sides.LB, (1 << pr.bits) - 1
        suf = np.minimum.accumulate(self.best[::-1])[::-1]
        c = lists.jkey[self.G] & mask
        hit = (suf >> LB) == self.seg            # the row is of this entry's list
        label = suf & ((1 << LB) - 1)
        idx = np.flatnonzero(hit)
        idx = idx[pr.T[label[idx] >> 1] <= pr.end_rank[c[idx]]]
        lab = label[idx]
        blk = blocked(pr, sides.s[lab], c[idx], pr.tp[lab >> 1])
        out[c[idx[~blk]]] = True
        redo = idx[blk]
        redo = redo[~out[c[redo]]]
        if redo.size:
            self._rescan(redo, c, out)
        return out

    def _rescan(self, redo: np.ndarray, c: np.ndarray, out: np.ndarray) -> None:
        """Entries whose earliest covering row was blocked: try every row of their list made
        while the candidate waited (T between its join and its end)."""
        pr, sides = self.pr, self.sides
        src = self.src[redo]
        kind = np.where(src >= 2 * pr.n_pools, PASS_INTEREST, src & 1)
        grp = np.where(kind == PASS_INTEREST, src - 2 * pr.n_pools, src >> 1)
        cc = c[redo]
        # A covering row has t_join[c] <= t_p + tol and T <= end_rank[c]; both rise with p.
        p_lo = np.searchsorted(pr.tp + pr.params.fifo_tolerance_s, pr.t_join[cc], side="left")
        p_hi = np.searchsorted(pr.T, pr.end_rank[cc], side="right")
        for k in np.unique(kind):
            m = np.flatnonzero(kind == k)
            rows = pass_rows(sides, int(k))
            base = grp[m] << sides.LB
            lo = np.searchsorted(rows, base | (2 * p_lo[m]), side="left")
            hi = np.searchsorted(rows, base | (2 * p_hi[m]), side="left")
            q, cm = self.G[redo[m]], cc[m]

            def covers_unblocked(items: np.ndarray, pos: np.ndarray, k: int = int(k)) -> np.ndarray:
                ch = decode(pr, self.lists, sides, k, rows[pos])
                ok = (ch.hi > q[items]) & (pr.T[ch.p] <= pr.end_rank[cm[items]])
                j = np.flatnonzero(ok)
                ok[j] = ~blocked(pr, ch.s[j], cm[items[j]], pr.tp[ch.p[j]])
                return ok

            found = scan(lo, hi, covers_unblocked)
            out[cm[found]] = True


def starvation_counts(past: np.ndarray, passed: np.ndarray, gave_up: np.ndarray) -> dict[str, Any]:
    """The counts a FairnessPart keeps (additive over parts); `past`: waited past the threshold."""
    return {
        "starved": int((past | passed).sum()),
        "waited_past_threshold": int(past.sum()),
        "gave_up_passed_over": int(passed.sum()),
        "gave_up": int(gave_up.sum()),
    }
