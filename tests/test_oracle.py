"""The oracle on hand-built chat records: every violation kind is caught, and the tricky
correct cases (races a correct server cannot avoid) are NOT flagged."""
from __future__ import annotations

from typing import Any

import pytest

from harness import oracle
from harness.ledger import VIOLATION_KINDS

MS = 1_000_000
S = 1_000_000_000
DEADLINE_MS = 5000.0


def rec(u: str, c: int = 0, peer: tuple[str, int] | None = None, **kw: Any) -> dict[str, Any]:
    """A chat record as a worker ships it; defaults describe a plain 1-second chat ended by next."""
    base = {
        "u": u, "c": c, "cls": "T", "mode": "text", "lang": "en", "interests": [],
        "t_req": 0, "t_paired": 1 * S, "pair": "p", "initiator": True,
        "t_tok_sent": 1 * S + MS, "peer": None if peer is None else list(peer), "t_tok": None if peer is None else S + 2 * MS,
        "sent": 0, "t_last_sent": None, "refused": 0, "recv": 0, "recv_max": -1, "dup": 0, "reord": 0,
        "t_end": 2 * S, "end": "next", "reason": None, "late": 0,
    }
    base.update(kw)
    return base


def pair(a_kw: dict[str, Any] | None = None, b_kw: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """A correct chat between a#0 and b#0: a pressed next, b got partner_left (next)."""
    a = rec("a", 0, ("b", 0), **{"end": "next", "t_end": 2 * S, **(a_kw or {})})
    b = rec("b", 0, ("a", 0), **{"end": "partner_left", "reason": "next", "t_end": 2 * S + 3 * MS, **(b_kw or {})})
    return [a, b]


def check(records: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return oracle.check(records, deadline_ms=DEADLINE_MS, **kw)


def only(result: dict[str, Any], **expected: int) -> None:
    """Exactly these counters are non-zero (and equal these values)."""
    nonzero = {k: v for k, v in result["counters"].items() if v}
    assert nonzero == expected, result["examples"]
    assert result["violations_total"] == sum(expected.values())


# -- correct runs ---------------------------------------------------------------------------
def test_correct_chat_has_no_violation_and_gives_partner_left_latency() -> None:
    r = check(pair({"sent": 4}, {"recv": 4, "recv_max": 3}))
    only(r)
    assert r["partner_left_ms"] == [pytest.approx(3.0)]
    assert r["checked"]["symmetric_pairs"] == 2 and r["checked"]["loss_checked"] == 2
    assert set(r["counters"]) >= set(VIOLATION_KINDS)


def test_next_pressed_while_messages_in_flight_is_not_loss() -> None:
    # Both pressed next at nearly the same time; a's last 2 messages were dropped by the
    # server after it processed b's next: b only has 3 of 5, with no gap.
    a = rec("a", 0, ("b", 0), sent=5, end="next", t_end=2 * S)
    b = rec("b", 0, ("a", 0), recv=3, recv_max=2, end="next", t_end=2 * S + MS, reason="crossed:next")
    only(check([a, b]))


def test_partner_leaving_right_after_pairing_before_the_token() -> None:
    # a gave up with leave while the server paired it: a's chat is abandoned (no token
    # sent), b got paired and partner_left (leave) at once, without a's token.
    a = rec("a", 0, ("b", 0), end="abandoned", t_tok_sent=None, t_end=1 * S)
    b = rec("b", 0, None, end="partner_left", reason="leave", t_end=1 * S + 4 * MS)
    only(check([a, b]))


def test_partner_disconnecting_right_after_pairing_is_not_a_ghost() -> None:
    b = rec("b", 0, None, end="partner_left", reason="disconnect", t_end=1 * S + 30 * MS)
    only(check([b]))


def test_disconnect_with_messages_in_flight() -> None:
    a = rec("a", 0, ("b", 0), sent=5, end="disconnect", t_end=2 * S)
    b = rec("b", 0, ("a", 0), recv=3, recv_max=2, end="partner_left", reason="disconnect", t_end=2 * S + MS)
    r = check([a, b])
    only(r)
    assert r["partner_left_ms"] == []  # only next/leave feed the partner-left latency


def test_run_end_cuts_chats_without_violations() -> None:
    a = rec("a", 0, ("b", 0), sent=10, end="run_end", t_end=9 * S)
    b = rec("b", 0, ("a", 0), recv=8, recv_max=7, end="run_end", t_end=9 * S + 20 * MS)
    young = rec("c", 0, None, end="run_end", t_paired=9 * S - 100 * MS, t_end=9 * S)  # token not yet in
    only(check([a, b, young]))


def test_next_crossing_the_partners_next_is_not_a_missing_partner_left() -> None:
    a = rec("a", 0, ("b", 0), end="next", t_end=2 * S)
    b = rec("b", 0, ("a", 0), end="next", t_end=2 * S + 2 * MS, reason="crossed:next")
    only(check([a, b]))


def test_refused_messages_skip_the_loss_check() -> None:
    r = check(pair({"sent": 6, "refused": 1}, {"recv": 5, "recv_max": 4}))
    only(r)
    assert r["checked"]["loss_checked"] == 1


def test_missing_record_of_the_peer_is_not_judged() -> None:
    r = check([rec("a", 0, ("zz", 9), sent=3)])
    only(r)
    assert r["checked"]["unmatched_peer"] == 1


def test_rematch_with_the_same_user_in_a_later_chat_is_fine() -> None:
    recs = pair() + [
        rec("a", 1, ("b", 1), t_paired=3 * S, t_end=4 * S),
        rec("b", 1, ("a", 1), t_paired=3 * S, t_end=4 * S + MS, end="partner_left", reason="next"),
    ]
    only(check(recs))


# -- violations -----------------------------------------------------------------------------
def test_double_match_one_token_reaching_two_chats() -> None:
    recs = pair() + [rec("c", 0, ("b", 0), end="partner_left", reason="next", t_end=2 * S)]
    r = check(recs)
    assert r["counters"]["double_match"] == 1
    ex = r["examples"]["double_match"][0]
    assert ex["who"] == "b" and "b#0" in ex["what"] and ex["when"] == pytest.approx(1.002)


def test_asymmetric_pair_disagreeing_peers() -> None:
    recs = [
        rec("a", 0, ("b", 0)),
        rec("b", 0, ("c", 0), end="partner_left", reason="next"),
        rec("c", 0, ("b", 0), end="next", t_end=2 * S - MS),
    ]
    r = check(recs)
    assert r["counters"]["asymmetric_pair"] == 1
    assert "a#0 was paired with b#0, which was paired with c#0" in r["examples"]["asymmetric_pair"][0]["what"]


def test_asymmetric_pair_token_never_arrived() -> None:
    a = rec("a", 0, ("b", 0), end="next", t_end=2 * S)
    b = rec("b", 0, None, end="partner_left", reason="next", t_end=2 * S + MS)
    only(check([a, b]), asymmetric_pair=1)


def test_lost_messages_when_the_partner_ended_the_chat() -> None:
    r = check(pair({"sent": 10}, {"recv": 7, "recv_max": 6}))
    only(r, lost_messages=3)
    assert "3 of 10" in r["examples"]["lost_messages"][0]["what"]


def test_lost_messages_as_gaps_when_the_receiver_ended() -> None:
    a = rec("a", 0, ("b", 0), sent=10, end="partner_left", reason="next", t_end=2 * S + MS)
    b = rec("b", 0, ("a", 0), recv=5, recv_max=7, end="next", t_end=2 * S)
    only(check([a, b]), lost_messages=3)


def test_ghost_match_no_token_within_the_deadline() -> None:
    ghost = rec("a", 0, None, end="next", t_paired=1 * S, t_end=7 * S)
    ghost_at_run_end = rec("b", 0, None, end="run_end", t_paired=1 * S, t_end=6 * S + MS)
    r = check([ghost, ghost_at_run_end])
    only(r, ghost_match=2)
    assert r["violations_by_second"] == {6: 2}


def test_refused_token_explains_early_frames_ghost_and_asymmetry() -> None:
    """a's token was refused (rate_limited): b saw a's messages with no token, waited past
    the deadline and got partner_left. a's record names b and counts the refusal."""
    a = rec("a", 0, ("b", 0), sent=4, refused=1, end="next", t_end=7 * S)
    b = rec("b", 0, None, early=[["a", 0, 4]], end="partner_left", reason="next", t_end=7 * S + MS)
    only(check([a, b]))


def test_early_frames_from_the_partner_without_any_refusal_are_a_lost_token() -> None:
    a = rec("a", 0, ("b", 0), sent=4, end="next", t_end=7 * S)
    b = rec("b", 0, None, early=[["a", 0, 4]], end="partner_left", reason="next", t_end=7 * S + MS)
    r = check([a, b])
    only(r, lost_messages=1, asymmetric_pair=1)
    assert "token of a#0 never reached b#0" in r["examples"]["lost_messages"][0]["what"]


def test_early_frames_from_another_chat_are_cross_talk() -> None:
    recs = pair() + [rec("c", 0, None, early=[["a", 0, 3]], end="next", t_end=1 * S + 500 * MS)]
    r = check(recs)
    only(r, cross_talk=3)
    assert "a#0 (paired with b#0) reached c#0" in r["examples"]["cross_talk"][0]["what"]


def test_early_frames_from_an_unknown_record_are_not_judged() -> None:
    r = check([rec("c", 0, None, early=[["z", 0, 3]], end="next", t_end=1 * S + 500 * MS)])
    only(r)
    assert r["checked"]["unmatched_peer"] == 1


def test_no_token_chat_whose_pair_the_partner_abandoned_is_not_a_ghost() -> None:
    """On a backend that never says partner_left, the partner's give-up crossing the
    pairing leaves us waiting for a token: its record is `abandoned` with the same pair id."""
    a = rec("a", 0, None, end="abandoned", pair="room7", t_tok_sent=None, t_end=1 * S)
    b = rec("b", 0, None, pair="room7", end="next", t_end=7 * S)
    ghost = rec("c", 0, None, pair="room8", end="next", t_end=7 * S)
    no_pair_id = rec("d", 0, None, pair="", end="next", t_end=7 * S)
    only(check([a, b, ghost, no_pair_id]), ghost_match=2)


def test_partner_disconnecting_as_the_pairing_crossed_on_a_silent_backend_is_not_a_ghost() -> None:
    """Without partner_left the backend never ends a chat whose partner disconnected while
    the pairing was on its way; the partner's give-up (a wait ended by disconnect) explains
    one such chat, only when partner_left is lacking, only close in time and compatible."""
    skip = ["missing_partner_left", "wrong_partner_left_reason"]
    crossed = rec("a", 0, None, end="next", t_paired=10 * S, t_end=16 * S)
    long_gone = rec("b", 0, None, end="next", t_paired=30 * S, t_end=36 * S)
    other_lang = rec("c", 0, None, end="next", t_paired=10 * S, t_end=16 * S, lang="es")
    waits = [{"u": "z", "mode": "text", "lang": "en", "t_gave_up": 10 * S - 200 * MS, "how": "disconnect"},
             {"u": "y", "mode": "text", "lang": "en", "t_gave_up": 20 * S, "how": "disconnect"},
             {"u": "x", "mode": "text", "lang": "es", "t_gave_up": 9 * S, "how": "leave"}]
    only(check([crossed, long_gone, other_lang], skip=skip, waits=waits), ghost_match=2)
    only(check([crossed], waits=waits), ghost_match=1)  # with partner_left the backend ends it
    assert {u["check"] for u in oracle.unchecked_for(["partner_left"])} >= {"ghost_match"}


def test_refused_frames_excuse_a_missing_partner_left() -> None:
    a = rec("a", 0, ("b", 0), end="next", t_end=2 * S, refused=2)
    b = rec("b", 0, ("a", 0), end="next", t_end=9 * S)
    only(check([a, b]))


def test_missing_partner_left() -> None:
    a = rec("a", 0, ("b", 0), end="next", t_end=2 * S)
    b = rec("b", 0, ("a", 0), end="run_end", t_end=9 * S)
    r = check([a, b])
    only(r, missing_partner_left=1)
    assert r["examples"]["missing_partner_left"][0]["who"] == "b"


def test_missing_partner_left_on_disconnect() -> None:
    a = rec("a", 0, ("b", 0), end="disconnect", t_end=2 * S)
    b = rec("b", 0, ("a", 0), end="next", t_end=8 * S)
    only(check([a, b]), missing_partner_left=1)


def test_wrong_partner_left_reason() -> None:
    only(check(pair({"end": "disconnect"}, {"reason": "next"})), wrong_partner_left_reason=1)


def test_local_incidents_are_folded_in_with_capped_examples() -> None:
    examples = {"cross_talk": [{"who": f"u{i}", "when": i * S, "what": "x"} for i in range(7)]}
    r = check(pair(), local_counts={"cross_talk": 9, "self_match": 1}, local_examples=examples)
    only(r, cross_talk=9, self_match=1)
    assert len(r["examples"]["cross_talk"]) == 5
    assert r["examples"]["cross_talk"][1]["when"] == pytest.approx(1.0)


def test_examples_per_kind_are_capped() -> None:
    recs = [rec(f"g{i}", 0, None, end="next", t_end=20 * S) for i in range(12)]
    r = check(recs)
    assert r["counters"]["ghost_match"] == 12 and len(r["examples"]["ghost_match"]) == 5


def test_oracle_module_is_io_free() -> None:
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(oracle))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "collections", "typing", "harness"}
