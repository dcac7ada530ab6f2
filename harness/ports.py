"""Free loopback TCP ports for the servers that tests and benchmarks start, below the ephemeral range.

Why not port 0: the kernel then hands out an ephemeral port, from the range every outgoing
connection draws its local port from. On a machine where a load run holds tens of thousands
of client sockets that range is crowded: runs of consecutive free ports there are rare,
`bind(port 0)` itself can fail, and a port found free may be taken by someone's outgoing
connect before our server binds it. Ports below the range are only ever taken by explicit
binds, so a port found free there stays free for the second it takes a server to start.

Concurrent processes (two test runs, a benchmark and a test run) pick independent random
bases from os.urandom (never the `random` module's global state, which tests seed and
forked children share), over about 12,000 ports; each candidate is checked by binding it,
and this process never hands out the same port twice within LEASE_SECONDS.
"""
from __future__ import annotations

import random
import socket
import time
from pathlib import Path

WINDOW = (20_000, 32_000)  # the preferred ports: below Linux's default ephemeral range 32768-60999
LEASE_SECONDS = 120.0  # a port handed out is not handed out again by this process for this long
ATTEMPTS = 500

_rng = random.SystemRandom()
_leased: dict[int, float] = {}  # port -> when this process handed it out


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux default if unreadable)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def candidate_ranges(count: int, ephemeral: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """Half-open ranges of first ports for a run of `count`: WINDOW minus the ephemeral range,
    or, when the machine's ephemeral range covers WINDOW, whatever lies outside that range."""
    low, high = ephemeral or ephemeral_range()
    spans = [(WINDOW[0], min(WINDOW[1], low)), (max(WINDOW[0], high + 1), WINDOW[1])]
    spans = [(a, b - count + 1) for a, b in spans if b - a >= count]
    if not spans:
        spans = [(a, b - count + 1) for a, b in ((10_000, low), (high + 1, 65_536)) if b - a >= count]
    if not spans:  # the ephemeral range is (nearly) everything: take any unprivileged port
        spans = [(1024, 65_536 - count + 1)]
    return spans


def _all_bindable(host: str, ports: range) -> bool:
    """Every port of `ports` can be bound on `host` right now (checked all at once). No
    SO_REUSEADDR: a port with leftover connections of an earlier server counts as busy."""
    held: list[socket.socket] = []
    try:
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(s)
            s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        for s in held:
            s.close()


def free_port_run(count: int, host: str = "127.0.0.1") -> int:
    """First port of `count` consecutive free ports on `host` (a server's shared port and its
    workers' own ports). Raises RuntimeError only when ATTEMPTS random bases all failed."""
    if count < 1:
        raise ValueError("count must be at least 1")
    spans = candidate_ranges(count)
    weights = [b - a for a, b in spans]
    now = time.monotonic()
    for port, when in list(_leased.items()):
        if now - when > LEASE_SECONDS:
            del _leased[port]
    for _ in range(ATTEMPTS):
        a, b = _rng.choices(spans, weights)[0]
        base = _rng.randrange(a, b)
        ports = range(base, base + count)
        if any(p in _leased for p in ports):
            continue
        if _all_bindable(host, ports):
            for p in ports:
                _leased[p] = now
            return base
    raise RuntimeError(f"no run of {count} free ports on {host} in {ATTEMPTS} random tries ({spans})")


def free_port(host: str = "127.0.0.1") -> int:
    """One free port on `host`, below the ephemeral range."""
    return free_port_run(1, host)
