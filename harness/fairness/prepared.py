"""The ticket table in join order, with the per-ticket and per-pairing values every figure shares.

Why join order: at tens of millions of tickets a random memory access costs ~100x a
sequential one, and tickets that interact (a pairing, the users passed over, a user's
previous chat) are close in time. In join order they are close in memory too, and every
search below gets nearly sorted keys. The simulator already emits tickets in join
order (no copy then); other tables are permuted once, stably, so a user's history keeps
the order (t_join, index) the definitions use.

Times are compared through *ranks* (exact integers): a ticket's position in join order
stands for its t_join, and `end_rank` (the number of ends below it) for its end. A bound
is turned into a rank by a search on the sorted values (search.merge_search), with the
side chosen so that `rank < bound` is exactly the float comparison of docs/fairness.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .params import FairnessParams
from .search import merge_search
from .tickets import TicketTable

#: Elements per step of the chunked loops: arrays of at most 8 MB reuse heap memory.
CHUNK = 1 << 20


def bits_for(n: int) -> int:
    """Bits that hold every value in [0, n]."""
    return max(int(n).bit_length(), 1)


def join_order(t_join: np.ndarray) -> np.ndarray | None:
    """Stable order of t_join (ties by index), or None when the table is already in it."""
    n = t_join.shape[0]
    if n < 2 or bool(np.all(t_join[1:] >= t_join[:-1])):
        return None
    order = np.argsort(t_join)                       # fast, but ties come out of index order
    v = t_join[order]
    tie = v[1:] == v[:-1]
    if tie.any():
        in_tie = np.zeros(n, dtype=bool)
        in_tie[1:] |= tie
        in_tie[:-1] |= tie
        run = np.cumsum(np.concatenate([[True], ~tie]))  # run number of each sorted slot
        idx = np.flatnonzero(in_tie)
        b = bits_for(n)
        key = (run[idx].astype(np.int64) << b) | order[idx]
        key.sort()
        order[idx] = key & ((1 << b) - 1)
    return order


def ranks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x ascending, int32 number of values strictly below each x[i]).

    A sort and merges rather than an argsort or n binary searches: x is nearly sorted here
    (ends of tickets in join order).
    """
    v = np.sort(x)
    return v, merge_search(v, x, side="left", dtype=np.int32)


def dense_codes(codes: np.ndarray) -> tuple[np.ndarray, int]:
    """Small non-negative codes -> int32 0..k-1 (in code order), without a sort when the range is small."""
    if codes.size == 0:
        return codes.astype(np.int32), 0
    lo, hi = int(codes.min()), int(codes.max())
    if lo >= 0 and hi < (1 << 22):
        present = np.zeros(hi + 1, dtype=bool)
        present[codes] = True
        lut = (np.cumsum(present) - 1).astype(np.int32)
        return lut[codes], int(present.sum())
    uniq, inv = np.unique(codes, return_inverse=True)
    return inv.reshape(-1).astype(np.int32), int(uniq.size)


def user_histories(user: np.ndarray, t_join: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(previous ticket of the same user or -1, t_join of the next one or +inf), in join order."""
    n = user.shape[0]
    prev = np.full(n, -1, dtype=np.int64)
    nxt = np.full(n, np.inf)
    if n < 2:
        return prev, nxt
    b = bits_for(n)
    u = user
    if int(u.min()) < 0 or int(u.max()) >= (1 << (62 - b)):
        u = np.unique(u, return_inverse=True)[1].reshape(-1)
    key = u.astype(np.int64)
    key <<= b
    for i in range(0, n, CHUNK):
        key[i:i + CHUNK] |= np.arange(i, min(i + CHUNK, n), dtype=np.int64)
    key.sort()                                       # (user, position): each history in order
    mask = (1 << b) - 1
    for i in range(0, n - 1, CHUNK):                 # prev[later] = earlier, for the same user
        k0, k1 = key[i:i + CHUNK + 1][:-1], key[i + 1:i + CHUNK + 1]
        same = (k0 >> b) == (k1 >> b)
        prev[k1[same] & mask] = k0[same] & mask
    del key
    for i in range(0, n, CHUNK):                     # next[prev[x]] = x: a scatter close to x in time
        pv = prev[i:i + CHUNK]
        has = pv >= 0
        nxt[pv[has]] = t_join[i:i + CHUNK][has]
    return prev, nxt


@dataclass(eq=False)
class Prepared:
    """A TicketTable's columns in join order plus shared derived values (docs/fairness.md).

    Index arrays are int64 (numpy would copy narrower ones on every gather); values that
    are only compared (ranks, pools) are int32 to halve the memory of a 25M-ticket table.
    """

    params: FairnessParams
    n: int
    t_end: float
    # columns, in join order (views of the table when it already was)
    t_join: np.ndarray
    user: np.ndarray
    peer: np.ndarray
    mode: np.ndarray
    lang: np.ndarray
    cls: np.ndarray
    via: np.ndarray
    offsets: np.ndarray      # CSR offsets into ids
    ids: np.ndarray
    names: dict[str, tuple[str, ...]]
    # per ticket
    has: np.ndarray
    paired: np.ndarray
    gave_up: np.ndarray
    wait: np.ndarray | None  # seconds in the queue (partial drops it once the wait figures are done)
    pool: np.ndarray         # int32 dense (mode, lang) index
    n_pools: int
    prev: np.ndarray         # the same user's previous ticket, -1 for its first
    chat_end_est: np.ndarray
    bits: int                # positions and ranks are < 1 << bits
    end_rank: np.ndarray     # int32: number of tickets' ends strictly below this end
    jlow: np.ndarray         # int32: number of t_join strictly below t_join - tol
    # per complete pairing, sorted by the pairing time tp
    a: np.ndarray
    b: np.ndarray
    tp: np.ndarray
    T: np.ndarray            # int32 number of ends <= tp + tol (non-decreasing): c waits on iff end_rank >= T
    q2: np.ndarray           # int32 number of t_join <= tp + tol
    q3: np.ndarray           # int32 number of t_join <= tp - F - tol
    met: Any = None          # rematch.MetFilter, built on first use by rematch.blocked

    @property
    def n_pairs(self) -> int:
        return int(self.a.shape[0])

    def counts_of(self, x: np.ndarray) -> np.ndarray:
        """Number of interests of tickets x."""
        return self.offsets[x + 1] - self.offsets[x]


def _permute_interests(t: TicketTable, order: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if order is None:
        return t.interest_offsets, t.interest_ids
    c = np.diff(t.interest_offsets)[order]
    off = np.zeros(c.size + 1, dtype=np.int64)
    np.cumsum(c, out=off[1:])
    m = int(off[-1])
    if m == 0:
        return off, np.zeros(0, dtype=np.int32)
    src = np.repeat(t.interest_offsets[:-1][order] - off[:-1], c) + np.arange(m, dtype=np.int64)
    return off, t.interest_ids[src]


def _chat_end_est(t_chat_end: np.ndarray, next_join: np.ndarray, pt: np.ndarray, paired: np.ndarray,
                  peer: np.ndarray) -> np.ndarray:
    """Latest time each paired ticket's chat can have ended (NaN if not paired).

    The recorded t_chat_end if any, but never later than either partner's re-join: a user
    re-queues only after its chat ended. The latest possible end makes the rematch block
    last as long as it possibly could, so no pairing is wrongly blamed.
    """
    n = t_chat_end.shape[0]
    out = np.empty(n)
    for i in range(0, n, CHUNK):
        sl = slice(i, i + CHUNK)
        est = np.where(np.isnan(t_chat_end[sl]), np.inf, t_chat_end[sl])
        np.minimum(est, next_join[sl], out=est)
        q = pt[sl]
        has_peer = q >= 0
        est[has_peer] = np.minimum(est[has_peer], next_join[q[has_peer]])
        est[~(paired[sl] & (peer[sl] >= 0))] = np.nan
        out[sl] = est
    return out


def _pairings(pt: np.ndarray, paired: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Complete pairings (a, b), a < b: both tickets paired and naming each other."""
    parts_a, parts_b = [], []
    for i in range(0, pt.shape[0], CHUNK):
        q = pt[i:i + CHUNK]
        a = i + np.flatnonzero(q > np.arange(i, i + q.size))
        b = pt[a]
        ok = (pt[b] == a) & paired[a] & paired[b]
        parts_a.append(a[ok])
        parts_b.append(b[ok])
    if not parts_a:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(parts_a), np.concatenate(parts_b)


def prepare(t: TicketTable, params: FairnessParams) -> Prepared:
    """Order the table by join time and compute what FIFO, starvation and the rest share."""
    tol, fb = params.fifo_tolerance_s, params.interest_fallback_s
    n = t.n
    order = join_order(t.t_join)

    def take(col: np.ndarray) -> np.ndarray:
        return col if order is None else col[order]

    t_join = take(t.t_join)
    t_paired = take(t.t_paired)
    pt = take(t.peer_ticket)
    if order is not None:
        inv = np.empty(n, dtype=np.int64)
        inv[order] = np.arange(n, dtype=np.int64)
        pt = np.where(pt >= 0, inv[np.maximum(pt, 0)], -1)
        del inv
    offsets, ids = _permute_interests(t, order)
    paired = np.isfinite(t_paired)
    t_gave_up = take(t.t_gave_up)
    gave = np.isfinite(t_gave_up)
    end = np.where(gave, t_gave_up, t.t_end)
    del t_gave_up
    np.copyto(end, t_paired, where=paired)
    gave_up = gave & ~paired
    del gave
    mode, lang = take(t.mode), take(t.lang)
    pool_code = mode.astype(np.int32)
    pool_code *= int(lang.max(initial=0)) + 1
    pool_code += lang
    pool, n_pools = dense_codes(pool_code)
    del pool_code
    user, peer = take(t.user), take(t.peer)
    prev, next_join = user_histories(user, t_join)
    chat_end_est = _chat_end_est(take(t.t_chat_end), next_join, pt, paired, peer)
    del next_join

    bits = bits_for(n + 1)
    sorted_end, end_rank = ranks(end)
    wait = end                                       # the end is not needed any more: wait in place
    np.subtract(wait, t_join, out=wait)
    np.maximum(wait, 0.0, out=wait)
    del end
    jlow = merge_search(t_join, t_join, side="left", assume_sorted=True, dtype=np.int32, minus=tol)

    a, b = _pairings(pt, paired)
    del pt
    tp = np.maximum(t_paired[a], t_paired[b])
    by_time = np.argsort(tp)                        # pairings by time: T, q2, q3 rise with the index
    a, b, tp = a[by_time], b[by_time], tp[by_time]
    del by_time
    # tp + tol is tp - (-tol) exactly (negation is exact); tp - F - tol is (tp - F) - tol
    T = merge_search(sorted_end, tp, side="right", assume_sorted=True, dtype=np.int32, minus=-tol)
    del sorted_end
    q2 = merge_search(t_join, tp, side="right", assume_sorted=True, dtype=np.int32, minus=-tol)
    q3 = merge_search(t_join, tp - fb, side="right", assume_sorted=True, dtype=np.int32, minus=tol)
    return Prepared(
        params=params, n=n, t_end=float(t.t_end), t_join=t_join, user=user, peer=peer, mode=mode, lang=lang,
        cls=take(t.cls), via=take(t.via_interest), offsets=offsets, ids=ids,
        names={"mode": tuple(t.mode_names), "lang": tuple(t.lang_names), "cls": tuple(t.cls_names)},
        has=offsets[1:] > offsets[:-1], paired=paired, gave_up=gave_up, wait=wait, pool=pool, n_pools=n_pools,
        prev=prev, chat_end_est=chat_end_est, bits=bits, end_rank=end_rank, jlow=jlow,
        a=a, b=b, tp=tp, T=T, q2=q2, q3=q3,
    )
