"""The sans-I/O reference client: legal sequences, local refusals, and races not blamed on the server."""
from __future__ import annotations

import pytest

from harness.protocol_client import (
    IDLE,
    PAIRED,
    WAITING,
    Error,
    LocalProtocolError,
    Message,
    Paired,
    PartnerLeft,
    Pong,
    ReferenceClient,
    Signal,
    Typing,
    Unexpected,
    Waiting,
    Welcome,
)


def _paired(pair="p1", mode="text", initiator=True, common=()):
    return {"type": "paired", "pair": pair, "mode": mode, "common": list(common), "initiator": initiator}


def _client_in_chat(mode="text") -> ReferenceClient:
    c = ReferenceClient()
    assert c.receive({"type": "welcome", "protocol": 1, "session": "s1", "online": 3}) == Welcome("s1", 3)
    c.join(mode)
    c.receive(_paired(mode=mode))
    assert c.state == PAIRED
    return c


def test_happy_path_frames_and_events():
    c = ReferenceClient()
    assert c.receive({"type": "welcome", "protocol": 1, "session": "abc", "online": 7}) == Welcome("abc", 7)
    assert c.join("video", ["music", "cats"], "de") == {
        "type": "join", "mode": "video", "interests": ["music", "cats"], "lang": "de"
    }
    assert c.state == WAITING
    assert c.receive({"type": "waiting", "online": 8}) == Waiting(8)
    ev = c.receive(_paired("P", "video", False, ["cats"]))
    assert ev == Paired("P", "video", ("cats",), False)
    assert (c.state, c.pair_id, c.initiator, c.chats) == (PAIRED, "P", False, 1)
    assert c.message("hi") == {"type": "message", "text": "hi"}
    assert c.typing(True) == {"type": "typing", "active": True}
    assert c.signal({"k": "offer"}) == {"type": "signal", "data": {"k": "offer"}}
    assert c.receive({"type": "message", "text": "yo"}) == Message("yo")
    assert c.receive({"type": "typing", "active": False}) == Typing(False)
    assert c.receive({"type": "signal", "data": {"k": "answer"}}) == Signal({"k": "answer"})
    assert c.ping(5) == {"type": "ping", "t": 5}
    assert c.receive({"type": "pong", "t": 5}) == Pong(5)
    assert c.receive({"type": "partner_left", "reason": "next"}) == PartnerLeft("next")
    assert (c.state, c.pair_id) == (IDLE, None)
    assert not c.anomalies


@pytest.mark.parametrize(
    "action,state",
    [
        (lambda c: c.message("x"), IDLE),
        (lambda c: c.typing(True), IDLE),
        (lambda c: c.next(), IDLE),
        (lambda c: c.leave(), IDLE),
        (lambda c: c.report("r"), IDLE),
        (lambda c: c.message("x"), WAITING),
        (lambda c: c.join(), WAITING),
        (lambda c: c.report("r"), WAITING),
        (lambda c: c.join(), PAIRED),
    ],
)
def test_illegal_local_actions_raise_before_sending(action, state):
    c = ReferenceClient()
    if state in (WAITING, PAIRED):
        c.join()
    if state == PAIRED:
        c.receive(_paired())
    with pytest.raises(LocalProtocolError):
        action(c)
    assert c.state == state


def test_signal_needs_a_video_chat_and_fields_are_checked():
    c = _client_in_chat("text")
    with pytest.raises(LocalProtocolError, match="video"):
        c.signal({"k": "offer"})
    with pytest.raises(LocalProtocolError):
        c.message("")
    with pytest.raises(LocalProtocolError):
        c.message("x" * 2001)
    with pytest.raises(LocalProtocolError):
        c.report("r" * 201)
    with pytest.raises(LocalProtocolError):
        ReferenceClient().join("audio")
    with pytest.raises(LocalProtocolError):
        ReferenceClient().join(interests=[str(i) for i in range(11)])
    # abuse scenarios can switch the field checks off
    assert ReferenceClient(check_fields=False).join("audio")["mode"] == "audio"


def test_next_leave_report_transitions():
    c = _client_in_chat()
    assert c.next() == {"type": "next"}
    assert c.state == WAITING and c.pair_id is None
    c.receive(_paired("p2"))
    assert c.leave() == {"type": "leave"}
    assert c.state == IDLE
    c.join()
    c.receive({"type": "waiting", "online": 1})
    c.receive(_paired("p3"))
    assert c.report("spam") == {"type": "report", "reason": "spam"}
    assert c.state == IDLE
    assert c.chats == 3
    assert not c.anomalies


def test_messages_in_flight_after_our_next_are_not_anomalies_until_answered():
    c = _client_in_chat()
    c.next()
    assert c.receive({"type": "message", "text": "late"}) == Message("late")
    assert not c.anomalies
    c.receive({"type": "waiting", "online": 2})
    c.receive({"type": "message", "text": "after the answer"})
    assert c.anomalies["message_while_waiting"] == 1


def test_crossing_nexts_partner_left_then_expected_not_allowed():
    c = _client_in_chat()
    c.message("bye")
    c.next()  # the partner's next reached the server first
    assert c.receive({"type": "partner_left", "reason": "next"}) == PartnerLeft("next")
    assert c.state == IDLE
    ev = c.receive({"type": "error", "code": "not_allowed", "message": "next while idle"})
    assert isinstance(ev, Error) and ev.expected and ev.refused is None
    assert c.state == IDLE
    c.join()
    c.receive({"type": "waiting", "online": 1})
    ev = c.receive({"type": "error", "code": "not_allowed", "message": "?"})
    assert not ev.expected  # after the join was answered, a refusal is no longer explained by the race
    assert not c.anomalies


def test_paired_crossing_our_leave_is_a_ghost_and_state_stays_idle():
    c = ReferenceClient()
    c.join()
    c.receive({"type": "waiting", "online": 1})
    c.leave()
    ev = c.receive(_paired("ghost"))
    assert isinstance(ev, Paired) and ev.ghost
    assert c.state == IDLE and c.chats == 0
    c.receive({"type": "message", "text": "~tok u 0"})  # the ghost partner's token
    c.receive({"type": "partner_left", "reason": "next"})
    assert not c.anomalies


def test_join_then_leave_before_the_answer():
    c = ReferenceClient()
    c.join()
    c.leave()
    assert c.receive({"type": "waiting", "online": 1}) == Waiting(1)
    assert c.state == IDLE
    assert not c.anomalies


def test_next_while_waiting_crossed_by_a_pairing():
    c = ReferenceClient()
    c.join()
    c.receive({"type": "waiting", "online": 1})
    c.next()
    c.receive(_paired("x"))  # paired before the server read our next
    c.receive(_paired("y"))  # the answer to the next
    assert c.state == PAIRED and c.pair_id == "y"
    assert not c.anomalies


def test_refused_join_and_next_are_taken_back():
    c = ReferenceClient()
    c.join()
    ev = c.receive({"type": "error", "code": "rate_limited", "message": "slow down"})
    assert ev == Error("rate_limited", "slow down", False, "join")
    assert c.state == IDLE
    c.join()
    c.receive(_paired("p"))
    c.next()
    ev = c.receive({"type": "error", "code": "draining", "message": ""})
    assert ev.refused == "next"
    assert (c.state, c.pair_id) == (PAIRED, "p")


def test_server_faults_are_noted():
    c = ReferenceClient()
    c.receive({"type": "message", "text": "nobody asked"})
    assert c.last_anomaly == "message_while_idle"
    c.receive(_paired())
    assert c.last_anomaly == "paired_while_idle"
    c.join()
    c.receive(_paired("a"))
    c.receive(_paired("b"))
    assert c.anomalies["paired_while_paired"] == 1
    c.receive({"type": "partner_left", "reason": "leave"})
    c.receive({"type": "partner_left", "reason": "leave"})
    assert c.anomalies["partner_left_while_idle"] == 1


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "bogus"},
        {"no": "type"},
        [1, 2],
        "text",
        {"type": "message"},
        {"type": "message", "text": 5},
        {"type": "paired", "pair": "p"},
        {"type": "paired", "pair": "p", "initiator": "yes"},
        {"type": "signal", "data": "sdp"},
        {"type": "welcome", "protocol": 2, "session": "s", "online": 1},
    ],
)
def test_uninterpretable_frames_are_unexpected_and_change_nothing(frame):
    c = ReferenceClient()
    c.join()
    ev = c.receive(frame)
    assert isinstance(ev, Unexpected)
    assert c.state == WAITING and c.chats == 0


def test_receive_many_keeps_order():
    c = _client_in_chat()
    evs = c.receive_many([{"type": "message", "text": str(i)} for i in range(5)])
    assert evs == [Message(str(i)) for i in range(5)]


def test_module_does_no_io():
    import harness.protocol_client as mod

    source = open(mod.__file__, encoding="utf-8").read()
    for banned in ("import socket", "import time", "import asyncio", "import gevent", "import threading"):
        assert banned not in source
