"""Workloads for the pairing-core benchmark, shared by the pytest-benchmark file and the script.

Each workload builds its state first and returns a callable that performs `n` joins, so
only the joins are timed.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from reference_server.core import PairingCore

VOCABULARY = 10_000  # topics, Zipf-like popularity (CALIBRATION.md: interest popularity)


def zipf_interests(n: int, share: float, seed: int = 1) -> list[tuple[str, ...]]:
    """`share` of users hold 1-3 interests drawn Zipf-like from VOCABULARY topics."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, VOCABULARY + 1)
    weights = 1.0 / ranks
    weights /= weights.sum()
    has = rng.random(n) < share
    counts = rng.integers(1, 4, n)
    topics = rng.choice(VOCABULARY, size=int(counts.sum()), p=weights)
    out: list[tuple[str, ...]] = []
    pos = 0
    for i in range(n):
        k = int(counts[i])
        out.append(tuple(f"t{t}" for t in topics[pos : pos + k]) if has[i] else ())
        pos += k
    return out


def joins_no_interests(n: int) -> Callable[[], None]:
    def run() -> None:
        core = PairingCore()
        join = core.join
        for i in range(n):
            join(i, 0.0)
    return run


def joins_with_interests(n: int) -> Callable[[], None]:
    interests = zipf_interests(n, 0.2)
    def run() -> None:
        core = PairingCore()
        join = core.join
        now = 0.0
        for i in range(n):
            now += 1e-5  # 100,000 arrivals per simulated second: fallbacks do fire
            join(i, now, "text", "en", interests[i])
    return run


def next_churn(n: int) -> Callable[[], None]:
    """Paired users keep pressing next: every call ends a chat and re-queues (a join)."""
    def run() -> None:
        core = PairingCore()
        users = 1000
        for i in range(users):
            core.join(i, 0.0)
        nxt = core.next
        now = 0.0
        done = 0
        i = 0
        while done < n:
            now += 1e-4
            u = i % users
            i += 1
            if core.state(u) == "paired":
                nxt(u, now)
                done += 1
            elif core.state(u) == "idle":
                core.join(u, now)
                done += 1
    return run


def joins_with_waiting_crowd(n: int, crowd: int = 100_000) -> Callable[[], None]:
    """`crowd` interest users wait (pairwise incompatible); others join around them."""
    core = PairingCore(interest_fallback=1e12)
    for i in range(crowd):
        core.join(("crowd", i), 0.0, "text", "en", (f"rare{i}",))
    rounds = [0]

    def run() -> None:
        # Fresh user ids each round: the crowd stays, the joiners of earlier rounds are paired.
        base = rounds[0] * n
        rounds[0] += 1
        join = core.join
        for i in range(base, base + n):
            join(i, 1.0)
        last = base + n - 1
        if core.state(last) == "waiting":
            core.leave(last, 1.0)
    return run


class NaiveListMatcher:
    """What public clones do: one list, scanned front to back for the first compatible user."""

    def __init__(self) -> None:
        self.waiting: list[tuple[object, str, str, frozenset[str]]] = []

    def join(self, user: object, mode: str, lang: str, interests: frozenset[str]) -> object | None:
        for idx, (other, m, l, its) in enumerate(self.waiting):
            if m == mode and l == lang and ((its & interests) or (not its and not interests)):
                del self.waiting[idx]
                return other
        self.waiting.append((user, mode, lang, interests))
        return None


def naive_with_waiting_crowd(n: int, crowd: int = 10_000) -> Callable[[], None]:
    matcher = NaiveListMatcher()
    for i in range(crowd):
        matcher.join(("crowd", i), "text", "en", frozenset((f"rare{i}",)))
    def run() -> None:
        join = matcher.join
        empty: frozenset[str] = frozenset()
        for i in range(n):
            join(i, "text", "en", empty)
    return run


WORKLOADS: dict[str, Callable[[int], Callable[[], None]]] = {
    "joins_no_interests": joins_no_interests,
    "joins_20pct_interests": joins_with_interests,
    "next_churn": next_churn,
    "joins_100k_waiting": joins_with_waiting_crowd,
}
