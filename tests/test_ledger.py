"""UserView (per-user local checks) and the per-worker ledger/metrics, driven by hand-built
observation sequences: no sockets, no clock (times are nanoseconds we choose)."""
from __future__ import annotations

import pytest

from harness.ledger import (
    END_ABANDONED,
    END_LEAVE,
    END_NEXT,
    END_PARTNER_LEFT,
    END_REPAIRED,
    END_RUN_END,
    Ledger,
    UserView,
    WorkerMetrics,
    message_text,
    parse_text,
    token_text,
)

MS = 1_000_000
S = 1_000_000_000


def make(user: str = "w-1") -> tuple[UserView, Ledger, WorkerMetrics]:
    ledger, metrics = Ledger(), WorkerMetrics()
    return UserView(user, ledger, metrics), ledger, metrics


def paired_with(view: UserView, peer: str, peer_chat: int = 0, t: int = 10 * S) -> None:
    view.joined(t - 5 * MS, "text", "en", ["a"])
    assert view.on_paired(t, "pair-1", True, "text") is not None
    view.token_sent(t + MS)
    view.on_text(t + 2 * MS, token_text(peer, peer_chat))


def test_parse_text_round_trip() -> None:
    assert parse_text(token_text("ab-3", 7)) == ("tok", "ab-3", 7, -1, 0)
    assert parse_text(message_text("ab-3", 7, 12, 99, "xyz pad")) == ("msg", "ab-3", 7, 12, 99)
    assert parse_text("hello there") is None
    assert parse_text("~msg a b c d") is None  # not numbers


def test_normal_chat_is_recorded_once_with_latencies() -> None:
    view, ledger, metrics = make()
    paired_with(view, "w-2")
    for seq in range(3):
        view.on_message(10 * S + (10 + seq) * MS, "w-2", 0, seq, 10 * S + (9 + seq) * MS)
    assert view.message_sent(10 * S + 20 * MS) == 0
    view.ended_by_us(END_NEXT, 11 * S)
    assert ledger.records == []  # held until the server confirms our next
    assert view.state == "waiting" and view.grace
    view.on_waiting(11 * S + MS)
    assert ledger.incidents == {}
    [rec] = ledger.records
    assert rec["peer"] == ["w-2", 0] and rec["end"] == END_NEXT and rec["t_end"] == 11 * S
    assert (rec["recv"], rec["recv_max"], rec["sent"], rec["dup"], rec["reord"]) == (3, 2, 1, 0, 0)
    assert metrics.hist["relay"].count == 3
    assert metrics.hist["relay"].max == pytest.approx(1.0, rel=0.01)
    assert metrics.hist["pair"].count == 1 and metrics.hist["pair"].min == pytest.approx(5.0, rel=0.01)


def test_cross_talk_message_from_a_stranger() -> None:
    view, ledger, _ = make()
    paired_with(view, "w-2")
    view.on_message(10 * S + 50 * MS, "w-9", 4, 0, 10 * S)
    assert ledger.incidents == {"cross_talk": 1}
    assert ledger.examples["cross_talk"][0]["who"] == "w-1"
    assert "w-9#4" in ledger.examples["cross_talk"][0]["what"]


def test_frames_before_any_token_are_kept_for_the_master() -> None:
    """Our partner's token may have been refused (rate_limited): its later frames reach us
    with no token. Who sent them is only known from the sender's own record, so the chat
    keeps them (`early`) and the oracle judges them; nothing is flagged locally."""
    view, ledger, _ = make()
    view.joined(0, "text", "en", [])
    view.on_paired(S, "p", False, "text")
    view.on_message(S + MS, "w-5", 0, 0, S)
    view.on_message(S + 2 * MS, "w-5", 0, 1, S)
    view.on_signal(S + 3 * MS, {"k": "ice", "u": "w-5", "c": 0, "t": S})
    view.on_partner_left(2 * S, "next")
    assert ledger.incidents == {}
    [rec] = ledger.records
    assert rec["early"] == [["w-5", 0, 3]] and rec["peer"] is None and rec["recv"] == 0


def test_early_frames_during_the_grace_go_to_the_chat_we_ended() -> None:
    view, ledger, _ = make()
    view.joined(0, "text", "en", [])
    view.on_paired(S, "p", False, "text")
    view.ended_by_us(END_NEXT, 2 * S)
    view.on_message(2 * S + MS, "w-5", 0, 3, S)
    view.on_waiting(2 * S + 2 * MS)
    assert ledger.incidents == {}
    assert ledger.records[0]["early"] == [["w-5", 0, 1]]
    view.on_message(2 * S + 3 * MS, "w-5", 0, 4, S)  # after the barrier: no chat to keep it
    assert ledger.incidents == {"cross_talk": 1}


def test_stranger_in_the_grace_of_a_search_we_gave_up_is_cross_talk() -> None:
    """No chat of ours is waiting for its token (the last one was shipped): nothing to keep
    an unknown sender's frame in, so it is cross-talk at once."""
    view, ledger, _ = make()
    view.joined(0, "text", "en", [])
    view.on_paired(S, "p", False, "text")
    view.on_partner_left(2 * S, "next")  # ended without a token, shipped at once
    view.joined(3 * S, "text", "en", [])
    view.gave_up(END_LEAVE, 4 * S)
    assert view.grace
    view.on_message(4 * S + MS, "w-5", 0, 0, S)
    assert ledger.incidents == {"cross_talk": 1}


def test_too_many_unknown_senders_before_a_token_are_cross_talk() -> None:
    view, ledger, _ = make()
    view.joined(0, "text", "en", [])
    view.on_paired(S, "p", False, "text")
    for i in range(5):
        view.on_message(S + i * MS, f"w-{i + 10}", 0, 0, S)
    assert ledger.incidents == {"cross_talk": 1}
    view.on_text(S + 9 * MS, token_text("w-2", 0))
    view.on_message(S + 10 * MS, "w-10", 0, 1, S)  # once the chat is named, strangers are cross-talk
    assert ledger.incidents == {"cross_talk": 2}


def test_token_after_frames_of_the_same_sender_is_reordering() -> None:
    view, ledger, _ = make()
    view.joined(0, "text", "en", [])
    view.on_paired(S, "p", False, "text")
    view.on_message(S + MS, "w-5", 0, 0, S)
    view.on_text(S + 2 * MS, token_text("w-5", 0))
    assert ledger.incidents == {"reordered_messages": 1}
    assert view.cur is not None and view.cur.peer_key() == ("w-5", 0) and not view.cur.early


def test_rate_limited_in_the_grace_counts_on_the_chat_we_ended() -> None:
    """The server answers in order: a refusal that arrives after our next was sent refused
    a frame of the chat we just ended (maybe the next itself), not the next chat's."""
    view, ledger, _ = make()
    paired_with(view, "w-2")
    view.ended_by_us(END_NEXT, 11 * S)
    view.on_error(11 * S + MS, "rate_limited", "slow down")
    view.on_waiting(11 * S + 2 * MS)
    assert ledger.incidents == {}
    assert ledger.records[0]["refused"] == 1


def test_delivery_after_partner_left_is_a_violation() -> None:
    view, ledger, _ = make()
    paired_with(view, "w-2")
    view.on_partner_left(11 * S, "next")
    view.on_message(11 * S + MS, "w-2", 0, 0, 10 * S)
    view.on_typing(11 * S + 2 * MS)
    assert ledger.incidents == {"after_end_delivery": 2}
    assert ledger.records[0]["end"] == END_PARTNER_LEFT and ledger.records[0]["reason"] == "next"


def test_in_flight_after_own_next_is_legal_until_the_barrier() -> None:
    view, ledger, _ = make()
    paired_with(view, "w-2")
    view.ended_by_us(END_NEXT, 11 * S)
    view.on_message(11 * S + MS, "w-2", 0, 0, 11 * S - MS)  # in flight: legal
    view.on_typing(11 * S + MS)
    view.on_signal(11 * S + MS, {"k": "ice", "u": "w-2", "c": 0})
    assert ledger.incidents == {}
    view.on_waiting(11 * S + 2 * MS)  # the server processed our next
    assert ledger.records[0]["late"] == 1 and ledger.records[0]["recv"] == 1
    view.on_message(11 * S + 3 * MS, "w-2", 0, 1, 11 * S)
    assert ledger.incidents == {"after_end_delivery": 1}


def test_barrier_pong_ends_the_grace_after_leave() -> None:
    view, ledger, _ = make()
    paired_with(view, "w-2")
    view.ended_by_us(END_LEAVE, 11 * S)
    assert view.state == "leaving"
    view.on_barrier(11 * S + MS)
    assert view.state == "idle" and not view.grace
    view.on_message(11 * S + 2 * MS, "w-2", 0, 0, 11 * S)
    assert ledger.incidents == {"after_end_delivery": 1}


def test_old_chat_message_after_a_new_pairing_is_after_end() -> None:
    view, ledger, _ = make()
    paired_with(view, "w-2")
    view.ended_by_us(END_NEXT, 11 * S)
    view.on_paired(11 * S + MS, "p2", False, "text")
    view.on_text(11 * S + 2 * MS, token_text("w-3", 0))
    view.on_message(11 * S + 3 * MS, "w-2", 0, 0, 11 * S)
    assert ledger.incidents == {"after_end_delivery": 1}


def test_give_up_leave_racing_a_pairing_is_abandoned_not_a_violation() -> None:
    view, ledger, _ = make()
    view.joined(S, "text", "en", [])
    view.gave_up(END_LEAVE, 2 * S)
    rec = view.on_paired(2 * S + MS, "p", True, "text")
    assert rec is None
    view.on_text(2 * S + 2 * MS, token_text("w-2", 3))  # partner's token, in flight
    view.on_signal(2 * S + 3 * MS, {"k": "offer", "u": "w-2", "c": 3, "t": 2 * S})
    view.on_barrier(2 * S + 4 * MS)
    assert ledger.incidents == {}
    [wait] = ledger.waits
    assert wait["t_gave_up"] == 2 * S and wait["how"] == END_LEAVE
    [rec_d] = ledger.records
    assert rec_d["end"] == END_ABANDONED and rec_d["peer"] == ["w-2", 3] and rec_d["t_tok_sent"] is None
    assert view.state == "idle"


def test_next_crossing_partner_next_expects_not_allowed() -> None:
    view, ledger, metrics = make()
    paired_with(view, "w-2")
    view.ended_by_us(END_NEXT, 11 * S)
    view.on_partner_left(11 * S + MS, "next")  # the partner's next won the race
    assert view.state == "idle"
    view.on_error(11 * S + 2 * MS, "not_allowed", "next not allowed while idle")
    view.on_barrier(11 * S + 3 * MS)
    assert ledger.incidents == {}
    assert metrics.counters["crossed_frames"] == 1
    assert ledger.records[0]["end"] == END_NEXT and ledger.records[0]["reason"] == "crossed:next"


def test_protocol_client_expected_flag_is_honoured() -> None:
    view, ledger, _ = make()
    paired_with(view, "w-2")
    view.on_partner_left(11 * S, "leave")
    view.on_error(11 * S + MS, "not_allowed", "message not allowed", expected=True)
    assert ledger.incidents == {}


def test_duplicates_and_reordering_are_counted() -> None:
    view, ledger, _ = make()
    paired_with(view, "w-2")
    for seq in (0, 2, 1, 1, 3):
        view.on_message(11 * S, "w-2", 0, seq, 10 * S)
    view.ended_by_us(END_NEXT, 12 * S)
    view.on_barrier(12 * S + MS)
    assert ledger.incidents == {"reordered_messages": 1, "duplicate_messages": 1}
    rec = ledger.records[0]
    assert (rec["recv"], rec["recv_max"], rec["reord"], rec["dup"]) == (4, 3, 1, 1)


def test_self_match() -> None:
    view, ledger, _ = make("w-1")
    view.joined(0, "text", "en", [])
    view.on_paired(S, "p", True, "text")
    view.on_text(S + MS, token_text("w-1", 0))
    assert ledger.incidents == {"self_match": 1}


def test_second_token_and_second_pairing_are_double_matches() -> None:
    view, ledger, _ = make()
    paired_with(view, "w-2")
    view.on_text(10 * S + 5 * MS, token_text("w-3", 1))
    assert ledger.incidents == {"double_match": 1}
    view.on_paired(10 * S + 6 * MS, "p9", False, "text")
    assert ledger.incidents == {"double_match": 2}
    assert ledger.records[0]["end"] == END_REPAIRED


def test_unexpected_errors_and_benign_ones() -> None:
    view, ledger, metrics = make()
    paired_with(view, "w-2")
    view.on_error(11 * S, "rate_limited", "slow down")
    view.on_error(11 * S, "bad_field", "nope")
    view.on_partner_left(12 * S, "next")
    assert ledger.incidents == {"unexpected_error": 1}
    assert metrics.errors == {"server_error:rate_limited": 1, "server_error:bad_field": 1}
    assert ledger.records[0]["refused"] == 1


def test_partner_left_while_idle_is_after_end() -> None:
    view, ledger, _ = make()
    view.joined(0, "text", "en", [])
    view.on_partner_left(S, "next")
    assert ledger.incidents == {"after_end_delivery": 1}


def test_signal_round_trip_is_measured_from_the_echoed_offer_time() -> None:
    view, ledger, metrics = make()
    paired_with(view, "w-2")
    view.offer_sent(10 * S + 3 * MS)
    view.on_signal(10 * S + 10 * MS, {"k": "answer", "u": "w-2", "c": 0, "ot": 10 * S + 3 * MS})
    assert metrics.hist["signal_rtt"].count == 1
    assert metrics.hist["signal_rtt"].max == pytest.approx(7.0, rel=0.01)
    view.on_signal(10 * S + 11 * MS, {"k": "ice", "u": "w-7", "c": 0})
    assert ledger.incidents == {"cross_talk": 1}


def test_run_end_and_connection_lost_close_the_open_chat() -> None:
    view, ledger, _ = make()
    paired_with(view, "w-2")
    view.run_end(20 * S)
    assert ledger.records[0]["end"] == END_RUN_END and view.state == "closed"
    view2, ledger2, _ = make()
    paired_with(view2, "w-2")
    view2.connection_lost(20 * S)
    assert ledger2.records[0]["end"] == "connection_lost"


def test_examples_are_capped_and_frozen_ledger_records_nothing() -> None:
    view, ledger, _ = make()
    paired_with(view, "w-2")
    for i in range(8):
        view.on_message(11 * S, "w-9", 0, i, 10 * S)
    assert ledger.incidents["cross_talk"] == 8 and len(ledger.examples["cross_talk"]) == 5
    drained = ledger.drain()
    assert drained["incidents"]["cross_talk"] == 8 and ledger.incidents == {}
    ledger.frozen = True
    view.ended_by_us(END_NEXT, 12 * S)
    view.on_message(11 * S, "w-9", 0, 0, 10 * S)
    assert ledger.records == [] and ledger.incidents == {}


def test_worker_metrics_drain_ships_deltas_and_resets() -> None:
    m = WorkerMetrics()
    m.sample("relay", 3.0)
    m.tick(5 * S + 1, 1)
    m.tick(5 * S + 2, 1)
    m.gauges(5 * S + 3, 10, 4, 6)
    m.count("sessions")
    m.error("connect_failed")
    out = m.drain()
    assert out["hist"]["relay"]["count"] == 1 and set(out["hist"]) == {"relay"}
    assert out["timeline"] == {"5": [0, 2, 10, 4, 6, 0]}
    assert out["counters"] == {"sessions": 1} and out["errors"] == {"connect_failed": 1}
    again = m.drain()
    assert again["hist"] == {} and again["timeline"] == {} and again["counters"] == {}


def test_every_search_counts_as_a_join() -> None:
    """A join and each next start a search: both feed chatload_joins_total."""
    view, _, metrics = make()
    paired_with(view, "w-2")
    assert metrics.counters["joins"] == 1
    view.ended_by_us(END_NEXT, 11 * S)
    assert metrics.counters["joins"] == 2
    view.ended_by_us(END_LEAVE, 12 * S)
    assert metrics.counters["joins"] == 2


def test_frames_after_our_own_disconnect_are_not_judged() -> None:
    """A read can complete just as the user closes its connection (the reader runs before
    it is stopped): whatever it brings is no longer the backend's to answer for."""
    view, ledger, _ = make()
    paired_with(view, "w-2")
    view.ended_by_us("disconnect", 11 * S)
    assert view.state == "closed"
    view.on_typing(11 * S + MS)
    view.on_message(11 * S + MS, "w-2", 0, 0, 10 * S)
    view.on_partner_left(11 * S + 2 * MS, "next")
    view.on_error(11 * S + 2 * MS, "bad_json", "x")
    assert view.on_paired(11 * S + 3 * MS, "p2", True, "text") is None
    assert ledger.incidents == {} and len(ledger.records) == 1
    view.new_session()
    view.on_typing(12 * S)  # a fresh connection is judged again
    assert ledger.incidents == {"after_end_delivery": 1}
