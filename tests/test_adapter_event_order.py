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
    assert Pacer.of(Capabilities(max_frames_per_s=0)) is None
    assert Pacer.of(Capabilities()).rate == 16.0


def test_pacing_capabilities_come_from_the_mapping_table() -> None:
    from harness.adapters.base import Capabilities

    caps = Capabilities.from_table({"max_frames_per_s": 5, "max_burst": 8})
    assert (caps.max_frames_per_s, caps.max_burst) == (5.0, 8.0)
    with pytest.raises(ValueError):
        Capabilities.from_table({"max_frames_per_s": True})
    with pytest.raises(ValueError):
        Capabilities.from_table({"max_burst": -1})
