"""Who could have been served instead: PROTOCOL.md rule 5 compatibility, vectorised.

For every side of every complete pairing ("s was served with o at t_p") a *passed-over*
ticket c is one that

1. is in s's pool (same mode and lang);
2. joined clearly before o: t_join[c] < t_join[o] - tol, and t_join[c] <= t_p + tol;
3. was still waiting clearly after: end[c] > t_p + tol;
4. was compatible with s at t_p: they share an interest, or both were open (s: no
   interests or t_p >= t_join[s] + F; c: no interests or t_join[c] <= t_p - F - tol);
5. was not blocked from s by a recent `next` (rule 2): no chat between their users whose
   latest possible end (TicketTable.chat_end_est) e has t_p < e + B + tol.

Candidates are filed in sorted lists ("sources"): per pool the tickets without interests,
per pool the tickets with interests (open only once their fallback passed: an extra bound
on t_join), and per (pool, interest) the tickets holding that interest. A side asks the
lists it may draw from: conditions 1, 2, 4 become a prefix of a list sorted by t_join,
condition 3 a prefix maximum of `end`; both are binary searches on int64 keys
(source * R + rank of the time), so comparisons stay exact. Condition 5 is checked on the
one witness found and, in the rare case it is blocked, by scanning that list.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .params import FairnessParams
from .tickets import TicketTable


@dataclass
class Rows:
    """Query rows: one per (pairing side, source list it may draw from)."""

    side: np.ndarray    # index into the 2P sides (side k < P: s = a[k]; else s = b[k - P])
    s: np.ndarray       # served ticket
    src: np.ndarray     # source list
    tp: np.ndarray      # pairing time
    jr: np.ndarray      # strict upper bound on the candidate's t_join rank
    tr: np.ndarray      # rank of t_p + tol: the candidate's end rank must exceed it


@dataclass
class Lists:
    """All candidate lists, concatenated, sorted by (source, t_join rank, ticket)."""

    ticket: np.ndarray
    jkey: np.ndarray    # src * R + t_join rank (sorted)
    ekey: np.ndarray    # src * R + end rank
    pmax: np.ndarray    # running maximum of ekey (non-decreasing)


class Compat:
    """The candidate lists and query rows of one ticket table (built once, used twice)."""

    def __init__(self, t: TicketTable, params: FairnessParams) -> None:
        self.t = t
        self.params = params
        tol, fb = params.fifo_tolerance_s, params.interest_fallback_s
        a, b = t.pairs
        self.n_pairs = int(a.size)
        s = np.concatenate([a, b])
        o = np.concatenate([b, a])
        tp1 = np.maximum(t.t_paired[a], t.t_paired[b])
        tp = np.concatenate([tp1, tp1])
        j_val = t.t_join[o] - tol
        t_val = tp + tol
        lo_val = tp - fb - tol
        s_open = ~t.has_interests[s] | (tp >= t.t_join[s] + fb)

        # ---- sources: pools, then per-pool interest lists
        pools, pool_idx = np.unique(t.pool, return_inverse=True)
        n_pools = int(pools.size)
        vocab = int(t.interest_ids.max(initial=-1)) + 1
        owner = np.repeat(np.arange(t.n), t.n_interests)
        combo = pool_idx[owner].astype(np.int64) * max(vocab, 1) + t.interest_ids
        combos, combo_idx = np.unique(combo, return_inverse=True)

        # candidate memberships (ticket, src)
        has = t.has_interests
        m_ticket = np.concatenate([np.arange(t.n), owner])
        m_src = np.concatenate([np.where(has, n_pools + pool_idx, pool_idx), 2 * n_pools + combo_idx])
        self.m_ticket, self.m_src = m_ticket, m_src

        # ---- ranks of every time compared, so keys are exact integers
        n = t.n
        nq = s.size
        values = np.concatenate([t.t_join, t.end, j_val, t_val, lo_val])
        _, inv = np.unique(values, return_inverse=True)
        inv = inv.astype(np.int64).reshape(-1)
        self.R = R = int(inv.max(initial=0)) + 2
        self.join_rank = inv[:n]
        self.end_rank = inv[n:2 * n]
        jr_q = inv[2 * n:2 * n + nq]
        tr_q = inv[2 * n + nq:2 * n + 2 * nq]
        lo_q = inv[2 * n + 2 * nq:]
        jr_q = np.minimum(jr_q, tr_q + 1)

        # ---- query rows
        side = np.arange(nq)
        open_sides = side[s_open]
        rows_side = [open_sides, open_sides]
        rows_src = [pool_idx[s[open_sides]], n_pools + pool_idx[s[open_sides]]]
        rows_jr = [jr_q[open_sides], np.minimum(jr_q[open_sides], lo_q[open_sides] + 1)]
        cnt = t.n_interests[s]
        q_side = np.repeat(side, cnt)
        starts = np.repeat(t.interest_offsets[s] - np.concatenate([[0], np.cumsum(cnt)[:-1]]), cnt)
        q_int = t.interest_ids[starts + np.arange(int(cnt.sum()))]
        q_combo = pool_idx[s[q_side]].astype(np.int64) * max(vocab, 1) + q_int
        pos = np.searchsorted(combos, q_combo)
        pos_c = np.minimum(pos, max(combos.size - 1, 0))
        ok = (pos < combos.size) & (combos[pos_c] == q_combo) if combos.size else np.zeros(q_combo.size, bool)
        rows_side.append(q_side[ok])
        rows_src.append(2 * n_pools + pos[ok])
        rows_jr.append(jr_q[q_side[ok]])
        r_side = np.concatenate(rows_side)
        self.rows = Rows(
            side=r_side, s=s[r_side], src=np.concatenate(rows_src).astype(np.int64), tp=tp[r_side],
            jr=np.concatenate(rows_jr), tr=tr_q[r_side],
        )
        self.sides_s = s
        self.sides_o = o

        # ---- candidate lists sorted by (src, join rank, ticket)
        jr_m = self.join_rank[m_ticket]
        order = np.lexsort((m_ticket, jr_m, m_src))
        ticket = m_ticket[order]
        src_sorted = m_src[order].astype(np.int64)
        jkey = src_sorted * R + jr_m[order]
        ekey = src_sorted * R + self.end_rank[ticket]
        self.lists = Lists(ticket=ticket, jkey=jkey, ekey=ekey, pmax=np.maximum.accumulate(ekey) if ekey.size else ekey)

    # ------------------------------------------------------------------ blocks
    def blocked(self, s: np.ndarray, c: np.ndarray, tp: np.ndarray) -> np.ndarray:
        """Rule 2: were tickets s and c's users blocked from each other at tp (conservatively)?"""
        t = self.t
        out = np.zeros(s.shape[0], dtype=bool)
        if not s.size:
            return out
        slack = self.params.rematch_block_s
        tol = self.params.fifo_tolerance_s
        for x, other in ((c, t.user[s]), (s, t.user[c])):
            idx = np.arange(s.shape[0])
            p = t.prev_ticket[x]
            while idx.size:
                live = p >= 0
                idx, p = idx[live], p[live]
                live = t.next_join[p] + slack + tol > tp[idx]
                idx, p = idx[live], p[live]
                if not idx.size:
                    break
                hit = (t.peer[p] == other[idx]) & (tp[idx] < t.chat_end_est[p] + slack + tol)
                out[idx[hit]] = True
                p = t.prev_ticket[p]
        return out

    def first_unblocked(self, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray, key_t: np.ndarray,
                        window: int = 16) -> np.ndarray:
        """For query rows whose first witness was blocked: is there another in list positions [lo, hi)?

        Scans `window` positions per row per round, all rows at once: a candidate still
        waiting (ekey > key_t) and not rematch-blocked from the row's served ticket.
        """
        lists = self.lists
        found = np.zeros(rows.size, dtype=bool)
        live = np.arange(rows.size)
        pos = lo.astype(np.int64).copy()
        step = np.arange(window)
        while live.size:
            p = pos[live][:, None] + step                       # (rows, window)
            inside = p < hi[live][:, None]
            pc = np.minimum(p, lists.ekey.size - 1)
            waiting = inside & (lists.ekey[pc] > key_t[live][:, None])
            r_idx, w_idx = np.nonzero(waiting)
            if r_idx.size:
                rr = rows[live[r_idx]]
                ok = ~self.blocked(self.rows.s[rr], lists.ticket[pc[r_idx, w_idx]], self.rows.tp[rr])
                found[live[np.unique(r_idx[ok])]] = True
            pos[live] += window
            live = live[~found[live] & (pos[live] < hi[live])]
        return found
