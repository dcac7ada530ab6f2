"""A Socket.IO chat clone (python-socketio AsyncServer on aiohttp), in the style of the
public "Omegle clone" tutorials: event names instead of a protocol.

Events (default namespace, path /socket.io):
- client -> server: `find`, `chat message` (text), `typing`, `stop typing`, `next`,
  `leave`, `latency` (t; acknowledged with t once everything queued before it was sent).
- server -> client: `online` (count, on connect), `searching`, `matched` ({room, caller}),
  `chat message` (text), `typing`, `stop typing`, `stranger left` ({reason}), `oops` (text:
  a refused event, or an event the clone does not know, e.g. typing with --no-typing).
No interests, no language, no video, no report.

    python -m tests.clone_servers.socketio_server --port P [--fault await_race|leak|ghost]
        [--silent] [--no-typing]

Each client's outgoing events go through one queue and one sender task, so they leave in
the order the matcher produced them (python-socketio's emit spawns tasks of its own).
"""
from __future__ import annotations

import argparse
import asyncio
from typing import Any

import socketio
from aiohttp import web

from tests.clone_servers.matcher import Matcher, add_arguments

_WIRE = {"searching": lambda f: ("searching", None),
         "matched": lambda f: ("matched", {"room": f["room"], "caller": f["initiator"]}),
         "chat": lambda f: ("chat message", f["text"]),
         "typing": lambda f: ("typing" if f["active"] else "stop typing", None),
         "left": lambda f: ("stranger left", {"reason": f["reason"]}),
         "error": lambda f: ("oops", f["message"])}


def build(args: argparse.Namespace) -> web.Application:
    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
    outbox: dict[str, asyncio.Queue[Any]] = {}
    senders: dict[str, asyncio.Task[None]] = {}

    async def sender(sid: str, q: asyncio.Queue[Any]) -> None:
        while True:
            item = await q.get()
            if isinstance(item, asyncio.Future):  # a latency marker: all before it is sent
                if not item.done():
                    item.set_result(None)
                continue
            event, data = item
            await sio.emit(event, data, to=sid)

    def emit(uid: str, kind: str, fields: dict) -> None:
        q = outbox.get(uid)
        if q is not None:
            q.put_nowait(_WIRE[kind](fields))

    m = Matcher(emit, args.fault, args.rate, args.delay_ms, args.silent)

    @sio.event
    async def connect(sid: str, environ: dict, auth: Any = None) -> None:
        q: asyncio.Queue[Any] = asyncio.Queue()
        outbox[sid] = q
        senders[sid] = asyncio.ensure_future(sender(sid, q))
        m.hello(sid)
        q.put_nowait(("online", len(outbox)))

    @sio.event
    async def disconnect(sid: str, reason: Any = None) -> None:
        q = outbox.pop(sid, None)
        while q is not None and not q.empty():  # release latency handlers still waiting
            item = q.get_nowait()
            if isinstance(item, asyncio.Future) and not item.done():
                item.set_result(None)
        task = senders.pop(sid, None)
        if task is not None:
            task.cancel()
        m.gone(sid)

    @sio.on("find")
    async def find(sid: str, *_: Any) -> None:
        await m.find(sid)

    @sio.on("chat message")
    async def chat_message(sid: str, text: Any = "") -> None:
        m.chat(sid, str(text))

    if not args.no_typing:
        @sio.on("typing")
        async def typing(sid: str, *_: Any) -> None:
            m.typing(sid, True)

        @sio.on("stop typing")
        async def stop_typing(sid: str, *_: Any) -> None:
            m.typing(sid, False)

    @sio.on("next")
    async def next_(sid: str, *_: Any) -> None:
        await m.skip(sid)

    @sio.on("leave")
    async def leave(sid: str, *_: Any) -> None:
        m.stop(sid)

    @sio.on("latency")
    async def latency(sid: str, t: Any = None) -> Any:
        q = outbox.get(sid)
        if q is not None:
            done = asyncio.get_running_loop().create_future()
            q.put_nowait(done)
            await done
        return t

    @sio.on("*")
    async def unknown(event: str, sid: str, *_: Any) -> None:
        # Like a clone that answers what it does not know: a feature the harness must not use.
        emit(sid, "error", {"message": f"unknown event {event!r}"})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "online": len(outbox)})

    app = web.Application()
    sio.attach(app)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    p = argparse.ArgumentParser()
    add_arguments(p)
    p.add_argument("--no-typing", action="store_true", help="the clone has no typing indicator")
    args = p.parse_args()
    web.run_app(build(args), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
