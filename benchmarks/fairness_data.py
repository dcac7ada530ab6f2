"""Synthetic ticket tables for the fairness benchmark (vectorised, a second per million).

Users make ~20 consecutive chats; each ticket waits an exponential time, then is paired
with the neighbouring ready ticket of its pool; 5% give up; 20% of users hold 1-3 interests
from a Zipf vocabulary of 10,000. Not a faithful matcher (the simulator is), but it has the
shape the analysis pays for: thin pools, interest lists, user histories, rematches.

Tickets come user by user (`order="user"`, the default: the analysis must first put them in
join order) or in join order (`order="join"`, as the simulator emits them).
"""
from __future__ import annotations

import numpy as np

from harness.fairness import TicketTable


def synthetic_tickets(n: int, seed: int = 1, day_s: float = 86_400.0, order: str = "user") -> TicketTable:
    if order not in ("user", "join"):
        raise ValueError(f"order must be 'user' or 'join', not {order!r}")
    rng = np.random.default_rng(seed)
    per_user = 20
    n_users = max(n // per_user, 1)
    user = np.repeat(np.arange(n_users), per_user)[:n]
    k = np.tile(np.arange(per_user), n_users)[:n]
    wait = rng.exponential(0.5, n)
    chat = rng.lognormal(np.log(5.0), 1.0, n)
    start = rng.uniform(0, day_s, n_users)[user]
    step = wait + chat
    csum = np.cumsum(step)
    first = np.flatnonzero(k == 0)
    base = np.repeat(csum[first] - step[first], np.diff(np.append(first, n)))
    t_join = start + csum - step - base
    ready = t_join + wait
    mode = rng.integers(0, 2, n_users)[user]
    lang = np.minimum(rng.geometric(0.5, n_users) - 1, 7)[user]
    has = rng.random(n_users) < 0.2
    counts_u = np.where(has, rng.integers(1, 4, n_users), 0)
    vocab = 10_000
    zipf = 1.0 / np.arange(1, vocab + 1)
    zipf /= zipf.sum()
    ids_u = rng.choice(vocab, size=int(counts_u.sum()), p=zipf).astype(np.int32)
    off_u = np.concatenate([[0], np.cumsum(counts_u)])
    counts = counts_u[user]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    starts = np.repeat(off_u[user] - offsets[:-1], counts)
    ids = ids_u[starts + np.arange(int(offsets[-1]))]
    gave = rng.random(n) < 0.05
    t_paired = np.full(n, np.nan)
    t_gave = np.where(gave, ready, np.nan)
    peer = np.full(n, -1, dtype=np.int64)
    peer_ticket = np.full(n, -1, dtype=np.int64)
    cand = np.flatnonzero(~gave)
    pool = mode * 8 + lang
    queue = cand[np.lexsort((ready[cand], pool[cand]))]
    a, b = queue[0:-1:2], queue[1::2]
    ok = (pool[a] == pool[b]) & (user[a] != user[b])
    a, b = a[ok], b[ok]
    tp = np.maximum(ready[a], ready[b])
    t_paired[a] = t_paired[b] = tp
    peer[a], peer[b] = user[b], user[a]
    peer_ticket[a], peer_ticket[b] = b, a
    t_chat_end = np.where(np.isnan(t_paired), np.nan, t_paired + chat)
    cls = rng.integers(0, 5, n_users)[user]
    if order == "join":
        perm = np.argsort(t_join, kind="stable")
        inv = np.empty(n, dtype=np.int64)
        inv[perm] = np.arange(n)
        peer_ticket = np.where(peer_ticket >= 0, inv[np.maximum(peer_ticket, 0)], -1)[perm]
        del inv
        counts = counts[perm]
        new_off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        ids = ids[np.repeat(offsets[:-1][perm] - new_off[:-1], counts) + np.arange(int(new_off[-1]))]
        offsets = new_off
        user, cls, mode, lang, t_join, t_paired, t_gave, peer, t_chat_end = (
            c[perm] for c in (user, cls, mode, lang, t_join, t_paired, t_gave, peer, t_chat_end))
    return TicketTable.from_arrays(
        user=user, cls=cls, mode=mode, lang=lang,
        interest_offsets=offsets, interest_ids=ids, t_join=t_join, t_paired=t_paired, t_gave_up=t_gave,
        peer=peer, peer_ticket=peer_ticket, t_chat_end=t_chat_end, t_end=float(day_s + 3600),
        cls_names=("skipper", "talker", "keeper", "impatient", "abuser"),
        lang_names=("en", "es", "pt", "fr", "de", "ru", "ar", "hi"),
    )
