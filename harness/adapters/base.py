"""The adapter seam: how a virtual user talks to a backend, whatever its wire protocol.

Why this shape: users (harness/users.py), the ledger and the oracle only know the
reference protocol's *actions* and *events*. An adapter translates both ways and nothing
else, so the behaviour model, the metrics and the correctness checks run unchanged over
every backend.

- Actions go out as reference-protocol frames built by the sans-I/O state machine
  (`self.proto`, a `harness.protocol_client.ReferenceClient`): `join`, `message`,
  `typing`, `signal`, `next`, `leave`, `report`, `ping`. The state machine refuses an
  action that is illegal in the current state (a harness bug), so adapters never see
  one. `send(*frames)` puts them on the wire in the backend's own shape; the convenience
  methods `join(...)`, `message(...)`, ... build and send in one call.
- Events come in as the same event classes `ReferenceClient.receive` returns (Welcome,
  Waiting, Paired, Message, Typing, Signal, PartnerLeft, Pong, Error, Unexpected).
  Adapters for other protocols build reference-shaped frames from what the backend sent
  and feed them to `self.proto.receive`, which keeps the state and the race bookkeeping
  (crossing next/leave, expected refusals) identical for every backend.
- Delivery is pushed: after `connect`, the adapter's own greenlet(s) call
  `sink.on_events(events, now_ns)` with each batch as it arrives (timestamped once per
  batch), and `sink.on_lost(exc)` once if the connection dies under the user.
- `capabilities` says what the backend can do. Users never send what it lacks (the
  adapter drops unsupported typing/signal frames, users adapt preferences and endings),
  and the report lists the checks that could not be made (`unchecked`).
- The barrier: right after its own next/leave a user sends `ping {"b": N}` and waits for
  the matching `pong`, proof that the server processed the end. A backend without ping
  gets a synthetic `Pong` after `capabilities.barrier_delay_s` (an approximation, named
  in the report).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import gevent

from harness import protocol_client as pc

#: Every capability a backend may lack, with what the harness does about it.
CAPABILITY_DOCS = {
    "interests": "users join without interests",
    "lang": "users join without a language (the backend has one pool)",
    "video": "users join in text mode only (no signal frames)",
    "typing": "typing indicators are not sent",
    "next": "next is done as leave + join (or the adapter's own emulation)",
    "leave": "leaving a chat or the queue closes the connection instead",
    "report": "report is never sent",
    "partner_left": "the backend never tells a user that the partner left",
    "partner_left_reason": "partner_left carries no reason",
    "pair_id": "paired carries no pair id",
    "initiator": "paired does not say which member starts video signalling",
    "waiting": "the backend does not confirm a join with a waiting event",
    "barrier": "no ping/pong: the end of a chat is confirmed after a fixed delay",
}


#: Capabilities that are numbers, not true/false.
_NUMBERS = frozenset({"barrier_delay_s", "max_frames_per_s", "max_burst"})


@dataclass(frozen=True)
class Capabilities:
    """What the backend supports; a mapping file sets these (default: everything)."""

    interests: bool = True
    lang: bool = True
    video: bool = True
    typing: bool = True
    next: bool = True
    leave: bool = True
    report: bool = True
    partner_left: bool = True
    partner_left_reason: bool = True
    pair_id: bool = True
    initiator: bool = True
    waiting: bool = True
    barrier: bool = True
    #: Without a ping barrier: how long after our own next/leave frames of the old chat are legal.
    barrier_delay_s: float = 0.5
    #: The harness never sends faster than this per connection (0: no pacing). A server may
    #: refuse frames over its rate limit (the reference server: 20/s, bursts of 40), and a
    #: refused token, next or leave leaves the two ends of a chat disagreeing: a correct
    #: client stays under the limit, so the oracle never has to guess.
    max_frames_per_s: float = 16.0
    #: Frames the harness may send at once before pacing starts.
    max_burst: float = 20.0

    def missing(self) -> list[str]:
        """Names of the capabilities the backend lacks, in a stable order."""
        return [name for name in CAPABILITY_DOCS if not getattr(self, name)]

    def replace(self, **changes: Any) -> Capabilities:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_table(cls, table: dict[str, Any] | None, base: Capabilities | None = None) -> Capabilities:
        """Build from a mapping's `[capabilities]` table; unknown keys are an error (typos)."""
        base = base or cls()
        table = dict(table or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(table) - names
        if unknown:
            raise ValueError(f"unknown capabilities {sorted(unknown)}; known: {sorted(names)}")
        for key, value in table.items():
            if key in _NUMBERS:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ValueError(f"capability {key!r} must be a number >= 0, not {value!r}")
                table[key] = float(value)
            elif not isinstance(value, bool):
                raise ValueError(f"capability {key!r} must be true or false, not {value!r}")
        return dataclasses.replace(base, **table)


class Pacer:
    """A token bucket on the sending side: how long to wait before sending n frames so the
    connection stays under `rate` frames a second with bursts of at most `burst`.

    Sans-I/O (the caller passes `now` and sleeps): tokens are reserved at once, so callers
    that wait are served in the order they asked."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.tokens = self.burst
        self.t: float | None = None

    def delay(self, n: int, now: float) -> float:
        """Reserve n frames; seconds to wait before sending them (0: send now)."""
        if self.t is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def wait(self, n: int, now: float) -> float:
        """Seconds until n frames could go, without reserving them."""
        tokens = self.tokens if self.t is None else min(self.burst, self.tokens + (now - self.t) * self.rate)
        return 0.0 if tokens >= n else (n - tokens) / self.rate

    @classmethod
    def of(cls, caps: "Capabilities", scale: float = 1.0) -> "Pacer | None":
        """The backend's pacing; `scale` multiplies rate and burst (a run at time scale K
        runs every benign rate K times faster, and its embedded server allows K times more)."""
        if caps.max_frames_per_s <= 0:
            return None
        return cls(caps.max_frames_per_s * scale, caps.max_burst * scale)


class ConnectionLost(Exception):
    """The backend's connection ended under the user (not by our own close)."""

    def __init__(self, code: int | None = None, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"connection lost (code={self.code}): {self.reason}"


class Sink(Protocol):
    """Where an adapter delivers what the backend sent (a virtual user)."""

    def on_events(self, events: list[Any], now_ns: int) -> None: ...

    def on_lost(self, exc: BaseException) -> None:
        """Called once when delivery stops for a reason other than our own close():
        `ConnectionLost` for the backend/network, any other exception for a harness bug."""


class Adapter:
    """One virtual user's connection to a backend. Subclasses implement the wire part:
    `connect`, `send` and `close`, and set `capabilities`."""

    name = "base"

    def __init__(self, capabilities: Capabilities | None = None) -> None:
        self.capabilities = capabilities or Capabilities()
        self.proto = pc.ReferenceClient()
        self.closing = False
        self._timers: list[gevent.Greenlet] = []

    # -- the wire part (subclasses) ---------------------------------------------------
    def connect(self, url: str, timeout: float, sink: Sink) -> None:
        """Open a session at `url` (the run's target), within `timeout` seconds. Returns once
        the backend accepted it; from then on events are pushed to `sink`. Raises on failure."""
        raise NotImplementedError

    def send(self, *frames: dict) -> bool:
        """Put reference-shaped action frames on the wire, in order (one write where
        possible). False when the connection is gone."""
        raise NotImplementedError

    def close(self, graceful: bool = True) -> None:
        """End the session. graceful: a clean close (the backend sees a disconnect);
        otherwise drop it at once (a crash, or the run is ending). Never raises."""
        raise NotImplementedError

    # -- what users adapt to ----------------------------------------------------------
    def adapt_preferences(self, mode: str, lang: str, interests: list[str]) -> tuple[str, str, list[str]]:
        """The preferences a user can actually join with on this backend."""
        caps = self.capabilities
        if not caps.video:
            mode = "text"
        if not caps.interests:
            interests = []
        return mode, lang, interests

    def ending(self, how: str) -> str:
        """How a user's wish to end ("next", "leave", "disconnect") is done on this backend."""
        caps = self.capabilities
        if how == "next" and not caps.next:
            how = "leave"
        if how == "leave" and not caps.leave:
            how = "disconnect"
        return how

    # -- actions (build with the state machine, then send) -----------------------------
    def join(self, mode: str = "text", interests: list[str] | tuple[str, ...] = (), lang: str = "en") -> bool:
        return self.send(self.proto.join(mode, interests, lang))

    def message(self, text: str) -> bool:
        return self.send(self.proto.message(text))

    def typing(self, active: bool) -> bool:
        return self.send(self.proto.typing(active))

    def signal(self, data: dict) -> bool:
        return self.send(self.proto.signal(data))

    def next(self) -> bool:
        return self.send(self.proto.next())

    def leave(self) -> bool:
        return self.send(self.proto.leave())

    def report(self, reason: str = "") -> bool:
        return self.send(self.proto.report(reason))

    def ping(self, t: Any) -> bool:
        return self.send(self.proto.ping(t))

    # -- helpers for subclasses --------------------------------------------------------
    def synthetic_pong(self, t: Any, sink: Sink, delay: float | None = None) -> None:
        """Deliver Pong(t) after the barrier delay (backends without ping)."""
        delay = self.capabilities.barrier_delay_s if delay is None else delay

        def fire() -> None:
            if not self.closing:
                sink.on_events([pc.Pong(t)], time.time_ns())

        self._timers = [g for g in self._timers if not g.dead]
        self._timers.append(gevent.spawn_later(delay, fire))

    def kill_timers(self) -> None:
        timers, self._timers = self._timers, []
        for g in timers:
            if g is not gevent.getcurrent():
                g.kill(block=False)


def ws_url(target: str, path: str | None = None) -> str:
    """The run's target as a WebSocket URL; `path` (when given) replaces the target's path.
    A target without a path gets the reference protocol's /ws."""
    parts = urlsplit(target)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    new_path = path if path is not None else (parts.path or "/ws")
    query = parts.query
    if path is not None and "?" in path:
        new_path, query = path.split("?", 1)
    return urlunsplit((scheme, parts.netloc, new_path, query, ""))


def http_url(target: str, path: str = "") -> str:
    """The run's target as an http(s) base URL with `path` (the target's own path is dropped:
    `chatload run` always gives the reference /ws there)."""
    parts = urlsplit(target)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, path.rstrip("/"), "", ""))
