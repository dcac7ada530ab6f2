"""Live Prometheus metrics of a run, rendered from the master's merged state at scrape time.

Why: performance engineers watch a swarm in Grafana while it runs. The master already
merges every worker's histograms exactly (harness/results.py); this module turns that
merged state, plus the last results document the plugin built (oracle verdicts,
partner-left latency, fairness), into the Prometheus text format. Nothing is done per
sample: a scrape reads the bucket counts the master holds.

Bucket bounds are the LogHistogram's own bucket edges (growth 1.019) over a per-metric
range, so Prometheus holds the exact count of samples under each bound and
`histogram_quantile` interpolates inside one 1.9%-wide bucket: p99 read back is within 2%
of the exact p99 (tests/test_prometheus_e2e.py checks it against a real Prometheus).
Coarser bounds (growth 1.04 and up) missed 2% on runs of a few thousand samples.

Names start with `chatload_`; labels are small fixed sets (dimension/cohort of a search,
kind of a violation or error, outcome of a search or arrival), never a user or session
id. Run-level labels (`run`) are added by the scrape config (harness/prometheus.py).
"""
from __future__ import annotations

import itertools
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.histogram import GROWTH, LOWEST, NBUCKETS, LogHistogram, bucket_index
from harness.ledger import VIOLATION_KINDS

logger = logging.getLogger(__name__)

PREFIX = "chatload_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Latency histograms: metric name -> (histogram kind in the merged state, help, lo ms, hi ms).
LATENCIES: dict[str, tuple[str, str, float, float]] = {
    "pair_latency_seconds": ("pair", "join or next sent to paired received", 0.1, 300_000.0),
    "relay_latency_seconds": ("relay", "chat message sent at one end to received at the other", 0.02, 60_000.0),
    "partner_left_latency_seconds": ("partner_left", "next/leave sent by one side to partner_left at the other", 0.02, 60_000.0),
    "signal_rtt_seconds": ("signal_rtt", "WebRTC offer sent to answer received", 0.05, 60_000.0),
    "connect_latency_seconds": ("connect", "TCP connect + WebSocket handshake + welcome", 0.05, 60_000.0),
}
WAIT_RANGE_MS = (0.1, 600_000.0)
LATENESS_RANGE_MS = (0.1, 600_000.0)
#: Cohort dimensions of a search (the same as harness/fairness/waits.py).
DIMENSIONS = ("mode", "lang", "interests", "cls")
#: At most this many cohorts per dimension; further values are counted as "other".
MAX_COHORTS = 16
#: Error kinds always exported (0 until seen), so dashboards have a series from the start.
BASE_ERROR_KINDS = ("connect_failed", "connection_lost", "server_error", "unexpected_frame",
                    "foreign_text", "foreign_signal", "harness_error")
#: Chat ends counted by the users (counters end_*).
CHAT_ENDS = ("next", "leave", "disconnect")


# -- exposition text ------------------------------------------------------------------------
def _num(v: float | int) -> str:
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str] | None) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_esc(str(v))}"' for k, v in labels.items()) + "}"


class Bounds:
    """Upper edges of LogHistogram buckets within [lo_ms, hi_ms], as `le` strings in seconds."""

    def __init__(self, lo_ms: float, hi_ms: float) -> None:
        first = max(0, bucket_index(lo_ms) - 1)
        last = min(NBUCKETS - 2, bucket_index(hi_ms))
        #: bucket j counts under the bound LOWEST * GROWTH**(j+1) (its upper edge).
        self.indices = list(range(first, last + 1))
        self.le = [f"{LOWEST * GROWTH ** (j + 1) / 1000.0:.6g}" for j in self.indices]
        self.upper_s = [float(s) for s in self.le]


class Exposition:
    """Builds the Prometheus text format (0.0.4), one family at a time."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {PREFIX}{name} {help_text}")
        self.lines.append(f"# TYPE {PREFIX}{name} {kind}")

    def sample(self, name: str, value: float | int, labels: Mapping[str, str] | None = None) -> None:
        self.lines.append(f"{PREFIX}{name}{_labels(labels)} {_num(value)}")

    def counter(self, name: str, help_text: str, values: Iterable[tuple[Mapping[str, str] | None, float | int]]) -> None:
        self.family(name, "counter", help_text)
        for labels, v in values:
            self.sample(name, v, labels)

    def gauge(self, name: str, help_text: str, values: Iterable[tuple[Mapping[str, str] | None, float | int]]) -> None:
        self.family(name, "gauge", help_text)
        for labels, v in values:
            self.sample(name, v, labels)

    def histogram(self, name: str, help_text: str, bounds: Bounds,
                  series: Iterable[tuple[Mapping[str, str] | None, LogHistogram]]) -> None:
        """A histogram in seconds from LogHistograms in ms (exact counts under each edge)."""
        self.family(name, "histogram", help_text)
        for labels, h in series:
            base = dict(labels or {})
            cum = list(itertools.accumulate(h.counts))
            prefix = f"{PREFIX}{name}_bucket{{" + "".join(f'{k}="{_esc(str(v))}",' for k, v in base.items())
            lines = self.lines
            for j, le in zip(bounds.indices, bounds.le):
                lines.append(f'{prefix}le="{le}"}} {cum[j]}')
            lines.append(f'{prefix}le="+Inf"}} {h.count}')
            total = h.total / 1000.0 if math.isfinite(h.total) else 0.0
            self.sample(f"{name}_sum", total, base)
            self.sample(f"{name}_count", h.count, base)

    def text(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode()


# -- the live state -------------------------------------------------------------------------
def _cohort_key(value: Any) -> str:
    return str(value) if value not in (None, "") else "unknown"


class CohortWaits:
    """Waiting time per cohort, from the merged searches (paired records and give-ups)."""

    def __init__(self) -> None:
        self.hist: dict[tuple[str, str], LogHistogram] = {}
        self.names: dict[str, set[str]] = {d: set() for d in DIMENSIONS}
        self.outcomes = {"paired": 0, "gave_up": 0}
        self.records_seen = 0
        self.waits_seen = 0

    def _cohort(self, dim: str, value: Any) -> str:
        name = _cohort_key(value)
        known = self.names[dim]
        if name not in known:
            if len(known) >= MAX_COHORTS:
                return "other"
            known.add(name)
        return name

    def _add(self, search: Mapping[str, Any], end_ns: Any, outcome: str) -> None:
        t_req = search.get("t_req")
        if t_req is None or end_ns is None:
            return
        ms = max(0.0, (int(end_ns) - int(t_req)) / 1e6)
        self.outcomes[outcome] += 1
        values = {"mode": search.get("mode"), "lang": search.get("lang"),
                  "interests": "interests" if search.get("interests") else "none", "cls": search.get("cls")}
        for dim in DIMENSIONS:
            key = (dim, self._cohort(dim, values[dim]))
            h = self.hist.get(key)
            if h is None:
                h = self.hist[key] = LogHistogram()
            h.record(ms)

    def update(self, records: list[dict[str, Any]], waits: list[dict[str, Any]]) -> None:
        """Take the searches added since the last call (the lists only grow)."""
        for r in records[self.records_seen:]:
            if r.get("end") != "abandoned":
                self._add(r, r.get("t_paired"), "paired")
        self.records_seen = len(records)
        for w in waits[self.waits_seen:]:
            self._add(w, w.get("t_gave_up"), "gave_up")
        self.waits_seen = len(waits)


class Arrivals:
    """Open-model arrival counters and lateness, summed from the workers' raw reports."""

    def __init__(self) -> None:
        self.scheduled = self.started = self.dropped = 0
        self.lateness = LogHistogram()

    def merge(self, d: Mapping[str, Any]) -> None:
        self.scheduled += int(d.get("scheduled", 0) or 0)
        self.started += int(d.get("started", 0) or 0)
        self.dropped += int(d.get("dropped_arrivals", 0) or 0)
        if d.get("lateness"):
            self.lateness.merge(LogHistogram.from_dict(d["lateness"]))


class LiveMetrics:
    """What /metrics shows: reads the master's merged state; fed raw reports and results docs.

    `master` is the plugin's MasterSide (anything with `.state`, a harness.results.MergedState,
    and `.t_start_ns`); `run_info` the run's description (CHATLOAD_RUN).
    """

    def __init__(self, master: Any, run_info: Mapping[str, Any] | None = None) -> None:
        self.master = master
        self.run_info = dict(run_info or {})
        self.bounds = {name: Bounds(lo, hi) for name, (_k, _h, lo, hi) in LATENCIES.items()}
        self.wait_bounds = Bounds(*WAIT_RANGE_MS)
        self.lateness_bounds = Bounds(*LATENESS_RANGE_MS)
        self.generation = 0  # bumped by every report and results doc
        self.scrapes = 0
        self.last_scrape_at: float | None = None  # monotonic
        self.last_results_at: float | None = None
        self._reset(None)

    def _reset(self, state: Any) -> None:
        self._state_id = id(state) if state is not None else None
        self.gauges: dict[str, tuple[int, int, int]] = {}
        self.cohorts = CohortWaits()
        self.arrivals = Arrivals()
        self.doc_hist: dict[str, LogHistogram] = {}
        self.violations: dict[str, int] = {}
        self.fairness: dict[str, Any] = {}
        self.reports = 0

    def _sync_state(self) -> Any:
        state = self.master.state
        if id(state) != self._state_id:  # a new test started: the master made a fresh state
            self._reset(state)
        return state

    # -- feeding ------------------------------------------------------------------------
    def on_report(self, data: Mapping[str, Any], worker: str) -> None:
        """One worker report, as merged by the master (its raw form)."""
        self._sync_state()
        self.reports += 1
        self.generation += 1
        g = data.get("gauges")
        if isinstance(g, (list, tuple)) and len(g) == 3:
            self.gauges[worker] = (int(g[0]), int(g[1]), int(g[2]))
        if data.get("final"):
            self.gauges[worker] = (0, 0, 0)
        arrivals = data.get("arrivals")
        if isinstance(arrivals, Mapping):
            self.arrivals.merge(arrivals)

    def on_results(self, doc: Mapping[str, Any]) -> None:
        """A results document the master built (partial or final): oracle-made figures."""
        self._sync_state()
        self.generation += 1
        self.last_results_at = time.time()
        hist = doc.get("histograms") or {}
        if hist.get("partner_left"):
            self.doc_hist["partner_left"] = LogHistogram.from_dict(hist["partner_left"])
        corr = doc.get("correctness") or {}
        for kind, v in corr.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and kind != "violations_total":
                # Counters never go back: a later verdict over more records only adds.
                self.violations[kind] = max(self.violations.get(kind, 0), int(v))
        fairness = doc.get("fairness")
        if isinstance(fairness, Mapping) and fairness:
            self.fairness = dict(fairness)

    # -- rendering ----------------------------------------------------------------------
    def _hist(self, kind: str, state: Any) -> LogHistogram:
        if kind in self.doc_hist:
            return self.doc_hist[kind]
        return state.hist.get(kind) or LogHistogram()

    def render(self) -> bytes:
        """The whole exposition; cost is O(buckets + new searches), never O(samples)."""
        state = self._sync_state()
        self.cohorts.update(state.records, state.waits)
        self.scrapes += 1
        self.last_scrape_at = time.monotonic()
        x = Exposition()
        info = {k: str(self.run_info.get(k) if self.run_info.get(k) is not None else "")
                for k in ("scenario", "seed", "target")}
        x.gauge("run_info", "The run being measured (value 1)", [(info, 1)])
        t0 = getattr(self.master, "t_start_ns", None)
        x.gauge("run_start_time_seconds", "Epoch time the test started on the master (0 before)",
                [(None, (t0 or 0) / 1e9)])
        x.gauge("workers_reporting", "Workers that sent at least one report", [(None, len(state.workers))])

        for name, (kind, help_text, _lo, _hi) in LATENCIES.items():
            x.histogram(name, help_text + " (seconds)", self.bounds[name], [(None, self._hist(kind, state))])
        x.histogram("wait_seconds", "Queue wait of a search (join/next to paired or given up), by cohort (seconds)",
                    self.wait_bounds,
                    [({"dimension": d, "cohort": c}, h) for (d, c), h in sorted(self.cohorts.hist.items())])

        counters = state.counters
        x.counter("sessions_total", "WebSocket sessions opened by the users", [(None, counters.get("sessions", 0))])
        x.counter("joins_total", "Searches started (join or next sent)", [(None, counters.get("joins", 0))])
        x.counter("pairs_total", "Pairings (each member's paired counts one half)", [(None, counters.get("paired", 0) / 2)])
        received = sum(row[1] for row in state.timeline.values())
        x.counter("messages_total", "Chat messages, by direction",
                  [({"outcome": "sent"}, counters.get("messages_sent", 0)), ({"outcome": "received"}, received)])
        x.counter("nexts_total", "Chats ended by next", [(None, counters.get("end_next", 0))])
        x.counter("chat_ends_total", "Chats ended by the user, by how",
                  [({"outcome": how}, counters.get(f"end_{how}", 0)) for how in CHAT_ENDS])
        x.counter("searches_total", "Searches that ended, by outcome",
                  [({"outcome": k}, v) for k, v in self.cohorts.outcomes.items()])
        x.counter("crossed_frames_total", "Frames refused because the partner ended first (legal races)",
                  [(None, counters.get("crossed_frames", 0))])

        kinds = dict.fromkeys(VIOLATION_KINDS, 0)
        for kind, n in state.incidents.items():
            kinds[kind] = max(kinds.get(kind, 0), int(n))
        for kind, n in self.violations.items():
            kinds[kind] = max(kinds.get(kind, 0), n)
        x.counter("violations_total", "Correctness violations found by the oracle, by kind",
                  [({"kind": k}, v) for k, v in sorted(kinds.items())])
        errors: dict[tuple[str, str], int] = {(k, ""): 0 for k in BASE_ERROR_KINDS}
        for full, n in state.errors.items():
            kind, _, code = str(full).partition(":")
            errors[(kind, code)] = errors.get((kind, code), 0) + int(n)
        x.counter("errors_total", "Errors seen by the users, by kind and code",
                  [({"kind": k, "code": c}, v) for (k, c), v in sorted(errors.items())])

        a = self.arrivals
        x.counter("arrivals_total", "Open-model arrivals, by outcome",
                  [({"outcome": "scheduled"}, a.scheduled), ({"outcome": "started"}, a.started),
                   ({"outcome": "dropped"}, a.dropped)])
        x.counter("dropped_arrivals_total", "Open-model arrivals dropped for want of a free user slot",
                  [(None, a.dropped)])
        x.histogram("arrival_lateness_seconds", "Real start of an open-model visit minus its schedule (seconds)",
                    self.lateness_bounds, [(None, a.lateness)])

        online = sum(g[0] for g in self.gauges.values())
        waiting = sum(g[1] for g in self.gauges.values())
        in_chat = sum(g[2] for g in self.gauges.values())
        x.gauge("users_online", "Connected users (summed over workers)", [(None, online)])
        x.gauge("users_waiting", "Users waiting for a partner", [(None, waiting)])
        x.gauge("users_in_chat", "Users in a chat", [(None, in_chat)])
        self._render_fairness(x)
        return x.text()

    def _render_fairness(self, x: Exposition) -> None:
        f = self.fairness
        scalars = (
            ("fairness_jain_index", "jain_index", "Jain's index of the waits so far (1 = all equal)"),
            ("fairness_fifo_inversion_rate", "fifo_inversion_rate", "Share of pairings that passed over an earlier compatible waiter"),
            ("fairness_fifo_inversions", "fifo_inversions", "FIFO inversions so far"),
            ("fairness_worst_to_best_p99_ratio", "worst_to_best_p99_ratio", "Worst cohort's p99 wait over the best's"),
            ("fairness_starved", "starved", "Searches starved so far"),
        )
        for name, key, help_text in scalars:
            v = f.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                x.gauge(name, help_text + " (from the last fairness analysis)", [(None, v)])
        by = f.get("wait_p99_ms_by_cohort")
        if isinstance(by, Mapping):
            series = []
            for dim, cohorts in sorted(by.items()):
                if isinstance(cohorts, Mapping):
                    for cohort, ms in sorted(cohorts.items())[:MAX_COHORTS]:
                        if isinstance(ms, (int, float)) and math.isfinite(ms):
                            series.append(({"dimension": str(dim), "cohort": str(cohort)}, ms / 1000.0))
            if series:
                x.gauge("fairness_wait_p99_seconds", "p99 wait by cohort over the run so far (nearest rank)", series)


def analyse_fairness(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The fairness figures of a results document: its own section, else computed from tickets.

    Documents the plugin builds always carry the section (every ticket of the run analysed,
    harness/results.py), so the gauges show exactly results.json's figures; the fallback
    on the (possibly capped) ticket sample is for documents written before that."""
    if isinstance(doc.get("fairness"), Mapping) and doc["fairness"]:
        return dict(doc["fairness"])
    tickets = doc.get("tickets") or []
    if not tickets:
        return {}
    from harness.fairness.analyse import analyse  # numpy-heavy; only when there are tickets

    return analyse(tickets)


def run_info_from_env() -> dict[str, Any]:
    raw = os.environ.get("CHATLOAD_RUN", "")
    try:
        info = json.loads(raw) if raw else {}
    except ValueError:
        info = {}
    return info if isinstance(info, dict) else {}


def write_port_file(out: Path | None, port: int) -> None:
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "metrics_port.tmp"
    tmp.write_text(f"{port}\n", encoding="utf-8")
    os.replace(tmp, out / "metrics_port")
