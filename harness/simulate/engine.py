"""Discrete-event simulation of a population plan through a matcher, with no network.

Each visit of the plan arrives at its time and joins with its mode, language and
interests. Waiting, it gives up (disconnects) after its patience. Paired, the chat lasts a
length drawn for the two classes; the side who ends it presses `next` if it has chats left
in its visit, else leaves; a partner told `partner_left` joins again at once if it has
chats left, else leaves. Events sit in one heap; plan arrivals are read in order beside it;
the matcher's timers run when `next_wakeup()` says so. Every queue entry becomes a ticket
(harness.fairness.TicketTable), so the fairness figures of a simulation are computed
exactly like a live run's.
"""
from __future__ import annotations

import heapq
from array import array
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from harness.fairness.tickets import TicketTable

GIVE_UP = 0
CHAT_END = 1
NAN = float("nan")
INF = float("inf")

ChatSampler = Callable[[int, int, np.random.Generator, int], tuple[np.ndarray, np.ndarray]]


@dataclass
class SimResult:
    tickets: TicketTable
    horizon_s: float
    visits: int              # visits that arrived before the horizon
    pairings: int
    gave_up: int
    peak_online: int
    events: int


BLOCK = 4096


class ChatLengths:
    """Chat lengths drawn in blocks per pool and class pair (one numpy call per 4096 chats).

    Each pool (mode, lang) has its own random stream, seeded by (seed, pool). Pools never
    meet, so a pool's chats come out the same whether it is simulated alone, with every
    other pool, or in another process (harness/simulate/shard.py relies on it).
    """

    def __init__(self, sampler: ChatSampler, seed: int, block: int = BLOCK) -> None:
        self.sampler, self.seed, self.block = sampler, seed, block
        self.rngs: dict[int, np.random.Generator] = {}
        self.buf: dict[tuple[int, int, int], tuple[list[float], list[int]]] = {}

    def block_for(self, pool: int, ca: int, cb: int) -> tuple[np.ndarray, np.ndarray]:
        """The next block of (durations, who ends: 0 = the first user, 1 = the second)."""
        rng = self.rngs.get(pool)
        if rng is None:
            rng = self.rngs[pool] = np.random.default_rng([self.seed, pool])
        d, w = self.sampler(ca, cb, rng, self.block)
        return np.ascontiguousarray(d, dtype=np.float64), np.ascontiguousarray(w, dtype=np.int8)

    def draw(self, pool: int, ca: int, cb: int) -> tuple[float, int]:
        key = (pool, ca, cb)
        got = self.buf.get(key)
        if not got or not got[0]:
            d, w = self.block_for(pool, ca, cb)
            got = (d[::-1].tolist(), w[::-1].tolist())
            self.buf[key] = got
        return got[0].pop(), got[1].pop()


def pool_of(mode: np.ndarray, lang: np.ndarray, n_langs: int) -> np.ndarray:
    """The pool index of each visit: mode * n_langs + lang (pools never pair with each other)."""
    return mode.astype(np.int64) * n_langs + lang.astype(np.int64)


def simulate(
    plan: Any,
    matcher: Any,
    chat_sampler: ChatSampler,
    *,
    seed: int = 1,
    horizon_s: float | None = None,
    mode_names: tuple[str, ...] = ("text", "video"),
    class_names: tuple[str, ...] = ("unknown",),
    progress: Callable[[float], None] | None = None,
    engine: str = "auto",
) -> SimResult:
    """Run `plan` through `matcher` until `horizon_s` (default: the plan's duration).

    engine: "auto" runs the C kernel (harness/simulate/kernel.py, same result) when the
    matcher is a fresh reference PairingCore, else this Python loop; "python" always this
    loop; "kernel" the kernel or a ValueError saying why it cannot.
    """
    if engine not in ("auto", "python", "kernel"):
        raise ValueError(f"engine must be 'auto', 'python' or 'kernel', got {engine!r}")
    if engine != "python":
        from . import kernel  # here, not at the top: kernel imports this module

        if engine == "kernel" or kernel.usable(matcher):
            return kernel.simulate_kernel(plan, matcher, chat_sampler, seed=seed, horizon_s=horizon_s,
                                          mode_names=mode_names, class_names=class_names, progress=progress)
    n = int(plan.n)
    arrival = plan.arrival_s.tolist()
    if horizon_s is None:
        horizon_s = float(getattr(plan, "duration_s", arrival[-1] if arrival else 0.0))
    ucls = plan.user_class.tolist()
    langs = list(plan.langs)
    umode = [mode_names[m] for m in plan.mode.tolist()]
    ulang = [langs[k] for k in plan.lang.tolist()]
    offs = plan.interest_offsets.tolist()
    ids = plan.interest_ids.tolist()
    patience = plan.patience_s.astype(np.float64).tolist()
    chats_left = plan.chats.astype(np.int64).tolist()
    lengths = ChatLengths(chat_sampler, seed)
    upool = pool_of(plan.mode, plan.lang, len(langs)).tolist()

    # ticket columns (index = ticket id)
    t_user = array("q")
    t_join = array("d")
    t_paired = array("d")
    t_gave = array("d")
    t_peer = array("q")
    t_peer_ticket = array("q")
    t_via = array("b")
    t_chat_end = array("d")
    cur = [-1] * n            # current ticket of each visit
    heap: list[tuple[float, int, int, int, int]] = []
    seq = 0
    pairings = gave_up = online = peak = events = 0
    push = heapq.heappush
    pop = heapq.heappop

    def new_ticket(v: int, now: float) -> None:
        cur[v] = len(t_join)
        t_user.append(v)
        t_join.append(now)
        t_paired.append(NAN)
        t_gave.append(NAN)
        t_peer.append(-1)
        t_peer_ticket.append(-1)
        t_via.append(0)
        t_chat_end.append(NAN)

    def apply(effects: list, now: float) -> None:
        nonlocal seq, pairings, online
        work = list(effects)
        while work:
            e = work.pop(0)
            kind = e.__class__.__name__
            if kind == "Paired":
                a, b = e[0], e[1]
                ka, kb = cur[a], cur[b]
                t_paired[ka] = t_paired[kb] = now
                t_peer[ka], t_peer[kb] = b, a
                t_peer_ticket[ka], t_peer_ticket[kb] = kb, ka
                if e[4]:
                    t_via[ka] = t_via[kb] = 1
                chats_left[a] -= 1
                chats_left[b] -= 1
                pairings += 1
                dur, who = lengths.draw(upool[a], ucls[a], ucls[b])
                seq += 1
                push(heap, (now + dur, seq, CHAT_END, b if who else a, ka if who == 0 else kb))
            elif kind == "Waiting":
                u = e[0]
                if patience[u] != INF:  # an endless patience never fires: keep it off the heap
                    seq += 1
                    push(heap, (now + patience[u], seq, GIVE_UP, u, cur[u]))
            elif kind == "PartnerLeft":
                u = e[0]
                k = cur[u]
                if k >= 0 and t_chat_end[k] != t_chat_end[k]:
                    t_chat_end[k] = now
                if chats_left[u] > 0:
                    new_ticket(u, now)
                    work.extend(matcher.join(u, now, umode[u], ulang[u], _interests(u)))
                else:
                    cur[u] = -1
                    online -= 1
                    work.extend(matcher.disconnect(u, now))

    names_cache: dict[int, tuple[str, ...]] = {}

    def _interests(v: int) -> tuple[str, ...]:
        got = names_cache.get(v)
        if got is None:
            got = names_cache[v] = tuple(f"t{k}" for k in ids[offs[v]:offs[v + 1]])
        return got

    ai = 0
    last_tick = -INF
    wake = matcher.next_wakeup()
    next_progress = 0.0
    step = horizon_s / 200.0 if horizon_s > 0 else INF
    while True:
        t_arr = arrival[ai] if ai < n else INF
        t_evt = heap[0][0] if heap else INF
        t_wake = INF if wake is None else wake
        now = min(t_arr, t_evt, t_wake)
        if now > horizon_s or now == INF:
            break
        events += 1
        if progress is not None and now >= next_progress:
            progress(now / horizon_s if horizon_s > 0 else 1.0)
            next_progress = now + step
        if t_wake <= t_arr and t_wake <= t_evt:
            last_tick = now
            apply(matcher.tick(now), now)
        elif t_arr <= t_evt:
            v = ai
            ai += 1
            online += 1
            if online > peak:
                peak = online
            new_ticket(v, now)
            apply(matcher.join(v, now, umode[v], ulang[v], _interests(v) if offs[v + 1] > offs[v] else ()), now)
        else:
            _, _, kind, v, k = pop(heap)
            if kind == GIVE_UP:
                if cur[v] == k and t_paired[k] != t_paired[k]:
                    t_gave[k] = now
                    gave_up += 1
                    cur[v] = -1
                    online -= 1
                    apply(matcher.disconnect(v, now), now)
            else:  # CHAT_END: v ends the chat its ticket k led to
                if cur[v] != k:
                    wake = matcher.next_wakeup()
                    continue
                t_chat_end[k] = now
                if chats_left[v] > 0:
                    new_ticket(v, now)
                    apply(matcher.next(v, now), now)
                else:
                    cur[v] = -1
                    online -= 1
                    apply(matcher.disconnect(v, now), now)
        wake = matcher.next_wakeup()
        if wake is not None and wake <= last_tick:
            wake = None  # a timer already run (a matcher may report a deadline it just served)
    if progress is not None:
        progress(1.0)

    users = np.frombuffer(t_user, dtype=np.int64) if len(t_user) else np.zeros(0, np.int64)
    counts = np.diff(plan.interest_offsets)[users]
    t_off = np.zeros(users.size + 1, dtype=np.int64)
    np.cumsum(counts, out=t_off[1:])
    starts = np.repeat(plan.interest_offsets[users] - t_off[:-1], counts)
    t_ids = plan.interest_ids[starts + np.arange(int(t_off[-1]))] if t_off[-1] else np.zeros(0, np.int32)
    table = TicketTable.from_arrays(
        user=users, cls=plan.user_class[users], mode=plan.mode[users], lang=plan.lang[users],
        interest_offsets=t_off, interest_ids=t_ids,
        t_join=_np(t_join), t_paired=_np(t_paired), t_gave_up=_np(t_gave), peer=_np(t_peer, np.int64),
        peer_ticket=_np(t_peer_ticket, np.int64), via_interest=_np(t_via, np.int8).astype(bool),
        t_chat_end=_np(t_chat_end), t_end=horizon_s,
        cls_names=tuple(class_names), mode_names=tuple(mode_names), lang_names=tuple(langs),
    )
    return SimResult(tickets=table, horizon_s=horizon_s, visits=ai, pairings=pairings, gave_up=gave_up,
                     peak_online=peak, events=events)


def _np(a: array, dtype: Any = np.float64) -> np.ndarray:
    return np.frombuffer(a, dtype=dtype) if len(a) else np.zeros(0, dtype=dtype)  # shares the buffer


