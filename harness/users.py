"""Virtual chat users for the reference protocol (Locust User classes).

Each `ChatUser` talks to the backend through an adapter (harness/adapters: the reference
protocol by default, or jsonws / socketio / omegle with a mapping, chosen by
CHATLOAD_PROTOCOL and CHATLOAD_MAPPING) and runs two kinds of greenlets:
- the adapter's reader pushes events as they arrive, timestamped per batch, into
  `on_events`, which feeds the user's `UserView` (ledger + local checks + latency
  histograms) and answers what must be answered at once (its token on `paired`, the
  WebRTC answer to an offer);
- the driver (the Locust task) does what the behaviour says: join, chat (messages at a
  rate, typing, offer and ICE candidates in video mode), then next / leave / disconnect,
  or give up while waiting.
Nothing here fires one Locust request event per chat message: latencies go into the
worker's histograms, which harness/locust_plugin.py ships to the master and shows in the
Locust UI in aggregated batches.
"""
from __future__ import annotations

import itertools
import logging
import os
import random
import string
import time
import uuid
from typing import Any

import gevent
from gevent import GreenletExit
from gevent.event import Event
from locust import User, task

from harness import adapters as adapters_mod
from harness import behaviour as behaviour_mod
from harness import protocol_client as pc_mod
from harness.ledger import (
    END_DISCONNECT,
    END_LEAVE,
    END_NEXT,
    Ledger,
    UserView,
    WorkerMetrics,
    message_text,
    token_text,
)
from harness.video_signals import VideoSignals

logger = logging.getLogger(__name__)
_PAD = "".join(random.Random(7).choice(string.ascii_letters + " ") for _ in range(4096))
_SDP_LINE = "a=candidate:842163049 1 udp 1677729535 198.51.100.7 46154 typ srflx raddr 10.0.0.2 rport 46154\r\n"


class WorkerState:
    """What all users of this worker process share: ledger, metrics, live views."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.counter = itertools.count()
        self.ledger = Ledger()
        self.metrics = WorkerMetrics()
        self.views: set[UserView] = set()
        self.frozen = False

    def new_user_id(self) -> str:
        return f"{self.tag}-{next(self.counter)}"

    def gauges(self) -> tuple[int, int, int]:
        online = waiting = in_chat = 0
        for v in self.views:
            if v.state != "closed":
                online += 1
                if v.state == "waiting":
                    waiting += 1
                elif v.state == "paired":
                    in_chat += 1
        return online, waiting, in_chat

    def freeze(self, t_ns: int) -> None:
        """End of the test: close every open chat as run_end, then record nothing more."""
        if self.frozen:
            return
        for v in list(self.views):
            v.run_end(t_ns)
        self.frozen = self.ledger.frozen = self.metrics.frozen = True

    def thaw(self) -> None:
        self.frozen = self.ledger.frozen = self.metrics.frozen = False


WORKER = WorkerState()


def _ns() -> int:
    return time.time_ns()


class ChatUser(User):
    """One person using a random-match chat: visits, searches, chats, moves on."""

    abstract = True
    #: Pause between visits (after a disconnect); the behaviour draws it.
    def wait_time(self) -> float:  # type: ignore[override]
        return self.beh.think_time()

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.params = behaviour_mod.active()
        self.user_id = WORKER.new_user_id()
        seed = os.environ.get("CHATLOAD_SEED", "")
        self.beh = behaviour_mod.Behaviour(self.params, random.Random(f"{seed}/{self.user_id}"))
        self.view = UserView(self.user_id, WORKER.ledger, WORKER.metrics, type(self).__name__)
        self.spec = adapters_mod.from_env()
        self.adapter: adapters_mod.Adapter | None = None
        self.proto: pc_mod.ReferenceClient | None = None  # the adapter's state machine
        self.changed = Event()
        self.barrier_seq = 0
        self.barrier_wait: int | None = None
        self.closing = False
        self.answered_offer = False
        self.pacer: adapters_mod.Pacer | None = None
        self.paced = True  # False for users that mean to flood (abusers): they get no pacing

    # -- Locust hooks -----------------------------------------------------------------
    def on_start(self) -> None:
        WORKER.views.add(self.view)

    def on_stop(self) -> None:
        self.view.run_end(_ns())
        self._drop_connection(graceful=False)
        WORKER.views.discard(self.view)

    @task
    def visit(self) -> None:
        """One visit: connect, then search and chat until the behaviour disconnects."""
        if not self._connect():
            return
        try:
            self._session_loop()
        except GreenletExit:
            self._drop_connection(graceful=False)  # the run is ending: no close handshake
            raise
        except pc_mod.LocalProtocolError as exc:
            logger.error("chat user %s: harness protocol bug: %s", self.user_id, exc)
            WORKER.metrics.error("harness_error:LocalProtocolError")
        self._drop_connection(graceful=True)

    # -- connection (through the adapter chosen by CHATLOAD_PROTOCOL / CHATLOAD_MAPPING) ----
    def _target(self) -> str:
        """The run's target as given; the adapter turns it into its own URL(s)."""
        return os.environ.get("CHATLOAD_TARGET") or self.host or self.environment.host or ""

    def _connect(self) -> bool:
        t0 = _ns()
        adapter = self.spec.make()
        try:
            adapter.connect(self._target(), self.params.connect_timeout_s, self)
        except Exception as exc:  # noqa: BLE001 - every failure to connect counts the same
            adapter.close(graceful=False)
            WORKER.metrics.error("connect_failed")
            self.environment.events.request.fire(
                request_type="chat", name="connect", response_time=(_ns() - t0) / 1e6,
                response_length=0, exception=exc, context={},
            )
            return False
        t1 = _ns()
        WORKER.metrics.sample("connect", (t1 - t0) / 1e6)
        WORKER.metrics.count("sessions")
        for cap in adapter.capabilities.missing():
            # The master turns these into correctness.unchecked (harness/results.py).
            WORKER.metrics.count(f"{adapters_mod.LACKS_PREFIX}{cap}")
        self.adapter, self.proto = adapter, adapter.proto
        self.pacer = adapters_mod.Pacer.of(adapter.capabilities, self._pace_scale()) if self.paced else None
        self.closing = False
        self.view.new_session()
        return True

    def _pace_scale(self) -> float:
        """How much faster than real time this user runs (population users: the time scale K)."""
        return 1.0

    def _drop_connection(self, graceful: bool) -> None:
        self.closing = True
        adapter, self.adapter = self.adapter, None
        if adapter is not None:
            adapter.close(graceful=graceful)

    def _pace_ahead(self, n: int = 1) -> None:
        """Sleep until n frames may go, before stamping a frame with its send time (so pacing
        never counts as relay latency). The caller re-checks the chat afterwards."""
        pacer = self.pacer
        if pacer is not None:
            wait = pacer.wait(n, time.monotonic())
            if wait > 0:
                gevent.sleep(wait)

    def _send(self, *frames: dict) -> bool:
        """Send in order, paced under the backend's rate limit (see Capabilities.max_frames_per_s)."""
        pacer = self.pacer
        if pacer is not None:
            wait = pacer.delay(len(frames), time.monotonic())
            if wait > 0:
                WORKER.metrics.count("paced_frames", len(frames))
                gevent.sleep(wait)
        adapter = self.adapter
        return adapter is not None and adapter.send(*frames)

    # -- what the adapter delivers (its reader greenlet calls these) ------------------------
    def on_events(self, events: list, now: int) -> None:
        view = self.view
        for ev in events:
            if type(ev) is pc_mod.Message:
                text = ev.text
                view.on_text(now, text)
                if text.startswith("~tok"):
                    self.changed.set()
            else:
                self._on_event(ev, now)

    def on_lost(self, exc: BaseException) -> None:
        if self.closing:
            return
        if isinstance(exc, adapters_mod.ConnectionLost):
            code = exc.code
            WORKER.metrics.error(f"connection_lost:{code}" if code else "connection_lost")
        else:  # a harness bug must not hang the driver
            logger.error("chat user %s: reader failed", self.user_id, exc_info=exc)
            WORKER.metrics.error(f"harness_error:{type(exc).__name__}")
        self.view.connection_lost(_ns())
        self.changed.set()

    def _on_event(self, ev: Any, now: int) -> None:
        view = self.view
        cls = type(ev)
        if cls is pc_mod.Typing:
            view.on_typing(now)
        elif cls is pc_mod.Signal:
            view.on_signal(now, ev.data)
            if ev.data.get("k") == "offer" and view.cur is not None and not self.answered_offer \
                    and (ev.data.get("u"), ev.data.get("c")) == view.cur.peer_key():
                self.answered_offer = True
                self._send_signal("answer", ot=ev.data.get("t"))
                self.changed.set()
        elif cls is pc_mod.Paired:
            rec = view.on_paired(now, ev.pair_id, ev.initiator, ev.mode)
            if rec is not None and self.proto.state == pc_mod.PAIRED:  # a ghost pairing gets no token
                self.answered_offer = False
                view.token_sent(_ns())
                self._send(self.proto.message(token_text(self.user_id, rec.c)))
            self.changed.set()
        elif cls is pc_mod.PartnerLeft:
            view.on_partner_left(now, ev.reason)
            self.changed.set()
        elif cls is pc_mod.Waiting:
            view.on_waiting(now)
            self.changed.set()
        elif cls is pc_mod.Pong:
            t = ev.t
            if isinstance(t, dict) and t.get("b") == self.barrier_wait:
                self.barrier_wait = None
                view.on_barrier(now)
                self.changed.set()
        elif cls is pc_mod.Error:
            view.on_error(now, ev.code, ev.message, expected=ev.expected)
            if ev.refused:
                self.changed.set()
        elif cls is pc_mod.Unexpected:
            WORKER.metrics.error("unexpected_frame")
            view.unexpected_frame(now, ev.reason)
        # Welcome twice is noted by the protocol client; nothing to do.

    # -- the driver -----------------------------------------------------------------------
    def _wait(self, timeout: float | None) -> None:
        """Sleep until the reader reports a change or the timeout passes."""
        if timeout is not None and timeout <= 0:
            gevent.sleep(0)
            return
        self.changed.wait(timeout)
        self.changed.clear()

    def _ending(self, how: str) -> str:
        """next/leave/disconnect as this backend can do it (e.g. no next: leave)."""
        adapter = self.adapter
        return how if adapter is None else adapter.ending(how)

    def _alive(self) -> bool:
        return self.adapter is not None and self.view.state != "closed"

    def _session_loop(self) -> None:
        mode, lang, interests = self.adapter.adapt_preferences(*self.beh.preferences())
        while self._alive():
            state = self.proto.state
            if state == pc_mod.IDLE:
                if self.view.state == "leaving":
                    self._await_barrier()
                    continue
                if self.view.state == "waiting":
                    # Our join/next was refused (rate_limited, draining, ...): back off.
                    self.view.state = "idle"
                    gevent.sleep(self.beh.think_time())
                    continue
                t = _ns()
                frame = self.proto.join(mode, interests, lang)
                self.view.joined(t, mode, lang, interests)
                if not self._send(frame):
                    return
            elif state == pc_mod.WAITING:
                if self._search() == "disconnect":
                    return
            elif state == pc_mod.PAIRED:
                if self._chat() == "disconnect":
                    return

    def _search(self) -> str:
        """Wait to be paired, or give up when patience runs out."""
        patience = self.beh.patience()
        start = time.monotonic()
        while self._alive() and self.proto.state == pc_mod.WAITING:
            if patience is None:
                self._wait(None)
                continue
            remaining = patience - (time.monotonic() - start)
            if remaining > 0:
                self._wait(remaining)
                continue
            how = self._ending(self.beh.give_up_action())
            WORKER.metrics.count(f"gave_up_{how}")
            t = _ns()
            if how == "disconnect":
                self.view.gave_up(END_DISCONNECT, t)
                self._drop_connection(graceful=True)
                return "disconnect"
            frame = self.proto.leave()
            self.view.gave_up(END_LEAVE, t)
            self._send(frame, self._barrier_ping())
            self._await_barrier()
            gevent.sleep(self.beh.think_time())
            return "leave"
        return "changed"

    def _barrier_ping(self) -> dict:
        self.barrier_seq += 1
        self.barrier_wait = self.barrier_seq
        return self.proto.ping({"b": self.barrier_seq})

    def _await_barrier(self) -> None:
        deadline = time.monotonic() + self.params.oracle_deadline_s
        while self._alive() and self.barrier_wait is not None and time.monotonic() < deadline:
            self._wait(deadline - time.monotonic())
        if self.view.state == "leaving":
            self.view.on_barrier(_ns())  # the server never confirmed; do not wait forever

    def _send_signal(self, kind: str, **extra: Any) -> None:
        self._pace_ahead()  # the signal carries its send time
        rec = self.view.cur
        if rec is None or self.proto.state != pc_mod.PAIRED or self.proto.mode != "video":
            return
        t = _ns()
        data: dict[str, Any] = {"k": kind, "u": self.user_id, "c": rec.c, "t": t, **extra}
        if kind in ("offer", "answer"):
            size = self.beh.sdp_size()
            data["sdp"] = ("v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\n"
                           + _SDP_LINE * (size // len(_SDP_LINE) + 1))[:size]
            if kind == "offer":
                self.view.offer_sent(t)
        else:
            data["candidate"] = _SDP_LINE.strip()
        self._send(self.proto.signal(data))

    def _resync_after_leave(self) -> None:
        """`paired` reached us after our own `leave` (a legal race): the server ends that
        chat when it reads our leave, so once it confirmed (barrier), we are idle."""
        self._await_barrier()
        if self.proto is not None and self.proto.state == pc_mod.PAIRED and self.view.cur is None:
            self.proto.state = pc_mod.IDLE
            self.proto.pair_id = None

    def _chat(self) -> str:
        """Chat in the current pairing until it ends; returns how it ended.

        Each loop turn sends at most one frame and then re-checks the state, because a
        send may yield to the reader, which may end the chat meanwhile."""
        view = self.view
        rec = view.cur
        if rec is None:
            if view.state in ("idle", "leaving"):
                self._resync_after_leave()
            else:
                self._wait(0.05)  # the reader has not handled `paired` yet
            return "pending"
        beh = self.beh
        p = self.params
        plan = beh.chat_plan(rec.mode)
        t0 = time.monotonic()
        end_at = t0 + plan.length_s
        token_deadline = t0 + p.token_wait_s
        next_msg = t0 + beh.message_gap(plan)
        typed = False
        types = beh.types_first(plan)
        video = rec.mode == "video" and self.proto.mode == "video"
        signals = VideoSignals(video, rec.initiator, beh.ice_count() if video else 0, p.ice_interval_s, t0)
        while self._alive() and view.cur is rec and self.proto.state == pc_mod.PAIRED:
            now = time.monotonic()
            has_token = rec.peer_u is not None
            if now >= end_at and (has_token or now >= token_deadline):
                return self._end_chat()
            if not has_token:
                self._wait(min(end_at, token_deadline) - now if now < end_at else token_deadline - now)
                continue
            if signals.step(now, self.answered_offer, self._send_signal):
                continue
            if types and not typed and now >= next_msg - p.typing_lead_s:
                typed = True
                self._send(self.proto.typing(True))
                continue
            if now >= next_msg:
                self._pace_ahead()
                if not (self._alive() and view.cur is rec and self.proto.state == pc_mod.PAIRED):
                    break
                t = _ns()
                seq = view.message_sent(t)
                WORKER.metrics.count("messages_sent")
                text = message_text(self.user_id, rec.c, seq, t, _PAD[: beh.message_padding()])
                if not self._send(self.proto.message(text)):
                    break
                next_msg = now + beh.message_gap(plan)
                typed = False
                types = beh.types_first(plan)
                continue
            wake = min(end_at, next_msg - p.typing_lead_s if types and not typed else next_msg)
            self._wait(signals.wake(now, wake, self.answered_offer) - now)
        return "ended"

    def _end_chat(self) -> str:
        how = self._ending(self.beh.end_action())
        t = _ns()
        WORKER.metrics.count(f"end_{how}")
        if how == "disconnect":
            self.view.ended_by_us(END_DISCONNECT, t)
            self._drop_connection(graceful=True)
            return "disconnect"
        if how == "next":
            frame = self.proto.next()
            self.view.ended_by_us(END_NEXT, t)
            self._send(frame, self._barrier_ping())
            return "next"
        frame = self.proto.leave()
        self.view.ended_by_us(END_LEAVE, t)
        self._send(frame, self._barrier_ping())
        self._await_barrier()
        gevent.sleep(self.beh.think_time())
        return "leave"
