"""The faulty servers have exactly the faults they claim, seen from a plain client.

The oracle tests (tests/test_oracle_faulty.py) prove the harness catches them; these
prove the faults are real and deterministic where they can be, and that the queue rules
the fairness checks rely on (interests, fallback, FIFO versus LIFO) hold.
"""
from __future__ import annotations

import contextlib
import socket
import time
from typing import Iterator

import pytest

from harness.wsclient import WSConnection, connect
from tests.support import free_port, python_server, time_unit


@contextlib.contextmanager
def faulty(fault: str, *extra: str) -> Iterator[str]:
    port = free_port()
    with python_server(
        ["-m", "tests.faulty_servers", "--fault", fault, "--port", str(port), *extra],
        f"http://127.0.0.1:{port}/healthz",
    ):
        yield f"ws://127.0.0.1:{port}/ws"


def client(url: str) -> WSConnection:
    ws = connect(url, timeout=5 * time_unit())
    assert ws.recv()["type"] == "welcome"
    return ws


def expect(ws: WSConnection, kind: str) -> dict:
    frame = ws.recv()
    assert frame["type"] == kind, frame
    return frame


def silent(ws: WSConnection, seconds: float = 0.3) -> bool:
    """True if nothing arrives within `seconds` (then the socket is usable again)."""
    ws.settimeout(seconds)
    try:
        ws.recv()
        return False
    except (socket.timeout, TimeoutError):
        return True
    finally:
        ws.settimeout(5 * time_unit())


def join(ws: WSConnection, *interests: str) -> None:
    ws.send_json({"type": "join", "mode": "text", "lang": "en", "interests": list(interests)})


@pytest.mark.parametrize("fault, served", [("none", "oldest"), ("lifo", "newest")])
def test_queue_order_fifo_and_lifo(fault: str, served: str) -> None:
    """Two users wait for different interests; a newcomer sharing both gets the oldest (or newest)."""
    with faulty(fault, "--fallback-s", "30") as url:
        old, new, newcomer = client(url), client(url), client(url)
        join(old, "chess")
        expect(old, "waiting")
        join(new, "go")
        expect(new, "waiting")
        join(newcomer, "chess", "go")
        paired = expect(newcomer, "paired")
        chosen = old if served == "oldest" else new
        other = new if served == "oldest" else old
        assert expect(chosen, "paired")["pair"] == paired["pair"]
        assert paired["common"] == (["chess"] if served == "oldest" else ["go"])
        assert silent(other)


def test_interest_fallback_pairs_waiting_users_when_it_passes() -> None:
    with faulty("none", "--fallback-s", "0.5") as url:
        a, b = client(url), client(url)
        join(a, "chess")
        expect(a, "waiting")
        join(b)
        expect(b, "waiting")  # a still insists on chess
        t0 = time.monotonic()
        pair = expect(a, "paired")["pair"]
        assert expect(b, "paired")["pair"] == pair
        assert time.monotonic() - t0 < 3 * time_unit()


def test_await_race_pairs_one_waiting_user_twice() -> None:
    with faulty("await_race", "--delay-ms", "200") as url:
        waiting, x, y = client(url), client(url), client(url)
        join(waiting)
        expect(waiting, "waiting")
        join(x)
        join(y)  # both checks see `waiting` before either pairing happens
        px, py = expect(x, "paired")["pair"], expect(y, "paired")["pair"]
        assert px != py
        assert {expect(waiting, "paired")["pair"], expect(waiting, "paired")["pair"]} == {px, py}


def test_reference_like_server_does_not_race() -> None:
    with faulty("none") as url:
        waiting, x, y = client(url), client(url), client(url)
        join(waiting)
        expect(waiting, "waiting")
        join(x)
        join(y)
        kinds = sorted([x.recv()["type"], y.recv()["type"]])
        assert kinds == ["paired", "waiting"]
        expect(waiting, "paired")
        assert silent(waiting)


def test_keep_disconnected_pairs_with_a_closed_socket() -> None:
    with faulty("keep_disconnected") as url:
        gone = client(url)
        join(gone)
        expect(gone, "waiting")
        gone.close()
        time.sleep(0.2)
        live = client(url)
        join(live)
        expect(live, "paired")  # with nobody: no token and no partner_left will ever come
        assert silent(live, 0.5)


def test_leak_sends_messages_to_another_chat() -> None:
    with faulty("leak", "--rate", "1.0") as url:
        a, b, c, d = (client(url) for _ in range(4))
        for first, second in ((a, b), (c, d)):
            join(first)
            expect(first, "waiting")
            join(second)
            expect(first, "paired")
            expect(second, "paired")
        a.send_json({"type": "message", "text": "for b only"})
        assert silent(b)
        got = [ws for ws in (c, d) if not silent(ws, 0.5)]
        assert len(got) == 1


def test_drop_loses_messages_and_keeps_the_rest() -> None:
    with faulty("drop", "--rate", "1.0") as url:
        a, b = client(url), client(url)
        join(a)
        expect(a, "waiting")
        join(b)
        expect(a, "paired")
        expect(b, "paired")
        a.send_json({"type": "message", "text": "lost"})
        a.send_json({"type": "typing", "active": True})  # only chat messages are dropped
        assert expect(b, "typing")["active"] is True


def test_slow_delays_every_pairing() -> None:
    with faulty("slow", "--delay-ms", "300") as url:
        a, b = client(url), client(url)
        join(a)
        expect(a, "waiting")
        t0 = time.monotonic()
        join(b)
        expect(b, "paired")
        assert time.monotonic() - t0 >= 0.3
