"""Hypothesis strategies for small random ticket tables (test data, not a simulation).

Times come from a coarse grid half of the time so ties, equal joins and pairings at the
very tolerance boundary are frequent; pairs are built so the two tickets name each other,
plus some paired tickets whose partner's ticket is missing.
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from harness.fairness import FairnessParams, TicketTable

GRID = [0.0, 0.05, 0.5, 1.0, 2.0, 3.0, 5.0, 5.05, 7.0, 10.0, 12.0, 15.0]


def _time(draw) -> float:
    if draw(st.booleans()):
        return draw(st.sampled_from(GRID))
    return draw(st.floats(0.0, 16.0, allow_nan=False, allow_infinity=False))


@st.composite
def ticket_tables(draw, max_tickets: int = 18) -> TicketTable:
    n = draw(st.integers(1, max_tickets))
    n_users = draw(st.integers(1, 6))
    user = [draw(st.integers(0, n_users - 1)) for _ in range(n)]
    mode = [draw(st.integers(0, 1)) for _ in range(n)]
    lang = [draw(st.sampled_from([0, 0, 1])) for _ in range(n)]
    cls = [draw(st.integers(0, 2)) for _ in range(n)]
    interests = [sorted(draw(st.sets(st.integers(0, 3), max_size=3))) if draw(st.booleans()) else [] for _ in range(n)]
    t_join = [_time(draw) for _ in range(n)]
    t_paired = [math.nan] * n
    t_gave_up = [math.nan] * n
    t_chat_end = [math.nan] * n
    peer = [-1] * n
    peer_ticket = [-1] * n
    outcome = [draw(st.sampled_from(["pair", "pair", "gave_up", "wait"])) for _ in range(n)]
    want = [i for i in range(n) if outcome[i] == "pair"]
    order = draw(st.permutations(want)) if want else []
    for k in range(0, len(order) - 1, 2):
        a, b = order[k], order[k + 1]
        if user[a] == user[b]:
            continue
        tp = max(t_join[a], t_join[b]) + draw(st.sampled_from([0.0, 0.0, 0.01, 0.3, 2.0, 6.0]))
        t_paired[a] = tp
        t_paired[b] = tp + draw(st.sampled_from([0.0, 0.0, 0.02]))
        peer[a], peer[b] = user[b], user[a]
        peer_ticket[a], peer_ticket[b] = b, a
        if draw(st.booleans()):
            t_chat_end[a] = t_chat_end[b] = tp + draw(st.floats(0.0, 5.0))
    for i in range(n):
        if outcome[i] == "gave_up" or (outcome[i] == "pair" and peer_ticket[i] < 0 and draw(st.booleans())):
            t_gave_up[i] = t_join[i] + draw(st.floats(0.0, 12.0))
        elif outcome[i] == "pair" and peer_ticket[i] < 0:
            # paired, but the partner's ticket is missing (a lost record)
            t_paired[i] = t_join[i] + draw(st.floats(0.0, 3.0))
            peer[i] = draw(st.integers(0, n_users))
    offsets = np.zeros(n + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(x) for x in interests])
    ids = np.asarray([k for x in interests for k in x], dtype=np.int32)
    via = None if draw(st.booleans()) else np.asarray([draw(st.booleans()) for _ in range(n)])
    return TicketTable.from_arrays(
        user=user, cls=cls, mode=mode, lang=lang, interest_offsets=offsets, interest_ids=ids,
        t_join=t_join, t_paired=t_paired, t_gave_up=t_gave_up, peer=peer, peer_ticket=np.asarray(peer_ticket),
        t_chat_end=np.asarray(t_chat_end), via_interest=via,
        t_end=draw(st.sampled_from([None, 20.0])),
        cls_names=("skipper", "talker", "keeper"), mode_names=("text", "video"), lang_names=("en", "es"),
    )


params_strategy = st.builds(
    FairnessParams,
    interest_fallback_s=st.sampled_from([0.0, 1.0, 5.0]),
    rematch_block_s=st.sampled_from([0.0, 3.0, 10.0]),
    fifo_tolerance_s=st.sampled_from([0.0, 0.05, 0.5]),
    starvation_threshold_s=st.sampled_from([1.0, 5.0, 30.0]),
    min_cohort_tickets=st.sampled_from([1, 3]),
    p99_floor_ms=st.sampled_from([1.0, 100.0]),
)


@st.composite
def pooled_ticket_tables(draw, max_tickets: int = 24) -> TicketTable:
    """Like ticket_tables, but as the simulator's tables are: each user stays in one pool
    (mode, lang) and pairings join two users of one pool, so the table splits by pool."""
    n = draw(st.integers(1, max_tickets))
    n_users = draw(st.integers(1, 8))
    user_pool = [(draw(st.integers(0, 1)), draw(st.sampled_from([0, 0, 1]))) for _ in range(n_users)]
    user = [draw(st.integers(0, n_users - 1)) for _ in range(n)]
    mode = [user_pool[u][0] for u in user]
    lang = [user_pool[u][1] for u in user]
    cls = [draw(st.integers(0, 2)) for _ in range(n)]
    interests = [sorted(draw(st.sets(st.integers(0, 3), max_size=3))) if draw(st.booleans()) else [] for _ in range(n)]
    t_join = [_time(draw) for _ in range(n)]
    t_paired, t_gave_up, t_chat_end = [math.nan] * n, [math.nan] * n, [math.nan] * n
    peer, peer_ticket = [-1] * n, [-1] * n
    outcome = [draw(st.sampled_from(["pair", "pair", "pair", "gave_up", "wait"])) for _ in range(n)]
    want = [i for i in range(n) if outcome[i] == "pair"]
    order = sorted(draw(st.permutations(want)) if want else [], key=lambda i: (mode[i], lang[i]))
    k = 0
    while k + 1 < len(order):
        a, b = order[k], order[k + 1]
        if (mode[a], lang[a]) != (mode[b], lang[b]) or user[a] == user[b]:
            k += 1
            continue
        tp = max(t_join[a], t_join[b]) + draw(st.sampled_from([0.0, 0.0, 0.01, 0.3, 2.0, 6.0]))
        t_paired[a] = tp
        t_paired[b] = tp + draw(st.sampled_from([0.0, 0.0, 0.02]))
        peer[a], peer[b] = user[b], user[a]
        peer_ticket[a], peer_ticket[b] = b, a
        if draw(st.booleans()):
            t_chat_end[a] = t_chat_end[b] = tp + draw(st.floats(0.0, 5.0))
        k += 2
    for i in range(n):
        if outcome[i] == "gave_up" or (outcome[i] == "pair" and peer_ticket[i] < 0 and draw(st.booleans())):
            t_gave_up[i] = t_join[i] + draw(st.floats(0.0, 12.0))
        elif outcome[i] == "pair" and peer_ticket[i] < 0:
            t_paired[i] = t_join[i] + draw(st.floats(0.0, 3.0))   # a lost partner record
            mates = [u for u in range(n_users) if user_pool[u] == user_pool[user[i]] and u != user[i]]
            peer[i] = draw(st.sampled_from(mates)) if mates else -1
    offsets = np.zeros(n + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(x) for x in interests])
    ids = np.asarray([k for x in interests for k in x], dtype=np.int32)
    via = None if draw(st.booleans()) else np.asarray([draw(st.booleans()) for _ in range(n)])
    return TicketTable.from_arrays(
        user=user, cls=cls, mode=mode, lang=lang, interest_offsets=offsets, interest_ids=ids,
        t_join=t_join, t_paired=t_paired, t_gave_up=t_gave_up, peer=peer, peer_ticket=np.asarray(peer_ticket),
        t_chat_end=np.asarray(t_chat_end), via_interest=via, t_end=draw(st.sampled_from([None, 20.0])),
        cls_names=("skipper", "talker", "keeper"), mode_names=("text", "video"), lang_names=("en", "es"),
    )


def sub_table(t: TicketTable, idx: np.ndarray) -> TicketTable:
    """The tickets idx of t as a table of their own (partners re-indexed, same names and t_end),
    as one simulator process would build it for its pools."""
    idx = np.asarray(idx, dtype=np.int64)
    local = np.full(t.n, -1, dtype=np.int64)
    local[idx] = np.arange(idx.size)
    pt = t.peer_ticket[idx]
    counts = np.diff(t.interest_offsets)[idx]
    offsets = np.zeros(idx.size + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(counts)
    ids = np.concatenate([t.interests_of(i) for i in idx]) if idx.size else np.zeros(0, dtype=np.int32)
    return TicketTable.from_arrays(
        user=t.user[idx], cls=t.cls[idx], mode=t.mode[idx], lang=t.lang[idx], interest_offsets=offsets,
        interest_ids=ids, t_join=t.t_join[idx], t_paired=t.t_paired[idx], t_gave_up=t.t_gave_up[idx],
        peer=t.peer[idx], peer_ticket=np.where(pt >= 0, local[np.maximum(pt, 0)], -1),
        t_chat_end=t.t_chat_end[idx], via_interest=t.via_interest[idx], t_end=t.t_end,
        cls_names=t.cls_names, mode_names=t.mode_names, lang_names=t.lang_names,
    )
