"""Starvation: tickets that waited past a threshold, or gave up after being passed over.

- waited_past_threshold: wait > `starvation_threshold_s` (paired late, gave up late, or
  still waiting at the end of the run);
- gave_up_passed_over: the ticket gave up, and while it waited at least one pairing passed
  it over (compat.py: a user compatible with it was served with a partner who joined
  clearly after it), i.e. compatible later arrivals were being served ahead of it.
`starved` counts tickets in either set.

The second set is the FIFO question asked from the candidate's side: per candidate list,
query rows sorted by their join bound carry a suffix minimum of their t_p + tol rank; the
candidate was passed over iff some row allowing its join rank has t_p + tol before its end.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .compat import Compat


def passed_over(cx: Compat, tickets: np.ndarray) -> np.ndarray:
    """bool per ticket of `tickets`: passed over by at least one pairing side."""
    rows, R = cx.rows, cx.R
    out = np.zeros(cx.t.n, dtype=bool)
    if not rows.side.size or not tickets.size:
        return out[tickets]
    want = np.zeros(cx.t.n, dtype=bool)
    want[tickets] = True
    sel = want[cx.m_ticket]
    c = cx.m_ticket[sel]
    src = cx.m_src[sel].astype(np.int64)
    rkey = rows.src * R + rows.jr
    order = np.argsort(rkey, kind="stable")
    rkey = rkey[order]
    val = (rows.src * R + rows.tr)[order]
    sufmin = np.minimum.accumulate(val[::-1])[::-1]
    pos = np.arange(val.size)
    argmin = np.minimum.accumulate(np.where(val == sufmin, pos, val.size)[::-1])[::-1]
    k = np.searchsorted(rkey, src * R + cx.join_rank[c], side="right")
    end_key = src * R + cx.end_rank[c]
    kk = np.minimum(k, val.size - 1)
    hit = (k < val.size) & (sufmin[kk] < end_key)
    idx = np.flatnonzero(hit)
    r = order[argmin[kk[idx]]]
    blocked = cx.blocked(rows.s[r], c[idx], rows.tp[r])
    ok = np.zeros(c.size, dtype=bool)
    ok[idx[~blocked]] = True
    for m in idx[blocked]:
        hi = int(np.searchsorted(rkey, end_key[m], side="right"))
        cand = int(k[m]) + np.flatnonzero(val[k[m]:hi] < end_key[m])
        if cand.size:
            rr = order[cand]
            blk = cx.blocked(rows.s[rr], np.full(rr.size, c[m]), rows.tp[rr])
            ok[m] = bool((~blk).any())
    out[c[ok]] = True
    return out[tickets]


def starvation_figures(cx: Compat) -> dict[str, Any]:
    t = cx.t
    past = t.wait_s > cx.params.starvation_threshold_s
    gave = np.flatnonzero(t.gave_up)
    bypassed = np.zeros(t.n, dtype=bool)
    bypassed[gave] = passed_over(cx, gave)
    starved = past | bypassed
    return {
        "starved": int(starved.sum()),
        "starved_detail": {
            "threshold_s": cx.params.starvation_threshold_s,
            "waited_past_threshold": int(past.sum()),
            "gave_up_passed_over": int(bypassed.sum()),
            "gave_up": int(gave.size),
            "rate": float(starved.sum()) / t.n if t.n else None,
        },
    }
