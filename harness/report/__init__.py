"""The run report: one self-contained HTML file built from results.json.

Why: after a run, a performance engineer wants the figures and their shape in one file
they can mail or archive; it must open anywhere, offline. Charts are SVG drawn here
(harness/report/svg.py), styles and the small script (legend toggles, an error sentinel)
are inline; nothing is fetched. `chatload run` writes DIR/report.html and
`chatload report RESULTS.json` rebuilds it (docs/report.md).
"""
from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from harness.report import data
from harness.report.page import CSS, SCRIPT, SENTINEL
from harness.report.svg import BarRow, HBars, Marker, Series, chart, fmt


def _cell(v: Any) -> str:
    if v is None:
        return '<td class="na">–</td>'
    if isinstance(v, bool):
        return f"<td>{'yes' if v else 'no'}</td>"
    if isinstance(v, (int, float)):
        return f'<td class="num">{escape(fmt(v) if isinstance(v, float) else f"{v:,}")}</td>'
    if isinstance(v, (dict, list)):
        return f"<td><code>{escape(json.dumps(v, default=str)[:400])}</code></td>"
    return f"<td>{escape(str(v))}</td>"


def _table(header: list[str], rows: list[list[Any]], cls: str = "") -> str:
    if not rows:
        return '<p class="na">none</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _section(sec_id: str, title: str, body: str, note: str = "") -> str:
    p = f'<p class="note">{escape(note)}</p>' if note else ""
    return f'<section id="{sec_id}"><h2>{escape(title)}</h2>{p}{body}</section>'


def _cards(results: Mapping[str, Any]) -> str:
    thr = results.get("throughput") or {}
    corr = results.get("correctness") or {}
    pair = results.get("pair_latency_ms") or {}
    relay = results.get("relay_latency_ms") or {}
    users = results.get("users") or {}
    errors = results.get("errors") or {}
    items = [
        ("pairs/s", thr.get("pairs_per_s")), ("messages/s", thr.get("messages_per_s")),
        ("pair p99 (ms)", pair.get("p99")), ("relay p99 (ms)", relay.get("p99")),
        ("peak users", users.get("peak_concurrent")), ("violations", corr.get("violations_total")),
        ("errors", errors.get("total")),
    ]
    out = []
    for label, v in items:
        bad = label in ("violations", "errors") and isinstance(v, (int, float)) and v > 0
        txt = "–" if v is None else fmt(v) if isinstance(v, float) else f"{v:,}"
        out.append(f'<div class="card{" bad" if bad else ""}"><div class="v">{escape(txt)}</div>'
                   f'<div class="l">{escape(label)}</div></div>')
    return '<div class="cards">' + "".join(out) + "</div>"


def _latency_section(results: Mapping[str, Any]) -> str:
    rows = [[k, s.get("count"), s.get("p50"), s.get("p90"), s.get("p99"), s.get("p999"), s.get("max"), s.get("mean")]
            for k, s in data.latency_rows(results)]
    table = _table(["kind", "count", "p50", "p90", "p99", "p99.9", "max", "mean"], rows, "lat")
    charts = []
    for kind, key, title in (("pair", "pair_latency_ms", "Pair latency distribution"),
                             ("relay", "relay_latency_ms", "Relay latency distribution")):
        h = data.histogram(results, kind)
        s = results.get(key) or {}
        marks = [Marker(float(s[p]), p) for p in ("p50", "p90", "p99") if isinstance(s.get(p), (int, float)) and s[p] > 0]
        charts.append(chart(f"plot-{kind}-latency", title, [Series(f"{kind} samples (%)", data.distribution_bars(h), "bars")],
                            x_label="latency (ms, log scale)", y_label="% of samples", x_log=True, markers=marks))
    return _section("latency", "Latency (ms)", table + "".join(charts),
                    "Percentiles are merged from every worker's histogram counts (within 1% of the exact value).")


def _waits_section(results: Mapping[str, Any], fair: Mapping[str, Any]) -> str:
    paired, gave_up = data.waits_vs_join(results)
    scatter = chart("plot-wait-vs-join", "Waiting time against join time",
                    [Series("paired", paired, "scatter"), Series("gave up", gave_up, "scatter", color="#ff7f0e")],
                    x_label="join time (s since the start)", y_label="wait (ms, log scale)", y_log=True)
    rows = data.p99_by_cohort(fair)
    bars = HBars("plot-p99-by-cohort", "p99 wait by cohort", [BarRow(label, v, f"{n:,} searches" if n else "")
                                                              for label, v, n in rows], unit="ms").svg()
    figures = [[k, fair.get(k)] for k in ("tickets", "paired", "gave_up", "jain_index", "fifo_inversion_rate",
                                          "fifo_inversions", "worst_to_best_p99_ratio", "starved",
                                          "interest_match_rate", "fallback_rate", "repeat_partner_rate")
               if k in fair]
    table = _table(["figure", "value"], figures)
    return _section("waits", "Waiting and fairness", scatter + bars + table,
                    "Each point is one search (join or next) from the run's tickets; fairness figures are defined in docs/fairness.md.")


def _timeline_section(results: Mapping[str, Any]) -> str:
    tl = data.timeline(results)
    thr = chart("plot-throughput", "Throughput over time",
                [Series("pairs/s", tl["pairs"]), Series("messages/s", tl["messages"])],
                x_label="time (s since the start)", y_label="per second")
    conc = chart("plot-concurrency", "Concurrency over time",
                 [Series("online", tl["online"]), Series("waiting", tl["waiting"]), Series("in chat", tl["in_chat"])],
                 x_label="time (s since the start)", y_label="users")
    arrivals = results.get("arrivals") or {}
    extra = ""
    per = arrivals.get("per_second") or []
    if arrivals.get("model") == "open" and per:
        extra = chart("plot-arrivals", "Open-model arrivals over time",
                      [Series(k, [(float(p["t"]), float(p.get(k, 0))) for p in per]) for k in ("scheduled", "started", "dropped")],
                      x_label="time (s since the start)", y_label="arrivals per second")
    return _section("timeline", "Throughput and concurrency", thr + conc + extra)


def _violations_section(results: Mapping[str, Any]) -> str:
    tl = data.timeline(results)
    bars = [(t, t + 1.0, v) for t, v in tl["violations"]]
    plot = chart("plot-violations", "Violations over time", [Series("violations", bars, "bars", color="#d62728")],
                 x_label="time (s since the start)", y_label="violations")
    corr = results.get("correctness") or {}
    counts = [[k, v] for k, v in corr.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    examples = _table(["kind", "who", "when", "what"], [list(r) for r in data.violation_examples(results)])
    return _section("violations", "Correctness", plot + _table(["check", "count"], counts) + "<h3>Examples</h3>" + examples,
                    "The oracle's rules are in docs/oracle.md.")


def _other_section(results: Mapping[str, Any]) -> str:
    errors = [[k, v] for k, v in (results.get("errors") or {}).items()]
    thr = [[k, v] for k, v in (results.get("throughput") or {}).items()]
    users = [[k, v] for k, v in (results.get("users") or {}).items()]
    counters = [[k, v] for k, v in (results.get("counters") or {}).items()]
    arrivals = results.get("arrivals") or {}
    arr = [[k, v] for k, v in arrivals.items() if k != "per_second"]
    body = ("<h3>Throughput</h3>" + _table(["figure", "value"], thr) + "<h3>Users</h3>" + _table(["figure", "value"], users)
            + "<h3>Errors</h3>" + _table(["kind", "count"], errors) + "<h3>Counters</h3>" + _table(["counter", "value"], counters))
    if arr:
        body += "<h3>Arrivals</h3>" + _table(["figure", "value"], arr)
    return _section("summary", "Summary", body)


def _params_section(results: Mapping[str, Any]) -> str:
    run = results.get("run") or {}
    rows = [[k, v] for k, v in run.items()]
    oracle = results.get("oracle") or {}
    rows += [[f"oracle.{k}", v] for k, v in oracle.items()]
    return _section("params", "Run parameters", _table(["parameter", "value"], rows))


def build_report(results: Mapping[str, Any], source: str = "") -> str:
    """The whole report as one HTML string."""
    run = results.get("run") or {}
    fair = data.fairness(results)
    corr = results.get("correctness") or {}
    total = corr.get("violations_total") or 0
    if run.get("simulated"):      # chatload simulate: no messages, so nothing for the oracle to judge
        status = "simulated in-process: no correctness checks"
    else:
        status = "partial results" if results.get("partial") else (
            f"{total} correctness violation(s)" if total else "no correctness violations")
    stop = run.get("stop_reason")
    if stop and stop != "completed":
        status += f" · stopped: {stop}"
    title = f"chatload report: {run.get('scenario') or 'run'}"
    sub = " · ".join(str(x) for x in (run.get("started"), run.get("target"),
                                      f"seed {run.get('seed')}" if run.get("seed") is not None else None,
                                      f"{run.get('elapsed_s')} s" if run.get("elapsed_s") is not None else None) if x)
    nav = "".join(f'<a href="#{i}">{t}</a>' for i, t in (("latency", "Latency"), ("waits", "Waiting"),
                                                          ("timeline", "Over time"), ("violations", "Correctness"),
                                                          ("summary", "Summary"), ("params", "Parameters")))
    body = "".join([
        _cards(results), _latency_section(results), _waits_section(results, fair), _timeline_section(results),
        _violations_section(results), _other_section(results), _params_section(results),
    ])
    src = f'<p class="note">from {escape(source)}</p>' if source else ""
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title>"
        f"<script>{SENTINEL}</script><style>{CSS}</style></head>"
        f"<body><header><h1>{escape(title)}</h1><p class=\"sub\">{escape(sub)}</p>"
        f"<p class=\"status{' bad' if total else (' plain' if run.get('simulated') else '')}\">{escape(status)}</p><nav>{nav}</nav>{src}</header>"
        f"<main>{body}</main>"
        '<footer><div id="js-errors" class="js-errors"></div></footer>'
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def write_report(results: Mapping[str, Any], path: Path, source: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(build_report(results, source), encoding="utf-8")
    tmp.replace(path)
    return path


def write_report_safely(results: Mapping[str, Any] | None, path: Path) -> str | None:
    """For `chatload run`: a report failure is reported, never fatal to the run's exit code."""
    if not results:
        return None
    try:
        return str(write_report(results, path, source=str(path.with_name("results.json"))))
    except Exception as exc:  # noqa: BLE001
        print(f"chatload: could not write the report: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
