"""The harness's per-message path (pytest-benchmark), with a same-run reference.

Receive: a decoded `message` frame goes through the protocol client and the user's
ledger view (parse the in-band text, check sender/chat/order, record relay latency).
Send: the protocol client builds the frame and the WebSocket client masks and frames it.
Each also times a reference computation (orjson round trip of the same frames) in the
same run, so `extra_info["ratio_to_reference"]` stays comparable on a noisy machine.
"""
from __future__ import annotations

import socket
import time

import orjson

from harness.ledger import Ledger, UserView, WorkerMetrics, message_text, token_text
from harness.protocol_client import ReferenceClient
from harness.wsclient import WSConnection

N = 20_000


def _paired_receiver() -> tuple[ReferenceClient, UserView]:
    proto = ReferenceClient()
    view = UserView("me-1", Ledger(), WorkerMetrics())
    t = time.time_ns()
    proto.receive({"type": "welcome", "protocol": 1, "session": "s", "online": 2})
    proto.join("text", [], "en")
    view.joined(t, "text", "en", [])
    proto.receive({"type": "paired", "pair": "p1", "mode": "text", "common": [], "initiator": True})
    view.on_paired(t, "p1", True, "text")
    view.on_text(t, token_text("peer-1", 0))
    return proto, view


def _min_time(benchmark) -> float | None:
    """The best round, or None under --benchmark-disable (the smoke mode runs once, untimed)."""
    stats = getattr(benchmark, "stats", None)
    return None if stats is None else stats.stats.min


def _reference(frames: list[dict]) -> float:
    t0 = time.perf_counter()
    for f in frames:
        orjson.loads(orjson.dumps(f))
    return time.perf_counter() - t0


def test_bench_receive_path(benchmark):
    now = time.time_ns()
    frames = [{"type": "message", "text": message_text("peer-1", 0, i, now, "x" * 40)} for i in range(N)]

    def run() -> UserView:
        proto, view = _paired_receiver()
        receive = proto.receive
        on_text = view.on_text
        for f in frames:
            ev = receive(f)
            on_text(now, ev.text)
        return view

    view = benchmark.pedantic(run, rounds=3, iterations=1)
    assert view.cur is not None and view.cur.recv == N
    benchmark.extra_info["messages"] = N
    subject = _min_time(benchmark)
    if subject is not None:
        benchmark.extra_info["ratio_to_reference"] = round(subject / _reference(frames), 2)


def test_bench_send_path(benchmark):
    a, b = socket.socketpair()
    try:
        conn = WSConnection(a)
        proto, _ = _paired_receiver()
        texts = [message_text("me-1", 0, i, 0, "x" * 40) for i in range(N)]

        def run() -> int:
            size = 0
            frame_of = conn._frame
            for text in texts:
                size += len(frame_of(1, orjson.dumps(proto.message(text))))
            return size

        size = benchmark.pedantic(run, rounds=3, iterations=1)
        assert size > N * 60
        benchmark.extra_info["messages"] = N
        subject = _min_time(benchmark)
        if subject is not None:
            benchmark.extra_info["ratio_to_reference"] = round(
                subject / _reference([{"type": "message", "text": t} for t in texts]), 2)
    finally:
        a.close()
        b.close()
