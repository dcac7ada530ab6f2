"""The reference protocol, client side, without I/O: actions in -> frames out, frames in -> events out.

Why sans-I/O: the same state machine drives the Locust users (gevent), the benchmarks and
the tests, and adapters for other backends (issue 8) produce the same events, so users
never touch wire details. Nothing here touches a socket or a clock.

State (from this client's point of view): idle -> join -> waiting -> paired; `next` goes
back to waiting, `leave`/`report` to idle, `partner_left` to idle. An action that is not
legal in the current state raises `LocalProtocolError` before anything is sent: that is a
bug in the harness user, never the backend's fault.

Races the backend cannot avoid are not blamed on it. When the partner ends the chat while
our own `message`/`next`/`leave`/... is in flight, the server answers those frames with
`error not_allowed`; such errors arriving between `partner_left` and the answer to our
next `join` are marked `expected=True`. A `paired` that crosses our own `leave` comes out
as `Paired(..., ghost=True)` with the state left idle (the server ends that chat when it
reads the leave); frames of a chat we ended may arrive until the server has answered our
next join/next, and are not anomalies.

Frames the client cannot interpret (unknown `type`, missing fields) come out as
`Unexpected` events; well-formed frames that make no sense in the current state (e.g.
`paired` while already paired, `message` while idle) come out as their normal event and
are also noted in `anomalies` (kind -> count) and `last_anomaly`, for the oracle.

A refused `join` or `next` (any error while its `waiting`/`paired` answer is due, e.g.
rate_limited, banned, draining) takes the local transition back and is reported as
`Error(..., refused="join"|"next")`. `waiting` and `paired` from the server always set the
state (the server is authoritative about its queue).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Union

IDLE = "idle"
WAITING = "waiting"
PAIRED = "paired"

MODES = ("text", "video")
TEXT_MAX_CHARS = 2000
REASON_MAX_CHARS = 200
MAX_INTERESTS = 10


# -- events (server -> harness) -----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Welcome:
    session: str
    online: int


@dataclass(frozen=True, slots=True)
class Waiting:
    online: int


@dataclass(frozen=True, slots=True)
class Paired:
    pair_id: str
    mode: str
    common: tuple[str, ...]
    initiator: bool
    ghost: bool = False  # crossed our own `leave`: the server ends it when it reads the leave; do not chat


@dataclass(frozen=True, slots=True)
class Message:
    text: str


@dataclass(frozen=True, slots=True)
class Typing:
    active: bool


@dataclass(frozen=True, slots=True)
class Signal:
    data: dict


@dataclass(frozen=True, slots=True)
class PartnerLeft:
    reason: str


@dataclass(frozen=True, slots=True)
class Pong:
    t: Any


@dataclass(frozen=True, slots=True)
class Error:
    code: str
    message: str
    expected: bool = False  # True: a refusal caused by a race with the partner, not a backend fault
    refused: str | None = None  # the local action taken back because of this error ("join"/"next")


@dataclass(frozen=True, slots=True)
class Unexpected:
    """A frame this client cannot interpret: the backend's fault."""

    frame: Any
    reason: str


Event = Union[Welcome, Waiting, Paired, Message, Typing, Signal, PartnerLeft, Pong, Error, Unexpected]


class LocalProtocolError(Exception):
    """The harness tried an action the protocol forbids in the current state (a harness bug)."""


# -- the state machine --------------------------------------------------------------------
@dataclass
class ReferenceClient:
    """One session's protocol state. Builders return the frame (a dict) to send; `receive`
    turns one decoded server frame into one event and updates the state."""

    check_fields: bool = True
    state: str = IDLE
    session: str | None = None
    online: int | None = None
    mode: str = "text"
    pair_id: str | None = None
    initiator: bool = False
    chats: int = 0  # how many times this session got a (non-ghost) `paired`
    anomalies: Counter = field(default_factory=Counter)
    last_anomaly: str | None = None
    # Race bookkeeping (the server reads our frames in order and answers in order):
    _unanswered: int = 0  # join/next sent whose waiting/paired/error answer has not arrived
    _before: tuple[str, str | None] = (IDLE, None)  # state and pair before the last join/next
    _last_queue_action: str | None = None  # "join" or "next", for refusals
    _crossing: bool = False  # we ended a chat or left the queue: frames of that chat may still arrive
    _requeue: bool = False  # next sent while waiting: a `paired` may cross it, then its answer follows
    _stale: bool = False  # partner_left seen: our in-flight frames get not_allowed (expected)

    # -- actions ------------------------------------------------------------------------
    def _require(self, action: str, *states: str) -> None:
        if self.state not in states:
            raise LocalProtocolError(f"{action} is not allowed while {self.state} (allowed: {', '.join(states)})")

    def _queue_action(self, action: str) -> None:
        self._before = (self.state, self.pair_id)
        self._last_queue_action = action
        self._unanswered += 1
        self.state = WAITING
        self.pair_id = None

    def join(self, mode: str = "text", interests: Iterable[str] = (), lang: str = "en") -> dict:
        self._require("join", IDLE)
        interests = list(interests)
        if self.check_fields:
            if mode not in MODES:
                raise LocalProtocolError(f"mode {mode!r} is not one of {MODES}")
            if len(interests) > MAX_INTERESTS:
                raise LocalProtocolError(f"{len(interests)} interests, at most {MAX_INTERESTS}")
            if not 2 <= len(lang) <= 8:
                raise LocalProtocolError(f"lang {lang!r} must be 2-8 chars")
        self.mode = mode
        self._queue_action("join")
        return {"type": "join", "mode": mode, "interests": interests, "lang": lang}

    def message(self, text: str) -> dict:
        if self.state != PAIRED:
            self._require("message", PAIRED)
        if self.check_fields and not 1 <= len(text) <= TEXT_MAX_CHARS:
            raise LocalProtocolError(f"message text of {len(text)} chars, must be 1-{TEXT_MAX_CHARS}")
        return {"type": "message", "text": text}

    def typing(self, active: bool) -> dict:
        self._require("typing", PAIRED)
        return {"type": "typing", "active": bool(active)}

    def signal(self, data: dict) -> dict:
        self._require("signal", PAIRED)
        if self.mode != "video":
            raise LocalProtocolError("signal is only allowed in a video chat")
        if not isinstance(data, dict):
            raise LocalProtocolError("signal data must be a JSON object")
        return {"type": "signal", "data": data}

    def next(self) -> dict:
        self._require("next", PAIRED, WAITING)
        self._requeue = self.state == WAITING
        self._crossing = True
        self._queue_action("next")
        return {"type": "next"}

    def leave(self) -> dict:
        self._require("leave", PAIRED, WAITING)
        self._crossing = True
        self._requeue = False
        self.state = IDLE
        self.pair_id = None
        return {"type": "leave"}

    def report(self, reason: str = "") -> dict:
        self._require("report", PAIRED)
        if self.check_fields and len(reason) > REASON_MAX_CHARS:
            raise LocalProtocolError(f"report reason of {len(reason)} chars, at most {REASON_MAX_CHARS}")
        self._crossing = True
        self.state = IDLE
        self.pair_id = None
        return {"type": "report", "reason": reason}

    def ping(self, t: Any) -> dict:
        return {"type": "ping", "t": t}

    # -- server frames ------------------------------------------------------------------
    def _anomaly(self, kind: str) -> None:
        self.anomalies[kind] += 1
        self.last_anomaly = kind

    def _answered(self) -> None:
        """A join/next got its answer: everything we sent before it has been read by the server."""
        if self._unanswered > 0:
            self._unanswered -= 1
        if self._unanswered == 0:
            self._crossing = False
            self._stale = False

    def receive(self, frame: Any) -> Event:
        """One decoded server frame in, one event out."""
        self.last_anomaly = None
        try:
            kind = frame["type"]
            if kind == "message":  # the hot path first
                text = frame["text"]
                if type(text) is not str:
                    return Unexpected(frame, "message text is not a string")
                if self.state != PAIRED and not self._crossing:
                    self._anomaly("message_while_" + self.state)
                return Message(text)
            handler = _HANDLERS.get(kind)
        except (TypeError, KeyError) as exc:
            return Unexpected(frame, f"malformed frame: {exc!r}")
        if handler is None:
            return Unexpected(frame, f"unknown type {kind!r}")
        try:
            return handler(self, frame)
        except (TypeError, KeyError, ValueError) as exc:
            return Unexpected(frame, f"malformed {kind}: {exc!r}")

    def receive_many(self, frames: Iterable[Any]) -> list[Event]:
        return [self.receive(f) for f in frames]

    def _on_welcome(self, f: dict) -> Event:
        if self.session is not None:
            self._anomaly("welcome_twice")
        if f.get("protocol", 1) != 1:
            return Unexpected(f, f"protocol version {f.get('protocol')!r}, expected 1")
        self.session = str(f["session"])
        self.online = int(f["online"])
        return Welcome(self.session, self.online)

    def _on_waiting(self, f: dict) -> Event:
        online = int(f["online"])
        due = self._unanswered > 0
        if self.state == IDLE:
            if not due:  # legit only as the answer to a join/next our leave overtook
                self._anomaly("waiting_while_idle")
            self._answered()
            if due:
                # Our leave overtook that join: the server has not read the leave yet, so a
                # pairing (or a refusal) crossing it may still come.
                self._crossing = True
            self._requeue = False
            self.online = online
            return Waiting(online)
        elif self.state == PAIRED and not self._requeue:
            self._anomaly("waiting_while_paired")
        else:
            self.state = WAITING
            self.pair_id = None
        self._requeue = False
        self._answered()
        self.online = online
        return Waiting(online)

    def _on_paired(self, f: dict) -> Event:
        initiator = f["initiator"]
        if type(initiator) is not bool:
            raise TypeError("initiator is not a bool")
        pair_id = str(f["pair"])
        mode = str(f.get("mode", self.mode))
        common = tuple(f.get("common") or ())
        if self.state == IDLE:
            # A pairing that crossed our own leave (the server ends it when it reads the leave).
            if not (self._crossing or self._unanswered):
                self._anomaly("paired_while_idle")
            if self._unanswered:
                self._answered()
                self._crossing = True  # frames of this ghost chat may still arrive
            return Paired(pair_id, mode, common, initiator, ghost=True)
        if self.state == PAIRED:
            if self._requeue:
                self._requeue = False  # the first one crossed our next; this is its answer
            else:
                self._anomaly("paired_while_paired")
        self._answered()
        self.state = PAIRED
        self.pair_id = pair_id
        self.mode = mode
        self.initiator = initiator
        self.chats += 1
        return Paired(pair_id, mode, common, initiator)

    def _on_typing(self, f: dict) -> Event:
        if self.state != PAIRED and not self._crossing:
            self._anomaly("typing_while_" + self.state)
        return Typing(bool(f["active"]))

    def _on_signal(self, f: dict) -> Event:
        data = f["data"]
        if not isinstance(data, dict):
            raise TypeError("signal data is not an object")
        if self.state != PAIRED and not self._crossing:
            self._anomaly("signal_while_" + self.state)
        return Signal(data)

    def _on_partner_left(self, f: dict) -> Event:
        reason = str(f["reason"])
        if self.state != PAIRED and not self._crossing:
            # Legit only while paired, or when our own next/leave/report crossed the
            # partner's (the server ended the chat first; our frame will be refused).
            self._anomaly("partner_left_while_" + self.state)
        self.state = IDLE
        self.pair_id = None
        self._stale = True
        self._requeue = False
        self._unanswered = 0  # a crossing next is refused with not_allowed (expected below)
        return PartnerLeft(reason)

    def _on_pong(self, f: dict) -> Event:
        return Pong(f["t"])

    def _on_error(self, f: dict) -> Event:
        code = str(f["code"])
        message = str(f.get("message", ""))
        if self._stale and code == "not_allowed":
            return Error(code, message, expected=True)
        if self._unanswered and self.state == WAITING:
            # Taken as the refusal of our last join/next (rate_limited, banned, draining,
            # ...): the server kept its state, so take the local transition back.
            refused = self._last_queue_action
            self.state, self.pair_id = self._before
            self._answered()
            if code == "not_allowed":
                self._anomaly(f"{refused}_not_allowed")
            return Error(code, message, refused=refused)
        return Error(code, message)


_HANDLERS = {
    "welcome": ReferenceClient._on_welcome,
    "waiting": ReferenceClient._on_waiting,
    "paired": ReferenceClient._on_paired,
    "typing": ReferenceClient._on_typing,
    "signal": ReferenceClient._on_signal,
    "partner_left": ReferenceClient._on_partner_left,
    "pong": ReferenceClient._on_pong,
    "error": ReferenceClient._on_error,
}
