"""Rule 2 (PROTOCOL.md): two users who just chatted are not compatible for B seconds.

A candidate c is not held against the matcher for serving s instead when their users had
a chat whose latest possible end e (Prepared.chat_end_est) has t_p < e + B + tol. Most
candidates never met the user they are checked against, so a bitmap of the pairs of users
that ever chatted clears them with one lookup; the others walk both users' histories.
"""
from __future__ import annotations

import numpy as np

from .prepared import CHUNK, Prepared, bits_for


class MetFilter:
    """A bitmap of the pairs of users that ever chatted (hashed; false positives only).

    Rule 2 can only block two users who had a chat together, and most candidates never
    met the user they are checked against: one lookup in a few MB spares walking both
    users' histories. A hit is then checked exactly. At most 8 MB, so it stays in cache.
    """

    K1, K2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F)

    def __init__(self, user: np.ndarray, peer: np.ndarray, chats: np.ndarray) -> None:
        self.bits = min(max(bits_for(16 * max(chats.size, 1)), 16), 26)
        flags = np.zeros(1 << self.bits, dtype=bool)
        for i in range(0, chats.size, CHUNK):          # chunks: temporaries stay on the heap
            x = chats[i:i + CHUNK]
            flags[self._hash(user[x], peer[x])] = True
        self.packed = np.packbits(flags, bitorder="little")

    def _hash(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        lo = np.minimum(u, v).astype(np.int64, copy=False).view(np.uint64)
        hi = np.maximum(u, v).astype(np.int64, copy=False).view(np.uint64)
        lo *= self.K1
        hi *= self.K2
        lo ^= hi
        lo >>= np.uint64(64 - self.bits)
        return lo

    def maybe(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """False only where users u[i] and v[i] certainly never chatted."""
        h = self._hash(u, v)
        byte = self.packed[h >> np.uint64(3)]
        byte >>= (h & np.uint64(7)).astype(np.uint8)
        return (byte & 1).astype(bool)


def blocked(pr: Prepared, s: np.ndarray, c: np.ndarray, tp: np.ndarray) -> np.ndarray:
    """Rule 2: were tickets s and c's users blocked from each other at tp (conservatively)?

    Pairs of users that never chatted (MetFilter) are not; the others are walked (_walk).
    """
    out = np.zeros(s.shape[0], dtype=bool)
    if not s.size:
        return out
    if pr.met is None:
        pr.met = MetFilter(pr.user, pr.peer, np.flatnonzero(~np.isnan(pr.chat_end_est)))  # the chats
    keep = np.flatnonzero(pr.met.maybe(pr.user[s], pr.user[c]))
    if keep.size:
        out[keep] = _walk(pr, s[keep], c[keep], tp[keep])
    return out


def _walk(pr: Prepared, s: np.ndarray, c: np.ndarray, tp: np.ndarray) -> np.ndarray:
    """`blocked` for pairs of users that may have met: the history walk itself.

    Walks each user's history backwards from its ticket while the chats can still block:
    a chat's latest end is at most its user's next join, so once `next join + B + tol <= tp`
    every earlier chat is too old as well. The first step needs no lookup: the next join
    after x's previous ticket is x's own join.
    """
    out = np.zeros(s.shape[0], dtype=bool)
    slack, tol = pr.params.rematch_block_s, pr.params.fifo_tolerance_s   # (x + slack) + tol, as defined
    for x, y in ((c, s), (s, c)):
        p = pr.prev[x]
        live = (p >= 0) & (pr.t_join[x] + slack + tol > tp)
        live &= ~out
        idx = np.flatnonzero(live)
        del live
        p = p[idx]
        while idx.size:
            t = tp[idx]
            other = pr.user[y[idx]]
            hit = (pr.peer[p] == other) & (t < pr.chat_end_est[p] + slack + tol)
            out[idx[hit]] = True
            go = ~hit & (pr.t_join[p] + slack + tol > t)   # p's join: the next join of p's previous
            p = pr.prev[p[go]]
            idx = idx[go]
            go = p >= 0
            idx, p = idx[go], p[go]
    return out
