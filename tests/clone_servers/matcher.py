"""A clone's matchmaking, transport-free: a FIFO queue and partner table, with faults.

Faults (flags, as in tests/faulty_servers): `await_race` awaits between choosing a partner
and recording the pairing (double matches under load); `leak` also relays a share of
messages to a random other chat (cross-talk); `ghost` keeps disconnected users in the
queue (ghost matches). `silent` is not a fault but a missing feature: the partner is never
told that a chat ended.
"""
from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any, Callable

Emit = Callable[[str, str, dict], None]  # (user, kind, fields)


class Matcher:
    def __init__(self, emit: Emit, fault: str = "none", rate: float = 0.0, delay_ms: float = 0.0,
                 silent: bool = False) -> None:
        self.emit = emit
        self.fault = fault
        self.rate = rate
        self.delay = delay_ms / 1000.0
        self.silent = silent
        self.queue: list[str] = []
        self.partner: dict[str, str] = {}
        self.online: set[str] = set()
        self.rooms = itertools.count(1)
        self.rng = random.Random(5)

    def hello(self, uid: str) -> None:
        self.online.add(uid)

    async def find(self, uid: str) -> None:
        if uid in self.partner or uid in self.queue:
            self.emit(uid, "error", {"message": "already searching or chatting"})
            return
        if self.queue and self.fault == "await_race":
            peer = self.queue[0]
            await asyncio.sleep(self.delay)  # the classic bug: check, await, then pair
            if uid in self.partner or uid not in self.online:
                return
            if peer in self.queue:
                self.queue.remove(peer)
            self._pair(uid, peer)
            return
        while self.queue:
            peer = self.queue.pop(0)
            if peer in self.online or self.fault == "ghost":
                self._pair(uid, peer)
                return
        self.queue.append(uid)
        self.emit(uid, "searching", {})

    def _pair(self, a: str, b: str) -> None:
        room = f"room{next(self.rooms)}"
        self.partner[a], self.partner[b] = b, a
        self.emit(a, "matched", {"room": room, "initiator": True})
        self.emit(b, "matched", {"room": room, "initiator": False})

    def chat(self, uid: str, text: str) -> None:
        peer = self.partner.get(uid)
        if peer is None:
            self.emit(uid, "error", {"message": "not in a chat"})
            return
        self.emit(peer, "chat", {"text": text})
        if self.fault == "leak" and self.rng.random() < self.rate:
            others = [u for u in self.partner if u not in (uid, peer)]
            if others:
                self.emit(self.rng.choice(others), "chat", {"text": text})

    def typing(self, uid: str, active: bool) -> None:
        peer = self.partner.get(uid)
        if peer is None:
            self.emit(uid, "error", {"message": "not in a chat"})
            return
        self.emit(peer, "typing", {"active": active})

    def _end(self, uid: str, reason: str) -> None:
        peer = self.partner.pop(uid, None)
        if peer is not None and self.partner.get(peer) == uid:
            del self.partner[peer]
            if not self.silent:
                self.emit(peer, "left", {"reason": reason})

    async def skip(self, uid: str) -> None:
        if uid in self.queue:
            self.emit(uid, "searching", {})
            return
        if uid not in self.partner:
            self.emit(uid, "error", {"message": "not in a chat"})
            return
        self._end(uid, "next")
        await self.find(uid)

    def stop(self, uid: str) -> None:
        if uid in self.queue:
            self.queue.remove(uid)
            return
        if uid not in self.partner:
            self.emit(uid, "error", {"message": "not in a chat"})
            return
        self._end(uid, "leave")

    def gone(self, uid: str) -> None:
        self.online.discard(uid)
        if uid in self.queue and self.fault != "ghost":
            self.queue.remove(uid)
        self._end(uid, "disconnect")


def add_arguments(parser: Any) -> None:
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fault", default="none", choices=["none", "await_race", "leak", "ghost"])
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--silent", action="store_true", help="never tell the partner that a chat ended")
