"""The translation layer of the mapping-driven adapters (jsonws, socketio).

Why separate from the transports: both adapters share what a mapping means (which frames
an action becomes, which event an incoming payload is); only how payloads travel differs.
"""
from __future__ import annotations

import collections
import time
from typing import Any

from harness import protocol_client as pc
from harness.adapters.base import Adapter, Capabilities, Sink
from harness.adapters.mapping import EventMap, action_values, to_reference


class MappedAdapter(Adapter):
    """Actions -> mapped payloads (`_write`), payloads -> reference events (`_deliver`)."""

    def __init__(self, capabilities: Capabilities | None, em: EventMap) -> None:
        super().__init__(capabilities)
        self.em = em
        self.sink: Sink | None = None
        self._prefs: dict[str, Any] = {"mode": "text", "video": False, "interests": [], "lang": "en"}
        self._pings: collections.deque[Any] = collections.deque(maxlen=64)

    # -- transport (subclasses) ---------------------------------------------------------
    def _write(self, payloads: list[Any]) -> bool:
        raise NotImplementedError

    # -- outgoing ------------------------------------------------------------------------
    def send(self, *frames: dict) -> bool:
        em, caps = self.em, self.capabilities
        out: list[Any] = []
        pongs: list[Any] = []
        for frame in frames:
            kind, values = action_values(frame)
            if kind == "message":
                out += em.frames("message", values)
            elif kind == "join":
                self._prefs = values
                out += em.frames("join", values)
            elif kind == "typing":
                if caps.typing:
                    if "typing" in em.send:
                        out += em.frames("typing", values)
                    else:
                        out += em.frames("typing_on" if values["active"] else "typing_off", values)
            elif kind == "signal":
                if caps.video:
                    out += em.frames("signal", values)
            elif kind == "next":
                if "next" in em.send:
                    out += em.frames("next", values)
                else:  # no next on this backend: leave, then join with the same preferences
                    out += em.frames("leave", values) + em.frames("join", self._prefs)
            elif kind == "leave":
                out += em.frames("leave", values)
            elif kind == "report":
                if caps.report:
                    out += em.frames("report", values)
            elif kind == "ping":
                if caps.barrier:
                    out += self._ping_payloads(values)
                else:
                    pongs.append(values["t"])
        ok = self._write(out) if out else True
        if self.sink is not None:
            for t in pongs:
                self.synthetic_pong(t, self.sink)
        return ok

    def _ping_payloads(self, values: dict[str, Any]) -> list[Any]:
        """The barrier's ping as payloads; its pong is matched by value (a transport with
        acknowledgements, like Socket.IO's, overrides this)."""
        self._pings.append(values["t"])
        return self.em.frames("ping", values)

    # -- incoming ------------------------------------------------------------------------
    def translate(self, payload: Any) -> list[pc.Event]:
        """One backend payload -> harness events (none: ignored by the mapping)."""
        r = self.em.classify(payload)
        if r is True:
            return []
        if r is None:
            return [pc.Unexpected(payload, "no [recv] entry of the mapping matches it")]
        frame = to_reference(r, payload, self.proto.mode)
        if r.event == "pong":
            t = frame["t"]
            if t in self._pings:
                self._pings.remove(t)
            elif self._pings:  # a pong that does not echo the value answers the oldest ping
                frame["t"] = self._pings.popleft()
        elif r.event == "welcome":
            return []
        elif r.event == "error" and self._silently_ended(frame):
            # A backend that never says "partner left" tells it by refusing our frames for
            # the chat: that refusal is its partner_left (as when our frame crosses it).
            return [self.proto.receive({"type": "partner_left", "reason": "unknown"}), self.proto.receive(frame)]
        return [self.proto.receive(frame)]

    def _silently_ended(self, frame: dict[str, Any]) -> bool:
        """A `not_allowed` refusal of a chat frame, or of the next/leave that ends it, on a
        backend without partner_left: the chat ended on the other side without a word.
        (Reads ReferenceClient's race bookkeeping; once it saw a partner_left, later
        refusals are already expected there.)"""
        proto = self.proto
        if self.capabilities.partner_left or frame["code"] != "not_allowed" or proto._stale:
            return False
        if proto.state == pc.PAIRED:
            return True  # a chat frame refused
        if proto.state == pc.IDLE:
            return proto._crossing  # our leave (or a frame just before it) refused
        return (proto.state == pc.WAITING and proto._unanswered > 0 and proto._last_queue_action == "next"
                and proto._before[0] == pc.PAIRED)  # our next from the chat refused

    def _deliver(self, payloads: list[Any], sink: Sink) -> None:
        # Frame by frame: each event must reach the sink while the protocol state is the one
        # right after it (see ReferenceAdapter._read_loop).
        now = time.time_ns()
        for p in payloads:
            events = self.translate(p)
            if events:
                sink.on_events(events, now)
