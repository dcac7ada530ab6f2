"""JSON over WebSocket, declared by a TOML mapping: drive a typical clone with no code.

A mapping names the URL path, a template for each outgoing action and how to recognise
each incoming event (harness/adapters/mapping.py, docs/adapters.md). Frames are JSON text
frames over harness.wsclient (the same fast client as the reference adapter).
"""
from __future__ import annotations

import time
from typing import Any

import gevent

from harness import wsclient
from harness.adapters.wsconn import close_connection, write_json
from harness.adapters.base import Capabilities, ConnectionLost, Sink, ws_url
from harness.adapters.mapped import MappedAdapter
from harness.adapters.mapping import EventMap, derive_capabilities, parse_event_map

_KEYS = {"protocol", "path", "capabilities", "send", "recv", "welcome_timeout_s"}


class JsonWsAdapter(MappedAdapter):
    """One virtual user's WebSocket to a JSON backend with its own event names."""

    name = "jsonws"

    def __init__(self, capabilities: Capabilities, config: dict[str, Any]) -> None:
        super().__init__(capabilities, config["events"])
        self.path: str | None = config.get("path")
        self.welcome_timeout = float(config.get("welcome_timeout_s", 10.0))
        self.conn: wsclient.WSConnection | None = None
        self.reader: gevent.Greenlet | None = None

    @classmethod
    def configure(cls, mapping: dict[str, Any]) -> tuple[Capabilities, dict[str, Any]]:
        unknown = set(mapping) - _KEYS
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}; a jsonws mapping has {sorted(_KEYS)}")
        em: EventMap = parse_event_map(mapping)
        caps = derive_capabilities(em, mapping.get("capabilities"))
        return caps, {"events": em, "path": mapping.get("path"),
                      "welcome_timeout_s": mapping.get("welcome_timeout_s", 10.0)}

    def connect(self, url: str, timeout: float, sink: Sink) -> None:
        conn = wsclient.connect(ws_url(url, self.path), timeout=timeout)
        early: list[Any] = []
        try:
            if "welcome" in self.em.events:
                # Wait for the greeting (anything before it is kept for the reader).
                conn.settimeout(min(timeout, self.welcome_timeout))
                deadline = time.monotonic() + self.welcome_timeout
                while True:
                    payload = conn.recv()
                    r = self.em.classify(payload)
                    if r is not None and r is not True and r.event == "welcome":
                        break
                    early.append(payload)
                    if time.monotonic() > deadline:
                        raise wsclient.ProtocolError("no welcome event from the backend")
        except BaseException:
            conn.abort()
            raise
        conn.settimeout(None)
        self.conn, self.sink, self.closing = conn, sink, False
        self.reader = gevent.spawn(self._read_loop, conn, sink, early)

    def _read_loop(self, conn: wsclient.WSConnection, sink: Sink, early: list[Any]) -> None:
        try:
            if early:
                self._deliver(early, sink)
            while True:
                self._deliver(conn.recv_many(), sink)
        except (wsclient.ConnectionClosed, wsclient.ProtocolError, OSError) as exc:
            if not self.closing:
                sink.on_lost(ConnectionLost(getattr(exc, "code", None), str(exc)))
        except Exception as exc:  # noqa: BLE001 - a harness bug (or non-JSON frames) must not hang the user
            if not self.closing:
                sink.on_lost(exc)

    def _write(self, payloads: list[Any]) -> bool:
        return write_json(self.conn, payloads)

    def close(self, graceful: bool = True) -> None:
        self.closing = True
        self.kill_timers()
        reader, conn = self.reader, self.conn
        self.reader = self.conn = None
        close_connection(reader, conn, graceful)
