"""An Omegle-style HTTP long-polling clone (aiohttp) on the shared matcher, with its faults.

Why: the reference server's Omegle front door is correct, so it cannot show that the
oracle catches a double match, cross-talk or a ghost match through the omegle adapter.
This clone speaks the same API on tests/clone_servers/matcher.py (await_race, leak, ghost).

One session per `/start` (one search, at most one chat), as on Omegle:
`POST /start?firstevents=1` -> `{"clientID", "events"}`; `POST /events id` -> a list of
events (waits up to --poll-s), `null` once the session ended and was drained; `/send id msg`,
`/typing id`, `/stoppedtyping id`, `/disconnect id` -> `win`/`fail`; `GET /status`.
Events: waiting, connected, gotMessage, typing, stoppedTyping, strangerDisconnected,
error. No interests (topics are ignored), no commonLikes.

    python -m tests.clone_servers.omegle_faulty --port P [--fault await_race|leak|ghost]
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
from typing import Any

from aiohttp import web

from tests.clone_servers.matcher import Matcher, add_arguments

_EVENTS = {"searching": lambda f: ["waiting"],
           "matched": lambda f: ["connected"],
           "chat": lambda f: ["gotMessage", f["text"]],
           "typing": lambda f: ["typing"] if f["active"] else ["stoppedTyping"],
           "left": lambda f: ["strangerDisconnected"],
           "error": lambda f: ["error", f["message"]]}


class Session:
    """One Omegle session: queued events and the long poll waiting for them."""

    def __init__(self) -> None:
        self.events: list[list[Any]] = []
        self.over = False
        self.wake = asyncio.Event()

    def push(self, event: list[Any]) -> None:
        if not self.over:
            self.events.append(event)
            self.wake.set()

    def end(self) -> None:
        self.over = True
        self.wake.set()

    async def poll(self, timeout: float) -> list[list[Any]] | None:
        if not self.events and not self.over:
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        out, self.events = self.events, []
        return None if (self.over and not out) else out


def build(args: argparse.Namespace) -> web.Application:
    sessions: dict[str, Session] = {}
    ids = itertools.count()

    def emit(uid: str, kind: str, fields: dict) -> None:
        s = sessions.get(uid)
        if s is None or s.over:
            return  # a gone session (the ghost fault pairs with those): the event is lost
        s.push(_EVENTS[kind](fields))
        if kind == "left":
            s.end()  # one session, one chat
            m.online.discard(uid)

    m = Matcher(emit, args.fault, args.rate, args.delay_ms, args.silent)

    async def form(request: web.Request) -> dict[str, str]:
        params = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            params.update({k: str(v) for k, v in (await request.post()).items()})
        return params

    def live(params: dict[str, str]) -> tuple[str, Session | None]:
        cid = params.get("id", "")
        s = sessions.get(cid)
        return cid, (None if s is None or s.over else s)

    async def start(request: web.Request) -> web.Response:
        p = await form(request)
        cid = f"central:{next(ids)}"
        s = sessions[cid] = Session()
        m.hello(cid)
        await m.find(cid)  # await_race sleeps in here
        if p.get("firstevents") in ("1", "true"):
            events, s.events = s.events, []
            return web.json_response({"clientID": cid, "events": events})
        return web.json_response(cid)

    async def events(request: web.Request) -> web.Response:
        s = sessions.get((await form(request)).get("id", ""))
        return web.json_response(None if s is None else await s.poll(args.poll_s))

    async def send(request: web.Request) -> web.Response:
        p = await form(request)
        cid, s = live(p)
        if s is None or cid not in m.partner:
            return web.Response(text="fail")
        m.chat(cid, p.get("msg", ""))
        return web.Response(text="win")

    def typing_route(active: bool) -> Any:
        async def handler(request: web.Request) -> web.Response:
            cid, s = live(await form(request))
            if s is None or cid not in m.partner:
                return web.Response(text="fail")
            m.typing(cid, active)
            return web.Response(text="win")
        return handler

    async def disconnect(request: web.Request) -> web.Response:
        cid, s = live(await form(request))
        if s is None:
            return web.Response(text="fail")
        s.end()
        m.gone(cid)
        return web.Response(text="win")

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"count": len(m.online)})

    async def probe(request: web.Request) -> web.WebSocketResponse:
        # Not Omegle: `chatload run` probes every --target with a WebSocket upgrade first.
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_route("*", "/start", start)
    app.router.add_post("/events", events)
    app.router.add_post("/send", send)
    app.router.add_post("/typing", typing_route(True))
    app.router.add_post("/stoppedtyping", typing_route(False))
    app.router.add_post("/disconnect", disconnect)
    app.router.add_get("/status", status)
    app.router.add_get("/healthz", status)
    app.router.add_get("/ws", probe)
    return app


def main() -> None:
    p = argparse.ArgumentParser()
    add_arguments(p)
    p.add_argument("--poll-s", type=float, default=5.0, help="how long /events waits for an event")
    args = p.parse_args()
    web.run_app(build(args), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
