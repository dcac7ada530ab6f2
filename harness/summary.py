"""Text shown by `chatload run`: a progress line while running, a summary table at the end.

Pure functions of a results dict (the results.json format, docs/results.md), so they
are tested without a swarm and reused for partial results. Missing keys show as "-":
a run cut short may not have every section.
"""
from __future__ import annotations

from typing import Any, Iterable

LATENCIES = (
    ("connect", "connect_latency_ms"),
    ("pair", "pair_latency_ms"),
    ("relay", "relay_latency_ms"),
    ("partner_left", "partner_left_latency_ms"),
    ("signal_rtt", "signal_rtt_ms"),
)
PERCENTILES = ("count", "p50", "p90", "p99", "p999", "max")
CORRECTNESS = (
    "double_match",
    "self_match",
    "asymmetric_pair",
    "cross_talk",
    "after_end_delivery",
    "lost_messages",
    "reordered_messages",
    "ghost_match",
    "missing_partner_left",
)
MAX_EXAMPLES_SHOWN = 2


def _num(value: Any, digits: int = 1) -> str:
    if value is None or isinstance(value, bool):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _ms(value: Any) -> str:
    """Latency in ms: more decimals where they matter (sub-10 ms relays on loopback)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    return _num(float(value), 2 if abs(value) < 10 else 1 if abs(value) < 1000 else 0)


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def violations_total(results: dict[str, Any] | None) -> int:
    """The oracle's total, or the sum of its counters when the total is missing."""
    corr = _get(results, "correctness")
    if not isinstance(corr, dict):
        return 0
    total = corr.get("violations_total")
    if isinstance(total, (int, float)):
        return int(total)
    return int(sum(v for k, v in corr.items() if k in CORRECTNESS and isinstance(v, (int, float))))


def progress_counts(partial: dict[str, Any] | None) -> dict[str, Any]:
    """Elapsed time, pairs, messages, online users and violations so far, from results.partial.json.

    Timeline points are per-second values and the newest one is usually still filling
    up, so "online" comes from the one before it.
    """
    timeline = _get(partial, "timeline")
    points = [p for p in timeline if isinstance(p, dict)] if isinstance(timeline, list) else []
    settled = points[-2] if len(points) >= 2 else (points[-1] if points else {})
    pairs = _get(partial, "throughput", "pairs")
    if pairs is None:
        pairs = _get(partial, "users", "chats")
    messages = _get(partial, "throughput", "messages")
    if messages is None:
        messages = _get(partial, "relay_latency_ms", "count")
    elapsed = _get(partial, "run", "elapsed_s")
    if elapsed is None and points:
        elapsed = points[-1].get("t")
    return {
        "t": elapsed,
        "pairs": int(pairs) if isinstance(pairs, float) and pairs.is_integer() else pairs,
        "messages": messages,
        "online": settled.get("online"),
        "violations": violations_total(partial) if partial else None,
    }


def format_progress(partial: dict[str, Any] | None, elapsed_s: float, duration_s: float) -> str:
    """One line: elapsed/duration, pairs, messages, online, violations."""
    c = progress_counts(partial)
    if partial is None:
        return f"  [{elapsed_s:5.0f}s] starting: no results yet"
    t = c["t"] if isinstance(c["t"], (int, float)) and c["t"] >= 0 else elapsed_s
    return (
        f"  [{t:5.0f}s/{duration_s:g}s] pairs {_num(c['pairs'])}  messages {_num(c['messages'])}  "
        f"online {_num(c['online'])}  violations {_num(c['violations'])}"
    )


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    rows = [header, *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    out = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        out.append("  " + "  ".join(cells).rstrip())
    return out


def _example(ex: Any) -> str:
    if not isinstance(ex, dict):
        return str(ex)
    parts = [f"{k}={ex[k]}" for k in ("who", "when", "what") if k in ex]
    return ", ".join(parts) if parts else str(ex)


def format_summary(results: dict[str, Any], paths: dict[str, str] | None = None) -> str:
    """The end-of-run table: latencies per kind, throughput, users, correctness, errors."""
    run = results.get("run") or {}
    lines = []
    title = f"chatload results: {run.get('scenario', '?')} against {run.get('target', '?')}"
    details = []
    if run.get("duration_s") is not None:
        details.append(f"{_num(run.get('duration_s'))} s")
    if run.get("workers") is not None:
        details.append(f"{run['workers']} worker(s)")
    if run.get("seed") is not None:
        details.append(f"seed {run['seed']}")
    if details:
        title += f" ({', '.join(details)})"
    lines.append(title)
    if run.get("interrupted"):
        lines.append("  INTERRUPTED: results gathered until Ctrl-C")
    elif run.get("stop_reason") not in (None, "completed"):
        lines.append(f"  STOPPED EARLY: {run['stop_reason']}")
    if run.get("results_source") == "results.partial.json":
        lines.append("  (from the last results.partial.json: the Locust master did not finish)")

    lines.append("")
    lines.append("latency (ms)")
    rows = []
    for label, key in LATENCIES:
        h = results.get(key) or {}
        rows.append([label, _num(h.get("count"))] + [_ms(h.get(p)) for p in PERCENTILES[1:]])
    lines += _table(["kind", "count", "p50", "p90", "p99", "p99.9", "max"], rows)

    thr = results.get("throughput") or {}
    users = results.get("users") or {}
    lines.append("")
    lines.append(
        f"throughput     pairs/s {_num(thr.get('pairs_per_s'))}   messages/s {_num(thr.get('messages_per_s'))}"
    )
    line = f"users          peak concurrent {_num(users.get('peak_concurrent'))}   sessions {_num(users.get('sessions'))}"
    for key in ("chats", "gave_up"):
        if key in users:
            line += f"   {key.replace('_', ' ')} {_num(users[key])}"
    lines.append(line)

    corr = results.get("correctness") or {}
    total = violations_total(results)
    lines.append("")
    lines.append(f"correctness    violations_total {total}" + ("   OK" if total == 0 else "   VIOLATIONS"))
    examples = corr.get("examples") or {}
    extra = [k for k, v in corr.items() if k not in CORRECTNESS and k != "violations_total" and isinstance(v, (int, float))]
    names = [*CORRECTNESS, *extra]
    width = max(len(n) for n in names) + 2
    for name in names:
        value = corr.get(name)
        mark = "  <-- " if isinstance(value, (int, float)) and value > 0 else ""
        lines.append(f"  {name:<{width}}{_num(value):>6}{mark}")
        if mark:
            for ex in (examples.get(name) or [])[:MAX_EXAMPLES_SHOWN]:
                lines.append(f"      e.g. {_example(ex)}")

    errors = results.get("errors") or {}
    lines.append("")
    lines.append(f"errors         total {_num(errors.get('total', 0))}")
    for kind, value in sorted(errors.items()):
        if kind != "total" and isinstance(value, (int, float)) and value:
            lines.append(f"  {kind:<22}{_num(value):>8}")

    if paths:
        lines.append("")
        for label, path in paths.items():
            lines.append(f"{label:<14} {path}")
    return "\n".join(lines)
