"""The session hub: every open WebSocket session, the pairing core, and the rules between them.

Everything here is synchronous. A frame goes in (`receive`), the core is called, and its
effects are applied to the sessions' bookkeeping and written to the peers' sockets in the
same step, with no await anywhere: nothing else can run between deciding a pairing and
recording it, so no lock is needed (DESIGN.md). Writing is a non-blocking `Link.send`;
a peer that stops reading is cut off once its unsent output passes a limit.

The hub also owns the core's timer (one `call_later` for `core.next_wakeup()`), the
per-session rate limit, the idle deadline, reports and bans, and the drain flag.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Callable, Protocol

from . import protocol as P
from .bans import BanBook
from .core_timer import CoreTimer
from .core import PairingCore, Paired, PartnerLeft, Waiting
from .metrics import ServerStats
from .ratelimit import TokenBucket
from .settings import Settings

log = logging.getLogger("reference_server")

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009


class Link(Protocol):
    """The hub's view of one socket: non-blocking writes and a close request."""

    def send(self, data: bytes) -> bool:
        """Queue one text frame; False when the peer's unsent output is over the limit."""

    def close(self, code: int, reason: str) -> None:
        """Start closing the socket with this close code (returns at once)."""


class Session:
    """One WebSocket session and the hub's mirror of its state in the core."""

    __slots__ = ("sid", "address", "link", "state", "partner", "mode", "bucket", "strikes", "idle_handle", "closed")

    def __init__(self, sid: str, address: str, link: Link, bucket: TokenBucket | None,
                 strikes: TokenBucket | None) -> None:
        self.sid = sid
        self.address = address
        self.link = link
        self.state = P.IDLE
        self.partner: Session | None = None
        self.mode: str | None = None  # the pair's mode while paired
        self.bucket = bucket
        self.strikes = strikes
        self.idle_handle: asyncio.TimerHandle | None = None
        self.closed = False


class Hub:
    """All sessions of one server process; see the module docstring."""

    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.loop = loop
        self.clock = clock
        self.core = PairingCore(interest_fallback=settings.interest_fallback, rematch_block=settings.rematch_block)
        self.sessions: dict[str, Session] = {}
        self.by_address: dict[str, set[Session]] = {}
        self.stats = ServerStats()
        self.bans = BanBook(settings.report_threshold, settings.report_window, settings.ban_duration)
        self.draining = False
        self._core_timer = CoreTimer(loop, clock, self.core, self._apply)
        self._empty_waiters: list[asyncio.Future[None]] = []

    # ------------------------------------------------------------ lifecycle
    def open(self, link: Link, address: str) -> Session | None:
        """A socket completed the upgrade: welcome it, or refuse it (banned, draining)."""
        now = self.clock()
        if self.bans.is_banned(address, now):
            self._refuse_socket(link, "banned", "this address is banned for a while", CLOSE_POLICY)
            return None
        if self.draining:
            self._refuse_socket(link, "draining", "the server is shutting down", CLOSE_GOING_AWAY)
            return None
        sid = secrets.token_urlsafe(12)
        s = Session(sid, address, link, self._bucket(now), self._strikes(now))
        self.sessions[sid] = s
        group = self.by_address.get(address)
        if group is None:
            self.by_address[address] = {s}
        else:
            group.add(s)
        self.stats.connections_opened += 1
        link.send(P.welcome(sid, len(self.sessions)))
        self._arm_idle(s)
        return s

    def gone(self, s: Session) -> None:
        """The socket closed (by the peer, a failed heartbeat, or after our own close)."""
        if s.closed:
            return
        s.closed = True
        effects = self.core.disconnect(s.sid, self.clock())
        self._forget(s)
        self._apply(effects)
        self._core_timer.arm()

    def start_drain(self) -> None:
        """Refuse joins from now on; /healthz reports draining."""
        self.draining = True

    def close_all(self, code: int, reason: str) -> None:
        """Close every session with `code`, telling nobody about partners (all are going)."""
        everyone = list(self.sessions.values())
        for s in everyone:
            s.closed = True
        now = self.clock()
        for s in everyone:
            self.core.disconnect(s.sid, now)  # partners are closing too: their effects are moot
            self._forget(s)
            s.link.close(code, reason)
            self._count_close(code)
        self._core_timer.arm()

    async def wait_empty(self, timeout: float) -> None:
        """Wait until no session is open, at most `timeout` seconds."""
        if not self.sessions:
            return
        fut = self.loop.create_future()
        self._empty_waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            pass

    # ------------------------------------------------------------ frames
    def receive(self, s: Session, raw: str | bytes) -> None:
        """Handle one client text frame."""
        if s.closed:
            return
        bucket = s.bucket
        if bucket is not None and not bucket.take(self.clock()):
            self._rate_limited(s)
            return
        try:
            cmd = P.parse(raw, s.state, s.mode)
        except P.ProtocolError as exc:
            self._error(s, exc.code, exc.message)
            return
        kind = type(cmd)
        if kind is P.Message:  # the hot path: relay to the partner, nothing else
            self._send(s.partner, P.message(cmd.text))  # type: ignore[arg-type,union-attr]
            self.stats.relayed["message"] += 1
        elif kind is P.Typing:
            self._send(s.partner, P.typing(cmd.active))  # type: ignore[arg-type,union-attr]
            self.stats.relayed["typing"] += 1
        elif kind is P.Signal:
            self._send(s.partner, P.signal(cmd.encoded))  # type: ignore[arg-type,union-attr]
            self.stats.relayed["signal"] += 1
        elif kind is P.Ping:
            self._send(s, P.pong(cmd.t))  # type: ignore[union-attr]
        elif kind is P.Join:
            self._join(s, cmd)  # type: ignore[arg-type]
        elif kind is P.Next:
            self._next(s)
        elif kind is P.Leave:
            self._leave(s, "leave")
        elif kind is P.Report:
            self._report(s)

    def receive_binary(self, s: Session) -> None:
        """A binary frame: refused with bad_json (the protocol carries JSON text frames only)."""
        if s.closed:
            return
        bucket = s.bucket
        if bucket is not None and not bucket.take(self.clock()):
            self._rate_limited(s)
            return
        self._error(s, "bad_json", "binary frames are not accepted: send JSON in text frames")

    # ------------------------------------------------------------ commands
    def _join(self, s: Session, cmd: P.Join) -> None:
        if self.draining:
            self._error(s, "draining", "the server is shutting down: no new chats")
            return
        self._cancel_idle(s)
        effects = self.core.join(s.sid, self.clock(), mode=cmd.mode, lang=cmd.lang, interests=cmd.interests)
        self._apply(effects)
        self._core_timer.arm()

    def _next(self, s: Session) -> None:
        if self.draining:
            self._error(s, "draining", "the server is shutting down: no new chats")
            return
        effects = self.core.next(s.sid, self.clock())
        self._apply(effects)
        self._core_timer.arm()

    def _leave(self, s: Session, reason: str) -> None:
        effects = self.core.leave(s.sid, self.clock(), reason=reason)
        self._set_idle(s)
        self._apply(effects)
        self._core_timer.arm()

    def _report(self, s: Session) -> None:
        reported = s.partner
        self._leave(s, "report")
        if reported is None:
            return
        now = self.clock()
        if self.bans.report(s.address, reported.address, now):
            self._ban(reported.address)

    def _ban(self, address: str) -> None:
        self.stats.bans += 1
        log.info("banning an address after reports")
        for s in list(self.by_address.get(address, ())):
            self._kick(s, CLOSE_POLICY, "banned after reports", partner_reason="banned", error_code="banned")

    # ------------------------------------------------------------ effects
    def _apply(self, effects: list) -> None:
        sessions = self.sessions
        for e in effects:
            kind = type(e)
            if kind is Paired:
                a = sessions.get(e.a)
                b = sessions.get(e.b)
                if a is None or b is None:  # cannot happen: the core forgets users before we do
                    log.error("core paired an unknown session")
                    continue
                a.state = b.state = P.PAIRED
                a.partner, b.partner = b, a
                a.mode = b.mode = e.mode
                self._send(a, P.paired(e.pair_id, e.mode, e.common, e.initiator == e.a))
                self._send(b, P.paired(e.pair_id, e.mode, e.common, e.initiator == e.b))
                stats = self.stats
                stats.pairs[e.mode] = stats.pairs.get(e.mode, 0) + 1
                stats.wait.observe(e.waited_a)
                stats.wait.observe(e.waited_b)
            elif kind is Waiting:
                s = sessions.get(e.user)
                if s is None:
                    continue
                s.state = P.WAITING
                s.partner = None
                s.mode = None
                self._send(s, P.waiting(len(sessions)))
            elif kind is PartnerLeft:
                s = sessions.get(e.user)
                if s is None:
                    continue
                self._set_idle(s)
                self._send(s, P.partner_left(e.reason))
                self.stats.partner_left[e.reason] = self.stats.partner_left.get(e.reason, 0) + 1
            else:  # pragma: no cover - a new effect type in the core
                log.error("unknown effect %r", e)

    def _set_idle(self, s: Session) -> None:
        s.state = P.IDLE
        s.partner = None
        s.mode = None
        if not s.closed:
            self._arm_idle(s)

    # ------------------------------------------------------------ limits
    def _bucket(self, now: float) -> TokenBucket | None:
        st = self.settings
        return TokenBucket(st.rate_limit, st.rate_burst, now) if st.rate_limit > 0 else None

    def _strikes(self, now: float) -> TokenBucket | None:
        st = self.settings
        if st.rate_limit <= 0 or st.abuse_limit <= 0:
            return None
        return TokenBucket(st.abuse_limit / max(st.abuse_window, 1e-9), st.abuse_limit, now)

    def _rate_limited(self, s: Session) -> None:
        strikes = s.strikes
        if strikes is not None and not strikes.take(self.clock()):
            self._kick(s, CLOSE_POLICY, "sustained rate limiting", error_code="rate_limited")
        else:
            self._error(s, "rate_limited", "too many frames: slow down")

    def _arm_idle(self, s: Session) -> None:
        timeout = self.settings.idle_timeout
        if timeout > 0:
            if s.idle_handle is not None:
                s.idle_handle.cancel()
            s.idle_handle = self.loop.call_later(timeout, self._idle_expired, s)

    def _cancel_idle(self, s: Session) -> None:
        if s.idle_handle is not None:
            s.idle_handle.cancel()
            s.idle_handle = None

    def _idle_expired(self, s: Session) -> None:
        s.idle_handle = None
        if not s.closed and s.state == P.IDLE:
            self.stats.idle_timeouts += 1
            self._kick(s, CLOSE_NORMAL, "idle timeout: join to chat")

    # ------------------------------------------------------------ sending and closing
    def _send(self, s: Session, data: bytes) -> None:
        if not s.closed and not s.link.send(data):
            # Never close in the middle of applying effects: do it on the next loop turn.
            self.loop.call_soon(self._kick, s, CLOSE_POLICY, "too slow: output buffer full")

    def _error(self, s: Session, code: str, text: str) -> None:
        self.stats.errors[code] += 1
        self._send(s, P.error(code, text))

    def _kick(self, s: Session, code: int, reason: str, partner_reason: str = "disconnect",
              error_code: str | None = None) -> None:
        """Close a session from the server side; its partner is told `partner_reason`."""
        if s.closed:
            return
        if error_code is not None:
            self._error(s, error_code, reason)
        s.closed = True
        now = self.clock()
        effects = []
        if partner_reason != "disconnect" and s.state != P.IDLE:
            effects = self.core.leave(s.sid, now, reason=partner_reason)
        effects += self.core.disconnect(s.sid, now)
        self._forget(s)
        self._apply(effects)
        self._core_timer.arm()
        s.link.close(code, reason)
        self._count_close(code)

    def _refuse_socket(self, link: Link, code: str, text: str, close_code: int) -> None:
        self.stats.errors[code] += 1
        link.send(P.error(code, text))
        link.close(close_code, text)
        self._count_close(close_code)

    def _count_close(self, code: int) -> None:
        self.stats.closes[code] = self.stats.closes.get(code, 0) + 1

    def _forget(self, s: Session) -> None:
        self._cancel_idle(s)
        if self.sessions.pop(s.sid, None) is None:
            return
        group = self.by_address.get(s.address)
        if group is not None:
            group.discard(s)
            if not group:
                del self.by_address[s.address]
        s.partner = None
        if not self.sessions:
            for fut in self._empty_waiters:
                if not fut.done():
                    fut.set_result(None)
            self._empty_waiters.clear()

    # ------------------------------------------------------------ queries
    @property
    def online(self) -> int:
        return len(self.sessions)

    @property
    def waiting(self) -> int:
        return self.core.waiting_count
