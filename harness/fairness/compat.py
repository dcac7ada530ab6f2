"""Who could have been served instead: PROTOCOL.md rule 5 compatibility, vectorised.

For every side of every complete pairing ("s was served with o at t_p") a *passed-over*
ticket c is one that

1. is in s's pool (same mode and lang);
2. joined clearly before o: t_join[c] < t_join[o] - tol, and t_join[c] <= t_p + tol;
3. was still waiting clearly after: end[c] > t_p + tol;
4. was compatible with s at t_p: they share an interest, or both were open (s: no
   interests or t_p >= t_join[s] + F; c: no interests or t_join[c] <= t_p - F - tol);
5. was not blocked from s by a recent `next` (rule 2): no chat between their users whose
   latest possible end (Prepared.chat_end_est) e has t_p < e + B + tol.

Candidates are filed in *lists* ("sources"): per pool the tickets without interests, per
pool the tickets with interests (open only once their fallback passed: an extra bound on
t_join), and per (pool, interest) the tickets holding that interest. Every list entry is
one int64 `jkey = src << bits | position` (position in join order stands for t_join), all
lists concatenated in jkey order, with `pmax`, the running maximum of `src << bits |
end_rank`. A side asks the lists it may draw from, one *row* per (side, list): conditions
1, 2 and 4 make a prefix of the list (merging the rows' keys into jkey, search.py, gives
its end `hi`), and condition 3 holds for some entry of that prefix iff
pmax[hi - 1] >= src << bits | T.

Rows come in three passes (the pool's no-interest list, its interest list, the side's
interest lists), each as sorted int64 `group << LB | label` with label = 2 * pairing +
half: grouped by list and, inside a list, in pairing-time order, so the rows' keys come
nearly sorted (at 25M tickets, searching random keys costs ~15x more). Condition 5 is
checked by `rematch.blocked` on the witnesses found; `scan` looks further when one is
blocked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from .prepared import Prepared, bits_for
from .search import merge_search

#: Rows handled at once: bounds the temporary memory of a pass and keeps its arrays under
#: glibc's mmap threshold (32 MB), so they reuse heap memory instead of faulting in fresh pages.
CHUNK = 1 << 20
PASS_OPEN_NONE, PASS_OPEN_INTEREST, PASS_INTEREST = 0, 1, 2


@dataclass(eq=False)
class Lists:
    """All candidate lists, concatenated and sorted by (source, join position)."""

    jkey: np.ndarray        # src << bits | position
    pmax: np.ndarray        # running max of src << bits | end_rank
    combos: np.ndarray      # sorted pool * V + interest of each interest list (src = 2 * n_pools + index)
    vocab: int              # V
    id_map: np.ndarray | None = None   # sorted interest ids, when ids were renumbered to fit the keys

    def combo_index(self, combo: np.ndarray) -> np.ndarray:
        """Index in `combos` of (pool * V + interest) values that are on some list."""
        span = int(self.combos[-1]) + 1 if self.combos.size else 0
        if span <= max(4 * self.combos.size, 1 << 22):       # small: a lookup table beats a search
            lut = np.zeros(span, dtype=np.int64)
            lut[self.combos] = np.arange(self.combos.size)
            return lut[combo]
        return np.searchsorted(self.combos, combo)

    def interest_index(self, ids: np.ndarray) -> np.ndarray:
        """Interest ids as used in `combos` (renumbered only for a huge id space)."""
        ids = ids.astype(np.int64)
        return ids if self.id_map is None else np.searchsorted(self.id_map, ids)


@dataclass(eq=False)
class Sides:
    """Both sides of every pairing, by label = 2 * pairing + half (half 0: s = a, half 1: s = b)."""

    s: np.ndarray           # served ticket (int32 for tables under 2**31 tickets)
    jlo: np.ndarray         # int32 jlow of the partner o: candidates joined before t_join[o] - tol
    LB: int                 # labels are < 1 << LB
    open_rows: np.ndarray   # pool << LB | label of the open sides, sorted (passes 0 and 1)
    int_rows: np.ndarray    # interest-list index << LB | label, sorted (pass 2)


@dataclass(eq=False)
class Chunk:
    """Decoded rows of one pass: the list each asks, its prefix end `hi` and threshold `kt`."""

    kind: int
    label: np.ndarray
    src: np.ndarray
    p: np.ndarray
    s: np.ndarray
    hi: np.ndarray
    kt: np.ndarray

    def found(self, lists: Lists) -> np.ndarray:
        """Rows with some candidate meeting conditions 1-4 (before rule 2)."""
        return (self.hi > 0) & (lists.pmax[np.maximum(self.hi - 1, 0)] >= self.kt)


def build_lists(pr: Prepared) -> Lists:
    """Every list entry's jkey (sorted) and the running maximum of its end key.

    Filled chunk by chunk into preallocated arrays: at 25M tickets each full-size
    temporary would be 200-300 MB of fresh pages.
    """
    n, bits = pr.n, pr.bits
    mask = (1 << bits) - 1
    m = int(pr.offsets[-1])
    vocab = int(pr.ids.max(initial=-1)) + 1
    id_map = None
    if vocab > 0 and bits_for(pr.n_pools * vocab) + bits > 62:
        id_map = np.unique(pr.ids.astype(np.int64))         # huge id space: renumber the ids used
        vocab = int(id_map.size)
    vocab = max(vocab, 1)
    jkey = np.empty(n + m, dtype=np.int64)
    for i in range(0, n, CHUNK):                             # per pool: no-interest, then interest list
        pos = np.arange(i, min(i + CHUNK, n), dtype=np.int64)
        k = jkey[i:i + pos.size]
        np.multiply(pr.pool[i:i + pos.size], 2, out=k)
        k += pr.has[i:i + pos.size]
        k <<= bits
        k |= pos
        lo, hi = int(pr.offsets[i]), int(pr.offsets[i + pos.size])
        if hi > lo:                                          # interest memberships: (pool, interest, ticket)
            owner = np.repeat(pos, np.diff(pr.offsets[i:i + pos.size + 1]))
            ids = pr.ids[lo:hi].astype(np.int64)
            if id_map is not None:
                ids = np.searchsorted(id_map, ids)
            c = jkey[n + lo:n + hi]
            np.multiply(pr.pool[owner], vocab, out=c)
            c += ids
            c <<= bits
            c |= owner
    jkey[:n].sort()
    inter = jkey[n:]
    inter.sort()
    combos_parts, base_src, carry = [], 2 * pr.n_pools, -1
    for i in range(0, m, CHUNK):                             # (pool, interest) -> dense list number
        k = inter[i:i + CHUNK]
        combo = k >> bits
        new = np.empty(combo.size, dtype=bool)
        new[0] = combo[0] != carry
        np.not_equal(combo[1:], combo[:-1], out=new[1:])
        carry = int(combo[-1])
        combos_parts.append(combo[new])
        dense = np.cumsum(new) + (base_src - 1)
        base_src = int(dense[-1]) + 1
        k &= mask
        k |= dense << bits
    combos = np.concatenate(combos_parts) if combos_parts else np.zeros(0, dtype=np.int64)
    pmax = np.empty(n + m, dtype=np.int64)
    top = np.iinfo(np.int64).min
    for i in range(0, n + m, CHUNK):                          # running max of src << bits | end_rank
        k = jkey[i:i + CHUNK]
        e = pmax[i:i + k.size]
        np.bitwise_and(k, ~mask, out=e)
        e |= pr.end_rank[k & mask]
        np.maximum.accumulate(e, out=e)
        np.maximum(e, top, out=e)
        top = int(e[-1])
    return Lists(jkey=jkey, pmax=pmax, combos=combos, vocab=vocab, id_map=id_map)


def build_sides(pr: Prepared, lists: Lists) -> Sides:
    """Both sides of every pairing and the rows of the three passes.

    Outputs are sized first and filled chunk by chunk (see build_lists): parts kept for a
    concatenation would grow the heap a 4 KB page at a time.
    """
    fb = pr.params.interest_fallback_s
    P = pr.n_pairs
    s = np.empty(2 * P, dtype=np.int32 if pr.n < (1 << 31) else np.int64)   # narrow: gathered by chunks
    s[0::2], s[1::2] = pr.a, pr.b
    jlo = np.empty(2 * P, dtype=np.int32)
    jlo[0::2], jlo[1::2] = pr.jlow[pr.b], pr.jlow[pr.a]
    LB = bits_for(2 * P)
    is_open = np.empty(2 * P, dtype=bool)
    n_int = 0
    for i in range(0, 2 * P, CHUNK):
        x = s[i:i + CHUNK]
        o = is_open[i:i + x.size]
        np.greater_equal(pr.tp[np.arange(i, i + x.size) >> 1], pr.t_join[x] + fb, out=o)
        o |= ~pr.has[x]
        n_int += int(pr.counts_of(x).sum())
    open_rows = np.empty(int(np.count_nonzero(is_open)), dtype=np.int64)
    int_rows = np.empty(n_int, dtype=np.int64)
    at_open = at_int = 0
    for i in range(0, 2 * P, CHUNK):
        lab = np.arange(i, min(i + CHUNK, 2 * P), dtype=np.int64)
        x = s[i:i + lab.size]
        sel = is_open[i:i + lab.size]
        k = int(np.count_nonzero(sel))
        out = open_rows[at_open:at_open + k]
        np.left_shift(pr.pool[x[sel]], LB, out=out, casting="unsafe")
        out |= lab[sel]
        at_open += k
        has = pr.has[x]
        xi = x[has]
        cnt = pr.counts_of(xi)
        mm = int(cnt.sum())
        if mm:
            first = np.cumsum(cnt) - cnt
            ids = lists.interest_index(pr.ids[np.repeat(pr.offsets[xi] - first, cnt) + np.arange(mm, dtype=np.int64)])
            combo = np.repeat(pr.pool[xi].astype(np.int64) * lists.vocab, cnt)
            combo += ids
            out = int_rows[at_int:at_int + mm]
            np.left_shift(lists.combo_index(combo), LB, out=out)
            out |= np.repeat(lab[has], cnt)
            at_int += mm
    del is_open
    open_rows.sort()
    int_rows.sort()
    return Sides(s=s, jlo=jlo, LB=LB, open_rows=open_rows, int_rows=int_rows)


def pass_rows(sides: Sides, kind: int) -> np.ndarray:
    return sides.int_rows if kind == PASS_INTEREST else sides.open_rows


def decode(pr: Prepared, lists: Lists, sides: Sides, kind: int, rows: np.ndarray) -> Chunk:
    """The rows' lists, prefix ends and thresholds (see the module docstring)."""
    return decode_kinds(pr, lists, sides, (kind,), rows)[0]


def decode_kinds(pr: Prepared, lists: Lists, sides: Sides, kinds: tuple[int, ...], rows: np.ndarray) -> list[Chunk]:
    """decode for several passes over the same rows (passes 0 and 1 share the open sides)."""
    LB, bits = sides.LB, pr.bits
    label = rows & ((1 << LB) - 1)
    grp = rows >> LB
    p = label >> 1
    s = sides.s[label].astype(np.int64)
    T = pr.T[p]
    jb0 = np.minimum(sides.jlo[label], pr.q2[p])
    out = []
    for kind in kinds:
        src = grp + 2 * pr.n_pools if kind == PASS_INTEREST else 2 * grp + kind
        jb = np.minimum(jb0, pr.q3[p]) if kind == PASS_OPEN_INTEREST else jb0
        base = src << bits
        hi = merge_search(lists.jkey, base | jb, side="left")
        base |= T
        out.append(Chunk(kind=kind, label=label, src=src, p=p, s=s, hi=hi, kt=base))
    return out


def chunks(pr: Prepared, lists: Lists, sides: Sides) -> Iterator[Chunk]:
    """Every row of the three passes, a chunk at a time (passes 0 and 1 decoded together)."""
    for kinds in ((PASS_OPEN_NONE, PASS_OPEN_INTEREST), (PASS_INTEREST,)):
        rows = pass_rows(sides, kinds[0])
        for i in range(0, rows.size, CHUNK):
            yield from decode_kinds(pr, lists, sides, kinds, rows[i:i + CHUNK])


def scan(lo: np.ndarray, hi: np.ndarray, test: Callable[[np.ndarray, np.ndarray], np.ndarray],
         window: int = 16, max_window: int = 4096) -> np.ndarray:
    """For each item i: does some position in [lo[i], hi[i]) pass `test(items, positions)`?

    Vectorised over all items: each round tests the next `window` positions of every item
    still undecided; the window doubles each round (long ranges are rare but exist).
    """
    found = np.zeros(lo.size, dtype=bool)
    live = np.flatnonzero(lo < hi)
    pos = lo.astype(np.int64).copy()
    while live.size:
        step = np.arange(window)
        p = pos[live][:, None] + step
        r, w = np.nonzero(p < hi[live][:, None])
        if r.size:
            ok = test(live[r], p[r, w])
            found[live[np.unique(r[ok])]] = True
        pos[live] += window
        live = live[~found[live] & (pos[live] < hi[live])]
        window = min(window * 2, max_window)
    return found
