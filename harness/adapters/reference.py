"""The reference protocol (docs/protocol.md) over harness.wsclient: the fast default.

Why it is this thin: the per-message path decides how many chat messages one load
generator core drives (benchmarks/loadgen.py), so frames go straight from the state
machine to `WSConnection.send_json`, and each read hands every frame parsed from one
socket read to the user in one batch.
"""
from __future__ import annotations

import time
from typing import Any

import gevent

from harness import protocol_client as pc
from harness import wsclient
from harness.adapters.wsconn import close_connection, write_json
from harness.adapters.base import Adapter, Capabilities, ConnectionLost, Sink, ws_url


class ReferenceAdapter(Adapter):
    """A virtual user's WebSocket session with a backend speaking the reference protocol."""

    name = "reference"

    def __init__(self, capabilities: Capabilities | None = None, config: dict[str, Any] | None = None) -> None:
        super().__init__(capabilities)
        self.path: str | None = (config or {}).get("path")
        self.conn: wsclient.WSConnection | None = None
        self.reader: gevent.Greenlet | None = None

    @classmethod
    def configure(cls, mapping: dict[str, Any]) -> tuple[Capabilities, dict[str, Any]]:
        """A mapping for the reference protocol may only set `path` and `[capabilities]`."""
        unknown = set(mapping) - {"protocol", "path", "capabilities"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)} (the reference protocol takes path and [capabilities])")
        return Capabilities.from_table(mapping.get("capabilities")), {"path": mapping.get("path")}

    def connect(self, url: str, timeout: float, sink: Sink) -> None:
        conn = wsclient.connect(ws_url(url, self.path), timeout=timeout)
        try:
            ev = self.proto.receive(conn.recv())
            if not isinstance(ev, pc.Welcome):
                raise wsclient.ProtocolError(f"first frame was {ev!r}, not welcome")
        except BaseException:
            conn.abort()
            raise
        conn.settimeout(None)
        self.conn = conn
        self.closing = False
        self.reader = gevent.spawn(self._read_loop, conn, sink)

    def _read_loop(self, conn: wsclient.WSConnection, sink: Sink) -> None:
        receive = self.proto.receive
        on_events = sink.on_events
        try:
            while True:
                frames = conn.recv_many()
                now = time.time_ns()
                # One frame at a time: the protocol state seen by the sink must be the state
                # right after *that* event (a paired + partner_left in one read must not let
                # the paired handler see the chat already over).
                for f in frames:
                    on_events((receive(f),), now)
        except (wsclient.ConnectionClosed, wsclient.ProtocolError, OSError) as exc:
            if not self.closing:
                sink.on_lost(ConnectionLost(getattr(exc, "code", None), str(exc)))
        except Exception as exc:  # noqa: BLE001 - a harness bug must not hang the driver
            if not self.closing:
                sink.on_lost(exc)

    def send(self, *frames: dict) -> bool:
        return write_json(self.conn, frames)

    def close(self, graceful: bool = True) -> None:
        self.closing = True
        self.kill_timers()
        reader, conn = self.reader, self.conn
        self.reader = self.conn = None
        close_connection(reader, conn, graceful)

