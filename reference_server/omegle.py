"""An Omegle-style HTTP long-polling front door onto the same hub and pairing core.

Why: Omegle-style clients (and the harness's omegle adapter) can use the reference
server, and an Omegle-style user can be paired with a WebSocket user: each Omegle session
is one more hub session whose `Link` turns the hub's reference frames into Omegle events.

One Omegle session is one search and at most one chat (as on Omegle): `/start` opens a
hub session and joins; the chat ends with `/disconnect` (ours) or `strangerDisconnected`
(theirs), after which the id is dead; the next chat is a new `/start`.

Routes (parameters in the query string or a form body):
- `POST|GET /start?topics=["a","b"]&lang=en&firstevents=1` -> `{"clientID": id, "events": [...]}`
  (with firstevents) or the id as a JSON string.
- `POST /events id=...` -> a JSON list of events, waiting up to the poll timeout for one;
  `null` once the session is over and drained.
- `POST /send id&msg`, `/typing id`, `/stoppedtyping id`, `/disconnect id`,
  `/stoplookingforcommonlikes id` -> `win` or `fail`.
- `GET /status` -> `{"count": online}`.
Events: `["waiting"]`, `["commonLikes", [...]]` (before `connected`), `["connected"]`,
`["gotMessage", text]`, `["typing"]`, `["stoppedTyping"]`, `["strangerDisconnected"]`,
`["error", text]`. A session nobody polls for `omegle_idle_s` is dropped (a disconnect).
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
from aiohttp import web

from . import protocol as P
from .hub import Hub, Session

SESSIONS_KEY: web.AppKey[dict[str, "OmegleLink"]] = web.AppKey("omegle_sessions", dict)
POLL_TIMEOUT_S = 15.0
IDLE_S = 30.0


class OmegleLink:
    """The hub's Link for one Omegle session: frames become queued events."""

    def __init__(self, hub: Hub, table: dict[str, OmegleLink], poll_timeout: float, idle_s: float) -> None:
        self.hub = hub
        self.table = table
        self.poll_timeout = poll_timeout
        self.idle_s = idle_s
        self.session: Session | None = None
        self.events: list[list[Any]] = []
        self.waiter: asyncio.Future[None] | None = None
        self.over = False  # the chat ended: no new events; the id dies once drained
        self.refused = False  # the hub answered the current request with an error
        self.interests: list[str] = []
        self.lang = "en"
        self._id = ""
        self.last_seen = hub.loop.time()
        self.idle_handle = hub.loop.call_later(idle_s, self._idle_check)

    # -- Link -------------------------------------------------------------------------
    def send(self, data: bytes) -> bool:
        f = orjson.loads(data)
        kind = f["type"]
        if kind == "message":
            self._push(["gotMessage", f["text"]])
        elif kind == "typing":
            self._push(["typing"] if f["active"] else ["stoppedTyping"])
        elif kind == "paired":
            if f.get("common"):
                self._push(["commonLikes", f["common"]])
            self._push(["connected"])
        elif kind == "waiting":
            self._push(["waiting"])
        elif kind == "partner_left":
            self._push(["strangerDisconnected"])
            self._end()
        elif kind == "error":
            self.refused = True
        return True  # (welcome and pong are not part of the Omegle protocol)

    def close(self, code: int, reason: str) -> None:
        if not self.over:
            if code != 1000:
                self._push(["error", reason])
            self._end(gone=True)

    # -- bookkeeping ------------------------------------------------------------------
    def _push(self, event: list[Any]) -> None:
        if self.over:
            return
        self.events.append(event)
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _end(self, gone: bool = False) -> None:
        """The chat is over: tell the hub the session is gone (at once if asked), keep the
        queued events for the last poll."""
        self.over = True
        s, self.session = self.session, None
        if s is not None and not gone:
            self.hub.loop.call_soon(self.hub.gone, s)  # never inside the hub's own effects
        self._wake()
        self.hub.loop.call_later(self.idle_s, self._forget)

    def _forget(self) -> None:
        self.table.pop(self.id, None)
        self.idle_handle.cancel()

    def _idle_check(self) -> None:
        if self.over:
            return
        idle = self.hub.loop.time() - self.last_seen
        if idle >= self.idle_s and self.waiter is None:
            self.disconnect()
            self._forget()
        else:
            self.idle_handle = self.hub.loop.call_later(max(0.1, self.idle_s - idle), self._idle_check)

    @property
    def id(self) -> str:
        return self.session.sid if self.session is not None else self._id

    def frame(self, obj: dict[str, Any]) -> bool:
        """Hand one reference frame to the hub; False if it refused it."""
        s = self.session
        if s is None:
            return False
        self.refused = False
        self.hub.receive(s, orjson.dumps(obj))
        return not self.refused

    def disconnect(self) -> None:
        if self.over:
            return
        s = self.session
        self.over = True
        self.session = None
        self._wake()
        if s is not None:
            self.hub.gone(s)
            s.link = _NullLink()  # nothing more for this id
        self.hub.loop.call_later(self.idle_s, self._forget)

    async def poll(self) -> list[list[Any]] | None:
        self.last_seen = self.hub.loop.time()
        if not self.events and not self.over:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(None)  # a newer poll replaces an older one
            fut = self.waiter = self.hub.loop.create_future()
            try:
                await asyncio.wait_for(fut, self.poll_timeout)
            except asyncio.TimeoutError:
                pass
            finally:
                if self.waiter is fut:
                    self.waiter = None
        self.last_seen = self.hub.loop.time()
        if self.events:
            out, self.events = self.events, []
            return out
        return None if self.over else []


class _NullLink:
    def send(self, data: bytes) -> bool:
        return True

    def close(self, code: int, reason: str) -> None:
        pass


async def _params(request: web.Request) -> dict[str, str]:
    params = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        params.update({k: str(v) for k, v in (await request.post()).items()})
    return params


def _json(obj: Any) -> web.Response:
    return web.Response(body=orjson.dumps(obj), content_type="application/json")


def _text(ok: bool) -> web.Response:
    return web.Response(text="win" if ok else "fail")


def add_routes(app: web.Application, hub: Hub, client_address: Any, poll_timeout: float = POLL_TIMEOUT_S,
               idle_s: float = IDLE_S) -> None:
    """Mount the Omegle-style routes on the reference server's app."""
    table: dict[str, OmegleLink] = {}
    app[SESSIONS_KEY] = table

    def lookup(params: dict[str, str]) -> OmegleLink | None:
        return table.get(params.get("id", ""))

    async def start(request: web.Request) -> web.Response:
        p = await _params(request)
        try:
            topics = json.loads(p.get("topics", "[]") or "[]")
            if not isinstance(topics, list):
                raise ValueError
        except ValueError:
            return web.Response(status=400, text="topics must be a JSON list")
        link = OmegleLink(hub, table, poll_timeout, idle_s)
        s = hub.open(link, client_address(request))
        if s is None:  # banned or draining: the hub already "sent" an error
            link.idle_handle.cancel()
            return web.Response(status=503, text="fail")
        link.session = s
        link._id = s.sid
        link.lang = p.get("lang", "en") or "en"
        table[s.sid] = link
        link.frame({"type": "join", "mode": "text", "lang": p.get("lang", "en") or "en",
                    "interests": [str(t) for t in topics][:10]})
        if p.get("firstevents") in ("1", "true"):
            events, link.events = link.events, []
            return _json({"clientID": s.sid, "events": events})
        return _json(s.sid)

    async def events(request: web.Request) -> web.Response:
        link = lookup(await _params(request))
        if link is None:
            return _json(None)
        return _json(await link.poll())

    async def send(request: web.Request) -> web.Response:
        p = await _params(request)
        link = lookup(p)
        return _text(link is not None and link.frame({"type": "message", "text": p.get("msg", "")}))

    def typing_route(active: bool) -> Any:
        async def handler(request: web.Request) -> web.Response:
            link = lookup(await _params(request))
            return _text(link is not None and link.frame({"type": "typing", "active": active}))
        return handler

    async def disconnect(request: web.Request) -> web.Response:
        link = lookup(await _params(request))
        if link is None or link.over:
            return _text(False)
        link.disconnect()
        return _text(True)

    async def stop_common(request: web.Request) -> web.Response:
        """Stop waiting for a common interest: search again without interests."""
        link = lookup(await _params(request))
        s = link.session if link is not None else None
        if s is None or s.state != P.WAITING:
            return _text(False)
        ok = link.frame({"type": "leave"}) and link.frame({"type": "join", "mode": "text", "lang": link.lang,
                                                           "interests": []})
        return _text(ok)

    async def status(request: web.Request) -> web.Response:
        return _json({"count": hub.online})

    app.router.add_route("*", "/start", start)
    app.router.add_post("/events", events)
    app.router.add_post("/send", send)
    app.router.add_post("/typing", typing_route(True))
    app.router.add_post("/stoppedtyping", typing_route(False))
    app.router.add_post("/disconnect", disconnect)
    app.router.add_post("/stoplookingforcommonlikes", stop_common)
    app.router.add_get("/status", status)
