"""The summary table and the progress line are pure functions of a results dict."""
from __future__ import annotations

from harness.summary import format_progress, format_summary, progress_counts, violations_total


def _hist(count: int, base: float) -> dict:
    return {"count": count, "p50": base, "p90": base * 2, "p99": base * 4, "p999": base * 8, "max": base * 10}


def _results(**corr: int) -> dict:
    counters = {
        "double_match": 0, "self_match": 0, "asymmetric_pair": 0, "cross_talk": 0,
        "after_end_delivery": 0, "lost_messages": 0, "reordered_messages": 0,
        "ghost_match": 0, "missing_partner_left": 0,
    }  # fmt: skip
    counters.update(corr)
    counters["violations_total"] = sum(counters.values())
    counters["examples"] = {
        "cross_talk": [{"who": "w1-3/2", "when": 4.25, "what": "message from w0-7/1 while in a chat with w0-2/5"}]
    }
    return {
        "run": {"scenario": "smoke", "target": "ws://127.0.0.1:9999/ws", "seed": 7, "duration_s": 10.0, "workers": 2},
        "connect_latency_ms": _hist(40, 1.5),
        "pair_latency_ms": _hist(1234, 3.25),
        "relay_latency_ms": _hist(56789, 0.75),
        "partner_left_latency_ms": _hist(600, 0.5),
        "signal_rtt_ms": {"count": 0, "p50": None, "p90": None, "p99": None, "p999": None, "max": None},
        "throughput": {"pairs": 617.0, "messages": 56789, "pairs_per_s": 61.7, "messages_per_s": 5678.9},
        "users": {"peak_concurrent": 40, "sessions": 77, "chats": 1234, "gave_up": 5},
        "correctness": counters,
        "errors": {"connect": 2, "unexpected_error": 1, "total": 3},
        # per-second points; the newest one is still filling up
        "timeline": [{"t": 0, "online": 10, "pairs": 5.0}, {"t": 1, "online": 38, "pairs": 9.0}, {"t": 2, "online": 3, "pairs": 0.0}],
    }


def test_summary_shows_every_latency_kind_with_its_percentiles() -> None:
    text = format_summary(_results())
    table = text.split("latency (ms)\n", 1)[1].split("\n\n", 1)[0]
    rows = {line.split()[0]: line.split() for line in table.splitlines()}
    assert rows["kind"] == ["kind", "count", "p50", "p90", "p99", "p99.9", "max"]
    assert rows["pair"][1:] == ["1,234", "3.25", "6.50", "13.0", "26.0", "32.5"]
    assert rows["relay"][1:3] == ["56,789", "0.75"]
    assert rows["connect"][1:3] == ["40", "1.50"]
    assert rows["partner_left"][1] == "600"
    assert rows["signal_rtt"][1:] == ["0", "-", "-", "-", "-", "-"]  # an empty histogram


def test_summary_shows_throughput_users_errors_and_paths() -> None:
    text = format_summary(_results(), {"results": "out/results.json"})
    assert "pairs/s 61.7" in text and "messages/s 5,678.9" in text
    assert "peak concurrent 40" in text and "sessions 77" in text and "chats 1,234" in text and "gave up 5" in text
    assert "errors         total 3" in text
    assert any(line.split() == ["connect", "2"] for line in text.splitlines())
    assert "out/results.json" in text
    assert "smoke against ws://127.0.0.1:9999/ws" in text and "seed 7" in text


def test_clean_run_says_ok_and_marks_nothing() -> None:
    text = format_summary(_results())
    assert "violations_total 0   OK" in text
    assert "<--" not in text and "e.g." not in text


def test_violations_are_marked_with_their_examples() -> None:
    text = format_summary(_results(cross_talk=3, lost_messages=1))
    assert "violations_total 4   VIOLATIONS" in text
    lines = text.splitlines()
    cross = next(i for i, line in enumerate(lines) if line.strip().startswith("cross_talk"))
    assert lines[cross].split()[:2] == ["cross_talk", "3"] and "<--" in lines[cross]
    assert "who=w1-3/2" in lines[cross + 1] and "while in a chat with" in lines[cross + 1]
    lost = next(line for line in lines if line.strip().startswith("lost_messages"))
    assert "<--" in lost
    double = next(line for line in lines if line.strip().startswith("double_match"))
    assert "<--" not in double


def test_partial_and_interrupted_runs_are_labelled() -> None:
    r = _results()
    r["run"].update(interrupted=True, stop_reason="interrupted", results_source="results.partial.json")
    text = format_summary(r)
    assert "INTERRUPTED" in text and "results.partial.json" in text
    r["run"].update(interrupted=False, stop_reason="backend_unreachable", results_source=None)
    assert "STOPPED EARLY: backend_unreachable" in format_summary(r)


def test_missing_sections_show_dashes_instead_of_failing() -> None:
    text = format_summary({"run": {"scenario": "x"}})
    assert "pair" in text and "violations_total 0" in text
    pair = next(line for line in text.splitlines() if line.split()[:1] == ["pair"])
    assert pair.split()[1:] == ["-"] * 6


def test_violations_total_falls_back_to_the_sum_of_counters() -> None:
    assert violations_total({"correctness": {"ghost_match": 2, "cross_talk": 1}}) == 3
    assert violations_total({"correctness": {"violations_total": 5, "ghost_match": 2}}) == 5
    assert violations_total(None) == 0
    assert violations_total({}) == 0


def test_progress_line_reads_the_partial_results() -> None:
    r = _results(ghost_match=2)
    r["run"]["elapsed_s"] = 12.4
    assert progress_counts(r) == {"t": 12.4, "pairs": 617, "messages": 56789, "online": 38, "violations": 2}
    line = format_progress(r, elapsed_s=99.0, duration_s=30.0)
    assert line.split() == ["[", "12s/30s]", "pairs", "617", "messages", "56,789", "online", "38", "violations", "2"]


def test_progress_line_falls_back_to_the_timeline_and_histogram_counts() -> None:
    r = _results()
    del r["throughput"]
    r["users"].pop("chats")
    c = progress_counts(r)
    assert c["t"] == 2 and c["messages"] == 56789 and c["pairs"] is None


def test_progress_line_before_any_partial_results() -> None:
    line = format_progress(None, elapsed_s=3.4, duration_s=30.0)
    assert line.split() == ["[", "3s]", "starting:", "no", "results", "yet"]
