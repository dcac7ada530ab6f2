"""harness/ports.py: free ports below the ephemeral range, checked by binding, never handed out twice."""
from __future__ import annotations

import multiprocessing
import random
import socket

import pytest

from harness import ports

pytestmark = pytest.mark.timeout(60)


def test_a_run_is_below_the_ephemeral_range_and_bindable_all_at_once() -> None:
    low, high = ports.ephemeral_range()
    for _ in range(20):
        base = ports.free_port_run(3)
        run = range(base, base + 3)
        assert all(not low <= p <= high for p in run), (base, low, high)
        held = []
        try:
            for p in run:
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", p))
                s.listen()
        finally:
            for s in held:
                s.close()


def test_the_same_port_is_not_handed_out_twice_by_one_process() -> None:
    got = [ports.free_port() for _ in range(200)]
    assert len(set(got)) == len(got)


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A window of three free ports whose middle one then listens: only the other two come out."""
    base = ports.free_port_run(3)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", base + 1))
        busy.listen()
        monkeypatch.setattr(ports, "WINDOW", (base, base + 3))
        monkeypatch.setattr(ports, "ephemeral_range", lambda: (1, 2))  # the window is outside it
        monkeypatch.setattr(ports, "_leased", {})
        assert {ports.free_port(), ports.free_port()} == {base, base + 2}
        with pytest.raises(RuntimeError):  # both leased, the middle one busy: nothing left
            ports.free_port()


@pytest.mark.parametrize(
    ("ephemeral", "count", "expected"),
    [
        ((32768, 60999), 3, [(20000, 31998)]),  # Linux's default: the whole window
        ((25000, 40000), 1, [(20000, 25000)]),  # a wider ephemeral range cuts the window
        ((1024, 65535), 1, [(1024, 65536)]),  # everything ephemeral: any unprivileged port
    ],
)
def test_candidate_ranges_avoid_the_ephemeral_range(ephemeral, count, expected) -> None:
    assert ports.candidate_ranges(count, ephemeral) == expected


def _picks(queue: multiprocessing.Queue) -> None:
    queue.put([ports.free_port() for _ in range(5)])


def test_forked_processes_with_a_seeded_random_module_pick_different_ports() -> None:
    """Tests seed `random` and benchmarks fork: neither may make two processes pick alike."""
    random.seed(1)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    children = [ctx.Process(target=_picks, args=(queue,)) for _ in range(2)]
    for c in children:
        c.start()
    a, b = queue.get(timeout=30), queue.get(timeout=30)
    for c in children:
        c.join(30)
    assert len(set(a) & set(b)) <= 1, (a, b)  # a shared seed would give the same five
