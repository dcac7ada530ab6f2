"""The hub of one worker process when the server runs N workers around one core owner.

Same sessions, limits and hot path as `hub.Hub` (this is a subclass), but the pairing core
lives in the core owner process (`cluster_core.py`). A frame that needs the core (join,
next, leave, report) is sent down this worker's stream to the core owner and the session
is *pending*: its later frames wait in order until the core owner's `done` comes back, so
every frame is checked against the state the core decided, as in one process. Effects come
back as records and are applied synchronously, with no await in between.

Partners on the same worker relay directly, exactly as in one process. A partner on
another worker is a `RemotePeer`: relaying to it appends a record to the stream to the
core owner, which forwards it. Every relay carries the pair's token, and a session accepts
only relays of its current pair, so nothing from a chat arrives after `partner_left` or
after the receiver's own `next`/`leave`.

If the core owner's stream breaks, the pairing state is gone with it: every session is
closed with 1012 (service restart) and the worker reconnects to the replacement.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from typing import Any, Callable

from . import cluster_wire as W
from . import protocol as P
from .hub import Hub, Session
from .settings import Settings

log = logging.getLogger("reference_server")

CLOSE_SERVICE_RESTART = 1012
RECONNECT_DELAY = 0.05
MAX_PENDING_FRAMES = 256
_BINARY = object()  # a buffered binary frame


class _Dropped:
    """A partner that must receive nothing more (our session already sent next/leave)."""

    __slots__ = ()
    closed = True


DROP = _Dropped()


class ClusterSession(Session):
    __slots__ = ("gid", "pending", "token")

    def __init__(self, sid: str, address: str, link: Any, bucket: Any, strikes: Any, gid: int) -> None:
        super().__init__(sid, address, link, bucket, strikes)
        self.gid = gid
        self.pending: list | None = None  # frames waiting for the core owner's answer
        self.token = 0  # the current pair's token; relays of other pairs are dropped


class RemotePeer:
    """A partner hosted by another worker: writes become relay records to the core owner."""

    __slots__ = ("gid", "token", "channel", "closed", "link")

    def __init__(self, channel: "CoreChannel", gid: int, token: int) -> None:
        self.gid = gid
        self.token = token
        self.channel = channel
        self.closed = False
        self.link = self

    def send(self, data: bytes) -> bool:
        channel = self.channel
        channel.crossed += 1
        channel.add(W.relay(self.gid, self.token, data))
        return True


class GlobalView:
    """The core owner's global figures, refreshed by its stats records (read by /metrics)."""

    def __init__(self) -> None:
        self.online = 0
        self.waiting_count = 0
        self.paired_count = 0
        self.pools: dict[tuple[str, str], int] = {}
        self.per_worker: dict[str, int] = {}
        self.pairs_made = 0
        self.pairs_crossed = 0

    def waiting_by_pool(self) -> dict[tuple[str, str], int]:
        return self.pools


class CoreChannel:
    """This worker's stream to the core owner: ordered records, one write per loop turn,
    buffered while disconnected, reconnected forever."""

    def __init__(self, hub: "ClusterHub", address: str) -> None:
        self.hub = hub
        self.address = address
        self.loop = hub.loop
        self.parts: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.scheduled = False
        self.crossed = 0
        self.core_pid: int | None = None
        self.core_generation: int | None = None
        self.connects = 0
        self.ready = asyncio.Event()

    def add(self, record: bytes) -> None:
        self.parts.append(record)
        if not self.scheduled and self.transport is not None:
            self.scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        if self.transport is None or not self.parts:
            return
        data = b"".join(self.parts)
        self.parts = []
        self.transport.write(data)

    async def run(self) -> None:
        hub = self.hub
        while True:
            lost = self.loop.create_future()
            try:
                transport, _ = await self.loop.create_unix_connection(
                    lambda: _CoreStream(hub, lost), sock=_connect_unix(self.address))
            except OSError:
                await asyncio.sleep(RECONNECT_DELAY)
                continue
            self.connects += 1
            transport.write(W.control(W.HELLO, [hub.slot, hub.generation, os.getpid()]))
            self.transport = transport  # type: ignore[assignment]
            self.flush()
            await lost
            self.transport = None
            self.ready.clear()
            self.parts = []
            hub.core_lost()
            await asyncio.sleep(RECONNECT_DELAY)


def _connect_unix(address: str) -> socket.socket:
    """A connected Unix socket (made here: uvloop refuses abstract names in create_unix_connection)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address)  # local: completes at once or fails at once
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class _CoreStream(asyncio.Protocol):
    """Records from the core owner, applied as they arrive (relays inline: the hot path)."""

    def __init__(self, hub: "ClusterHub", lost: asyncio.Future) -> None:
        self.hub = hub
        self.lost = lost
        self.reader = W.Reader()

    def data_received(self, data: bytes) -> None:
        hub = self.hub
        by_gid = hub.by_gid
        send = hub._send
        unpack = W.RELAY_HEAD.unpack_from
        relay, size = W.RELAY, W.RELAY_HEAD_SIZE
        for kind, record in self.reader.feed(data):
            if kind == relay:
                _, _, gid, token = unpack(record)
                s = by_gid.get(gid)
                if s is not None and s.token == token:
                    send(s, record[size:])
            else:
                hub.on_control(kind, W.body(record))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class ClusterHub(Hub):
    """One worker's sessions; the pairing core is remote (see the module docstring)."""

    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop, slot: int, generation: int,
                 core_address: str, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(settings, loop, clock)
        self.slot = slot
        self.generation = generation
        self.view = GlobalView()
        self.core = self.view  # type: ignore[assignment]  # what /metrics reads: the global figures
        self.by_gid: dict[int, ClusterSession] = {}
        self.banned: dict[str, float] = {}
        self._counter = generation << 32
        self.channel = CoreChannel(self, core_address)
        self.channel_task = asyncio.ensure_future(self.channel.run())

    # ------------------------------------------------------------ queries
    @property
    def online(self) -> int:
        return max(self.view.online, len(self.sessions))

    @property
    def waiting(self) -> int:
        return self.view.waiting_count

    @property
    def local_online(self) -> int:
        return len(self.sessions)

    # ------------------------------------------------------------ lifecycle
    def open(self, link: Any, address: str) -> Session | None:
        now = self.clock()
        end = self.banned.get(address)
        if end is not None and now < end:
            self._refuse_socket(link, "banned", "this address is banned for a while", 1008)
            return None
        if self.draining:
            self._refuse_socket(link, "draining", "the server is shutting down", 1001)
            return None
        self._counter += 1
        gid = W.make_gid(self._counter, self.slot)
        sid = secrets.token_urlsafe(12)
        s = ClusterSession(sid, address, link, self._bucket(now), self._strikes(now), gid)
        self.sessions[sid] = s
        self.by_gid[gid] = s
        self.by_address.setdefault(address, set()).add(s)
        self.stats.connections_opened += 1
        self.channel.add(W.control(W.OPEN, [gid, address]))
        link.send(P.welcome(sid, self.online))
        self._arm_idle(s)
        return s

    def gone(self, s: Session) -> None:
        if s.closed:
            return
        s.closed = True
        self.channel.add(W.control(W.GONE, [s.gid]))  # type: ignore[attr-defined]
        self._forget(s)

    def close_all(self, code: int, reason: str) -> None:
        for s in list(self.sessions.values()):
            s.closed = True
            self.channel.add(W.control(W.GONE, [s.gid]))  # type: ignore[attr-defined]
            self._forget(s)
            s.link.close(code, reason)
            self._count_close(code)

    def core_lost(self) -> None:
        """The core owner's stream broke: pairing state is lost, every session is told to reconnect."""
        log.warning("core owner stream lost: closing %d sessions with 1012", len(self.sessions))
        for s in list(self.sessions.values()):
            s.closed = True
            self._forget(s)
            s.link.close(CLOSE_SERVICE_RESTART, "service restart")
            self._count_close(CLOSE_SERVICE_RESTART)
        self.view.__init__()  # type: ignore[misc]

    def _forget(self, s: Session) -> None:
        self.by_gid.pop(s.gid, None)  # type: ignore[attr-defined]
        super()._forget(s)

    # ------------------------------------------------------------ frames
    def receive(self, s: Session, raw: str | bytes) -> None:
        pending = s.pending  # type: ignore[attr-defined]
        if pending is not None:
            self._hold(s, pending, raw)
            return
        Hub.receive(self, s, raw)

    def receive_binary(self, s: Session) -> None:
        pending = s.pending  # type: ignore[attr-defined]
        if pending is not None:
            self._hold(s, pending, _BINARY)
            return
        Hub.receive_binary(self, s)

    def _hold(self, s: Session, pending: list, raw: Any) -> None:
        if s.closed:
            return
        if len(pending) >= MAX_PENDING_FRAMES:
            self._kick(s, 1008, "too many frames while a command is in progress")
            return
        pending.append(raw)

    def _release(self, s: ClusterSession) -> None:
        held, s.pending = s.pending, None
        for raw in held or ():
            if raw is _BINARY:
                self.receive_binary(s)
            else:
                self.receive(s, raw)

    # ------------------------------------------------------------ commands (sent to the core owner)
    def _join(self, s: Session, cmd: P.Join) -> None:
        if self.draining:
            self._error(s, "draining", "the server is shutting down: no new chats")
            return
        self._cancel_idle(s)
        s.pending = []  # type: ignore[attr-defined]
        self.channel.add(W.control(W.JOIN, [s.gid, cmd.mode, cmd.lang, cmd.interests]))  # type: ignore[attr-defined]

    def _next(self, s: Session) -> None:
        if self.draining:
            self._error(s, "draining", "the server is shutting down: no new chats")
            return
        self._detach(s)
        s.pending = []  # type: ignore[attr-defined]
        self.channel.add(W.control(W.NEXT, [s.gid]))  # type: ignore[attr-defined]

    def _leave(self, s: Session, reason: str) -> None:
        self._detach(s)
        s.pending = []  # type: ignore[attr-defined]
        self.channel.add(W.control(W.LEAVE, [s.gid, reason]))  # type: ignore[attr-defined]

    def _report(self, s: Session) -> None:
        self._leave(s, "report")  # the core owner files the report against the partner's address

    def _detach(self, s: Session) -> None:
        """`s` ends its chat: from now on nothing of that chat reaches it, nor its local partner."""
        p = s.partner
        if isinstance(p, ClusterSession) and p.partner is s:
            p.partner = DROP  # type: ignore[assignment]
        s.partner = None
        s.token = 0  # type: ignore[attr-defined]

    def _kick(self, s: Session, code: int, reason: str, partner_reason: str = "disconnect",
              error_code: str | None = None) -> None:
        if s.closed:
            return
        if error_code is not None:
            self._error(s, error_code, reason)
        s.closed = True
        if partner_reason != "disconnect":
            self.channel.add(W.control(W.LEAVE, [s.gid, partner_reason]))  # type: ignore[attr-defined]
        self.channel.add(W.control(W.GONE, [s.gid]))  # type: ignore[attr-defined]
        self._forget(s)
        s.link.close(code, reason)
        self._count_close(code)

    def _arm_timer(self) -> None:
        """The core's timers run in the core owner."""

    # ------------------------------------------------------------ records from the core owner
    def on_control(self, kind: int, body: list) -> None:
        if kind == W.PAIRED:
            self._paired(body)
        elif kind == W.WAITING:
            s = self.by_gid.get(body[0])
            if s is not None:
                s.state = P.WAITING
                s.partner = None
                s.mode = None
                self._send(s, P.waiting(self.online))
        elif kind == W.PARTNER_LEFT:
            s = self.by_gid.get(body[0])
            if s is not None:
                s.token = 0
                self._set_idle(s)
                reason = body[1]
                self._send(s, P.partner_left(reason))
                self.stats.partner_left[reason] = self.stats.partner_left.get(reason, 0) + 1
        elif kind == W.DONE:
            s = self.by_gid.get(body[0])
            if s is not None:
                if body[2] and s.state != P.IDLE:
                    s.token = 0
                    self._set_idle(s)
                elif body[2] and s.idle_handle is None:
                    self._arm_idle(s)
                if body[1] is not None:
                    self._error(s, body[1], "not allowed in the current state")
                self._release(s)
        elif kind == W.STATS:
            v = self.view
            v.online, v.waiting_count, v.paired_count = body[0], body[1], body[2]
            v.pools = {(m, lang): n for m, lang, n in body[3]}
            v.per_worker = body[4]
            v.pairs_made, v.pairs_crossed = body[5], body[6]
        elif kind == W.BAN:
            self._banned(body[0], float(body[1]))
        elif kind == W.WELCOME:
            self.channel.core_pid, self.channel.core_generation = body[0], body[1]
            self.channel.ready.set()
            log.info("connected to core owner pid %s (generation %s)", body[0], body[1])

    def _paired(self, body: list) -> None:
        gid, pgid, token, pair, mode, common, initiator, waited, pwaited = body
        s = self.by_gid.get(gid)
        local = W.slot_of(pgid) == self.slot
        p = self.by_gid.get(pgid) if local else None
        if s is not None:
            partner: Any = p if local else RemotePeer(self.channel, pgid, token)
            self._pair_one(s, partner if partner is not None else DROP, token, pair, mode, common, initiator, waited)
        if p is not None:  # both members here: one record pairs both, atomically
            self._pair_one(p, s if s is not None else DROP, token, pair, mode, common, not initiator, pwaited)

    def _pair_one(self, s: ClusterSession, partner: Any, token: int, pair: str, mode: str,
                  common: list, initiator: bool, waited: float) -> None:
        s.state = P.PAIRED
        s.partner = partner
        s.mode = mode
        s.token = token
        self._send(s, P.paired(pair, mode, tuple(common), initiator))
        stats = self.stats
        if initiator:  # one member of every pair counts it, wherever the other is
            stats.pairs[mode] = stats.pairs.get(mode, 0) + 1
        stats.wait.observe(waited)

    def _banned(self, address: str, seconds: float) -> None:
        self.banned[address] = self.clock() + seconds
        self.stats.bans += 1
        for s in list(self.by_address.get(address, ())):
            self._kick(s, 1008, "banned after reports", partner_reason="banned", error_code="banned")
