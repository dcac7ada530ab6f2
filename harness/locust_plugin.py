"""Locust event hooks: ship what workers saw to the master, merge it, write results.

Imported by every scenario. Roles (decided from the runner Locust created):
- worker: every report to the master (Locust's own channel, so remote workers work)
  carries this worker's histogram deltas, timeline seconds, counters, errors and the chat
  records closed since the last report; the shipped part is then reset. When the test
  stops, the master asks each worker for a final report ("chatload_flush"): the worker
  closes every open chat as run_end, freezes its ledger and answers ("chatload_final").
- master: merges every report exactly (harness.results.MergedState), refreshes
  CHATLOAD_OUT/results.partial.json every few seconds, and writes CHATLOAD_OUT/results.json
  once the finals are in (test_stop) and again on quitting (after SIGINT/SIGTERM too).
- local (plain `locust -f scenarios/NAME.py`): both roles in one process.
Without CHATLOAD_OUT nothing is written, but the chat latencies still show in Locust's
stats and web UI as aggregated entries ("chat" / connect, pair, relay, signal_rtt,
partner_left) fed in batches from the histograms, never one event per chat message.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import orjson
from locust import events
from locust.runners import STATE_MISSING, LocalRunner, MasterRunner, WorkerRunner
from locust.stats import bucket_response_time

from harness import abuse as abuse_mod
from harness import behaviour
from harness import metrics_server
from harness import openmodel_locust
from harness.fairness.live import open_search, params_for_run
from harness.histogram import LogHistogram, bucket_value
from harness.results import MergedState, all_tickets, build_results, fairness_section
from harness.users import WORKER

logger = logging.getLogger(__name__)

UI_METHOD = "chat"
SAMPLE_INTERVAL_S = 1.0
LOCAL_DRAIN_INTERVAL_S = 1.0
MSG_FLUSH = "chatload_flush"
MSG_FINAL = "chatload_final"


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        return default


def _out_dir() -> Path | None:
    out = os.environ.get("CHATLOAD_OUT")
    return Path(out) if out else None


def rss_kb() -> int | None:
    """This process's resident set size in KiB (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * (os.sysconf("SC_PAGE_SIZE") // 1024)


def write_json_atomic(path: Path, doc: Any) -> None:
    """Write then rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    os.replace(tmp, path)


# -- Locust UI: aggregated entries fed from histogram deltas ----------------------------
def _add_samples(entry: Any, value: float, n: int, now: float) -> None:
    sec = int(now)
    if entry.use_response_times_cache and entry.last_request_timestamp and sec > int(entry.last_request_timestamp):
        entry._cache_response_times(sec - 1)
    entry.num_requests += n
    entry.num_reqs_per_sec[sec] += n
    entry.last_request_timestamp = now
    entry.total_response_time += value * n
    entry.min_response_time = value if entry.min_response_time is None else min(entry.min_response_time, value)
    entry.max_response_time = max(entry.max_response_time, value)
    entry.response_times[bucket_response_time(value)] += n


def feed_ui(stats: Any, hist_dicts: dict[str, Any], errors: dict[str, int], incidents: dict[str, int]) -> None:
    """Add a batch of samples (histogram deltas) to Locust's stats: O(buckets), not O(samples)."""
    now = time.time()
    for kind, d in hist_dicts.items():
        h = LogHistogram.from_dict(d) if isinstance(d, dict) else d
        if not h.count:
            continue
        entry = stats.get(kind, UI_METHOD)
        for i, c in enumerate(h.counts):
            if c:
                v = min(max(bucket_value(i), h.min), h.max)
                _add_samples(entry, v, c, now)
                _add_samples(stats.total, v, c, now)
    for kind, n in errors.items():
        for _ in range(min(n, 1000)):
            stats.log_error(UI_METHOD, "errors", kind)
    for kind, n in incidents.items():
        for _ in range(min(n, 1000)):
            stats.log_error(UI_METHOD, "violations", kind)


# -- worker side --------------------------------------------------------------------------
class WorkerSide:
    """Drains this process's users' data into reports."""

    def __init__(self, environment: Any) -> None:
        self.env = environment
        self.final_sent = False
        self.dump = os.environ.get("CHATLOAD_DEBUG_DUMP_SAMPLES") == "1"
        self.shipped: dict[str, LogHistogram] = {}
        self.shipped_records = 0
        self.rss: dict[int, int] = {}  # wall second -> this process's resident set, KiB
        self.sampler = gevent.spawn(self._sample_loop)

    def _sample_loop(self) -> None:
        while True:
            now = time.time_ns()
            WORKER.metrics.gauges(now, *WORKER.gauges())
            rss = rss_kb()
            if rss is not None and not WORKER.frozen:
                self.rss[now // 1_000_000_000] = rss
            gevent.sleep(SAMPLE_INTERVAL_S)

    def payload(self, final: bool = False) -> dict[str, Any]:
        data = WORKER.metrics.drain()
        data.update(WORKER.ledger.drain())
        data["final"] = final
        data["tag"] = WORKER.tag
        data["gauges"] = list(WORKER.gauges())  # live /metrics: users online, waiting, in chat
        data["arrivals"] = openmodel_locust.TALLY.drain()
        data["abuse"] = abuse_mod.TALLY.drain()
        data["rss"] = {str(k): v for k, v in self.rss.items()}
        self.rss = {}
        feed_ui(self.env.stats, data["hist"], data["errors"], data["incidents"])
        if self.dump:
            for kind, d in data["hist"].items():
                self.shipped.setdefault(kind, LogHistogram()).merge(LogHistogram.from_dict(d))
            self.shipped_records += len(data["records"])
        return data

    def final_payload(self) -> dict[str, Any]:
        # Searches still waiting now are tickets too (censored at the run's end, docs/fairness.md).
        open_searches = [] if WORKER.frozen else [w for w in map(open_search, list(WORKER.views)) if w]
        WORKER.freeze(time.time_ns())  # open chats end as run_end; nothing more is recorded
        abuse_mod.TALLY.fold_live()  # abuser visits still going count as they stand
        abuse_mod.TALLY.frozen = openmodel_locust.TALLY.frozen = True
        data = self.payload(final=True)
        data["open_searches"] = open_searches
        self.final_sent = True
        self.write_dump()
        return data

    def write_dump(self) -> None:
        out = _out_dir()
        if not (self.dump and out):
            return
        write_json_atomic(out / f"worker-{WORKER.tag}.json", {
            "tag": WORKER.tag,
            "hist": {k: h.to_dict() for k, h in self.shipped.items()},
            "records": self.shipped_records,
        })

    def reset(self) -> None:
        self.final_sent = False
        WORKER.thaw()
        abuse_mod.TALLY.frozen = openmodel_locust.TALLY.frozen = False


# -- master side --------------------------------------------------------------------------
class MasterSide:
    """Merges reports and writes results (also used by a local runner)."""

    def __init__(self, environment: Any) -> None:
        self.env = environment
        self.out = _out_dir()
        self.state = MergedState()
        self.finals: set[str] = set()
        self.t_start_ns: int | None = None
        self.t_end_ns: int | None = None
        self.dirty = False
        self.written_final = False
        self.ui_partner_left = LogHistogram()
        self.fair_params = None  # FairnessParams of this run, decided at the first build
        self.fair_cache: dict[str, Any] | None = None
        self.fair_next = 0.0  # monotonic time before which partial builds reuse fair_cache
        self.partial_interval = _env_float("CHATLOAD_PARTIAL_INTERVAL", 3.0)
        self.flush_timeout = _env_float("CHATLOAD_FLUSH_TIMEOUT", 10.0)
        self.writer = gevent.spawn(self._partial_loop) if self.out else None
        self.live = metrics_server.attach(environment, self, self.out)  # /metrics (harness/metrics_server.py)

    def reset(self) -> None:
        self.state = MergedState()
        self.finals = set()
        self.t_start_ns = time.time_ns()
        self.t_end_ns = None
        self.written_final = False
        self.ui_partner_left = LogHistogram()
        self.fair_cache, self.fair_next = None, 0.0

    def merge(self, data: dict[str, Any], worker: str) -> None:
        if self.t_start_ns is None:
            self.t_start_ns = time.time_ns()
        self.state.merge(data, worker)
        self.live.on_report(data, worker)
        self.dirty = True
        if data.get("final"):
            self.finals.add(worker)

    def run_info(self) -> dict[str, Any]:
        raw = os.environ.get("CHATLOAD_RUN", "")
        try:
            info = json.loads(raw) if raw else {}
        except ValueError:
            info = {}
        if not info:
            opts = self.env.parsed_options
            info = {
                "scenario": Path(getattr(opts, "locustfile", "") or "").stem or None,
                "target": os.environ.get("CHATLOAD_TARGET") or self.env.host,
                "seed": os.environ.get("CHATLOAD_SEED"),
                "started": None,
                "duration_s": getattr(opts, "run_time", None),
                "workers": getattr(opts, "expect_workers", None) if isinstance(self.env.runner, MasterRunner) else 0,
            }
        return info

    def fairness(self, partial: bool, end_ns: int, tickets: list[dict[str, Any]]) -> dict[str, Any]:
        """The fairness section from every ticket so far. Partial builds reuse the last one
        until a new analysis is due (it costs O(tickets); keep it a small share of the time)."""
        if partial and self.fair_cache is not None and time.monotonic() < self.fair_next:
            return self.fair_cache
        if self.fair_params is None:
            try:
                self.fair_params = params_for_run(_scenario_config(), server_args=self.run_info().get("server_args"))
            except ValueError as exc:
                logger.error("chatload: %s; fairness uses the defaults", exc)
                self.fair_params = params_for_run(None, env={})
        t0 = time.monotonic()
        section = fairness_section(self.state, end_ns, self.fair_params, tickets)
        self.fair_next = time.monotonic() + min(120.0, 10 * (time.monotonic() - t0))
        self.fair_cache = section
        return section

    def build(self, partial: bool) -> dict[str, Any]:
        start = self.t_start_ns or time.time_ns()
        end = self.t_end_ns or time.time_ns()
        deadline_ms = behaviour.active().oracle_deadline_s * 1000.0
        tickets = all_tickets(self.state)
        doc = build_results(self.state, self.run_info(), start, end, deadline_ms, partial=partial,
                            fairness=self.fairness(partial, end, tickets), tickets=tickets)
        self._feed_partner_left(doc)
        self.live.on_results(doc)
        return doc

    def _feed_partner_left(self, doc: dict[str, Any]) -> None:
        """Show partner-left latency in the UI: add what the newest join found beyond the last."""
        new = LogHistogram.from_dict(doc["histograms"]["partner_left"])
        if new.count <= self.ui_partner_left.count:
            return
        delta = LogHistogram()
        for i, (a, b) in enumerate(zip(new.counts, self.ui_partner_left.counts)):
            if a > b:
                delta.counts[i] = a - b
        delta.count = sum(delta.counts)
        delta.min, delta.max = new.min, new.max
        feed_ui(self.env.stats, {"partner_left": delta}, {}, {})
        self.ui_partner_left = new

    def write(self, partial: bool) -> None:
        if not self.out:
            if not partial:
                self.build(partial)  # still feeds the UI's partner_left entry
            return
        try:
            doc = self.build(partial)
            write_json_atomic(self.out / ("results.partial.json" if partial else "results.json"), doc)
            if not partial:
                write_json_atomic(self.out / "results.partial.json", doc)
        except Exception:  # noqa: BLE001 - a failed write must not kill the master
            logger.exception("chatload: writing results failed")

    def _partial_loop(self) -> None:
        while True:
            gevent.sleep(self.partial_interval)
            if self.t_start_ns is not None and self.t_end_ns is None and self.dirty:
                self.dirty = False
                t0 = time.monotonic()
                self.write(partial=True)
                # Building runs the oracle over every record: keep it a small share of the time.
                gevent.sleep(min(60.0, 5 * (time.monotonic() - t0)))

    def await_finals(self, runner: MasterRunner) -> None:
        """Ask every worker for its final report and wait (bounded) until all answered."""
        expected = {c.id for c in runner.clients.all if c.state != STATE_MISSING}
        runner.send_message(MSG_FLUSH, {"t": time.time_ns()})
        if gevent.getcurrent() in runner.greenlet:
            # Stopping from inside Locust's own message loop (e.g. "the last worker quit"):
            # waiting here would block the very greenlet that receives the finals.
            return
        deadline = time.monotonic() + self.flush_timeout
        while expected - self.finals and time.monotonic() < deadline:
            gevent.sleep(0.05)
        missing = expected - self.finals
        if missing:
            logger.warning("chatload: no final report from %d worker(s): %s", len(missing), sorted(missing))


def _scenario_config() -> Any:
    """The population scenario's config if this process runs one (harness.visitor), else None.

    Read from sys.modules, never imported: importing harness.visitor registers its Locust
    hooks, which a closed-loop scenario must not get."""
    visitor = sys.modules.get("harness.visitor")
    pop = getattr(visitor, "POP", None)
    return getattr(pop, "config", None)


_worker: WorkerSide | None = None
_master: MasterSide | None = None


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    global _worker, _master
    behaviour.active()  # fail early on bad CHATLOAD_SCENARIO_PARAMS
    runner = environment.runner
    if isinstance(runner, (WorkerRunner, LocalRunner)):
        _worker = WorkerSide(environment)
    if isinstance(runner, (MasterRunner, LocalRunner)):
        _master = MasterSide(environment)
    if isinstance(runner, WorkerRunner):
        def on_flush(environment: Any, msg: Any, **_k: Any) -> None:
            if _worker is not None and not _worker.final_sent:
                runner.send_message(MSG_FINAL, _worker.final_payload())

        runner.register_message(MSG_FLUSH, on_flush)
    if isinstance(runner, MasterRunner):
        def on_final(environment: Any, msg: Any, **_k: Any) -> None:
            if _master is not None:
                _master.merge(msg.data, msg.node_id)

        runner.register_message(MSG_FINAL, on_final)
    if isinstance(runner, LocalRunner):
        gevent.spawn(_local_drain_loop)
    # Registered after the runner's own quitting listener, so (quitting fires in reverse
    # order) a worker ships its final report BEFORE Locust tells the master it quits.
    environment.events.quitting.add_listener(_on_quitting)


def _local_drain_loop() -> None:
    while True:
        gevent.sleep(LOCAL_DRAIN_INTERVAL_S)
        if _worker is not None and _master is not None and not _worker.final_sent:
            _master.merge(_worker.payload(), "local")


@events.report_to_master.add_listener
def _on_report_to_master(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
    if _worker is not None and not _worker.final_sent:
        data["chatload"] = _worker.payload()


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
    payload = data.get("chatload")
    if _master is not None and payload:
        _master.merge(payload, client_id)


@events.test_start.add_listener
def _on_test_start(environment: Any, **_kw: Any) -> None:
    if _worker is not None:
        _worker.reset()
    if _master is not None:
        _master.reset()


@events.test_stopping.add_listener
def _on_test_stopping(environment: Any, **_kw: Any) -> None:
    runner = environment.runner
    if _master is None:
        return
    if isinstance(runner, MasterRunner):
        _master.await_finals(runner)
    elif _worker is not None and not _worker.final_sent:
        _master.merge(_worker.final_payload(), "local")
    _master.t_end_ns = time.time_ns()


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_kw: Any) -> None:
    if _master is not None and _master.t_start_ns is not None:
        if _master.t_end_ns is None:
            _master.t_end_ns = time.time_ns()
        _master.write(partial=False)
        _master.written_final = True
        _master.dirty = False


def _on_quitting(environment: Any, **_kw: Any) -> None:
    if _worker is not None and isinstance(environment.runner, WorkerRunner) and not _worker.final_sent:
        # Stopping on our own (e.g. SIGINT to the whole group): ship what we have.
        try:
            environment.runner.send_message(MSG_FINAL, _worker.final_payload())
        except Exception:  # noqa: BLE001 - the master may be gone already
            logger.exception("chatload: could not send the final report")
    if _master is not None and _master.t_start_ns is not None and (_master.dirty or not _master.written_final):
        if isinstance(environment.runner, LocalRunner) and _worker is not None and not _worker.final_sent:
            _master.merge(_worker.final_payload(), "local")
        if _master.t_end_ns is None:
            _master.t_end_ns = time.time_ns()
        _master.write(partial=False)
        _master.written_final = True
        _master.dirty = False
