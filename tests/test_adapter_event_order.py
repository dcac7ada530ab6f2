"""Adapters hand each event to the user while the protocol state is the one right after it.

A `paired` and a `partner_left` can arrive in one read. If the adapter decoded the whole
batch first, the user's paired handler would see the chat already over and fail to send
its token (LocalProtocolError, which killed the reader before this was fixed).
"""
from __future__ import annotations

import socket
import threading

import orjson
import pytest

from harness import protocol_client as pc
from harness.adapters.reference import ReferenceAdapter
from harness.wsclient import WSConnection


def _server_frame(obj: dict) -> bytes:
    payload = orjson.dumps(obj)
    assert len(payload) < 126
    return bytes([0x81, len(payload)]) + payload


class RecordingSink:
    def __init__(self, adapter: ReferenceAdapter) -> None:
        self.adapter = adapter
        self.seen: list[tuple[str, str]] = []
        self.done = threading.Event()

    def on_events(self, events, now: int) -> None:
        for ev in events:
            self.seen.append((type(ev).__name__, self.adapter.proto.state))
            if isinstance(ev, pc.PartnerLeft):
                self.done.set()

    def on_lost(self, exc: BaseException) -> None:
        self.done.set()


def test_paired_and_partner_left_in_one_read_are_seen_in_order():
    a, b = socket.socketpair()
    try:
        adapter = ReferenceAdapter()
        adapter.proto.receive({"type": "welcome", "protocol": 1, "session": "s", "online": 1})
        adapter.proto.join("text", [], "en")
        sink = RecordingSink(adapter)
        conn = WSConnection(a)
        adapter.conn = conn
        b.sendall(
            _server_frame({"type": "paired", "pair": "p1", "mode": "text", "common": [], "initiator": True})
            + _server_frame({"type": "partner_left", "reason": "next"})
        )
        reader = threading.Thread(target=adapter._read_loop, args=(conn, sink), daemon=True)
        reader.start()
        assert sink.done.wait(10)
        assert sink.seen == [("Paired", pc.PAIRED), ("PartnerLeft", pc.IDLE)]
    finally:
        adapter.closing = True
        a.close()
        b.close()


# -- the sending side: frames leave under the backend's rate limit, in the order asked ------
def test_pacer_lets_a_burst_through_then_spaces_frames_at_the_rate() -> None:
    from harness.adapters.base import Capabilities, Pacer

    p = Pacer(rate=10.0, burst=3)
    assert [p.delay(1, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    # Reserved in order: the 4th waits 0.1 s, the 5th (asked at the same time) 0.2 s.
    assert p.delay(1, 0.0) == pytest.approx(0.1)
    assert p.delay(1, 0.0) == pytest.approx(0.2)
    # After a quiet second the bucket is full again (never more than the burst).
    assert p.delay(2, 1.5) == 0.0 and p.delay(1, 1.5) == 0.0 and p.delay(1, 1.5) == pytest.approx(0.1)
    # Sustained: never more than rate frames a second whatever the callers ask.
    p = Pacer(rate=20.0, burst=5)
    t = 0.0
    sent: list[float] = []
    for _ in range(100):
        t += p.delay(1, t)
        sent.append(t)
    assert sum(1 for x in sent if x < 2.0) <= 5 + 20 * 2
    # wait() peeks without reserving (users sleep before stamping a message's send time).
    p = Pacer(rate=10.0, burst=2)
    p.delay(2, 0.0)
    assert p.wait(1, 0.0) == pytest.approx(0.1) and p.wait(1, 0.0) == pytest.approx(0.1)
    assert p.wait(1, 0.1) == 0.0 and p.delay(1, 0.1) == 0.0
    assert Pacer.of(Capabilities(max_frames_per_s=0)) is None
    assert Pacer.of(Capabilities()).rate == 16.0
    scaled = Pacer.of(Capabilities(), scale=20.0)
    assert (scaled.rate, scaled.burst) == (320.0, 400.0)


def test_pacing_capabilities_come_from_the_mapping_table() -> None:
    from harness.adapters.base import Capabilities

    caps = Capabilities.from_table({"max_frames_per_s": 5, "max_burst": 8})
    assert (caps.max_frames_per_s, caps.max_burst) == (5.0, 8.0)
    with pytest.raises(ValueError):
        Capabilities.from_table({"max_frames_per_s": True})
    with pytest.raises(ValueError):
        Capabilities.from_table({"max_burst": -1})


# -- Omegle-style long polling: two HTTP channels, no order between them -----------------------
class ScriptedOmegle:
    """An OmegleAdapter whose HTTP answers are scripted (no sockets): `answers[path]` is a
    list of answers, and `during[path]` runs while that request is "in flight", standing
    for the poller greenlet that the real request would let run."""

    def __new__(cls, answers: dict, during: dict | None = None):
        from harness.adapters.omegle import OmegleAdapter

        class _A(OmegleAdapter):
            def _post(self, path, form, query=""):
                self.posted.append(path)
                hook = (during or {}).get(path)
                if hook is not None:
                    hook(self)
                return answers[path].pop(0)

            def _poll_loop(self, cid):  # the test delivers the poller's events itself
                return None

        a = _A()
        a.posted = []
        return a


class StateSink:
    def __init__(self, adapter) -> None:
        self.adapter = adapter
        self.seen: list[tuple[str, str, bool]] = []

    def on_events(self, events, now: int) -> None:
        for ev in events:
            self.seen.append((type(ev).__name__, self.adapter.proto.state, getattr(ev, "ghost", False)))

    def on_lost(self, exc: BaseException) -> None:
        self.seen.append(("lost", str(exc), False))


def _omegle(answers: dict, during: dict | None = None):
    a = ScriptedOmegle(answers, during)
    sink = StateSink(a)
    a.sink = sink
    return a, sink


def test_omegle_partner_end_crossing_our_next_does_not_void_the_new_search() -> None:
    """Our next is /disconnect then /start. The partner's end crossed it: its
    strangerDisconnected comes from the session we are disconnecting. The new /start is not
    refused (Omegle's next cannot be), so that event must not turn the user idle: before the
    fix the new `connected` came out as a ghost pairing ("paired while idle")."""
    a, sink = _omegle(
        {"/start": ['{"clientID": "c1", "events": [["connected"]]}', '{"clientID": "c2", "events": [["connected"]]}'],
         "/disconnect": ["win"]},
        during={"/disconnect": lambda ad: ad._translate_and_deliver([["strangerDisconnected"]], "c1")},
    )
    a.send(a.proto.join("text", [], "en"))
    assert sink.seen == [("Paired", pc.PAIRED, False)]
    a.send(a.proto.next(), a.proto.ping({"b": 1}))
    assert a.posted == ["/start", "/disconnect", "/start"]
    assert sink.seen[1:] == [("Paired", pc.PAIRED, False), ("Pong", pc.PAIRED, False)]


def test_omegle_refused_send_waits_for_the_partner_end_on_the_poll_channel() -> None:
    """/send answered fail before the poller brought strangerDisconnected: a legal race
    between Omegle's two channels, not an error."""
    a, sink = _omegle({"/start": ['{"clientID": "c1", "events": [["connected"]]}'], "/send": ["fail", "fail"]})
    a.send(a.proto.join("text", [], "en"))
    a.send(a.proto.message("~tok w-1 0"))
    a._translate_and_deliver([["gotMessage", "~tok w-2 0"], ["strangerDisconnected"]], "c1")
    assert [s[0] for s in sink.seen] == ["Paired", "Message", "PartnerLeft"]
    a._say("/send", {"msg": "late"})  # after the end was told: dropped, nothing to deliver
    assert [s[0] for s in sink.seen] == ["Paired", "Message", "PartnerLeft"]


def test_omegle_refused_send_in_a_chat_never_said_over_is_the_backends_fault() -> None:
    a, sink = _omegle({"/start": ['{"clientID": "c1", "events": [["connected"]]}'], "/send": ["fail"],
                       "/disconnect": ["win"]})
    a.send(a.proto.join("text", [], "en"))
    a.send(a.proto.message("~msg w-1 0 0 0 x"))
    assert [s[0] for s in sink.seen] == ["Paired"]
    a.send(a.proto.leave())
    assert sink.seen[-1][0] == "Error"
    assert a.posted == ["/start", "/send", "/disconnect"]


def test_omegle_frame_after_our_own_end_is_not_sent() -> None:
    a, sink = _omegle({"/start": ['{"clientID": "c1", "events": [["waiting"]]}'], "/disconnect": ["win"]})
    a.send(a.proto.join("text", [], "en"))
    a.send(a.proto.leave())
    assert a._say("/send", {"msg": "token built before our leave"}) is True
    assert a.posted == ["/start", "/disconnect"] and [s[0] for s in sink.seen] == ["Waiting"]


# -- a backend that never says "partner left" (jsonws mapping, partner_left = false) -----------
def _silent_jsonws(tmp_path):
    from pathlib import Path

    from harness import adapters

    src = (Path(__file__).resolve().parent.parent / "examples" / "mappings" / "jsonws-clone.toml").read_text()
    mapping = tmp_path / "silent.toml"
    mapping.write_text(src.replace("[capabilities]\n", "[capabilities]\npartner_left = false\n"))
    return adapters.load("jsonws", mapping).make()


def test_silent_backend_refusing_our_give_up_after_a_crossing_pairing_is_expected(tmp_path) -> None:
    """We joined, then gave up (leave) before the answer. The server queued us (searching),
    paired us, the partner left at once (silently), and then refused our leave: "not in a
    chat". The pairing crossed our leave and the refusal is its silent end, not a fault
    (before the fix the `searching` answer cleared the crossing and the refusal came out
    as an unexpected error)."""
    a = _silent_jsonws(tmp_path)
    a.proto.join("text", [], "en")
    a.proto.leave()
    evs = []
    for payload in ({"type": "searching"}, {"type": "matched", "data": {"room": "room3"}},
                    {"type": "error", "data": "not in a chat"}):
        evs += a.translate(payload)
    assert [type(e).__name__ for e in evs] == ["Waiting", "Paired", "PartnerLeft", "Error"]
    assert evs[1].ghost and evs[3].expected
    assert a.proto.state == pc.IDLE
