"""aiohttp glue: the HTTP routes, the WebSocket reader loop, startup and the SIGTERM drain.

The protocol and pairing logic live in `hub.py` (synchronous); this module only moves
frames between sockets and the hub, and runs the process lifecycle:
listen -> serve -> on SIGTERM/SIGINT drain (joins refused, /healthz 503, after a grace
period every socket closed with 1001) -> exit within `drain_timeout`.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import struct
import threading
import time
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import WSMsgType, web
from aiohttp.http_websocket import WebSocketError

from . import gc_policy
from .handshake import HandshakeDeadline
from .hub import CLOSE_GOING_AWAY, Hub, Session
from .metrics import ServerCollector, make_registry, render
from .settings import Settings

log = logging.getLogger("reference_server")

CLOSE_HANDSHAKE_TIMEOUT = 2.0  # seconds to wait for the peer's close frame after ours
LAG_PROBE_INTERVAL = 0.5
SWEEP_INTERVAL = 30.0

_PACK_MEDIUM = struct.Struct("!BBH").pack
_PACK_LARGE = struct.Struct("!BBQ").pack


def text_frame_header(size: int) -> bytes:
    """RFC 6455 header of an unmasked, final text frame (server frames are never masked)."""
    if size < 126:
        return bytes((0x81, size))
    if size < 65536:
        return _PACK_MEDIUM(0x81, 126, size)
    return _PACK_LARGE(0x81, 127, size)


class Flusher:
    """Coalesces the frames written to each socket during one loop turn into one write.

    Frames keep their order per socket; a socket's frames are written together once
    per loop turn, so a burst to one peer costs one system call instead of one each.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.dirty: list[WsLink] = []

    def mark(self, link: "WsLink") -> None:
        if not self.dirty:
            self.loop.call_soon(self.flush)
        self.dirty.append(link)

    def flush(self) -> None:
        dirty, self.dirty = self.dirty, []
        for link in dirty:
            link.flush()


class WsLink:
    """A hub Link over an aiohttp WebSocket: frames are buffered and never awaited.

    Data frames are encoded here and written to the transport by the Flusher; aiohttp
    still owns the handshake, pings, close frames and the reading side.
    """

    __slots__ = ("ws", "transport", "max_buffer", "close_task", "pending", "flusher")

    def __init__(self, ws: web.WebSocketResponse, transport: Any, max_buffer: int, flusher: Flusher) -> None:
        self.ws = ws
        self.transport = transport
        self.max_buffer = max_buffer
        self.close_task: asyncio.Task | None = None
        self.pending: list[bytes] | None = None
        self.flusher = flusher

    def send(self, data: bytes) -> bool:
        pending = self.pending
        if pending is None:
            self.pending = [text_frame_header(len(data)), data]
            self.flusher.mark(self)
        else:
            pending.append(text_frame_header(len(data)))
            pending.append(data)
        transport = self.transport
        return transport is None or transport.get_write_buffer_size() <= self.max_buffer

    def flush(self) -> None:
        pending = self.pending
        if pending is None:
            return
        self.pending = None
        transport = self.transport
        # After aiohttp sent a close frame itself (1009, failed heartbeat), data must not follow.
        if transport is not None and not transport.is_closing() and not self.ws.closed:
            transport.write(b"".join(pending))

    def close(self, code: int, reason: str) -> None:
        if self.close_task is None:
            self.flush()  # frames decided before the close go out before the close frame
            self.close_task = asyncio.ensure_future(
                self.ws.close(code=code, message=reason.encode()[:120])
            )


HUB_KEY = web.AppKey("hub", Hub)
DEADLINE_KEY = web.AppKey("deadline", HandshakeDeadline)
FLUSHER_KEY = web.AppKey("flusher", Flusher)
REGISTRY_KEY = web.AppKey("registry", object)  # the Prometheus registry, so more collectors can join it


def client_address(request: web.Request, settings: Settings) -> str:
    """The address bans are keyed by: the peer, or the trusted proxy header's last entry."""
    if settings.trust_forwarded_for:
        header = request.headers.get(settings.forwarded_header)
        if header:
            last = header.rsplit(",", 1)[-1].strip()
            if last:
                return last
    return request.remote or "unknown"


async def ws_handler(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB_KEY]
    st = hub.settings
    ws = web.WebSocketResponse(
        max_msg_size=st.max_frame_bytes,
        heartbeat=st.heartbeat if st.heartbeat > 0 else None,
        compress=False,
        timeout=CLOSE_HANDSHAKE_TIMEOUT,
    )
    await ws.prepare(request)
    link = WsLink(ws, request.transport, st.max_send_buffer, request.app[FLUSHER_KEY])
    session = hub.open(link, client_address(request, st))
    if session is not None:
        await _read_loop(hub, session, ws)
    if link.close_task is not None:
        await asyncio.shield(link.close_task)
    return ws


async def _read_loop(hub: Hub, s: Session, ws: web.WebSocketResponse) -> None:
    receive = hub.receive
    text = WSMsgType.TEXT
    try:
        while True:
            msg = await ws.receive()
            kind = msg.type
            if kind is text:
                receive(s, msg.data)
            elif kind is WSMsgType.BINARY:
                hub.receive_binary(s)
            else:
                if kind is WSMsgType.ERROR and isinstance(msg.data, WebSocketError):
                    hub._count_close(msg.data.code)  # e.g. 1009, closed by aiohttp itself
                break
    finally:
        hub.gone(s)


async def healthz(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    body = {"status": "draining" if hub.draining else "ok", "online": hub.online, "waiting": hub.waiting}
    return web.Response(
        body=orjson.dumps(body), status=503 if hub.draining else 200, content_type="application/json"
    )


def _metrics_handler(registry: Any) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def metrics(request: web.Request) -> web.Response:
        body, content_type = render(registry)
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = content_type
        return resp

    return metrics


@web.middleware
async def _mark_served(request: web.Request, handler: Callable) -> web.StreamResponse:
    request.app[DEADLINE_KEY].served(request.protocol)
    return await handler(request)


def build_app(hub: Hub, deadline: HandshakeDeadline) -> web.Application:
    app = web.Application(middlewares=[_mark_served])
    app[HUB_KEY] = hub
    app[DEADLINE_KEY] = deadline
    app[FLUSHER_KEY] = Flusher(hub.loop)
    registry = make_registry(
        ServerCollector(
            hub.stats,
            online=lambda: hub.online,
            waiting_by_pool=hub.core.waiting_by_pool,
            paired=lambda: hub.core.paired_count,
            draining=lambda: hub.draining,
        )
    )
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", _metrics_handler(registry))
    # The Omegle-style long-polling front door onto the same hub (reference_server/omegle.py).
    from .omegle import add_routes as add_omegle_routes

    add_omegle_routes(app, hub, lambda request: client_address(request, hub.settings))
    app[REGISTRY_KEY] = registry
    return app


async def _probe_loop(hub: Hub) -> None:
    """Measure event-loop lag (how late a sleep wakes up) and sweep old reports and bans."""
    next_sweep = time.monotonic() + SWEEP_INTERVAL
    while True:
        start = time.monotonic()
        await asyncio.sleep(LAG_PROBE_INTERVAL)
        now = time.monotonic()
        lag = max(0.0, now - start - LAG_PROBE_INTERVAL)
        hub.stats.loop_lag.observe(lag)
        hub.stats.last_loop_lag = lag
        if now >= next_sweep:
            hub.bans.sweep(now)
            next_sweep = now + SWEEP_INTERVAL


class _Lazy:
    """A protocol factory placeholder, so the deadline can wrap a server made later."""

    def __init__(self) -> None:
        self.target: Callable[[], asyncio.Protocol] | None = None

    def __call__(self) -> asyncio.Protocol:
        assert self.target is not None
        return self.target()


async def serve(settings: Settings, on_ready: Callable[[str], None] | None = None, *,
                make_hub: Callable[[Settings, asyncio.AbstractEventLoop], Hub] = Hub,
                on_app: Callable[[web.Application], None] | None = None,
                reuse_port: bool = False, extra_ports: tuple[int, ...] = ()) -> None:
    """Run the server until SIGTERM/SIGINT, then drain and return within drain_timeout.

    The keywords serve the multi-process mode (reference_server/cluster_worker.py): a
    worker's hub, its extra routes, a port shared with SO_REUSEPORT, per-worker test ports.
    """
    loop = asyncio.get_running_loop()
    hub = make_hub(settings, loop)

    def on_handshake_timeout() -> None:
        hub.stats.handshake_timeouts += 1

    lazy = _Lazy()
    deadline = HandshakeDeadline(lazy, settings.handshake_timeout, loop, on_handshake_timeout)
    app = build_app(hub, deadline)
    if on_app is not None:
        on_app(app)
    grace = min(settings.drain_grace, settings.drain_timeout * 0.5)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        keepalive_timeout=settings.handshake_timeout,
        shutdown_timeout=max(0.1, (settings.drain_timeout - grace) * 0.5),
    )
    await runner.setup()
    assert runner.server is not None
    lazy.target = runner.server
    listener = await loop.create_server(deadline, settings.host, settings.port, reuse_address=True, backlog=2048,
                                        reuse_port=reuse_port or None)
    extra = [await loop.create_server(deadline, settings.host, p, reuse_address=True) for p in extra_ports]

    stop = asyncio.Event()
    hurry = asyncio.Event()

    def on_signal() -> None:
        (hurry if stop.is_set() else stop).set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    probe = asyncio.ensure_future(_probe_loop(hub))
    url = f"http://{settings.host}:{settings.port}"
    log.info("reference server listening on %s (loop %s)", url, type(loop).__module__)
    if on_ready is not None:
        on_ready(url)
    try:
        await stop.wait()
        await _drain(settings, hub, listener, runner, deadline, grace, hurry)
    finally:
        for server in extra:
            server.close()
        probe.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _drain(settings: Settings, hub: Hub, listener: asyncio.AbstractServer, runner: web.AppRunner,
                 deadline: HandshakeDeadline, grace: float, hurry: asyncio.Event) -> None:
    started = time.monotonic()
    end = started + settings.drain_timeout
    _exit_watchdog(settings.drain_timeout)
    log.info("draining: joins refused; closing every socket in %.1fs", grace if hub.sessions else 0.0)
    hub.start_drain()
    if hub.sessions and grace > 0:
        hurry_wait = asyncio.ensure_future(hurry.wait())
        empty = asyncio.ensure_future(hub.wait_empty(grace))
        await asyncio.wait({hurry_wait, empty}, return_when=asyncio.FIRST_COMPLETED)
        hurry_wait.cancel()
        empty.cancel()
    hub.close_all(CLOSE_GOING_AWAY, "server shutting down")
    listener.close()
    deadline.cancel_all()
    remaining = end - time.monotonic() - 0.3
    try:
        await asyncio.wait_for(runner.cleanup(), max(0.1, remaining))
    except (asyncio.TimeoutError, Exception) as exc:  # noqa: BLE001 - we exit either way
        log.warning("drain cleanup did not finish cleanly: %r", exc)
    log.info("drained in %.2fs", time.monotonic() - started)


def _exit_watchdog(timeout: float) -> None:
    """Last resort: a thread that ends the process if the loop is stuck past the deadline."""

    def fire() -> None:
        os._exit(70)

    timer = threading.Timer(timeout, fire)
    timer.daemon = True
    timer.start()


def run(settings: Settings) -> int:
    """Run the server in this process (uvloop when available); returns the exit status."""
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but stay runnable
        uvloop = None  # type: ignore[assignment]
    gc_policy.apply(settings.gc_threshold)
    if uvloop is not None and hasattr(uvloop, "run"):
        uvloop.run(serve(settings))
    elif uvloop is not None:  # pragma: no cover - uvloop < 0.18
        uvloop.install()
        asyncio.run(serve(settings))
    else:  # pragma: no cover
        asyncio.run(serve(settings))
    return 0
