"""Population-driven visitors: each Locust user is a slot that plays visits of the plan.

Why a slot and not a user: people arrive on the model's schedule whatever the backend does
(harness/openmodel_locust.py). A slot takes the next due arrival, becomes that visitor
(its class, mode, language, interests, patience, chats per visit, reconnects and abuse
kind from the plan row), plays the visit, and is free again.

A visitor's id is `<worker>-<n>.<label>` (label: its class, or its abuse kind for abusers),
so the partner learns the visitor's class from the token it already sends (`~tok ID CHAT`:
the token format is unchanged). Both partners then draw the chat from one RNG seeded with
the two chat keys, with `model.chat_length_s(cls_a, cls_b)`, so they agree on how long it
lasts and who presses next, with no extra message. Every model duration is divided by the
time scale K and every rate multiplied by it (`harness.population.timescale.TimeScale`).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import time
from typing import Any, Callable

import gevent
from gevent import GreenletExit
from locust import events
from locust.runners import STATE_MISSING, LocalRunner, MasterRunner, WorkerRunner

from harness import abuse as abuse_mod
from harness import adapters as adapters_mod
from harness import behaviour as behaviour_mod
from harness import protocol_client as pc_mod
from harness import scenario_config, wsclient
from harness.adapters.base import ws_url
from harness.adapters.reference import ReferenceAdapter
from harness.ledger import END_DISCONNECT, END_LEAVE, END_NEXT, UserView, message_text
from harness.openmodel_locust import Dispatcher, share_of
from harness.population import PopulationModel
from harness.population.model import Plan
from harness.population.timescale import TimeScale, plan_to_real
from harness.users import _PAD, WORKER, ChatUser
from harness.video_signals import VideoSignals
from harness.visit_behaviour import VisitBehaviour, forwarded_address

logger = logging.getLogger(__name__)
MSG_ARRIVALS = "chatload_arrivals"
MSG_ARRIVALS_ACK = "chatload_arrivals_ack"
END_REPORT = "report"  # our own report ends a chat like leave (idle afterwards); partner hears "report"
#: Real seconds between the master's test start and plan time 0 (slots spawn meanwhile).
START_LEAD_S = 0.5


class Population:
    """This process's scenario: config, model, real-time plan and dispatcher."""

    def __init__(self) -> None:
        self.config: scenario_config.ScenarioConfig | None = None
        self.model: PopulationModel | None = None
        self.ts = TimeScale(1.0)
        self.plan: Plan | None = None
        self.dispatcher: Dispatcher | None = None
        self.slots = 0
        self.seed = 1
        #: A scenario may add visits to the real-time plan (e.g. scenarios/peak_hour.py's pre-fill).
        self.extend_plan: Callable[[Plan], Plan] | None = None

    def start(self, count: int, index: int, t0: float, duration_s: float | None) -> None:
        """Build the plan for the run's window and start walking this worker's share."""
        cfg = self.config
        assert cfg is not None and self.model is not None
        self.stop()
        env_seed = os.environ.get("CHATLOAD_SEED", "")
        self.seed = cfg.seed if cfg.seed is not None else (int(env_seed) if env_seed.lstrip("-").isdigit() else 1)
        hours = cfg.window_hours(duration_s)
        plan = self.model.build(seed=self.seed, start_hour=cfg.start_hour, hours=hours)
        self.plan = plan_to_real(plan, cfg.time_scale)
        if self.extend_plan is not None:
            self.plan = self.extend_plan(self.plan)
        rows = share_of(self.plan.arrival_s, index, count)
        d = Dispatcher(self.plan, rows, t0, cfg.harness.arrival_max_wait_s)
        for _ in range(self.slots):
            d.add_slot()
        self.dispatcher = d
        d.start()
        logger.info("chatload: worker %d/%d plays %d of %d visits over %.0f s (K=%g)", index, count, rows.shape[0],
                    plan.n, self.plan.duration_s, cfg.time_scale)

    def stop(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.stop()

    def add_slot(self) -> None:
        self.slots += 1
        if self.dispatcher is not None:
            self.dispatcher.add_slot()

    def remove_slot(self) -> None:
        self.slots = max(0, self.slots - 1)
        if self.dispatcher is not None:
            self.dispatcher.remove_slot()


POP = Population()


def configure(name: str, **defaults: Any) -> scenario_config.ScenarioConfig:
    """Called by a scenario module: scenarios/<name>.toml, `defaults`, then
    CHATLOAD_SCENARIO_PARAMS. Also sets the harness parameters the plugin and oracle read."""
    cfg = scenario_config.load(name, defaults)
    h = cfg.harness
    behaviour_mod.set_active(behaviour_mod.BehaviourParams.build({
        "oracle_deadline_s": h.oracle_deadline_s, "token_wait_s": h.token_wait_s,
        "connect_timeout_s": h.connect_timeout_s, "sdp_bytes": h.sdp_bytes, "ice_candidates": h.ice_candidates,
        "ice_interval_s": h.ice_interval_s, "mode_mix": {"text": 1 - cfg.population.video_share,
                                                         "video": cfg.population.video_share},
    }))
    POP.config = cfg
    POP.model = cfg.model()
    POP.ts = TimeScale(cfg.time_scale)
    return cfg


def run_defaults(cfg: scenario_config.ScenarioConfig, min_slots: int = 20) -> dict[str, float]:
    """RUN_DEFAULTS for `chatload run`: slots from the preview's peak online (x headroom),
    the configured window's real duration."""
    from harness.population.planning import preview

    hours = cfg.hours if cfg.hours is not None else 1.0
    pv = preview(cfg.model(), start_hour=cfg.start_hour, hours=hours, time_scale=cfg.time_scale)
    users = max(min_slots, int(math.ceil(pv.peak_online * cfg.harness.slot_headroom)))
    out: dict[str, float] = {"users": users, "spawn_rate": users}
    if cfg.duration_s() is not None:
        out["duration_s"] = round(cfg.duration_s(), 3)
    return out


class VisitorReferenceAdapter(ReferenceAdapter):
    """The reference adapter plus what population visitors need: an X-Forwarded-For header
    per visitor (scenario option `forwarded_for`) and raw text frames for `malformed`
    abusers. (To fold into harness/adapters once the Adapter interface takes headers.)"""

    def __init__(self, capabilities: Any = None, config: Any = None, user: "PopulationUser | None" = None) -> None:
        super().__init__(capabilities, config)
        self.user = user

    def connect(self, url: str, timeout: float, sink: Any) -> None:
        headers = self.user.connect_headers() if self.user is not None else None
        conn = wsclient.connect(ws_url(url, self.path), timeout=timeout, headers=headers)
        try:
            ev = self.proto.receive(conn.recv())
            if not isinstance(ev, pc_mod.Welcome):
                if isinstance(ev, pc_mod.Error) and self.user is not None:
                    self.user.refused_at_connect(ev.code)
                raise wsclient.ProtocolError(f"first frame was {ev!r}, not welcome")
        except BaseException:
            conn.abort()
            raise
        conn.settimeout(None)
        self.conn = conn
        self.closing = False
        self.reader = gevent.spawn(self._read_loop, conn, sink)

    def send_raw(self, text: str) -> bool:
        conn = self.conn
        if conn is None:
            return False
        try:
            conn.send_text(text)
            return True
        except Exception:  # noqa: BLE001 - the socket is gone; the reader reports it
            return False


class PopulationUser(ChatUser):
    """A user slot: plays the visits the dispatcher hands it, one at a time."""

    abstract = True

    def wait_time(self) -> float:  # type: ignore[override]
        return 0.0

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.vb: VisitBehaviour | None = None
        self.alog: abuse_mod.AbuserLog | None = None
        self.address: str | None = None
        self.banned = False
        if self.spec.protocol == "reference":
            caps, cfg = self.spec.capabilities, self.spec.config
            self.spec = dataclasses.replace(self.spec, factory=lambda *_a: VisitorReferenceAdapter(caps, cfg, self))

    def refused_at_connect(self, code: str) -> None:
        """The backend answered the upgrade with an error (e.g. a banned address)."""
        if code == "banned":
            self.banned = True
            if self.alog is not None:
                self.alog.react("banned", time.time_ns())
                abuse_mod.TALLY.error("banned_at_connect")

    def on_start(self) -> None:
        POP.add_slot()

    def on_stop(self) -> None:
        POP.remove_slot()
        super().on_stop()

    def _pace_scale(self) -> float:
        return POP.ts.k  # every benign rate runs K times faster (and the embedded server allows it)

    def connect_headers(self) -> dict[str, str] | None:
        return {"X-Forwarded-For": self.address} if self.address else None

    # -- the slot's task -------------------------------------------------------------------
    def slot_task(self) -> None:
        d = POP.dispatcher
        if d is None:
            gevent.sleep(0.2)
            return
        got = d.take(timeout=1.0)
        if got is None:
            return
        local, row_i, _scheduled = got
        graceful = True
        try:
            self._become(row_i)
            self._play()
        except GreenletExit:
            graceful = False  # the run is ending: no close handshake
            raise
        except pc_mod.LocalProtocolError as exc:
            logger.error("visitor %s: harness protocol bug: %s", self.user_id, exc)
            WORKER.metrics.error("harness_error:LocalProtocolError")
        finally:
            self._finish_visit(graceful)
            d.release(local)

    def _become(self, row_i: int) -> None:
        assert POP.plan is not None and POP.model is not None and POP.config is not None
        row = POP.plan.row(row_i)
        rng = random.Random(f"{POP.seed}/visit/{row_i}")
        self.vb = vb = VisitBehaviour(row, POP.model, POP.ts, rng, POP.config.harness)
        self.user_id = f"{WORKER.new_user_id()}.{vb.label}"
        WORKER.views.discard(self.view)
        self.view = UserView(self.user_id, WORKER.ledger, WORKER.metrics, row["user_class"])
        WORKER.views.add(self.view)
        self.address = forwarded_address(row_i) if POP.config.harness.forwarded_for else None
        self.banned = False
        self.alog = None
        self.paced = vb.kind == "none"  # abusers mean to exceed the backend's rate limit
        if vb.kind != "none":
            self.alog = abuse_mod.AbuserLog(vb.kind)
            abuse_mod.TALLY.start(self.alog)

    def _finish_visit(self, graceful: bool = True) -> None:
        self._drop_connection(graceful=graceful)
        if self.alog is not None:
            abuse_mod.TALLY.finish(self.alog)
            self.alog = None

    def _lost_under_us(self) -> bool:
        """The connection ended without our own close (the server or the network)."""
        return self.adapter is not None and not self.closing and self.view.state == "closed"

    def _note_lost(self) -> None:
        if self.alog is not None:
            self.alog.react("disconnected", time.time_ns())
        else:
            WORKER.metrics.count("benign_connection_lost")

    def _play(self) -> None:
        vb = self.vb
        assert vb is not None
        if vb.kind == "reconnect_storm":
            self._storm()
            return
        chats_left = int(vb.row["chats"])
        reconnects_left = int(vb.row["reconnects"])
        while chats_left > 0 and not self.banned:
            if not self._connect():
                return
            self.view.prefs = (vb.row["mode"], vb.row["lang"], list(vb.row["interests"]))
            outcome, chats_left, reconnects_left = self._session(chats_left, reconnects_left)
            if outcome == "lost":
                self._note_lost()
                return
            if outcome != "reconnect":
                return
            WORKER.metrics.count("reconnects")

    # -- one connection -------------------------------------------------------------------
    def _session(self, chats_left: int, reconnects_left: int) -> tuple[str, int, int]:
        vb = self.vb
        assert vb is not None
        row = vb.row
        while True:
            if self._lost_under_us():
                return "lost", chats_left, reconnects_left
            if not self._alive() or self.banned:
                return "done", chats_left, reconnects_left
            state = self.proto.state
            if state == pc_mod.IDLE:
                if self.view.state == "leaving":
                    self._await_barrier()
                    continue
                if self.view.state == "waiting":  # our join was refused (rate_limited, draining)
                    self.view.state = "idle"
                    gevent.sleep(max(0.05, POP.ts.to_real_s(1.0)))
                    continue
                if chats_left <= 0:
                    return "done", chats_left, reconnects_left
                t = time.time_ns()
                frame = self.proto.join(row["mode"], row["interests"], row["lang"])
                self.view.joined(t, row["mode"], row["lang"], row["interests"])
                if not self._send(frame):
                    continue
            elif state == pc_mod.WAITING:
                if not self._search_pop():
                    return "done", chats_left, reconnects_left
            else:
                last = chats_left == 1
                reconnect = not last and reconnects_left > 0 and vb.rng.random() < reconnects_left / chats_left
                how = self._chat_pop(last, reconnect)
                if how == "pending":
                    continue
                chats_left -= 1
                if how == "reconnect":
                    return "reconnect", chats_left, reconnects_left - 1
                if how in ("disconnect", "leave"):
                    return "done", chats_left, reconnects_left

    def _search_pop(self) -> bool:
        """Wait for a partner up to the visitor's patience; False: gave up (the visit ends)."""
        assert self.vb is not None
        deadline = time.monotonic() + self.vb.patience_s()
        while self._alive() and self.proto.state == pc_mod.WAITING:
            remaining = deadline - time.monotonic()
            if remaining > 0:
                self._wait(remaining)
                continue
            t = time.time_ns()
            how = "disconnect" if self.vb.rng.random() < 0.5 else "leave"
            WORKER.metrics.count(f"gave_up_{how}")
            if how == "leave":
                self.view.gave_up(END_LEAVE, t)
                self._send(self.proto.leave(), self._barrier_ping())
                self._await_barrier()
            else:
                self.view.gave_up(END_DISCONNECT, t)
                self._drop_connection(graceful=True)
            return False
        return True

    def _send_raw(self, text: str) -> bool:
        send_raw = getattr(self.adapter, "send_raw", None)
        return bool(send_raw(text)) if send_raw is not None else False

    def _chat_pop(self, last: bool, reconnect: bool) -> str:
        """One chat, as the two partners' shared draw says; returns how it ended for us."""
        view = self.view
        vb = self.vb
        assert vb is not None
        rec = view.cur
        if rec is None:
            if view.state in ("idle", "leaving"):
                self._resync_after_leave()
            else:
                self._wait(0.05)
            return "pending"
        t0 = time.monotonic()
        token_deadline = t0 + self.params.token_wait_s
        while self._alive() and view.cur is rec and rec.peer_u is None and time.monotonic() < token_deadline:
            self._wait(token_deadline - time.monotonic())
        if not (self._alive() and view.cur is rec):
            return "ended"
        if self.alog is not None and vb.kind == "reported":
            self.alog.abused(time.time_ns())
        if rec.peer_u is None:  # no token in time: leave this chat
            return self._end_pop("next", last, reconnect)
        peer_label = abuse_mod.label_of(rec.peer_u)
        length, i_end = vb.draw_chat(POP.seed, (self.user_id, rec.c), (rec.peer_u, rec.peer_c or 0), peer_label)
        report = vb.reports(peer_label)
        if report:
            i_end = True
        end_at = t0 + length if i_end else t0 + length + self.params.token_wait_s
        p = self.params
        video = rec.mode == "video" and self.proto.mode == "video"
        signals = VideoSignals(video, rec.initiator, self.beh.ice_count() if video else 0, p.ice_interval_s, t0)
        gap = vb.message_gap()
        next_msg = time.monotonic() + gap
        lead = vb.typing_lead(gap)
        typed = lead <= 0
        while self._alive() and view.cur is rec and self.proto.state == pc_mod.PAIRED:
            now = time.monotonic()
            if now >= end_at:
                return self._end_pop("report" if report else "next", last, reconnect)
            if signals.step(now, self.answered_offer, self._send_signal):
                continue
            if not typed and now >= next_msg - lead:
                typed = True
                self._send(self.proto.typing(True))
                continue
            if now >= next_msg:
                self._send_one_message(rec)
                gap = vb.message_gap()
                next_msg = now + gap
                lead = vb.typing_lead(gap)
                typed = lead <= 0
                continue
            wake = min(end_at, next_msg if typed else next_msg - lead)
            self._wait(signals.wake(now, wake, self.answered_offer) - now)
        return "ended"

    def _send_one_message(self, rec: Any) -> None:
        vb = self.vb
        assert vb is not None
        self._pace_ahead()  # before the send time is stamped
        if not (self._alive() and self.view.cur is rec and self.proto.state == pc_mod.PAIRED):
            return
        t = time.time_ns()
        if vb.malformed_now():
            if self.alog is not None:
                self.alog.abused(t)
            abuse_mod.TALLY.count("malformed_frames")
            self._send_raw(vb.rng.choice(abuse_mod.MALFORMED_FRAMES))
            return
        seq = self.view.message_sent(t)
        WORKER.metrics.count("messages_sent")
        if vb.kind in ("spammer", "flooder"):
            if self.alog is not None:
                self.alog.abused(t)
            abuse_mod.TALLY.count(f"{vb.kind}_messages")
            pad = abuse_mod.SPAM_PADDING[: vb.padding()]
        else:
            pad = _PAD[: vb.padding()]
        self._send(self.proto.message(message_text(self.user_id, rec.c, seq, t, pad)))

    def _end_pop(self, how: str, last: bool, reconnect: bool) -> str:
        """End the chat we are in: next (or report), or end the visit / reconnect."""
        assert self.vb is not None
        t = time.time_ns()
        if reconnect and how == "next":
            how = "reconnect"
        elif last and how == "next":
            how = "disconnect" if self.vb.rng.random() < 0.5 else "leave"
        WORKER.metrics.count(f"end_{how}")
        if how in ("disconnect", "reconnect"):
            self.view.ended_by_us(END_DISCONNECT, t)
            self._drop_connection(graceful=how == "disconnect")
            return how
        if how == "next":
            frame = self.proto.next()
            self.view.ended_by_us(END_NEXT, t)
            self._send(frame, self._barrier_ping())
            return "next"
        if how == "report":
            abuse_mod.TALLY.count("reports_sent")
            frame = self.proto.report("abuse")
            self.view.ended_by_us(END_REPORT, t)
            self._send(frame, self._barrier_ping())
            self._await_barrier()
            return "report"
        frame = self.proto.leave()
        self.view.ended_by_us(END_LEAVE, t)
        self._send(frame, self._barrier_ping())
        self._await_barrier()
        return "leave"

    # -- reconnect storm --------------------------------------------------------------------
    def _storm(self) -> None:
        vb = self.vb
        assert vb is not None and self.alog is not None
        row = vb.row
        for _ in range(int(row["reconnects"]) + 1):
            if self.banned or not self._connect():
                return
            self.alog.abused(time.time_ns())
            abuse_mod.TALLY.count("storm_connects")
            t = time.time_ns()
            frame = self.proto.join(row["mode"], row["interests"], row["lang"])
            self.view.joined(t, row["mode"], row["lang"], row["interests"])
            self._send(frame)
            deadline = time.monotonic() + vb.storm_hold_s()
            while self._alive() and time.monotonic() < deadline:
                self._wait(deadline - time.monotonic())
            if self._lost_under_us():
                self._note_lost()
                return
            t = time.time_ns()
            if self.view.state == "waiting" and self.view.cur is None:
                self.view.gave_up(END_DISCONNECT, t)
            else:
                self.view.ended_by_us(END_DISCONNECT, t)
            self._drop_connection(graceful=False)

    # -- errors an abuser provokes ------------------------------------------------------------
    def on_lost(self, exc: BaseException) -> None:
        """An abuser's connection closed by the backend is its reaction, not a backend error."""
        if self.closing or self.alog is None or not isinstance(exc, adapters_mod.ConnectionLost):
            super().on_lost(exc)
            return
        self.alog.react("disconnected", time.time_ns())
        abuse_mod.TALLY.error(f"closed:{exc.code}" if exc.code else "closed")
        self.view.connection_lost(time.time_ns())
        self.changed.set()

    def _on_event(self, ev: Any, now: int) -> None:
        if type(ev) is pc_mod.Paired and self.proto is not None and self.proto.state != pc_mod.PAIRED:
            # The adapter decoded this batch before dispatching it, and a later frame of the
            # same batch (partner_left) already ended the chat: record it, send no token.
            self.view.on_paired(now, ev.pair_id, ev.initiator, ev.mode)
            self.changed.set()
            return
        if type(ev) is pc_mod.Error and not ev.expected:
            code = ev.code
            if code == "banned":
                self.banned = True
            if self.alog is not None and code in abuse_mod.EXPECTED_CODES and code != "not_allowed":
                abuse_mod.TALLY.error(code)
                if code == "rate_limited":
                    self.alog.react("throttled", now)
                    target = self.view.cur or self.view.held
                    if target is not None:
                        target.refused += 1  # the oracle does not count refused frames as lost
                elif code == "banned":
                    self.alog.react("banned", now)
                self.changed.set()
                return
        super()._on_event(ev, now)


# Locust collects tasks from base classes too: the slot's only task is `slot_task`.
PopulationUser.tasks = [PopulationUser.slot_task]


# -- wiring: the master tells every worker its share and the common time origin ---------------
def _duration_from(environment: Any) -> float | None:
    import json
    try:
        info = json.loads(os.environ.get("CHATLOAD_RUN", "") or "{}")
    except ValueError:
        info = {}
    if info.get("duration_s"):
        return float(info["duration_s"])
    opts = environment.parsed_options
    run_time = getattr(opts, "run_time", None) if opts is not None else None
    return float(run_time) if run_time else None


class _Announcer:
    """The master's side: tell every worker its rank, the worker count and the common start
    time, again every RESEND_S until each one acknowledged. A worker can get Locust's spawn
    message before its init hooks ran, so one message could be lost to it."""

    RESEND_S = 0.25
    GIVE_UP_S = 15.0

    def __init__(self) -> None:
        self.acked: set[str] = set()
        self.greenlet: gevent.Greenlet | None = None

    def start(self, runner: MasterRunner, data: dict[str, Any]) -> None:
        if self.greenlet is not None:
            self.greenlet.kill(block=False)
        self.acked = set()
        self.greenlet = gevent.spawn(self._run, runner, data)

    def _run(self, runner: MasterRunner, data: dict[str, Any]) -> None:
        deadline = time.monotonic() + self.GIVE_UP_S
        while time.monotonic() < deadline:
            for client_id in data["ranks"]:
                if client_id not in self.acked:
                    runner.send_message(MSG_ARRIVALS, data, client_id=client_id)
            if self.acked >= set(data["ranks"]):
                return
            gevent.sleep(self.RESEND_S)
        logger.warning("chatload: workers %s never acknowledged the arrival plan",
                       sorted(set(data["ranks"]) - self.acked))


ANNOUNCER = _Announcer()


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    runner = environment.runner
    if POP.config is None:
        return
    if isinstance(runner, MasterRunner):
        def on_ack(environment: Any, msg: Any, **_k: Any) -> None:
            ANNOUNCER.acked.add(msg.node_id)

        runner.register_message(MSG_ARRIVALS_ACK, on_ack)
    if not isinstance(runner, WorkerRunner):
        return
    started: set[float] = set()

    def on_arrivals(environment: Any, msg: Any, **_k: Any) -> None:
        data = msg.data
        runner.send_message(MSG_ARRIVALS_ACK, {"t0": data["t0"]})
        if data["t0"] in started:
            return  # a resend of what we already play
        started.add(data["t0"])
        index = data["ranks"].get(runner.client_id, max(0, runner.worker_index))
        POP.start(int(data["count"]), int(index), float(data["t0"]), data.get("duration_s"))

    runner.register_message(MSG_ARRIVALS, on_arrivals)


@events.test_start.add_listener
def _on_test_start(environment: Any, **_kw: Any) -> None:
    if POP.config is None:
        return
    runner = environment.runner
    t0 = time.time() + START_LEAD_S
    duration = _duration_from(environment)
    if isinstance(runner, MasterRunner):
        clients = sorted((c for c in runner.clients.all if c.state != STATE_MISSING),
                         key=lambda c: runner.get_worker_index(c.id))
        ranks = {c.id: i for i, c in enumerate(clients)}
        ANNOUNCER.start(runner, {"count": max(1, len(ranks)), "ranks": ranks, "t0": t0, "duration_s": duration})
    elif isinstance(runner, LocalRunner):
        POP.start(1, 0, t0, duration)


@events.test_stopping.add_listener
def _on_test_stopping(environment: Any, **_kw: Any) -> None:
    POP.stop()
