"""Merged run state and the results.json document built from it (pure: no I/O, no clock).

Why: the master receives deltas from every worker (histograms as dicts, timeline seconds,
counters, new chat records, local incidents); `MergedState` sums them exactly, and
`build_results` turns the merged state plus the oracle's verdict into the document
described in docs/results.md. Both are plain Python so tests build them by hand.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness import oracle
from harness.abuse import MergedAbuse, abuse_section
from harness.fairness.live import live_tickets
from harness.fairness.params import FairnessParams
from harness.openmodel_locust import MergedArrivals
from harness.histogram import LogHistogram
from harness.ledger import MAX_EXAMPLES, TIMELINE_COLUMNS, WorkerMetrics

#: Latency kinds in results.json: key -> histogram name.
LATENCY_KEYS = {
    "connect_latency_ms": "connect",
    "pair_latency_ms": "pair",
    "relay_latency_ms": "relay",
    "partner_left_latency_ms": "partner_left",
    "signal_rtt_ms": "signal_rtt",
}
#: Largest number of tickets written to results.json (a sample: the `fairness` section is
#: always computed from every ticket of the run).
MAX_TICKETS = 200_000


class MergedState:
    """Everything the workers shipped so far, summed exactly."""

    def __init__(self, max_examples: int = MAX_EXAMPLES) -> None:
        self.max_examples = max_examples
        self.hist: dict[str, LogHistogram] = {k: LogHistogram() for k in WorkerMetrics.KINDS}
        self.timeline: dict[int, list[int]] = {}
        self.counters: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.records: list[dict[str, Any]] = []
        self.waits: list[dict[str, Any]] = []
        self.open_searches: list[dict[str, Any]] = []  # still waiting when the run ended (final reports)
        self.incidents: dict[str, int] = {}
        self.examples: dict[str, list[dict[str, Any]]] = {}
        self.workers: set[str] = set()
        self.reports = 0
        self.arrivals = MergedArrivals()
        self.abuse = MergedAbuse()
        self.rss: dict[str, dict[int, int]] = {}  # worker -> wall second -> RSS KiB

    def merge(self, data: Mapping[str, Any], worker: str = "local") -> None:
        """Add one report (the union of WorkerMetrics.drain() and Ledger.drain())."""
        self.workers.add(worker)
        self.reports += 1
        for kind, d in (data.get("hist") or {}).items():
            h = self.hist.setdefault(kind, LogHistogram())
            h.merge(LogHistogram.from_dict(d))
        for sec_s, row in (data.get("timeline") or {}).items():
            sec = int(sec_s)
            mine = self.timeline.get(sec)
            if mine is None:
                mine = self.timeline[sec] = [0] * len(TIMELINE_COLUMNS)
            for i, v in enumerate(row[: len(TIMELINE_COLUMNS)]):
                mine[i] += int(v)
        _add_counts(self.counters, data.get("counters") or {})
        _add_counts(self.errors, data.get("errors") or {})
        _add_counts(self.incidents, data.get("incidents") or {})
        for kind, exs in (data.get("examples") or {}).items():
            mine_ex = self.examples.setdefault(kind, [])
            mine_ex.extend(exs[: max(0, self.max_examples - len(mine_ex))])
        self.records.extend(data.get("records") or [])
        self.waits.extend(data.get("waits") or [])
        self.open_searches.extend(data.get("open_searches") or [])
        if data.get("arrivals"):
            self.arrivals.merge(data["arrivals"])
        if data.get("abuse"):
            self.abuse.merge(data["abuse"])
        if data.get("rss"):
            mine_rss = self.rss.setdefault(str(data.get("tag") or worker), {})
            for sec_s, kb in data["rss"].items():
                mine_rss[int(sec_s)] = int(kb)


def _add_counts(into: dict[str, int], more: Mapping[str, int]) -> None:
    for k, v in more.items():
        into[k] = into.get(k, 0) + int(v)


def _latency(h: LogHistogram) -> dict[str, Any]:
    s = h.summary()
    return {k: s[k] for k in ("count", "p50", "p90", "p99", "p999", "max", "mean")}


def all_tickets(state: MergedState) -> list[dict[str, Any]]:
    """Every ticket of the run so far (docs/fairness.md): chats, give-ups, open searches."""
    return list(live_tickets(state.records, state.waits, state.open_searches))


def fairness_section(state: MergedState, t_end_ns: int, params: FairnessParams | None = None,
                     tickets: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The `fairness` section from every ticket; open searches are censored at the run's end.

    Never raises: a failed analysis becomes `{"error": ...}` so the rest of results.json is
    still written (and a gate on a fairness figure then fails as "missing").
    """
    from harness.fairness.analyse import analyse  # numpy-heavy: only when results are built

    tickets = all_tickets(state) if tickets is None else tickets
    try:
        return analyse(tickets, params, t_end=t_end_ns / 1e9)
    except Exception as exc:  # noqa: BLE001 - results without fairness beat no results
        return {"error": f"{type(exc).__name__}: {exc}"}


def build_results(
    state: MergedState,
    run: Mapping[str, Any],
    t_start_ns: int,
    t_end_ns: int,
    deadline_ms: float = oracle.DEFAULT_DEADLINE_MS,
    partial: bool = False,
    max_tickets: int = MAX_TICKETS,
    fairness: Mapping[str, Any] | None = None,
    fairness_params: FairnessParams | None = None,
    tickets: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The results.json document for the state merged so far (see docs/results.md).

    `fairness`: a section computed earlier (the plugin reuses one between partial writes);
    None computes it here from every ticket with `fairness_params`. `tickets`: the run's
    tickets if the caller already has them (`all_tickets(state)`).
    """
    # Workers count "lacks:<capability>" per session on backends without it (harness/adapters).
    lacking = sorted(k[len("lacks:"):] for k in state.counters if k.startswith("lacks:"))
    unchecked = oracle.unchecked_for(lacking)
    skip = [u["check"] for u in unchecked if not u["partial"]]
    verdict = oracle.check(state.records, state.incidents, state.examples, deadline_ms, state.max_examples, skip,
                           waits=state.waits)
    hist = {k: h.copy() for k, h in state.hist.items()}
    pl = LogHistogram()
    for v in verdict["partner_left_ms"]:
        pl.record(v)
    hist["partner_left"] = pl
    elapsed = max(0.0, (t_end_ns - t_start_ns) / 1e9)

    start_sec = t_start_ns // 1_000_000_000
    rss_by_second: dict[int, int] = {}
    for series in state.rss.values():
        for sec, kb in series.items():
            rss_by_second[sec] = rss_by_second.get(sec, 0) + kb
    seconds = sorted(set(state.timeline) | set(verdict["violations_by_second"]) | set(rss_by_second))
    timeline = []
    global_v = verdict["violations_by_second"]
    for sec in seconds:
        row = state.timeline.get(sec, [0] * len(TIMELINE_COLUMNS))
        paired, messages, online, waiting, in_chat, local_v = row
        timeline.append({"t": sec - start_sec, "pairs": paired / 2, "messages": messages, "online": online,
                         "waiting": waiting, "in_chat": in_chat, "violations": local_v + global_v.get(sec, 0)})
        if sec in rss_by_second:
            timeline[-1]["rss_mb"] = round(rss_by_second[sec] / 1024, 1)

    paired = state.counters.get("paired", 0)
    messages = sum(row[1] for row in state.timeline.values())
    correctness: dict[str, Any] = dict(verdict["counters"])
    correctness["violations_total"] = verdict["violations_total"]
    correctness["examples"] = verdict["examples"]
    correctness["unchecked"] = unchecked
    errors: dict[str, Any] = dict(sorted(state.errors.items()))
    errors["total"] = sum(state.errors.values())

    run_out = {k: run.get(k) for k in ("scenario", "target", "seed", "started", "duration_s", "workers")}
    run_out.update({k: v for k, v in run.items() if k not in run_out})
    run_out["elapsed_s"] = round(elapsed, 3)
    run_out["workers_reported"] = len(state.workers)

    doc: dict[str, Any] = {"run": run_out, "partial": partial}
    for key, name in LATENCY_KEYS.items():
        doc[key] = _latency(hist.get(name, LogHistogram()))
    doc["throughput"] = {
        "pairs": paired / 2,
        "messages": messages,
        "pairs_per_s": round(paired / 2 / elapsed, 3) if elapsed else 0.0,
        "messages_per_s": round(messages / elapsed, 3) if elapsed else 0.0,
    }
    doc["users"] = {
        "peak_concurrent": max((row[2] for row in state.timeline.values()), default=0),
        "sessions": state.counters.get("sessions", 0),
        "chats": len(state.records),
        "gave_up": len(state.waits),
    }
    doc["correctness"] = correctness
    doc["errors"] = errors
    doc["oracle"] = {"deadline_ms": deadline_ms, "checked": verdict["checked"]}
    doc["counters"] = dict(sorted(state.counters.items()))
    doc["histograms"] = {name: h.to_dict() for name, h in hist.items()}
    doc["timeline"] = timeline
    tickets = all_tickets(state) if tickets is None else tickets
    doc["fairness"] = dict(fairness) if fairness is not None else fairness_section(state, t_end_ns, fairness_params, tickets)
    doc["tickets"] = tickets[:max_tickets]
    doc["tickets_total"] = len(tickets)
    doc["arrivals"] = state.arrivals.section(start_sec)
    doc["abuse"] = abuse_section(state.abuse, state.records)
    doc["processes"] = {
        worker: {"rss_mb_first": round(series[min(series)] / 1024, 1), "rss_mb_last": round(series[max(series)] / 1024, 1),
                 "rss_mb_peak": round(max(series.values()) / 1024, 1), "samples": len(series)}
        for worker, series in sorted(state.rss.items()) if series
    }
    return doc
