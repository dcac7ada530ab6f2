"""What the report plots, taken from a results.json document (pure: no I/O).

Every function tolerates missing sections (a partial results file, an older run), and
returns plain lists the SVG charts draw.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from harness.histogram import LogHistogram, bucket_lower, bucket_upper

#: Scatter plots keep at most this many points (evenly strided, deterministic).
MAX_POINTS = 4000
LATENCY_KINDS = (("pair", "pair_latency_ms"), ("relay", "relay_latency_ms"),
                 ("partner_left", "partner_left_latency_ms"), ("signal_rtt", "signal_rtt_ms"),
                 ("connect", "connect_latency_ms"))


def histogram(results: Mapping[str, Any], kind: str) -> LogHistogram:
    d = (results.get("histograms") or {}).get(kind)
    try:
        return LogHistogram.from_dict(d) if d else LogHistogram()
    except (ValueError, KeyError, TypeError):
        return LogHistogram()


def distribution_bars(h: LogHistogram, bins: int = 48) -> list[tuple[float, float, float]]:
    """(lo_ms, hi_ms, share of samples in %) over log-spaced display bins between min and max."""
    if h.count == 0:
        return []
    lo = max(h.min, 0.001)
    hi = max(h.max, lo * 1.5)
    edges = [lo * (hi / lo) ** (i / bins) for i in range(bins + 1)]
    counts = [0] * bins
    ratio = math.log(hi / lo)
    for i, c in enumerate(h.counts):
        if not c:
            continue
        mid = min(max(math.sqrt(max(bucket_lower(i), 1e-6) * min(bucket_upper(i), 1e12)), lo), hi)
        j = min(bins - 1, max(0, int(math.log(mid / lo) / ratio * bins))) if ratio > 0 else 0
        counts[j] += c
    return [(edges[j], edges[j + 1], 100.0 * counts[j] / h.count) for j in range(bins) if counts[j]]


def start_epoch(results: Mapping[str, Any]) -> float | None:
    """Epoch seconds of the test start: run.t_start if given, else run.started (ISO)."""
    run = results.get("run") or {}
    t = run.get("t_start")
    if isinstance(t, (int, float)):
        return float(t)
    started = run.get("started")
    if isinstance(started, str) and started:
        try:
            return dt.datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def waits_vs_join(results: Mapping[str, Any]) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(paired, gave_up) points: (join time in s since the start, wait in ms)."""
    tickets = [t for t in results.get("tickets") or [] if isinstance(t.get("t_join"), (int, float))]
    if not tickets:
        return [], []
    t0 = start_epoch(results)
    first = min(t["t_join"] for t in tickets)
    if t0 is None or t0 > first:
        t0 = first
    step = max(1, math.ceil(len(tickets) / MAX_POINTS))
    paired, gave_up = [], []
    for t in tickets[::step]:
        if isinstance(t.get("t_paired"), (int, float)):
            paired.append((t["t_join"] - t0, max(0.001, (t["t_paired"] - t["t_join"]) * 1000.0)))
        elif isinstance(t.get("t_gave_up"), (int, float)):
            gave_up.append((t["t_join"] - t0, max(0.001, (t["t_gave_up"] - t["t_join"]) * 1000.0)))
    return paired, gave_up


def fairness(results: Mapping[str, Any]) -> dict[str, Any]:
    """The fairness section, or the figures computed from the tickets (empty without either)."""
    f = results.get("fairness")
    if isinstance(f, Mapping) and f:
        return dict(f)
    if not results.get("tickets"):
        return {}
    try:
        from harness.fairness.analyse import analyse

        return analyse(results["tickets"])
    except Exception:  # noqa: BLE001 - a report without fairness beats no report
        return {}


def p99_by_cohort(fair: Mapping[str, Any]) -> list[tuple[str, float, int]]:
    """(\"dimension: cohort\", p99 ms, tickets) rows from the fairness figures."""
    rows = []
    by = fair.get("wait_ms_by_cohort") or {}
    for dim, cohorts in sorted(by.items()):
        for cohort, s in sorted((cohorts or {}).items()):
            if isinstance(s, Mapping) and isinstance(s.get("p99"), (int, float)):
                rows.append((f"{dim}: {cohort}", float(s["p99"]), int(s.get("count") or 0)))
    if not rows:
        for dim, cohorts in sorted((fair.get("wait_p99_ms_by_cohort") or {}).items()):
            for cohort, v in sorted((cohorts or {}).items()):
                if isinstance(v, (int, float)):
                    rows.append((f"{dim}: {cohort}", float(v), 0))
    return rows


def timeline(results: Mapping[str, Any]) -> dict[str, list[tuple[float, float]]]:
    """Series over time (s since the start): pairs, messages, online, waiting, in_chat, violations."""
    out: dict[str, list[tuple[float, float]]] = {k: [] for k in ("pairs", "messages", "online", "waiting", "in_chat", "violations")}
    for p in results.get("timeline") or []:
        t = p.get("t")
        if not isinstance(t, (int, float)):
            continue
        for k in out:
            v = p.get(k)
            if isinstance(v, (int, float)):
                out[k].append((float(t), float(v)))
    return out


def violation_examples(results: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(kind, who, when, what) rows of the oracle's examples."""
    rows = []
    examples = (results.get("correctness") or {}).get("examples") or {}
    t0 = start_epoch(results)
    for kind, exs in sorted(examples.items()):
        for e in exs or []:
            when = e.get("when")
            if isinstance(when, (int, float)) and when > 1e15:  # nanoseconds since the epoch
                when_s = when / 1e9
                when_txt = f"+{when_s - t0:.1f}s" if t0 else f"{when_s:.3f}"
            else:
                when_txt = str(when)
            rows.append((kind, str(e.get("who", "")), when_txt, str(e.get("what", ""))))
    return rows


def latency_rows(results: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    return [(kind, results.get(key) or {}) for kind, key in LATENCY_KINDS]
