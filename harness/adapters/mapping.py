"""Declarative event mappings shared by the JSON-over-WebSocket and Socket.IO adapters.

Why declarative: a backend team describes its messages in a TOML file (docs/adapters.md),
no code. Outgoing actions are JSON templates whose "$name" strings are replaced by the
action's values; incoming events are recognised by fields and values (`match`) and their
contents are read from dotted paths. Pure data work: no I/O, no clock.

Template values: `$mode` ("text"/"video"), `$video` (bool), `$interests` (list), `$lang`,
`$text`, `$active` (bool), `$data` (signal object), `$t` (ping value), `$reason`. A string
that is exactly "$name" becomes the value itself (any JSON type); "${name}" inside a longer
string is replaced by its text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from harness.adapters.base import Capabilities

SEND_ACTIONS = ("join", "message", "typing", "typing_on", "typing_off", "signal", "next", "leave", "report", "ping")
RECV_EVENTS = ("welcome", "waiting", "paired", "message", "typing", "signal", "partner_left", "pong", "error")
#: Fields each incoming event may read (value: dotted path in the payload, or a constant).
EVENT_FIELDS = {
    "welcome": ("session",),
    "waiting": (),
    "paired": ("pair", "mode", "common", "initiator"),
    "message": ("text",),
    "typing": ("active",),
    "signal": ("data",),
    "partner_left": ("reason",),
    "pong": ("t",),
    "error": ("code", "message"),
}
_VAR = re.compile(r"\$\{(\w+)\}")
_MISSING = object()


def get_path(obj: Any, path: str) -> Any:
    """obj["a"]["b"] for "a.b" ("" or "." is the whole object; digits index lists); _MISSING if absent."""
    if path in ("", "."):
        return obj
    for part in path.split("."):
        if isinstance(obj, dict):
            obj = obj.get(part, _MISSING)
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return _MISSING
        if obj is _MISSING:
            return _MISSING
    return obj


def render(template: Any, values: dict[str, Any]) -> Any:
    """Fill a template with values (see the module docstring)."""
    if isinstance(template, str):
        if template.startswith("$") and template[1:] in values:
            return values[template[1:]]
        if "${" in template:
            return _VAR.sub(lambda m: str(values.get(m.group(1), "")), template)
        return template
    if isinstance(template, dict):
        return {k: render(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, values) for v in template]
    return template


def uses(template: Any, name: str) -> bool:
    """Whether a template mentions $name."""
    if isinstance(template, str):
        return template == f"${name}" or f"${{{name}}}" in template
    if isinstance(template, dict):
        return any(uses(v, name) for v in template.values())
    if isinstance(template, list):
        return any(uses(v, name) for v in template)
    return False


@dataclass
class Recogniser:
    """One way of recognising an incoming event and reading its fields."""

    event: str
    match: dict[str, Any]
    fields: dict[str, Any]  # field -> dotted path (str) or a constant (non-str, or {"const": v})

    def matches(self, payload: Any) -> bool:
        for path, want in self.match.items():
            if get_path(payload, path) != want:
                return False
        return True

    def read(self, payload: Any, name: str, default: Any = None) -> Any:
        spec = self.fields.get(name, _MISSING)
        if spec is _MISSING:
            return default
        if isinstance(spec, dict) and "const" in spec:
            return spec["const"]
        if not isinstance(spec, str):
            return spec
        value = get_path(payload, spec)
        return default if value is _MISSING else value


@dataclass
class EventMap:
    """A validated mapping: outgoing templates and incoming recognisers."""

    send: dict[str, list[Any]]  # action -> frames (templates) sent in order
    recv: list[Recogniser]
    ignore: list[dict[str, Any]] = field(default_factory=list)
    ignore_unknown: bool = False
    #: Which recognised events exist at all (for capabilities).
    events: set[str] = field(default_factory=set)

    def classify(self, payload: Any) -> Recogniser | None | bool:
        """The recogniser for an incoming payload; True when it is to be ignored; None if unknown."""
        for r in self.recv:
            if r.matches(payload):
                return r
        for m in self.ignore:
            if all(get_path(payload, p) == v for p, v in m.items()):
                return True
        return True if self.ignore_unknown else None

    def has_field(self, event: str, name: str) -> bool:
        return any(r.event == event and name in r.fields for r in self.recv)

    def frames(self, action: str, values: dict[str, Any]) -> list[Any]:
        return [render(t, values) for t in self.send.get(action, ())]


def parse_event_map(mapping: dict[str, Any], recv_key: str = "recv") -> EventMap:
    """Validate the [send] and [recv] tables of a mapping (unknown names are errors)."""
    send_table = mapping.get("send") or {}
    unknown = set(send_table) - set(SEND_ACTIONS)
    if unknown:
        raise ValueError(f"unknown [send] actions {sorted(unknown)}; known: {', '.join(SEND_ACTIONS)}")
    send = {k: (v if isinstance(v, list) else [v]) for k, v in send_table.items()}
    if "join" not in send or "message" not in send:
        raise ValueError("[send] must define at least join and message")
    recv_table = mapping.get(recv_key) or {}
    recv: list[Recogniser] = []
    ignore: list[dict[str, Any]] = []
    ignore_unknown = False
    for name, spec in recv_table.items():
        if name == "ignore":
            ignore = [dict(m) for m in (spec if isinstance(spec, list) else [spec])]
            continue
        if name == "ignore_unknown":
            ignore_unknown = bool(spec)
            continue
        if name not in RECV_EVENTS:
            raise ValueError(f"unknown [recv] event {name!r}; known: {', '.join(RECV_EVENTS)}, ignore, ignore_unknown")
        for one in spec if isinstance(spec, list) else [spec]:
            one = dict(one)
            match = one.pop("match", None)
            if not isinstance(match, dict) or not match:
                raise ValueError(f"[recv.{name}] needs a non-empty match table (fields and values that recognise it)")
            bad = set(one) - set(EVENT_FIELDS[name])
            if bad:
                raise ValueError(f"[recv.{name}] has unknown fields {sorted(bad)}; it may read {EVENT_FIELDS[name]}")
            recv.append(Recogniser(name, match, one))
    for needed in ("paired", "message"):
        if not any(r.event == needed for r in recv):
            raise ValueError(f"[recv] must recognise at least paired and message (missing {needed})")
    return EventMap(send, recv, ignore, ignore_unknown, {r.event for r in recv})


def derive_capabilities(em: EventMap, table: dict[str, Any] | None, provides: tuple[str, ...] = ()) -> Capabilities:
    """What the mapping shows the backend can do; an explicit [capabilities] table can only
    take things away (or set barrier_delay_s). `provides`: capabilities the transport adds
    beyond the tables (Socket.IO's acknowledged ping is a barrier with no pong event)."""
    send = em.send
    join = send["join"]
    caps = Capabilities(
        interests=uses(join, "interests"),
        lang=uses(join, "lang"),
        video=("signal" in send and "signal" in em.events and em.has_field("paired", "initiator")
               and (uses(join, "mode") or uses(join, "video"))),
        typing="typing" in send or ("typing_on" in send and "typing_off" in send),
        next="next" in send or "leave" in send,  # else: leave + join
        leave="leave" in send,
        report="report" in send,
        partner_left="partner_left" in em.events,
        partner_left_reason=em.has_field("partner_left", "reason"),
        pair_id=em.has_field("paired", "pair"),
        initiator=em.has_field("paired", "initiator"),
        waiting="waiting" in em.events,
        barrier="ping" in send and ("pong" in em.events or "barrier" in provides),
    )
    table = dict(table or {})
    for key, value in table.items():
        if isinstance(value, bool) and value and not getattr(caps, key, False):
            raise ValueError(f"capability {key} = true, but the mapping has no way to do it")
    return Capabilities.from_table(table, caps)


def to_reference(r: Recogniser, payload: Any, mode: str) -> dict[str, Any]:
    """The reference-protocol frame for a recognised incoming event (fed to ReferenceClient)."""
    ev = r.event
    if ev == "message":
        text = r.read(payload, "text")
        return {"type": "message", "text": text}
    if ev == "paired":
        common = r.read(payload, "common") or []
        pair = r.read(payload, "pair", "")
        return {"type": "paired", "pair": "" if pair is None else str(pair), "mode": r.read(payload, "mode", mode),
                "common": list(common) if isinstance(common, (list, tuple)) else [], "initiator":
                bool(r.read(payload, "initiator", False))}
    if ev == "typing":
        return {"type": "typing", "active": bool(r.read(payload, "active", True))}
    if ev == "signal":
        return {"type": "signal", "data": r.read(payload, "data")}
    if ev == "partner_left":
        reason = r.read(payload, "reason", "unknown")
        return {"type": "partner_left", "reason": str(reason)}
    if ev == "waiting":
        return {"type": "waiting", "online": -1}
    if ev == "pong":
        return {"type": "pong", "t": r.read(payload, "t")}
    if ev == "error":
        return {"type": "error", "code": str(r.read(payload, "code", "not_allowed")),
                "message": str(r.read(payload, "message", ""))}
    return {"type": "welcome", "session": str(r.read(payload, "session", "")), "online": -1}


def action_values(frame: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A reference action frame -> (action name, template values)."""
    kind = frame["type"]
    if kind == "join":
        mode = frame.get("mode", "text")
        return kind, {"mode": mode, "video": mode == "video", "interests": frame.get("interests", []),
                      "lang": frame.get("lang", "en")}
    if kind == "message":
        return kind, {"text": frame["text"]}
    if kind == "typing":
        return kind, {"active": frame["active"]}
    if kind == "signal":
        return kind, {"data": frame["data"]}
    if kind == "report":
        return kind, {"reason": frame.get("reason", "")}
    if kind == "ping":
        return kind, {"t": frame.get("t")}
    return kind, {}
