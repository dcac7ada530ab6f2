"""A minimal asyncio client of protocol 1 (aiohttp), for the server's tests and benchmark.

Not the harness's client (that one lives with the Locust users); this one exists so the
server can be exercised over real sockets with no locust in the process.
"""
from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from aiohttp import WSMsgType


class Closed(Exception):
    """The server closed the socket (or it broke) while a frame was expected."""

    def __init__(self, code: int | None, kind: WSMsgType) -> None:
        super().__init__(f"socket closed (code {code}, {kind.name})")
        self.code = code


class ProtocolClient:
    """One WebSocket session: send typed frames, receive decoded frames."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.welcome: dict[str, Any] | None = None

    @property
    def session(self) -> str:
        assert self.welcome is not None
        return self.welcome["session"]

    async def send(self, kind: str, **fields: Any) -> None:
        await self.ws.send_str(orjson.dumps({"type": kind, **fields}).decode())

    async def send_raw(self, text: str) -> None:
        await self.ws.send_str(text)

    async def send_bytes(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next text frame, decoded; raises Closed if the socket closes instead."""
        msg = await self.ws.receive(timeout)
        if msg.type is WSMsgType.TEXT:
            return orjson.loads(msg.data)
        raise Closed(self.ws.close_code, msg.type)

    async def expect(self, kind: str, timeout: float = 5.0, **fields: Any) -> dict[str, Any]:
        """The next frame, which must be of type `kind` with the given field values."""
        frame = await self.recv(timeout)
        if frame.get("type") != kind or any(frame.get(k) != v for k, v in fields.items()):
            raise AssertionError(f"expected {kind} {fields or ''}, got {frame}")
        return frame

    async def close_code(self, timeout: float = 5.0) -> int | None:
        """Read until the server closes the socket; return its close code (frames are discarded)."""
        while True:
            msg = await self.ws.receive(timeout)
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()


async def connect(
    http: aiohttp.ClientSession,
    base_url: str,
    headers: dict[str, str] | None = None,
    expect_welcome: bool = True,
    timeout: float = 5.0,
) -> ProtocolClient:
    """Open `base_url`/ws; by default read and check the `welcome` frame."""
    ws = await http.ws_connect(base_url + "/ws", headers=headers, autoping=True, max_msg_size=1 << 20)
    client = ProtocolClient(ws)
    if expect_welcome:
        client.welcome = await client.expect("welcome", timeout, protocol=1)
    return client


async def pair_up(
    http: aiohttp.ClientSession,
    base_url: str,
    lang: str,
    mode: str = "text",
    headers_a: dict[str, str] | None = None,
    headers_b: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[ProtocolClient, ProtocolClient, dict[str, Any], dict[str, Any]]:
    """Two fresh sessions joined in the pool (mode, lang): returns them and their `paired` frames.

    Use a `lang` no other user is in, so nobody else can take the partner.
    """
    a = await connect(http, base_url, headers_a, timeout=timeout)
    await a.send("join", mode=mode, lang=lang)
    await a.expect("waiting", timeout)
    b = await connect(http, base_url, headers_b, timeout=timeout)
    await b.send("join", mode=mode, lang=lang)
    pb = await b.expect("paired", timeout)
    pa = await a.expect("paired", timeout)
    return a, b, pa, pb
