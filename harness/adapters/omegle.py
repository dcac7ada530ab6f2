"""Omegle-style HTTP long polling: /start, /events, /send, /typing, /stoppedtyping,
/disconnect (docs/adapters.md; the reference server has this front door too).

How the reference actions map: `join` is `/start?topics=..&lang=..&firstevents=1` (one
Omegle session is one search and at most one chat); `leave` is `/disconnect`; `next` is
`/disconnect` then a new `/start` (Omegle has no next); typing is `/typing` or
`/stoppedtyping`. Events: waiting, commonLikes (kept for the next connected), connected
(paired, with no pair id and no initiator), gotMessage, typing, stoppedTyping,
strangerDisconnected (partner_left without a reason), error.

The barrier after our own next/leave is exact without a ping: `/disconnect` returns once
the server has ended the session, and the old session's poller is drained (its last
events delivered) before the new `/start` and before the barrier's Pong is delivered.

HTTP goes over http.client on the standard socket module, which gevent patches in Locust
workers (genuine stdlib, no urllib3 replacement): one keep-alive connection for sends
(serialised by a gevent lock) and one per poller.
"""
from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import gevent
from gevent.lock import Semaphore

from harness import protocol_client as pc
from harness.adapters.base import Adapter, Capabilities, ConnectionLost, Sink, http_url

_KEYS = {"protocol", "base_path", "capabilities", "poll_timeout_s"}
DEFAULT_CAPS = Capabilities(video=False, report=False, partner_left_reason=False, pair_id=False, initiator=False)


class _Http:
    """One keep-alive HTTP connection that reconnects once when the server closed it."""

    def __init__(self, base: str, timeout: float) -> None:
        parts = urlsplit(base)
        self.secure = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.secure else 80)
        self.prefix = parts.path
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, form: dict[str, str] | None = None, query: str = "") -> str:
        body = urlencode(form).encode() if form is not None else None
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
        url = self.prefix + path + (f"?{query}" if query else "")
        for attempt in (0, 1):
            if self.conn is None:
                cls = http.client.HTTPSConnection if self.secure else http.client.HTTPConnection
                self.conn = cls(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, url, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read().decode("utf-8")
                if resp.status >= 400:
                    raise ConnectionLost(resp.status, f"{method} {path}: HTTP {resp.status} {data[:100]}")
                return data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if attempt:
                    raise ConnectionLost(None, f"{method} {path}: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise ConnectionLost(None, f"{method} {path}: {exc}") from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None


class OmegleAdapter(Adapter):
    """A virtual user on an Omegle-style backend: one Omegle session per search."""

    name = "omegle"

    def __init__(self, capabilities: Capabilities | None = None, config: dict[str, Any] | None = None) -> None:
        super().__init__(capabilities or DEFAULT_CAPS)
        config = config or {}
        self.base_path: str = config.get("base_path", "")
        self.poll_timeout = float(config.get("poll_timeout_s", 15.0))
        self.sink: Sink | None = None
        self.http: _Http | None = None
        self.base = ""
        self.lock = Semaphore()
        self.cid: str | None = None
        self.poller: gevent.Greenlet | None = None
        self.common: list[str] = []
        self.prefs: dict[str, Any] = {"interests": [], "lang": "en"}
        self._refused: dict[str, int] = {}  # session -> refused /send not explained yet
        self._gone: set[str] = set()  # sessions whose strangerDisconnected was delivered

    @classmethod
    def configure(cls, mapping: dict[str, Any]) -> tuple[Capabilities, dict[str, Any]]:
        unknown = set(mapping) - _KEYS
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}; an omegle mapping has {sorted(_KEYS)}")
        table = dict(mapping.get("capabilities") or {})
        for key in ("video", "report", "pair_id", "initiator"):
            if table.get(key):
                raise ValueError(f"an Omegle-style backend cannot have {key}")
        return Capabilities.from_table(table, DEFAULT_CAPS), {
            "base_path": mapping.get("base_path", ""), "poll_timeout_s": mapping.get("poll_timeout_s", 15.0)}

    # -- connection ---------------------------------------------------------------------
    def connect(self, url: str, timeout: float, sink: Sink) -> None:
        self.base = http_url(url, self.base_path)
        self.http = _Http(self.base, timeout + self.poll_timeout)
        self.http.timeout = timeout
        self.http.request("GET", "/status")  # reachable and speaking HTTP
        self.http.timeout = timeout + self.poll_timeout
        self.sink, self.closing = sink, False

    def close(self, graceful: bool = True) -> None:
        self.closing = True
        self.kill_timers()
        cid, self.cid = self.cid, None
        poller, self.poller = self.poller, None
        if poller is not None and poller is not gevent.getcurrent():
            poller.kill(block=False)
        if graceful and cid is not None and self.http is not None:
            try:
                with self.lock:
                    self.http.request("POST", "/disconnect", {"id": cid})
            except Exception:  # noqa: BLE001 - closing: the server expires the session anyway
                pass
        if self.http is not None:
            self.http.close()

    # -- actions ------------------------------------------------------------------------
    def _post(self, path: str, form: dict[str, str], query: str = "") -> str | None:
        """One request on the send connection; None when the backend is gone."""
        if self.http is None:
            return None
        try:
            with self.lock:
                return self.http.request("POST", path, form, query)
        except ConnectionLost as exc:
            if not self.closing and self.sink is not None:
                self.sink.on_lost(exc)
            return None

    def send(self, *frames: dict) -> bool:
        ok = True
        for frame in frames:
            kind = frame["type"]
            if kind == "message":
                ok = self._say("/send", {"msg": frame["text"]}) and ok
            elif kind == "typing":
                self._say("/typing" if frame["active"] else "/stoppedtyping", {})
            elif kind == "join":
                self.prefs = {"interests": list(frame.get("interests", [])), "lang": frame.get("lang", "en")}
                ok = self._start() and ok
            elif kind == "next":
                self._disconnect()
                ok = self._start() and ok
            elif kind == "leave":
                self._disconnect()
            elif kind == "ping":
                # Everything of the ended session has been delivered (see _disconnect).
                self._deliver([pc.Pong(frame.get("t"))])
            # signal and report: the backend has none (capabilities), never sent.
        return ok

    def _say(self, path: str, form: dict[str, str]) -> bool:
        """/send, /typing, /stoppedtyping in the current session.

        A refused /send ("fail") means the chat is over on the server. Its
        strangerDisconnected travels on the other HTTP connection (the poller) and may come
        later, so the refusal waits for it (`_refused`): explained by it, it is dropped like
        the reference protocol's expected not_allowed; still unexplained when the session
        ends, it is the backend's fault (an `Error("send_failed")`)."""
        cid = self.cid
        if cid is None:
            return True  # our own next/leave ended the session first: there is nothing to send to
        got = self._post(path, {"id": cid, **form})
        if got is None:
            return False
        if got.strip() != "win" and path == "/send" and self.cid == cid and cid not in self._gone:
            self._refused[cid] = self._refused.get(cid, 0) + 1
        return True

    def _start(self) -> bool:
        query = urlencode({"topics": json.dumps(self.prefs["interests"]), "lang": self.prefs["lang"],
                           "firstevents": "1"})
        got = self._post("/start", {}, query)
        if got is None:
            return False
        try:
            doc = json.loads(got)
            cid = str(doc["clientID"])
            events = doc.get("events") or []
        except (ValueError, KeyError, TypeError):
            self._deliver([pc.Unexpected(got, "/start did not answer {clientID, events}")])
            return False
        self.cid = cid
        self.common = []
        self._gone.clear()  # only the current session's end matters to _say
        self._translate_and_deliver(events, cid)
        self.poller = gevent.spawn(self._poll_loop, cid)
        return True

    def _disconnect(self) -> None:
        cid, self.cid = self.cid, None
        if cid is not None:
            self._post("/disconnect", {"id": cid})
        poller, self.poller = self.poller, None
        if poller is not None and poller is not gevent.getcurrent():
            poller.join(timeout=self.poll_timeout + 5.0)  # its last events are delivered first
            poller.kill(block=False)
        if cid is not None:
            self._gone.discard(cid)
            refused = self._refused.pop(cid, 0)
            if refused:
                # /send failed although the session ended without strangerDisconnected: the
                # chat was alive (or the partner's end was never told).
                self._deliver([pc.Error("send_failed", f"{refused} /send answered fail in a chat the backend"
                                                       " never said was over")])

    # -- events -------------------------------------------------------------------------
    def _poll_loop(self, cid: str) -> None:
        assert self.http is not None
        http_conn = _Http(self.base, self.http.timeout)
        ended = False
        try:
            while True:
                got = http_conn.request("POST", "/events", {"id": cid})
                events = json.loads(got)
                if events is None:
                    if not ended and self.cid == cid and not self.closing and self.sink is not None:
                        self.sink.on_lost(ConnectionLost(None, "the Omegle session ended without strangerDisconnected"))
                    return
                ended = self._translate_and_deliver(events, cid) or ended
        except ConnectionLost as exc:
            if self.cid == cid and not self.closing and self.sink is not None:
                self.sink.on_lost(exc)
        except Exception as exc:  # noqa: BLE001 - a harness bug must not hang the user
            if not self.closing and self.sink is not None:
                self.sink.on_lost(exc)
        finally:
            http_conn.close()

    def _translate_and_deliver(self, events: Any, cid: str) -> bool:
        """Deliver a batch of Omegle events of session `cid`; True if it ended the chat.

        A strangerDisconnected of a session we already disconnected ourselves is dropped:
        the partner's end crossed our own next/leave, and Omegle's next (a new /start)
        cannot be refused the way the reference protocol refuses a crossing next, so
        passing it on would leave the user idle while the new search goes on."""
        frames: list[Any] = []
        ended = False
        if not isinstance(events, list):
            self._deliver([pc.Unexpected(events, "/events did not answer a list")])
            return False
        for ev in events:
            name = ev[0] if isinstance(ev, list) and ev else None
            if name == "gotMessage" and len(ev) > 1:
                frames.append({"type": "message", "text": ev[1]})
            elif name == "typing":
                frames.append({"type": "typing", "active": True})
            elif name == "stoppedTyping":
                frames.append({"type": "typing", "active": False})
            elif name == "waiting":
                frames.append({"type": "waiting", "online": -1})
            elif name == "commonLikes":
                self.common = list(ev[1]) if len(ev) > 1 and isinstance(ev[1], list) else []
            elif name == "connected":
                frames.append({"type": "paired", "pair": "", "mode": "text", "common": self.common,
                               "initiator": False})
            elif name == "strangerDisconnected":
                ended = True
                self._refused.pop(cid, None)  # it explains refused /send of this session
                if self.cid == cid:
                    self._gone.add(cid)
                    frames.append({"type": "partner_left", "reason": "unknown"})
            elif name == "error":
                frames.append({"type": "error", "code": "backend_error", "message": str(ev[1:])[:200]})
            else:
                frames.append(ev)  # uninterpretable: ReferenceClient reports it as Unexpected
        self._feed(frames)
        return ended

    def _feed(self, frames: list[Any]) -> None:
        receive = self.proto.receive
        for f in frames:  # one at a time, as in ReferenceAdapter._read_loop
            self._deliver([receive(f) if isinstance(f, dict) else pc.Unexpected(f, "unknown Omegle event")])

    def _deliver(self, events: list[Any]) -> None:
        if events and self.sink is not None and not self.closing:
            self.sink.on_events(events, time.time_ns())
