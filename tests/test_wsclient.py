"""wsclient against a real aiohttp echo server (subprocess), a raw socket server, and the
reference server when it is present; plus a gevent-patched run in a subprocess."""
from __future__ import annotations

import importlib.util
import json
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from harness.wsclient import ConnectionClosed, HandshakeError, ProtocolError, connect
from tests.support import ROOT, free_port, python_server, reference_server, time_unit


def _frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        return struct.pack("!BB", b0, n) + payload
    if n < 65536:
        return struct.pack("!BBH", b0, 126, n) + payload
    return struct.pack("!BBQ", b0, 127, n) + payload


@pytest.fixture(scope="module")
def echo_url():
    port = free_port()
    with python_server(
        ["tests/ws_echo_server.py", "--port", str(port)], f"http://127.0.0.1:{port}/healthz"
    ):
        yield f"ws://127.0.0.1:{port}/ws"


def _stats(url: str) -> dict:
    with connect(url, timeout=5 * time_unit()) as ws:
        ws.send_text("stats")
        return ws.recv()


def _last_close(url: str, want: int) -> int | None:
    """The close code the server last saw; polled briefly, since the server records it after replying."""
    deadline = time.monotonic() + 5 * time_unit()
    got = _stats(url)["last_close"]
    while got != want and time.monotonic() < deadline:
        time.sleep(0.02)
        got = _stats(url)["last_close"]
    return got


def test_json_round_trip_small_medium_and_large(echo_url):
    with connect(echo_url, timeout=5 * time_unit()) as ws:
        for size in (0, 10, 125, 126, 1000, 65535, 65536, 200_000):
            obj = {"type": "message", "text": "a" * size}
            ws.send_json(obj)
            assert ws.recv() == obj
        ws.send_text("héllo ✓")
        assert ws.recv_text() == "héllo ✓"


def test_many_frames_in_one_read_come_out_in_order(echo_url):
    with connect(echo_url, timeout=5 * time_unit()) as ws:
        ws.send_text("burst:2000")
        got: list[dict] = []
        batches = 0
        while len(got) < 2000:
            got.extend(ws.recv_many())
            batches += 1
        assert got == [{"i": k} for k in range(2000)]
        assert batches < 2000  # several frames per read, not one read per frame


def test_send_json_many_is_several_frames(echo_url):
    with connect(echo_url, timeout=5 * time_unit()) as ws:
        objs = [{"k": i, "pad": "p" * (i * 50)} for i in range(30)]
        ws.send_json_many(objs)
        got = [ws.recv() for _ in objs]
        assert got == objs


def test_fragmented_message_with_interleaved_ping_is_reassembled_and_ponged(echo_url):
    before = _stats(echo_url)["pongs"]
    raw = (
        _frame(0x1, b'{"par', fin=False)
        + _frame(0x9, b"in-between")
        + _frame(0x0, b't":', fin=False)
        + _frame(0x0, b"1}", fin=True)
        + _frame(0x1, b'{"next":2}')
    )
    with connect(echo_url, timeout=5 * time_unit()) as ws:
        ws.send_text("raw:" + raw.hex())
        assert ws.recv() == {"part": 1}
        assert ws.recv() == {"next": 2}
        ws.send_text("ping:hello")
        ws.send_text("after-ping")
        assert ws.recv_text() == "after-ping"  # the ping was answered while reading
    deadline = time.monotonic() + 5 * time_unit()
    after = _stats(echo_url)
    while after["pongs"] < before + 2 and time.monotonic() < deadline:  # the server counts asynchronously
        time.sleep(0.02)
        after = _stats(echo_url)
    assert after["pongs"] == before + 2
    assert after["pong_data"][-2:] == ["in-between", "hello"]


def test_server_large_frame_uses_extended_lengths(echo_url):
    with connect(echo_url, timeout=5 * time_unit()) as ws:
        for n in (126, 70_000):
            ws.send_text(f"big:{n}")
            assert ws.recv_text() == "x" * n


def test_close_from_server_raises_connection_closed_with_code_and_reason(echo_url):
    ws = connect(echo_url, timeout=5 * time_unit())
    ws.send_text("close:4001:go away")
    with pytest.raises(ConnectionClosed) as info:
        ws.recv()
    assert (info.value.code, info.value.reason) == (4001, "go away")
    assert ws.closed
    with pytest.raises(ConnectionClosed):
        ws.send_json({"x": 1})
    ws.close()


def test_client_close_is_seen_by_server_with_its_code(echo_url):
    ws = connect(echo_url, timeout=5 * time_unit())
    ws.send_json({"a": 1})
    assert ws.recv() == {"a": 1}
    ws.close(4123, "bye", timeout=5 * time_unit())
    assert ws.closed
    assert _last_close(echo_url, 4123) == 4123


def test_dropped_connection_is_1006(echo_url):
    ws = connect(echo_url, timeout=5 * time_unit())
    ws.send_text("drop")
    with pytest.raises(ConnectionClosed) as info:
        ws.recv()
    assert info.value.code == 1006
    ws.close()


def test_masked_server_frame_is_a_protocol_error(echo_url):
    ws = connect(echo_url, timeout=5 * time_unit())
    masked = bytes((0x81, 0x80 | 2)) + b"\x00\x00\x00\x00" + b"{}"
    ws.send_text("raw:" + masked.hex())
    with pytest.raises(ProtocolError):
        ws.recv()
    assert ws.closed


def test_recv_timeout_keeps_the_connection_usable(echo_url):
    with connect(echo_url, timeout=5 * time_unit()) as ws:
        ws.settimeout(0.05)
        with pytest.raises(TimeoutError):
            ws.recv()
        ws.settimeout(5 * time_unit())
        ws.send_json({"still": "ok"})
        assert ws.recv() == {"still": "ok"}


def test_close_while_another_thread_reads_wakes_it_with_our_code(echo_url):
    ws = connect(echo_url, timeout=5 * time_unit())
    ws.settimeout(None)
    outcome: list = []

    def reader() -> None:
        try:
            ws.recv()
        except ConnectionClosed as exc:
            outcome.append(exc.code)

    t = threading.Thread(target=reader)
    t.start()
    while not ws._reading:  # noqa: SLF001 - wait until the thread is blocked in recv
        t.join(0.01)
    ws.close(4002, "done")
    t.join(5 * time_unit())
    # Our code, or the code of the server's answering close frame if it won the race (RFC 6455 7.1.5).
    assert outcome in ([4002], [1000])
    assert _last_close(echo_url, 4002) == 4002


def _one_shot_http_server(response: bytes) -> tuple[int, threading.Thread]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            conn.sendall(response)
        srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return port, t


def test_bad_accept_header_is_refused():
    port, t = _one_shot_http_server(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"
    )
    with pytest.raises(HandshakeError, match="Accept"):
        connect(f"ws://127.0.0.1:{port}/ws", timeout=5 * time_unit())
    t.join(5 * time_unit())


def test_non_101_is_refused():
    port, t = _one_shot_http_server(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(HandshakeError, match="404"):
        connect(f"ws://127.0.0.1:{port}/nope", timeout=5 * time_unit())
    t.join(5 * time_unit())


def test_unreachable_port_raises_oserror():
    with pytest.raises(OSError):
        connect(f"ws://127.0.0.1:{free_port()}/ws", timeout=2 * time_unit())


GEVENT_SCRIPT = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()
    import sys, gevent
    from harness.wsclient import connect

    url = sys.argv[1]

    def worker(i):
        ws = connect(url, timeout=10)
        for k in range(50):
            ws.send_json({"w": i, "k": k})
        got = [ws.recv() for _ in range(50)]
        ws.close()
        return got == [{"w": i, "k": k} for k in range(50)]

    def closed_under_reader():
        ws = connect(url, timeout=10)
        reader = gevent.spawn(ws.recv)
        gevent.sleep(0.05)
        ws.close(4003)
        reader.join(5)
        return getattr(reader.exception, "code", None)

    jobs = [gevent.spawn(worker, i) for i in range(20)]
    gevent.joinall(jobs, timeout=30, raise_error=True)
    code = closed_under_reader()
    print("ok" if all(j.value for j in jobs) else "mismatch", sum(1 for j in jobs if j.value), code in (4003, 1000))
    """
)


def test_works_under_gevent_monkey_patching(echo_url):
    out = subprocess.run(
        [sys.executable, "-c", GEVENT_SCRIPT, echo_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60 * time_unit(),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ok", "20", "True"]


needs_reference = pytest.mark.skipif(
    importlib.util.find_spec("reference_server.__main__") is None, reason="reference server not written yet"
)


@needs_reference
def test_against_reference_server_welcome_and_ping():
    with reference_server() as (base, _proc):
        url = base.replace("http://", "ws://") + "/ws"
        with connect(url, timeout=5 * time_unit()) as ws:
            welcome = ws.recv()
            assert welcome["type"] == "welcome" and welcome["protocol"] == 1
            ws.send_json({"type": "ping", "t": [1, "x"]})
            assert ws.recv() == {"type": "pong", "t": [1, "x"]}


@needs_reference
def test_against_reference_server_relay_between_two_clients():
    with reference_server() as (base, _proc):
        url = base.replace("http://", "ws://") + "/ws"
        a, b = connect(url, timeout=5 * time_unit()), connect(url, timeout=5 * time_unit())
        try:
            for ws in (a, b):
                assert ws.recv()["type"] == "welcome"
                ws.send_json({"type": "join", "mode": "text"})
            first = a.recv()
            assert first["type"] in ("waiting", "paired")
            if first["type"] == "waiting":
                first = a.recv()
            second = b.recv()
            assert first["type"] == second["type"] == "paired"
            assert first["pair"] == second["pair"]
            a.send_json_many([{"type": "message", "text": f"m{i}"} for i in range(20)])
            got = []
            while len(got) < 20:
                got.extend(b.recv_many())
            assert got == [{"type": "message", "text": f"m{i}"} for i in range(20)]
        finally:
            a.close()
            b.close()
