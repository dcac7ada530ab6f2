"""Deliberately faulty chat servers that speak the reference protocol (docs/protocol.md).

They exist so the harness's correctness oracle can be tested against servers that are
known to be wrong in one precise way each (and one that is slow but correct). Written
from the protocol text alone, never by importing the reference server, so a bug shared
by both cannot hide. The matcher follows the protocol's queue rules in a plain way:
compatible means equal `mode` and `lang`; a user with interests needs a shared interest
until its `--fallback-s` (default 5 s) has passed, then anyone compatible (a timer pairs
it then); the queue is scanned oldest first. Deviation: a partner left by `next` is
avoided for 10 s only while someone else is eligible.

Faults (``--fault``):
- ``none``: a plain correct FIFO server (the control).
- ``await_race``: the matcher awaits between picking a waiting user and pairing, so two
  joins that arrive inside that window both get the same partner (double match).
- ``lifo``: the queue is scanned newest first. Unfair but correct: no oracle violation
  (visible only when several compatible users wait at once, e.g. for interests).
- ``leak``: a share (``--rate``) of chat messages goes to a random other chatting user
  instead of the partner (cross-talk).
- ``keep_disconnected``: a user who disconnects while waiting stays in the queue, so live
  users get paired with a closed socket (ghost match).
- ``drop``: a share (``--rate``, default 1%) of chat messages is silently dropped (lost).
- ``slow``: every join waits ``--delay-ms`` before it is matched; correct otherwise.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

FAULTS = ("none", "await_race", "lifo", "leak", "keep_disconnected", "drop", "slow")
DEFAULT_RATE = {"leak": 0.05, "drop": 0.01}
NO_REMATCH_S = 10.0
MAX_FRAME = 8 * 1024


@dataclass(eq=False)
class Session:
    """One WebSocket connection and its chat state."""

    sid: str
    ws: web.WebSocketResponse
    state: str = "idle"  # idle | waiting | paired
    mode: str = "text"
    lang: str = "en"
    interests: frozenset[str] = frozenset()
    partner: "Session | None" = None
    closed: bool = False
    t_wait: float = 0.0  # when it entered the queue (monotonic)
    left_at: dict[str, float] = field(default_factory=dict)  # partner sid -> time we parted by next
    outbox: asyncio.Queue = field(default_factory=asyncio.Queue)  # frames for the writer task


class Hub:
    """All sessions and the waiting queue of one faulty server."""

    def __init__(self, fault: str, rate: float, delay_s: float, seed: int, fallback_s: float = 5.0) -> None:
        self.fault = fault
        self.rate = rate
        self.delay_s = delay_s
        self.fallback_s = fallback_s
        self.rng = random.Random(seed)
        self.sessions: dict[str, Session] = {}
        self.queue: list[Session] = []

    # ---- helpers -------------------------------------------------------------------
    def send(self, s: Session, obj: dict) -> None:
        """Queue a frame for `s`; never yields, so a state change and its frames are atomic.

        Each session's writer task sends its frames in queue order, so no frame can
        overtake one queued before it (e.g. `partner_left` before `paired`).
        """
        if not s.closed:
            s.outbox.put_nowait(json.dumps(obj, separators=(",", ":")))

    def error(self, s: Session, code: str, message: str) -> None:
        self.send(s, {"type": "error", "code": code, "message": message})

    def online(self) -> int:
        return len(self.sessions)

    def _avoids(self, a: Session, b: Session, now: float) -> bool:
        t = a.left_at.get(b.sid)
        u = b.left_at.get(a.sid)
        return any(x is not None and now - x < NO_REMATCH_S for x in (t, u))

    def _needs_share(self, s: Session, now: float) -> bool:
        return bool(s.interests) and now - s.t_wait < self.fallback_s

    def _eligible(self, s: Session, c: Session, now: float) -> bool:
        if c is s or c.mode != s.mode or c.lang != s.lang:
            return False
        if s.interests & c.interests:
            return True
        return not self._needs_share(s, now) and not self._needs_share(c, now)

    def _candidate(self, s: Session) -> Session | None:
        """The waiting user `s` should be paired with (check only; pairing is separate)."""
        order = reversed(self.queue) if self.fault == "lifo" else iter(self.queue)
        now = time.monotonic()
        fallback = None
        for c in order:
            if not self._eligible(s, c, now):
                continue
            if self._avoids(s, c, now):
                fallback = fallback or c
                continue
            return c
        return fallback

    # ---- matching ------------------------------------------------------------------
    async def enqueue(self, s: Session) -> None:
        if self.fault == "slow":
            await asyncio.sleep(self.delay_s)
            if s.closed:
                return
        s.t_wait = time.monotonic()
        cand = self._candidate(s)
        if cand is None:
            if s not in self.queue:
                self.queue.append(s)
            s.state = "waiting"
            if s.interests:
                asyncio.get_running_loop().call_later(self.fallback_s, self._fallback_passed, s, s.t_wait)
            self.send(s, {"type": "waiting", "online": self.online()})
            return
        if self.fault == "await_race":
            # THE BUG: yielding between the check above and the pairing below lets another
            # join pick the same candidate.
            await asyncio.sleep(self.delay_s)
        if cand in self.queue:
            self.queue.remove(cand)
        if s in self.queue:
            self.queue.remove(s)
        self.pair(s, cand)

    def _fallback_passed(self, s: Session, t_wait: float) -> None:
        """Timer: `s` may now be paired with anyone compatible who is waiting."""
        if s.state == "waiting" and s.t_wait == t_wait and s in self.queue and not s.closed:
            cand = self._candidate(s)
            if cand is not None:
                self.queue.remove(cand)
                self.queue.remove(s)
                self.pair(cand, s)

    def link(self, a: Session, b: Session) -> list[tuple[Session, dict]]:
        """Pair `a` (the newcomer) with `b` at once; returns the `paired` frames to send."""
        pair_id = uuid.uuid4().hex[:16]
        a.partner, b.partner = b, a
        a.state = b.state = "paired"
        common = sorted(a.interests & b.interests)
        base = {"type": "paired", "pair": pair_id, "mode": a.mode, "common": common}
        return [(b, {**base, "initiator": True}), (a, {**base, "initiator": False})]

    def notify(self, frames: list[tuple[Session, dict]]) -> None:
        for who, frame in frames:
            self.send(who, frame)

    def pair(self, a: Session, b: Session) -> None:
        self.notify(self.link(a, b))

    async def end_chat(self, s: Session, reason: str) -> None:
        """`s` ends its chat; its partner (if still with `s`) is told why."""
        p = s.partner
        s.partner = None
        s.state = "idle"
        if p is None:
            return
        if reason == "next":
            now = time.monotonic()
            s.left_at[p.sid] = now
            p.left_at[s.sid] = now
        if p.partner is s:
            p.partner = None
            p.state = "idle"
            self.send(p, {"type": "partner_left", "reason": reason})

    # ---- frames --------------------------------------------------------------------
    async def on_frame(self, s: Session, raw: str) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            self.error(s, "bad_json", "frame is not JSON")
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            self.error(s, "bad_json", "frame must be an object with a string type")
            return
        handler = getattr(self, "on_" + msg["type"], None)
        if handler is None:
            self.error(s, "bad_type", f"unknown type {msg['type']!r}")
            return
        await handler(s, msg)

    async def on_ping(self, s: Session, msg: dict) -> None:
        self.send(s, {"type": "pong", "t": msg.get("t")})

    async def on_join(self, s: Session, msg: dict) -> None:
        if s.state != "idle":
            self.error(s, "not_allowed", "join is allowed only when idle")
            return
        mode = msg.get("mode", "text")
        lang = msg.get("lang", "en")
        interests = msg.get("interests", [])
        if mode not in ("text", "video") or not isinstance(lang, str) or not 2 <= len(lang) <= 8:
            self.error(s, "bad_field", "bad mode or lang")
            return
        if not isinstance(interests, list) or len(interests) > 10 or not all(isinstance(i, str) for i in interests):
            self.error(s, "bad_field", "bad interests")
            return
        s.mode, s.lang = mode, lang
        s.interests = frozenset(i.strip().lower() for i in interests if i.strip())
        await self.enqueue(s)

    async def _relay(self, s: Session, msg: dict, kind: str) -> None:
        if s.state != "paired" or s.partner is None:
            self.error(s, "not_allowed", f"{kind} is allowed only when paired")
            return
        target = s.partner
        if kind == "message":
            if self.fault == "drop" and self.rng.random() < self.rate:
                return
            if self.fault == "leak" and self.rng.random() < self.rate:
                others = [x for x in self.sessions.values() if x.state == "paired" and x is not s and x is not s.partner]
                if others:
                    target = self.rng.choice(others)
        out = {"type": kind}
        for key in ("text", "active", "data"):
            if key in msg:
                out[key] = msg[key]
        self.send(target, out)

    async def on_message(self, s: Session, msg: dict) -> None:
        text = msg.get("text")
        if not isinstance(text, str) or not 1 <= len(text) <= 2000:
            self.error(s, "bad_field", "text must be 1-2000 chars")
            return
        await self._relay(s, msg, "message")

    async def on_typing(self, s: Session, msg: dict) -> None:
        if not isinstance(msg.get("active"), bool):
            self.error(s, "bad_field", "active must be a bool")
            return
        await self._relay(s, msg, "typing")

    async def on_signal(self, s: Session, msg: dict) -> None:
        if not isinstance(msg.get("data"), dict):
            self.error(s, "bad_field", "data must be an object")
            return
        if s.mode != "video":
            self.error(s, "not_allowed", "signal needs video mode")
            return
        await self._relay(s, msg, "signal")

    async def on_next(self, s: Session, msg: dict) -> None:
        if s.state == "idle":
            self.error(s, "not_allowed", "next needs a chat or the queue")
            return
        if s.state == "waiting":
            self.send(s, {"type": "waiting", "online": self.online()})
            return
        await self.end_chat(s, "next")
        await self.enqueue(s)

    async def on_leave(self, s: Session, msg: dict) -> None:
        if s.state == "idle":
            self.error(s, "not_allowed", "leave needs a chat or the queue")
            return
        if s in self.queue:
            self.queue.remove(s)
        await self.end_chat(s, "leave")

    async def on_report(self, s: Session, msg: dict) -> None:
        if s.state != "paired":
            self.error(s, "not_allowed", "report needs a chat")
            return
        await self.end_chat(s, "report")

    async def on_disconnect(self, s: Session) -> None:
        s.closed = True
        self.sessions.pop(s.sid, None)
        if s in self.queue and self.fault != "keep_disconnected":
            self.queue.remove(s)
        if s.state == "paired":
            await self.end_chat(s, "disconnect")
        elif self.fault == "keep_disconnected" and s in self.queue:
            s.state = "waiting"  # THE BUG: a closed socket stays matchable


async def write_frames(s: Session) -> None:
    """The only coroutine that writes to `s`'s socket: frames leave in queue order."""
    while True:
        frame = await s.outbox.get()
        if s.ws.closed:
            return
        try:
            await s.ws.send_str(frame)
        except (ConnectionError, RuntimeError):
            return


def build_app(hub: Hub) -> web.Application:
    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME)
        await ws.prepare(request)
        s = Session(sid=uuid.uuid4().hex, ws=ws)
        hub.sessions[s.sid] = s
        writer = asyncio.get_running_loop().create_task(write_frames(s))
        hub.send(s, {"type": "welcome", "protocol": 1, "session": s.sid, "online": hub.online()})
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    await hub.on_frame(s, frame.data)
                elif frame.type == WSMsgType.BINARY:
                    hub.error(s, "bad_json", "binary frames are not allowed")
                else:
                    break
        finally:
            await hub.on_disconnect(s)
            writer.cancel()
        return ws

    async def healthz(request: web.Request) -> web.Response:
        waiting = sum(1 for x in hub.queue if not x.closed)
        return web.json_response({"status": "ok", "online": hub.online(), "waiting": waiting, "fault": hub.fault})

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=f"faulty_online {hub.online()}\n", content_type="text/plain")

    async def close_all(app: web.Application) -> None:
        """On SIGTERM/SIGINT: close every socket so shutdown is quick."""
        for session in list(hub.sessions.values()):
            await session.ws.close(code=1001, message=b"server shutdown")

    app = web.Application()
    app.on_shutdown.append(close_all)
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app
