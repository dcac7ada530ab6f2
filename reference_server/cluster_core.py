"""The core owner: the one process that holds the pairing core when the server runs N workers.

Workers connect over a Unix socket and send commands (open, join, next, leave, gone) and
relay records in one ordered stream each. This process applies the commands to the
single `PairingCore` one at a time, synchronously (no lock, no await between deciding and
recording), and routes every effect to the worker that hosts the user concerned. Relay
records are forwarded unchanged to the target user's worker, in the order they arrive
among the commands, so a partner's `partner_left` can never overtake a message sent
before the `leave` that caused it: every byte that reaches a worker from elsewhere comes
down one FIFO stream, in the order the core owner decided things.

The reports-and-bans book is global too and lives here. When a worker's stream closes
(the process died or exited), every user of that worker is disconnected from the core at
once, so nobody is paired with a lost user and their partners get `partner_left`.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from typing import Callable

from . import cluster_wire as W
from .bans import BanBook
from .core_timer import CoreTimer
from .core import PairingCore, Paired, PartnerLeft, StateError, Waiting
from .settings import Settings

log = logging.getLogger("reference_server.core_owner")

STATS_INTERVAL = 0.1


class WorkerConn(asyncio.Protocol):
    """The stream from one worker process."""

    def __init__(self, owner: "CoreOwner") -> None:
        self.owner = owner
        self.reader = W.Reader()
        self.slot: int | None = None
        self.transport: asyncio.Transport | None = None
        self.out: W.Batcher | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.out = W.Batcher(self.owner.loop.call_soon, transport.write)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        for kind, record in self.reader.feed(data):
            if kind == W.RELAY:
                owner.forward(record)
            elif kind == W.HELLO:
                owner.hello(self, W.body(record))
            elif self.slot is not None:
                owner.command(kind, W.body(record))

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.lost(self)


class CoreOwner:
    """The single owner of the pairing core and the ban book; see the module docstring."""

    def __init__(self, settings: Settings, generation: int, loop: asyncio.AbstractEventLoop,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.generation = generation
        self.loop = loop
        self.clock = clock
        self.core = PairingCore(settings.interest_fallback, settings.rematch_block)
        self.bans = BanBook(settings.report_threshold, settings.report_window, settings.ban_duration)
        self.workers: dict[int, WorkerConn] = {}
        self.users: dict[int, set[int]] = {}  # slot -> gids of open sessions
        self.address: dict[int, str] = {}  # gid -> client address (for reports)
        self.forwarded = 0
        self.pairs_made = 0
        self.pairs_crossed = 0  # pairs whose members are on two workers
        self._core_timer = CoreTimer(loop, clock, self.core, self._route)
        self._last_stats: bytes | None = None

    # ------------------------------------------------------------ workers
    def hello(self, conn: WorkerConn, body: list) -> None:
        slot = int(body[0])
        old = self.workers.get(slot)
        if old is not None and old is not conn:
            self.lost(old)  # a replacement arrived before the old stream's end was seen
            if old.transport is not None:
                old.transport.close()
        conn.slot = slot
        self.workers[slot] = conn
        self.users.setdefault(slot, set())
        conn.out.add(W.control(W.WELCOME, [os.getpid(), self.generation]))  # type: ignore[union-attr]
        self._last_stats = None
        log.info("worker %d (pid %s) connected", slot, body[2] if len(body) > 2 else "?")

    def lost(self, conn: WorkerConn) -> None:
        """A worker's stream ended: every user it hosted is gone, at once."""
        slot = conn.slot
        if slot is None or self.workers.get(slot) is not conn:
            return
        del self.workers[slot]
        gone = self.users.pop(slot, set())
        now = self.clock()
        for gid in gone:
            self.address.pop(gid, None)
            self._route(self.core.disconnect(gid, now))
        self._core_timer.arm()
        self._last_stats = None
        log.warning("worker %d stream closed: %d users disconnected", slot, len(gone))

    def forward(self, record: bytes) -> None:
        """A relay record: pass it to the target user's worker, unchanged."""
        conn = self.workers.get(record[12])  # the low byte of the target gid (bytes 5-12, big-endian)
        if conn is not None:
            conn.out.add(record)  # type: ignore[union-attr]
            self.forwarded += 1

    # ------------------------------------------------------------ commands
    def command(self, kind: int, body: list) -> None:
        gid = body[0]
        now = self.clock()
        core = self.core
        error: str | None = None
        try:
            if kind == W.JOIN:
                self._route(core.join(gid, now, mode=body[1], lang=body[2], interests=body[3]))
            elif kind == W.NEXT:
                self._route(core.next(gid, now))
            elif kind == W.LEAVE:
                self._leave(gid, body[1], now)
            elif kind == W.OPEN:
                self.users.setdefault(gid & W.SLOT_MASK, set()).add(gid)
                self.address[gid] = body[1]
                return
            elif kind == W.GONE:
                self.users.get(gid & W.SLOT_MASK, set()).discard(gid)
                self.address.pop(gid, None)
                self._route(core.disconnect(gid, now))
                self._core_timer.arm()
                return
            else:
                log.error("unknown command kind %d", kind)
                return
        except StateError:
            error = "not_allowed"
        self._core_timer.arm()
        self._to(gid, W.control(W.DONE, [gid, error, core.state(gid) == "idle"]))

    def _leave(self, gid: int, reason: str, now: float) -> None:
        core = self.core
        if reason == "banned" and core.state(gid) == "idle":
            return  # kicked after its chat already ended: nothing to do
        partner = core.partner(gid)
        self._route(core.leave(gid, now, reason=reason))
        if reason == "report" and partner is not None:
            reporter, reported = self.address.get(gid), self.address.get(partner)
            if reporter is not None and reported is not None and self.bans.report(reporter, reported, now):
                self._broadcast(W.control(W.BAN, [reported, self.bans.duration]))

    # ------------------------------------------------------------ effects
    def _route(self, effects: list) -> None:
        gen = self.generation
        for e in effects:
            kind = type(e)
            if kind is Paired:
                token = int(e.pair_id[1:])
                pair = e.pair_id if gen == 0 else f"{e.pair_id}.{gen}"
                self._to(e.a, W.control(W.PAIRED, [e.a, e.b, token, pair, e.mode, e.common,
                                                   e.initiator == e.a, e.waited_a, e.waited_b]))
                self.pairs_made += 1
                if (e.a ^ e.b) & W.SLOT_MASK:  # on two workers; else one record pairs both at once
                    self.pairs_crossed += 1
                    self._to(e.b, W.control(W.PAIRED, [e.b, e.a, token, pair, e.mode, e.common,
                                                       e.initiator == e.b, e.waited_b, e.waited_a]))
            elif kind is Waiting:
                self._to(e.user, W.control(W.WAITING, [e.user]))
            elif kind is PartnerLeft:
                self._to(e.user, W.control(W.PARTNER_LEFT, [e.user, e.reason]))

    def _to(self, gid: int, record: bytes) -> None:
        conn = self.workers.get(gid & W.SLOT_MASK)
        if conn is not None:
            conn.out.add(record)  # type: ignore[union-attr]

    def _broadcast(self, record: bytes) -> None:
        for conn in self.workers.values():
            conn.out.add(record)  # type: ignore[union-attr]

    # ------------------------------------------------------------ timers and stats
    def stats_record(self) -> bytes:
        core = self.core
        online = {slot: len(gids) for slot, gids in self.users.items() if slot in self.workers}
        pools = [[mode, lang, n] for (mode, lang), n in sorted(core.waiting_by_pool().items())]
        return W.control(W.STATS, [sum(online.values()), core.waiting_count, core.paired_count, pools,
                                   {str(k): v for k, v in online.items()}, self.pairs_made, self.pairs_crossed])

    async def stats_loop(self) -> None:
        """Send the global counts to every worker when they change (for welcome, /healthz, /metrics)."""
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            record = self.stats_record()
            if record != self._last_stats:
                self._last_stats = record
                self._broadcast(record)
            self.bans.sweep(self.clock())


def core_address(tag: str) -> str:
    """An abstract Unix socket name (Linux): nothing on disk to clean up after a crash."""
    return f"\0chatload-core-{tag}"


async def serve_core(settings: Settings, address: str, generation: int) -> None:
    """Run the core owner until SIGTERM (SIGINT is left to the supervisor)."""
    loop = asyncio.get_running_loop()
    owner = CoreOwner(settings, generation, loop)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(address)  # made here: uvloop refuses abstract names given as a path
    sock.listen(256)
    server = await loop.create_unix_server(lambda: WorkerConn(owner), sock=sock)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stats = asyncio.ensure_future(owner.stats_loop())
    log.info("core owner %d listening (generation %d)", os.getpid(), generation)
    try:
        await stop.wait()
    finally:
        stats.cancel()
        server.close()
