"""The reference chat protocol, version 1, without I/O: frames in, typed commands out.

`parse(raw, state, mode)` turns one client text frame into a command or raises
`ProtocolError` carrying the wire error code. Checks run in a fixed order, so a frame
that breaks several rules always gets the same answer:
bad_json -> bad_type -> not_allowed (the state table) -> bad_field.
The encoders build server frames as UTF-8 JSON bytes with orjson.

Which client frame is allowed in which session state is the table `ALLOWED`; the docs
draw their state table from it (`state_table_markdown`).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import orjson

PROTOCOL_VERSION = 1

IDLE = "idle"
WAITING = "waiting"
PAIRED = "paired"
STATES: tuple[str, ...] = (IDLE, WAITING, PAIRED)

MODES = ("text", "video")
MAX_INTERESTS = 10
INTEREST_MAX_CHARS = 32
LANG_MIN_CHARS = 2
LANG_MAX_CHARS = 8
TEXT_MAX_CHARS = 2000
SIGNAL_MAX_BYTES = 4096
REASON_MAX_CHARS = 200

ERROR_CODES = ("bad_json", "bad_type", "bad_field", "not_allowed", "rate_limited", "banned", "draining")
PARTNER_LEFT_REASONS = ("next", "leave", "disconnect", "report", "banned")

# type -> states in which the frame is accepted. `signal` additionally needs a video pair.
ALLOWED: dict[str, frozenset[str]] = {
    "join": frozenset({IDLE}),
    "message": frozenset({PAIRED}),
    "typing": frozenset({PAIRED}),
    "signal": frozenset({PAIRED}),
    "next": frozenset({WAITING, PAIRED}),
    "leave": frozenset({WAITING, PAIRED}),
    "report": frozenset({PAIRED}),
    "ping": frozenset(STATES),
}
VIDEO_ONLY: frozenset[str] = frozenset({"signal"})


class ProtocolError(Exception):
    """A refused client frame: `code` is the wire error code, `message` human-readable text."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Join(NamedTuple):
    mode: str
    lang: str
    interests: tuple[str, ...]


class Message(NamedTuple):
    text: str


class Typing(NamedTuple):
    active: bool


class Signal(NamedTuple):
    data: dict
    encoded: bytes  # the data as sent on, encoded once while checking its size


class Next(NamedTuple):
    pass


class Leave(NamedTuple):
    pass


class Report(NamedTuple):
    reason: str


class Ping(NamedTuple):
    t: Any


Command = Join | Message | Typing | Signal | Next | Leave | Report | Ping
_NEXT = Next()
_LEAVE = Leave()


def allowed(kind: str, state: str, mode: str | None) -> bool:
    """Whether a frame of type `kind` is accepted in `state` (with the pair's `mode` when paired)."""
    states = ALLOWED.get(kind)
    if states is None or state not in states:
        return False
    return kind not in VIDEO_ONLY or mode == "video"


def parse(raw: str | bytes, state: str, mode: str | None = None) -> Command:
    """Parse and check one client text frame for a session in `state`; raise ProtocolError if refused."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ProtocolError("bad_json", "the frame is not valid JSON") from None
    if type(obj) is not dict:
        raise ProtocolError("bad_json", "the frame must be a JSON object")
    kind = obj.get("type")
    if type(kind) is not str or kind not in ALLOWED:
        raise ProtocolError("bad_type", f"unknown frame type {kind!r}"[:120])
    if not allowed(kind, state, mode):
        if kind in VIDEO_ONLY and state == PAIRED:
            raise ProtocolError("not_allowed", f"{kind} is only allowed in a video chat")
        raise ProtocolError("not_allowed", f"{kind} is not allowed while {state}")
    return _VALIDATORS[kind](obj)


def _bad(message: str) -> ProtocolError:
    return ProtocolError("bad_field", message)


def _join(obj: dict) -> Join:
    mode = obj.get("mode", "text")
    if type(mode) is not str or mode not in MODES:
        raise _bad('mode must be "text" or "video"')
    lang = obj.get("lang", "en")
    if type(lang) is not str:
        raise _bad("lang must be a string")
    lang = lang.strip().lower()
    if not LANG_MIN_CHARS <= len(lang) <= LANG_MAX_CHARS:
        raise _bad(f"lang must be {LANG_MIN_CHARS}-{LANG_MAX_CHARS} characters")
    raw_interests = obj.get("interests", [])
    if type(raw_interests) is not list:
        raise _bad("interests must be a list of strings")
    if len(raw_interests) > MAX_INTERESTS:
        raise _bad(f"at most {MAX_INTERESTS} interests")
    interests: list[str] = []
    for item in raw_interests:
        if type(item) is not str:
            raise _bad("interests must be strings")
        word = item.strip().lower()
        if not 1 <= len(word) <= INTEREST_MAX_CHARS:
            raise _bad(f"each interest must be 1-{INTEREST_MAX_CHARS} characters after trimming")
        if word not in interests:
            interests.append(word)
    return Join(mode, lang, tuple(interests))


def _message(obj: dict) -> Message:
    text = obj.get("text")
    if type(text) is not str or not 1 <= len(text) <= TEXT_MAX_CHARS:
        raise _bad(f"text must be a string of 1-{TEXT_MAX_CHARS} characters")
    return Message(text)


def _typing(obj: dict) -> Typing:
    active = obj.get("active")
    if type(active) is not bool:
        raise _bad("active must be true or false")
    return Typing(active)


def _signal(obj: dict) -> Signal:
    data = obj.get("data")
    if type(data) is not dict:
        raise _bad("data must be a JSON object")
    encoded = orjson.dumps(data)
    if len(encoded) > SIGNAL_MAX_BYTES:
        raise _bad(f"data must be at most {SIGNAL_MAX_BYTES} bytes encoded")
    return Signal(data, encoded)


def _report(obj: dict) -> Report:
    reason = obj.get("reason", "")
    if type(reason) is not str or len(reason) > REASON_MAX_CHARS:
        raise _bad(f"reason must be a string of at most {REASON_MAX_CHARS} characters")
    return Report(reason)


_VALIDATORS = {
    "join": _join,
    "message": _message,
    "typing": _typing,
    "signal": _signal,
    "next": lambda obj: _NEXT,
    "leave": lambda obj: _LEAVE,
    "report": _report,
    "ping": lambda obj: Ping(obj.get("t")),
}


# ---- server frames -------------------------------------------------------------------
_dumps = orjson.dumps
_MESSAGE_HEAD = b'{"type":"message","text":'
_SIGNAL_HEAD = b'{"type":"signal","data":'
TYPING_TRUE = b'{"type":"typing","active":true}'
TYPING_FALSE = b'{"type":"typing","active":false}'


def welcome(session: str, online: int) -> bytes:
    return _dumps({"type": "welcome", "protocol": PROTOCOL_VERSION, "session": session, "online": online})


def waiting(online: int) -> bytes:
    return _dumps({"type": "waiting", "online": online})


def paired(pair: str, mode: str, common: tuple[str, ...] | list[str], initiator: bool) -> bytes:
    return _dumps({"type": "paired", "pair": pair, "mode": mode, "common": list(common), "initiator": initiator})


def message(text: str) -> bytes:
    return _MESSAGE_HEAD + _dumps(text) + b"}"


def typing(active: bool) -> bytes:
    return TYPING_TRUE if active else TYPING_FALSE


def signal(encoded_data: bytes) -> bytes:
    return _SIGNAL_HEAD + encoded_data + b"}"


def partner_left(reason: str) -> bytes:
    return _dumps({"type": "partner_left", "reason": reason})


def pong(t: Any) -> bytes:
    return _dumps({"type": "pong", "t": t})


def error(code: str, text: str) -> bytes:
    return _dumps({"type": "error", "code": code, "message": text})


def state_table_markdown() -> str:
    """The ALLOWED table as Markdown, for docs/protocol.md."""
    lines = ["| type | " + " | ".join(STATES) + " |", "|---|" + "---|" * len(STATES)]
    for kind, states in ALLOWED.items():
        marks = []
        for s in STATES:
            ok = s in states
            marks.append(("yes (video only)" if kind in VIDEO_ONLY else "yes") if ok else "not_allowed")
        lines.append(f"| `{kind}` | " + " | ".join(marks) + " |")
    return "\n".join(lines)
