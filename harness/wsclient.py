"""A small, fast RFC 6455 WebSocket client for the load generator (client side only).

Why not a library: the harness runs inside Locust, where gevent monkey-patches the
standard `socket` module, and the per-message path decides how many chat messages one
load-generator core can drive. This client is plain blocking-socket code, so it works
unchanged in a thread, in plain Python, and in a gevent greenlet (socket calls yield to
the hub). It looks up `socket.create_connection` at call time, so it picks up gevent's
patched socket even when imported before patching.

Per-message cost is kept low by: orjson; reading in large chunks and parsing every
complete frame out of each chunk (`recv_many` hands them all over at once); building a
frame with one bytes join; masking with one big-int XOR; random mask keys taken from a
pooled `os.urandom` block (strong entropy, one syscall per 1024 frames).

Handled: handshake with Sec-WebSocket-Accept check, client masking, text/binary frames,
fragmented messages on receive, ping (answered with pong), pong, close (answered, then
ConnectionClosed). Not handled: extensions (permessage-deflate is never offered).
"""
from __future__ import annotations

import base64
import collections
import hashlib
import os
import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

import orjson

__all__ = ["ConnectionClosed", "HandshakeError", "ProtocolError", "WSConnection", "connect"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_READ_CHUNK = 256 * 1024
_MASK_POOL = 4096  # bytes of urandom per refill = 1024 mask keys


class ConnectionClosed(Exception):
    """The WebSocket is closed: by a close frame (its code and reason) or 1006 (no close frame)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"WebSocket closed: code={self.code} reason={self.reason!r}"


class HandshakeError(ConnectionError):
    """The server did not accept the WebSocket upgrade (the server's side of the fault)."""


class ProtocolError(Exception):
    """The server broke RFC 6455 framing (e.g. a masked or oversized frame)."""


def _accept_for(key: bytes) -> str:
    return base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode("ascii")


def _mask(payload: bytes, key: bytes) -> bytes:
    """XOR payload with the 4-byte key repeated, as one big-int operation."""
    n = len(payload)
    if n == 0:
        return payload
    stream = (key * ((n >> 2) + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


# Two-byte headers of masked final frames shorter than 126 bytes, per opcode.
_SHORT_HEADS = {op: [bytes((0x80 | op, 0x80 | n)) for n in range(126)] for op in range(16)}


class WSConnection:
    """One client WebSocket connection over a connected (possibly TLS) socket."""

    def __init__(self, sock: socket.socket, leftover: bytes = b"", max_message: int = 16 * 1024 * 1024) -> None:
        self.sock = sock
        self.max_message = max_message
        self._buf = leftover
        self._pending: collections.deque[bytes | str] = collections.deque()
        self._frag_op: int | None = None
        self._frag: list[bytes] = []
        self._frag_len = 0
        self._closed: ConnectionClosed | None = None
        self._close_sent = False
        self._send_lock = threading.Lock()  # a gevent lock once threading is monkey-patched
        self._masks = b""
        self._mask_pos = _MASK_POOL
        self._timeout = sock.gettimeout()
        self._reading = False  # a greenlet/thread is blocked in _fill (close() must not read then)
        self._parse()

    # -- sending -----------------------------------------------------------------------
    def _frame(self, opcode: int, payload: bytes) -> bytes:
        """One masked frame; the per-message hot path, so the key pool and mask are inline."""
        n = len(payload)
        p = self._mask_pos
        if p >= _MASK_POOL:
            self._masks = os.urandom(_MASK_POOL)
            p = 0
        self._mask_pos = p + 4
        key = self._masks[p : p + 4]
        if n < 126:
            head = _SHORT_HEADS[opcode][n]
        elif n < 65536:
            head = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
        else:
            head = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
        if n:
            payload = (
                int.from_bytes(payload, "little") ^ int.from_bytes((key * ((n >> 2) + 1))[:n], "little")
            ).to_bytes(n, "little")
        return head + key + payload

    def _send_raw(self, data: bytes) -> None:
        if self._closed is not None:
            raise self._closed
        try:
            with self._send_lock:
                self.sock.sendall(data)
        except OSError as exc:
            self._closed = ConnectionClosed(1006, f"send failed: {exc}")
            raise self._closed from exc

    def send_text(self, text: str) -> None:
        self._send_raw(self._frame(OP_TEXT, text.encode("utf-8")))

    def send_json(self, obj: Any) -> None:
        """Send one JSON object as one text frame."""
        self._send_raw(self._frame(OP_TEXT, orjson.dumps(obj)))

    def send_json_many(self, objs: list[Any]) -> None:
        """Send several JSON objects, one frame each, in a single write (fewer syscalls)."""
        frame = self._frame
        self._send_raw(b"".join([frame(OP_TEXT, orjson.dumps(o)) for o in objs]))

    def send_bytes(self, data: bytes) -> None:
        self._send_raw(self._frame(OP_BINARY, data))

    def ping(self, data: bytes = b"") -> None:
        self._send_raw(self._frame(OP_PING, data[:125]))

    # -- receiving ---------------------------------------------------------------------
    def settimeout(self, timeout: float | None) -> None:
        """Timeout for receive calls (None blocks); set only when it changes (it is a syscall)."""
        if timeout != self._timeout:
            self.sock.settimeout(timeout)
            self._timeout = timeout

    def _fill(self) -> None:
        """Block for one socket read and parse every complete frame in the buffer."""
        self._reading = True
        try:
            chunk = self.sock.recv(_READ_CHUNK)
        except (TimeoutError, socket.timeout):
            raise
        except OSError as exc:
            if self._closed is None:  # else: closed locally by another greenlet/thread
                self._closed = ConnectionClosed(1006, f"recv failed: {exc}")
            raise self._closed from exc
        finally:
            self._reading = False
        if not chunk:
            if self._closed is None:
                self._closed = ConnectionClosed(1006, "connection lost without a close frame")
            raise self._closed
        self._buf = self._buf + chunk if self._buf else chunk
        self._parse()

    def _parse(self) -> None:
        buf = self._buf
        n = len(buf)
        pos = 0
        pending = self._pending
        while n - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            start = pos + 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[start : start + 2], "big")
                start += 2
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[start : start + 8], "big")
                start += 8
            if b1 & 0x80:
                raise self._fail(1002, "server frames must not be masked")
            if length > self.max_message:
                raise self._fail(1009, f"frame of {length} bytes exceeds {self.max_message}")
            end = start + length
            if end > n:
                break
            if b0 == 0x81 and self._frag_op is None:  # fast path: one whole text frame
                pending.append(buf[start:end])
            else:
                self._control_or_fragment(b0, buf[start:end])
            pos = end
        self._buf = buf[pos:] if pos else buf

    def _control_or_fragment(self, b0: int, payload: bytes) -> None:
        fin = b0 & 0x80
        opcode = b0 & 0x0F
        if b0 & 0x70:
            raise self._fail(1002, "reserved bits set without a negotiated extension")
        if opcode >= 0x8:
            if not fin or len(payload) > 125:
                raise self._fail(1002, "bad control frame")
            if opcode == OP_PING:
                if not self._close_sent:
                    self._send_raw(self._frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                reason = payload[2:].decode("utf-8", "replace")
                if not self._close_sent:
                    try:
                        self._send_close(code if code != 1005 else 1000)
                    except ConnectionClosed:
                        pass
                self._closed = ConnectionClosed(code, reason)
                self._pending.append(self._closed)  # type: ignore[arg-type]
            elif opcode != OP_PONG:
                raise self._fail(1002, f"unknown control opcode {opcode}")
            return
        if opcode == OP_CONT:
            if self._frag_op is None:
                raise self._fail(1002, "continuation frame without a start")
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._frag_op is not None:
                raise self._fail(1002, "new data frame inside a fragmented message")
            self._frag_op = opcode
        else:
            raise self._fail(1002, f"unknown data opcode {opcode}")
        self._frag.append(payload)
        self._frag_len += len(payload)
        if self._frag_len > self.max_message:
            raise self._fail(1009, "fragmented message too big")
        if fin:
            whole = b"".join(self._frag)
            op = self._frag_op
            self._frag_op, self._frag, self._frag_len = None, [], 0
            self._pending.append(whole if op == OP_TEXT else bytearray(whole))  # bytearray marks binary

    def _fail(self, code: int, reason: str) -> ProtocolError:
        try:
            self._send_close(code, reason)
        except ConnectionClosed:
            pass
        self._closed = ConnectionClosed(code, reason)
        try:
            self.sock.close()
        except OSError:
            pass
        return ProtocolError(reason)

    def recv_raw(self) -> bytes | bytearray:
        """Next message payload: bytes for text (UTF-8), bytearray for binary."""
        pending = self._pending
        while not pending:
            if self._closed is not None:
                raise self._closed
            self._fill()
        item = pending.popleft()
        if isinstance(item, ConnectionClosed):
            raise item
        return item

    def recv(self) -> Any:
        """Next message decoded as JSON (the reference protocol sends one object per frame)."""
        return orjson.loads(self.recv_raw())

    def recv_text(self) -> str:
        return self.recv_raw().decode("utf-8")

    def recv_many(self) -> list[Any]:
        """Every message already received, decoded; blocks for one read if there is none.
        A close arriving after some messages is raised on the next call."""
        pending = self._pending
        while not pending:
            if self._closed is not None:
                raise self._closed
            self._fill()
        out = []
        loads = orjson.loads
        while pending:
            item = pending[0]
            if isinstance(item, ConnectionClosed):
                if not out:
                    pending.popleft()
                    raise item
                break
            pending.popleft()
            out.append(loads(item))
        return out

    @property
    def closed(self) -> bool:
        return self._closed is not None

    # -- closing -----------------------------------------------------------------------
    def _send_close(self, code: int, reason: str = "") -> None:
        if self._close_sent:
            return
        self._close_sent = True
        payload = code.to_bytes(2, "big") + reason.encode("utf-8")[:123]
        data = self._frame(OP_CLOSE, payload)
        try:
            with self._send_lock:
                self.sock.sendall(data)
        except OSError as exc:
            raise ConnectionClosed(1006, f"send failed: {exc}") from exc

    def close(self, code: int = 1000, reason: str = "", timeout: float = 2.0) -> None:
        """Send a close frame, wait up to `timeout` for the server's, then close the socket.
        If another greenlet/thread is blocked reading, do not wait: it gets ConnectionClosed."""
        try:
            if self._closed is not None:
                return
            if self._reading:
                try:
                    self._send_close(code, reason)
                finally:
                    self._closed = ConnectionClosed(code, reason)
                    try:
                        self.sock.shutdown(socket.SHUT_RDWR)  # wakes a reader blocked in a thread
                    except OSError:
                        pass
                return
            if self._closed is None:
                self._send_close(code, reason)
                self.settimeout(timeout)
                try:
                    while True:
                        self._pending.clear()
                        self._fill()
                        if self._closed is not None:
                            break
                except (ConnectionClosed, OSError, TimeoutError, ProtocolError):
                    pass
                if self._closed is None:
                    self._closed = ConnectionClosed(code, reason)
        finally:
            try:
                self.sock.close()
            except OSError:
                pass

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (a client crash, for tests of 1006)."""
        self._closed = ConnectionClosed(1006, "aborted locally")
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> WSConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(
    url: str,
    timeout: float = 10.0,
    headers: dict[str, str] | None = None,
    max_message: int = 16 * 1024 * 1024,
    ssl_context: ssl.SSLContext | None = None,
) -> WSConnection:
    """Open a WebSocket to ws:// or wss:// URL. `timeout` bounds connect + handshake and
    stays the socket's receive timeout afterwards (change it with `settimeout`)."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket URL: {url!r}")
    secure = parts.scheme == "wss"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if secure else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if secure:
            ctx = ssl_context or ssl.create_default_context()
            sock = ctx.wrap_socket(sock, server_hostname=host)
        key = base64.b64encode(os.urandom(16))
        host_header = host if parts.port is None else f"{host}:{port}"
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host_header}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key.decode('ascii')}",
            "Sec-WebSocket-Version: 13",
        ]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise HandshakeError(f"{url}: connection closed during the handshake")
            data += chunk
            if len(data) > 65536:
                raise HandshakeError(f"{url}: handshake response too large")
        head, _, leftover = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        fields = status_line.split(" ", 2)
        if len(fields) < 2 or fields[1] != "101":
            raise HandshakeError(f"{url}: upgrade refused: {status_line!r}")
        got = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            got[name.strip().lower()] = value.strip()
        if got.get("upgrade", "").lower() != "websocket" or "upgrade" not in got.get("connection", "").lower():
            raise HandshakeError(f"{url}: response lacks Upgrade/Connection headers")
        if got.get("sec-websocket-accept") != _accept_for(key):
            raise HandshakeError(f"{url}: bad Sec-WebSocket-Accept")
        if got.get("sec-websocket-extensions"):
            raise HandshakeError(f"{url}: server forced an extension we did not offer")
        return WSConnection(sock, leftover, max_message=max_message)
    except BaseException:
        sock.close()
        raise
