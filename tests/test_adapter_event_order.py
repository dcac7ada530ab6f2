"""Adapters hand each event to the user while the protocol state is the one right after it.

A `paired` and a `partner_left` can arrive in one read. If the adapter decoded the whole
batch first, the user's paired handler would see the chat already over and fail to send
its token (LocalProtocolError, which killed the reader before this was fixed).
"""
from __future__ import annotations

import socket
import threading

import orjson

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
