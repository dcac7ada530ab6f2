"""Ticket dicts to a table: the fast paths of from_records give what the plain loops give.

from_records matches partners' tickets by chat keys with a vectorised fast path for the
usual records (int chats, unique keys) and falls back to the original loop otherwise; the
live harness's dicts keep empty interests as () so that a million of them stay out of the
garbage collector's way. These tests pin both to the slow, obvious behaviour.
"""
from __future__ import annotations

import gc
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.fairness import TicketTable, analyse
from harness.fairness import tickets as tickets_mod
from harness.fairness.live import chat_ticket, live_tickets, wait_ticket

USERS = ["a", "b", "c", "d"]


@st.composite
def ticket_dicts(draw) -> list[dict]:
    chat_values = st.one_of(st.none(), st.integers(0, 3), st.sampled_from(["x", -1]) if draw(st.booleans())
                            else st.integers(0, 3))
    out = []
    for _ in range(draw(st.integers(0, 14))):
        paired = draw(st.booleans())
        out.append({
            "user": draw(st.sampled_from(USERS)), "t_join": draw(st.sampled_from([0.0, 1.0, 2.0])),
            "t_paired": draw(st.sampled_from([1.0, 1.5, 9.0])) if paired else None,
            "t_gave_up": None if paired else draw(st.sampled_from([None, 3.0])),
            "peer": draw(st.one_of(st.none(), st.sampled_from(USERS))), "chat": draw(chat_values),
            "peer_chat": draw(chat_values), "pair": draw(st.one_of(st.none(), st.sampled_from(["p", "q"]))),
            "interests": draw(st.sampled_from([[], (), ["x"], ["x", "x", "y"], None])),
            "mode": draw(st.sampled_from([None, "", "text", "video"])), "lang": draw(st.sampled_from([None, "en", "es"])),
        })
    return out


@st.composite
def partner_dicts(draw) -> list[dict]:
    """Chats whose two tickets name each other by (user, chat), as the live harness writes
    them, some with a lost or wrong token, plus the noise of ticket_dicts."""
    out, next_chat = [], {u: 0 for u in USERS}
    for _ in range(draw(st.integers(0, 8))):
        u, v = draw(st.sampled_from([(x, y) for x in USERS for y in USERS if x != y]))
        cu, cv = next_chat[u], next_chat[v]
        next_chat[u] += 1
        next_chat[v] += 1
        tp = draw(st.sampled_from([1.0, 5.0]))
        for me, mine, other, theirs in ((u, cu, v, cv), (v, cv, u, cu)):
            token = draw(st.sampled_from(["ok", "ok", "ok", "lost", "wrong"]))
            out.append({"user": me, "chat": mine, "peer": None if token == "lost" else other,
                        "peer_chat": None if token == "lost" else theirs + (token == "wrong"),
                        "t_join": 0.0, "t_paired": tp, "pair": draw(st.sampled_from([None, f"p{u}{v}{cu}"]))})
    out += draw(ticket_dicts())
    return draw(st.permutations(out))


@settings(max_examples=400, deadline=None)
@given(st.one_of(ticket_dicts(), partner_dicts()))
def test_chat_key_matching_fast_path_equals_the_loop(records):
    t = TicketTable.from_records(records)
    slow = np.full(t.n, -1, dtype=np.int64)
    paired = np.flatnonzero(np.isfinite(t.t_paired))
    tickets_mod._match_chat_keys(records, paired.tolist(), t.user, t.peer, slow)
    fast = np.full(t.n, -1, dtype=np.int64)
    if tickets_mod._match_chat_keys_fast(records, paired, t.user, t.peer, fast):
        assert fast.tolist() == slow.tolist()


@settings(max_examples=200, deadline=None)
@given(ticket_dicts())
def test_columns_are_read_as_the_definitions_say(records):
    t = TicketTable.from_records(records)
    names = t.user_names
    for i, r in enumerate(records):
        assert names[t.user[i]] == r["user"]
        assert (t.peer[i] < 0) if r["peer"] is None else names[t.peer[i]] == r["peer"]
        assert t.mode_names[t.mode[i]] == (r["mode"] or "text") and t.lang_names[t.lang[i]] == (r["lang"] or "en")
        assert [t.interest_names[k] for k in t.interests_of(i)] == list(dict.fromkeys(r["interests"] or ()))
        assert math.isnan(t.t_paired[i]) if r["t_paired"] is None else t.t_paired[i] == r["t_paired"]


def test_live_ticket_dicts_without_interests_are_not_tracked_by_the_gc():
    record = {"u": "a", "c": 0, "cls": "talker", "mode": "text", "lang": "en", "interests": [], "t_req": 10**18,
              "t_paired": 10**18 + 5, "pair": None, "peer": ["b", 0], "t_end": 10**18 + 9, "end": "next"}
    wait = {"u": "c", "cls": "talker", "mode": "text", "lang": "en", "interests": [], "t_req": 10**18,
            "t_gave_up": 10**18 + 3}
    assert not gc.is_tracked(chat_ticket(record)) and not gc.is_tracked(wait_ticket(wait))
    tickets = live_tickets([record], [wait])
    assert [t["interests"] for t in tickets] == [(), ()]
    assert analyse(tickets)["tickets"] == 2
