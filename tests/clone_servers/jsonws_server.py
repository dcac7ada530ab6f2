"""A raw JSON WebSocket chat clone (aiohttp) with its own event names.

Wire (`{"type": ..., "data": ...}` frames at /socket): client -> server `find`, `chat`
(data: text), `typing` (data: bool), `skip`, `stop`; server -> client `online` (data: N),
`searching`, `matched` (data: {room}), `chat` (data: text), `typing` (data: bool), `left`
(no reason), `error` (data: text). No ping, no interests, no language, no video.

    python -m tests.clone_servers.jsonws_server --port P [--fault await_race|leak|ghost] [--silent]
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json

from aiohttp import WSMsgType, web

from tests.clone_servers.matcher import Matcher, add_arguments

_WIRE = {"searching": lambda f: {"type": "searching"},
         "matched": lambda f: {"type": "matched", "data": {"room": f["room"]}},
         "chat": lambda f: {"type": "chat", "data": f["text"]},
         "typing": lambda f: {"type": "typing", "data": f["active"]},
         "left": lambda f: {"type": "left"},
         "error": lambda f: {"type": "error", "data": f["message"]}}


def build(args: argparse.Namespace) -> web.Application:
    sockets: dict[str, web.WebSocketResponse] = {}
    ids = itertools.count()

    def emit(uid: str, kind: str, fields: dict) -> None:
        ws = sockets.get(uid)
        if ws is not None and not ws.closed:
            asyncio.ensure_future(ws.send_str(json.dumps(_WIRE[kind](fields))))

    m = Matcher(emit, args.fault, args.rate, args.delay_ms, args.silent)

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        uid = f"u{next(ids)}"
        sockets[uid] = ws
        m.hello(uid)
        await ws.send_str(json.dumps({"type": "online", "data": len(sockets)}))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
                f = json.loads(msg.data)
                kind = f.get("type")
                if kind == "find":
                    await m.find(uid)
                elif kind == "chat":
                    m.chat(uid, str(f.get("data")))
                elif kind == "typing":
                    m.typing(uid, bool(f.get("data")))
                elif kind == "skip":
                    await m.skip(uid)
                elif kind == "stop":
                    m.stop(uid)
                else:
                    emit(uid, "error", {"message": f"unknown type {kind!r}"})
        finally:
            sockets.pop(uid, None)
            m.gone(uid)
        return ws

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "online": len(sockets)})

    app = web.Application()
    app.router.add_get("/socket", socket)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args()
    web.run_app(build(args), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
