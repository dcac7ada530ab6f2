"""Socket.IO, declared by a TOML mapping: drive a Socket.IO chat clone with no code.

The same [send]/[recv] tables as the jsonws adapter (harness/adapters/mapping.py), with
Socket.IO's shape: every outgoing template is `{event = NAME, data = ARG}` (or
`args = [ARG, ...]` for several arguments, nothing for none), and every incoming event is
seen by the mapping as `{"event": NAME, "data": ARG, "args": [ARG, ...]}` (`data` is the
only argument, the list of them when there are several, null when none). A `ping` template
may say `ack = true`: the ping is emitted with an acknowledgement callback and the ack is
the barrier's pong (Socket.IO's own way to confirm that the server handled an event).

Transport: python-socketio's synchronous `socketio.Client` over websocket-client. Inside
Locust workers the standard library is monkey-patched by gevent, so its background
"threads" are greenlets and its sockets cooperative. Engine.IO hands each incoming packet
to a new background task; to keep the backend's order, every task only appends to one
queue, and whichever task finds no delivery running drains it (one deliverer at a time).
"""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Any

import gevent
import socketio

from harness.adapters.base import Capabilities, ConnectionLost, Sink, http_url
from harness.adapters.mapped import MappedAdapter
from harness.adapters.mapping import EventMap, derive_capabilities, parse_event_map

#: How long a graceful close may take before the connection is dropped instead.
CLOSE_TIMEOUT_S = 5.0

_KEYS = {"protocol", "path", "namespace", "transports", "auth", "headers", "capabilities", "send", "recv"}
_TEMPLATE_KEYS = {"event", "data", "args", "ack"}


@dataclass(frozen=True)
class _Acked:
    """A rendered ping payload to emit with an ack callback; the ack becomes Pong(t)."""

    payload: dict[str, Any]
    t: Any


def _check_send(send: dict[str, Any]) -> bool:
    """Validate the Socket.IO shape of [send]; strip `ack` (allowed on ping only). Returns
    whether ping is acknowledged."""
    ping_ack = False
    for action, spec in send.items():
        frames = spec if isinstance(spec, list) else [spec]
        for frame in frames:
            if not isinstance(frame, dict) or not isinstance(frame.get("event"), str) or not frame["event"]:
                raise ValueError(f"[send.{action}] must be a table with a non-empty string `event`")
            bad = set(frame) - _TEMPLATE_KEYS
            if bad:
                raise ValueError(f"[send.{action}] has unknown keys {sorted(bad)}; a Socket.IO template has"
                                 f" {sorted(_TEMPLATE_KEYS)}")
            if "data" in frame and "args" in frame:
                raise ValueError(f"[send.{action}] has both data and args; use one")
            if "args" in frame and not isinstance(frame["args"], list):
                raise ValueError(f"[send.{action}] args must be a list (one entry per argument)")
            if frame.pop("ack", False):
                if action != "ping":
                    raise ValueError(f"[send.{action}] ack = true is only meaningful on ping (the barrier)")
                ping_ack = True
    return ping_ack


def incoming(event: str, args: tuple[Any, ...]) -> dict[str, Any]:
    """What the mapping's [recv] entries see for one Socket.IO event."""
    data = None if not args else args[0] if len(args) == 1 else list(args)
    return {"event": event, "data": data, "args": list(args)}


def emit_args(payload: dict[str, Any]) -> Any:
    """A rendered template -> python-socketio's `data` (a tuple expands to several args)."""
    if "args" in payload:
        return tuple(payload["args"])
    return payload.get("data")


class SocketIOAdapter(MappedAdapter):
    """One virtual user's Socket.IO connection to a backend with its own event names."""

    name = "socketio"

    def __init__(self, capabilities: Capabilities, config: dict[str, Any]) -> None:
        super().__init__(capabilities, config["events"])
        self.config = config
        self.ping_ack: bool = config["ping_ack"]
        self.client: socketio.Client | None = None
        self._inbox: collections.deque[tuple[int, Any]] = collections.deque()
        self._delivering = False

    @classmethod
    def configure(cls, mapping: dict[str, Any]) -> tuple[Capabilities, dict[str, Any]]:
        unknown = set(mapping) - _KEYS
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}; a socketio mapping has {sorted(_KEYS)}")
        mapping = dict(mapping)
        send = {k: ([dict(f) for f in v] if isinstance(v, list) else dict(v))
                for k, v in (mapping.get("send") or {}).items()}
        ping_ack = _check_send(send)
        mapping["send"] = send
        em: EventMap = parse_event_map(mapping)
        caps = derive_capabilities(em, mapping.get("capabilities"), provides=("barrier",) if ping_ack else ())
        transports = mapping.get("transports", ["websocket"])
        if not isinstance(transports, list) or not set(transports) <= {"websocket", "polling"} or not transports:
            raise ValueError("transports must be a list of \"websocket\" and/or \"polling\"")
        return caps, {"events": em, "ping_ack": ping_ack, "path": str(mapping.get("path", "socket.io")).strip("/"),
                      "namespace": str(mapping.get("namespace", "/")), "transports": transports,
                      "auth": mapping.get("auth"), "headers": dict(mapping.get("headers") or {})}

    # -- connection ---------------------------------------------------------------------
    def connect(self, url: str, timeout: float, sink: Sink) -> None:
        cfg = self.config
        client = socketio.Client(reconnection=False, handle_sigint=False, logger=False, engineio_logger=False,
                                 request_timeout=timeout)
        namespace = cfg["namespace"]
        client.on("*", self._on_any, namespace=namespace)
        client.on("disconnect", self._on_disconnect, namespace=namespace)
        self.sink, self.closing, self.client = sink, False, client
        try:
            client.connect(http_url(url), headers=cfg["headers"], auth=cfg["auth"], transports=cfg["transports"],
                           namespaces=[namespace], socketio_path=cfg["path"], wait_timeout=timeout)
        except BaseException:
            self.client = None
            self._abort(client)
            raise

    def close(self, graceful: bool = True) -> None:
        self.closing = True
        self.kill_timers()
        client, self.client = self.client, None
        if client is None:
            return
        if graceful:
            # DISCONNECT + Engine.IO CLOSE, then the library waits for the server's close
            # frame and joins its reader. It runs in a greenlet of its own: websocket-client's
            # close() swallows every exception with a bare except, GreenletExit included, so
            # a user killed there (Locust stopping the run) would live on and hold its worker
            # until SIGTERM. Here the user only waits in join(), where a kill is raised.
            closer = gevent.spawn(self._disconnect, client)
            try:
                closer.join(timeout=CLOSE_TIMEOUT_S)
            except BaseException:
                self._abort(client)
                raise
            if closer.ready() and closer.value:
                return
        self._abort(client)

    @staticmethod
    def _disconnect(client: socketio.Client) -> bool:
        try:
            client.disconnect()
            return True
        except Exception:  # noqa: BLE001 - closing a broken connection
            return False

    @staticmethod
    def _abort(client: socketio.Client) -> None:
        try:
            ws = getattr(client.eio, "ws", None)
            if ws is not None:
                ws.shutdown()  # drop the socket: no close handshake to wait for
            client.eio.disconnect(abort=True)
        except Exception:  # noqa: BLE001 - never raise from close
            pass

    # -- outgoing ------------------------------------------------------------------------
    def _ping_payloads(self, values: dict[str, Any]) -> list[Any]:
        if not self.ping_ack:
            return super()._ping_payloads(values)
        frames = self.em.frames("ping", values)
        return frames[:-1] + [_Acked(frames[-1], values["t"])]

    def _write(self, payloads: list[Any]) -> bool:
        client = self.client
        if client is None:
            return False
        try:
            for p in payloads:
                if isinstance(p, _Acked):
                    t = p.t
                    client.emit(p.payload["event"], emit_args(p.payload), namespace=self.config["namespace"],
                                callback=lambda *_ack: self._enqueue(("pong", t)))
                else:
                    client.emit(p["event"], emit_args(p), namespace=self.config["namespace"])
            return True
        except socketio.exceptions.SocketIOError:
            return False

    # -- incoming (python-socketio calls these from its background tasks) ----------------
    def _on_any(self, event: str, *args: Any) -> None:
        self._enqueue(incoming(event, args))

    def _on_disconnect(self, reason: Any = None) -> None:
        self._enqueue(("lost", str(reason)))

    def _enqueue(self, item: Any) -> None:
        self._inbox.append((time.time_ns(), item))
        if self._delivering:
            return  # the running deliverer will reach it, in order
        self._delivering = True
        try:
            while self._inbox:
                now, item = self._inbox.popleft()
                self._deliver_one(now, item)
        finally:
            self._delivering = False

    def _deliver_one(self, now: int, item: Any) -> None:
        sink = self.sink
        if sink is None or self.closing:
            return
        try:
            if isinstance(item, tuple):
                kind, value = item
                if kind == "lost":
                    sink.on_lost(ConnectionLost(None, f"socket.io disconnected: {value}"))
                    return
                events = [self.proto.receive({"type": "pong", "t": value})]
            else:
                events = self.translate(item)
            if events:
                sink.on_events(events, now)
        except Exception as exc:  # noqa: BLE001 - a harness bug must not hang the user
            if not self.closing:
                sink.on_lost(exc)
